"""Text for a human's terminal: control characters shown, never obeyed.

Class names, vocabularies, generated text, run ids and file names come from data the user did
not write. Printed raw, ``ESC ] 0 ; ... BEL`` retitles the terminal and ``ESC [ 2 J`` clears it.
:func:`printable` is applied where text leaves workbench for a screen (the CLI's text output,
the progress lines, the app's widgets); ``--json`` output is left exact (``json.dumps`` escapes
control characters itself). No torch here.
"""

from __future__ import annotations

#: Characters that are layout where text is shown as lines (kept unless ``layout=False``).
LAYOUT = "\n\t"

#: Invisible characters that reorder what follows them (bidi embeddings, overrides and isolates:
#: "Trojan Source") or break lines where a terminal does not expect it.
_REORDERING = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]


def _shown(code: int) -> str:
    """C0 controls and DEL as their Unicode control pictures (ESC -> ␛), the rest escaped."""
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_TABLE: dict[int, str] = {code: _shown(code) for code in [*range(0x20), 0x7F, *range(0x80, 0xA0), *_REORDERING]}
_TABLE_LAYOUT: dict[int, str] = {code: shown for code, shown in _TABLE.items() if chr(code) not in LAYOUT}
_REMOVE: dict[int, None] = dict.fromkeys(_TABLE)


def printable(text: object, layout: bool = True) -> str:
    """``text`` with every control character visible instead of acting on the terminal: C0
    (except newline and tab when ``layout``), ESC, DEL, C1 and bidi reordering marks."""
    return str(text).translate(_TABLE_LAYOUT if layout else _TABLE)


def is_printable(text: str, layout: bool = True) -> bool:
    """Whether :func:`printable` would leave ``text`` as it is."""
    return printable(text, layout) == text


def without_controls(text: str) -> str:
    """``text`` with those characters removed: for a final pass over text already laid out in
    terminal cells (they take no cell, so removing them keeps every column where it was)."""
    return text.translate(_REMOVE)
