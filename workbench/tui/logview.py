"""A log pane whose lines wrap at the gaps between metrics, re-wrapped whenever its width changes.

Textual's ``RichLog`` wraps a line once, at the width the pane has when the line is written; a
line written before the layout settled (or while the pane was hidden) is cut at the pane's edge
later, taking the valid loss and accuracy with it. Here lines are kept as written and wrapped at
paint width, breaking between ``name value`` pairs (the two-space gaps of the epoch lines).
"""

from __future__ import annotations

import textwrap
from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

INDENT = "  "


def wrap_line(line: str, width: int) -> list[str]:
    """``line`` in rows of at most ``width`` cells: broken at two-space gaps first (never inside a
    ``name value`` pair that fits a row), continuation rows indented; over-long pieces at spaces."""
    width = max(width, 8)
    if len(line) <= width:
        return [line]
    rows: list[str] = []
    current = ""
    for part in line.split("  "):
        if not part:
            continue
        candidate = f"{current}  {part}" if current else part
        if len(candidate) <= (width if not rows else width - len(INDENT)):
            current = candidate
            continue
        if current:
            rows.append(current)
        limit = width - len(INDENT) if rows else width
        if len(part) <= limit:
            current = part
            continue
        pieces = textwrap.wrap(part, width - len(INDENT), break_on_hyphens=False) or [part]
        rows.extend(pieces[:-1])
        current = pieces[-1]
    if current:
        rows.append(current)
    return [row if index == 0 else INDENT + row for index, row in enumerate(rows)]


class LogView(VerticalScroll):
    """The run's log: focusable, scrolls with the keyboard, follows new lines while at the end."""

    DEFAULT_CSS = """
    LogView { scrollbar-gutter: stable; scrollbar-size-vertical: 1; }
    LogView > Static { width: 1fr; height: auto; }
    """

    def __init__(self, max_lines: int = 400, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.lines: deque[str] = deque(maxlen=max_lines)
        self._width = 0

    def compose(self) -> ComposeResult:
        yield Static("", markup=False)

    def write(self, line: str) -> None:
        self.write_lines([line])

    def write_lines(self, lines: list[str]) -> None:
        self.lines.extend(lines)
        self._update()

    def clear(self) -> None:
        self.lines.clear()
        self._update()

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            self._update()

    def _update(self) -> None:
        if not self.is_mounted:
            return
        width = self.scrollable_content_region.width
        if width < 10:  # not laid out yet (or hidden): wrapped when it gets its width
            self._width = 0
            return
        self._width = width
        following = self.scroll_y >= self.max_scroll_y - 1
        rows = [row for line in self.lines for row in wrap_line(line, self._width)]
        self.query_one(Static).update(Text("\n".join(rows)))
        if following:
            self.call_after_refresh(self.scroll_end, animate=False)
