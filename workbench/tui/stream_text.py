"""A pane for text that grows at its end (Generate's output), at a cost that does not grow with it.

The Generate screen used to show its output as one ``Static`` whose whole text was set again on every
chunk (20 times a second) and scrolled to the end: wrapping and laying out all of it each time, so a
long generation at 80x24 cost more per chunk the longer it got, and keys waited behind it. Here the
text is kept as paragraphs, each wrapped once into rows; a chunk re-wraps only from the last-but-one
row of the last paragraph (greedy wrapping restarts cleanly at a row's start), and only the rows in
view are drawn (Textual's line API). The whole text is wrapped again only when the width changes.
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

#: A run of non-blanks (a word) or of blanks.
_TOKEN = re.compile(r"\S+|\s+")
TAB_SIZE = 8


def _fold(word: str, offset: int, width: int) -> tuple[list[int], int]:
    """Row starts inside ``word`` (at ``offset`` in its paragraph) for a word wider than a row, and
    the cells taken on its last row."""
    starts: list[int] = []
    cells = 0
    for index, char in enumerate(word):
        char_cells = cell_len(char)
        if cells + char_cells > width and cells:
            starts.append(offset + index)
            cells = 0
        cells += char_cells
    return starts, cells


def wrap_starts(text: str, start: int, width: int) -> list[int]:
    """Offsets in ``text`` where rows begin, from ``start`` (itself a row's start) on: greedy word
    wrap at ``width`` cells; blanks stay at the end of their row, a word wider than a row is folded."""
    width = max(width, 1)
    starts = [start]
    cells = 0
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        token_cells = cell_len(token)
        if token[0].isspace() or cells + token_cells <= width:
            cells += token_cells
            continue
        if cells:
            starts.append(match.start())
            cells = 0
        if token_cells > width:
            folds, cells = _fold(token, match.start(), width)
            starts.extend(folds)
        else:
            cells = token_cells
    return starts


def _row(text: str, width: int) -> str:
    """What a row shows: no trailing blanks (they may overhang the edge), at most ``width`` cells."""
    row = text.rstrip()
    while cell_len(row) > width:
        row = row[:-1]
    return row


class WrappedText:
    """Text kept as paragraphs and wrapped rows at ``width``; :meth:`append` re-wraps only the end."""

    def __init__(self, width: int = 0) -> None:
        self.width = width
        self.paragraphs: list[str] = [""]
        #: Rows of every paragraph but the last (those are final), then the last paragraph's row starts.
        self.rows: list[str] = []
        self.last_starts: list[int] = [0]

    @property
    def text(self) -> str:
        return "\n".join(self.paragraphs)

    def __len__(self) -> int:
        """The number of rows."""
        return len(self.rows) + len(self.last_starts)

    def append(self, chunk: str) -> None:
        first, *rest = chunk.replace("\t", " " * TAB_SIZE).split("\n")
        self.paragraphs[-1] += first
        # greedy wrapping restarts cleanly at any row's start: from the last-but-one row on
        restart = self.last_starts[-2] if len(self.last_starts) > 1 else 0
        kept = self.last_starts[:-2] if len(self.last_starts) > 1 else []
        self.last_starts = kept + wrap_starts(self.paragraphs[-1], restart, self.width)
        for paragraph in rest:  # the last paragraph is complete: its rows join the final ones
            self.rows.extend(self.last_rows())
            self.paragraphs.append(paragraph)
            self.last_starts = wrap_starts(paragraph, 0, self.width)

    def last_rows(self) -> list[str]:
        paragraph, starts = self.paragraphs[-1], self.last_starts
        ends = [*starts[1:], len(paragraph)]
        return [_row(paragraph[a:b], self.width) for a, b in zip(starts, ends, strict=True)]

    def row(self, index: int) -> str:
        if index < len(self.rows):
            return self.rows[index]
        k = index - len(self.rows)
        if k >= len(self.last_starts):
            return ""
        end = self.last_starts[k + 1] if k + 1 < len(self.last_starts) else len(self.paragraphs[-1])
        return _row(self.paragraphs[-1][self.last_starts[k]:end], self.width)

    def rewrap(self, width: int) -> None:
        """Every paragraph at ``width`` (when the pane's width changes)."""
        self.width = width
        self.rows = []
        for paragraph in self.paragraphs[:-1]:
            starts = wrap_starts(paragraph, 0, width)
            ends = [*starts[1:], len(paragraph)]
            self.rows.extend(_row(paragraph[a:b], width) for a, b in zip(starts, ends, strict=True))
        self.last_starts = wrap_starts(self.paragraphs[-1], 0, width)


class StreamText(ScrollView, can_focus=True):
    """Scrollable wrapped text with a cheap :meth:`append`; follows the end unless scrolled up."""

    DEFAULT_CSS = """
    StreamText { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._wrapped = WrappedText()
        self._following = True

    @property
    def text(self) -> str:
        return self._wrapped.text

    def clear(self) -> None:
        self._wrapped = WrappedText(self._wrapped.width)
        self._following = True
        self._changed()

    def append(self, chunk: str) -> None:
        """Add ``chunk`` (already made printable) at the end; cost independent of the text's length."""
        if chunk:
            self._wrapped.append(chunk)
            self._changed()

    def _changed(self) -> None:
        self.virtual_size = Size(self._wrapped.width, len(self._wrapped))
        self.refresh()
        if self._following:
            self.scroll_end(animate=False)  # after the refresh that sizes the scrollbars

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._following = new_value >= self.max_scroll_y  # scrolled up: stays put; back at the end: follows

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width != self._wrapped.width and width > 0:
            self._wrapped.rewrap(width)
            self._changed()

    def render_line(self, y: int) -> Strip:
        style = self.rich_style
        text = self._wrapped.row(round(self.scroll_offset.y) + y)
        blank = Style.from_color(bgcolor=style.bgcolor)  # the padding of a Static's lines: background only
        return Strip([Segment(text, style)] if text else []).adjust_cell_length(
            self.scrollable_content_region.width, blank)
