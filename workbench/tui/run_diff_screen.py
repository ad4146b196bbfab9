"""Two runs' settings side by side (Runs screen: ``m`` marks one run, ``=`` on another opens this)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from workbench.run_diff import DIFFERS, Comparison, Line

#: Cells a key column takes at most, and a value column at least.
KEY_WIDTH = 24
VALUE_MIN = 10


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, its end replaced by an ellipsis when it is longer."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


class RunDiffScreen(ModalScreen[None]):
    """Settings with differing keys first, each marked ``≠`` (and bold), then the shared ones, then
    the headline metrics; up/down scroll, the highlighted line is shown in full under the table."""

    DEFAULT_CSS = """
    RunDiffScreen { align: center middle; }
    RunDiffScreen > Vertical { width: 100%; height: 100%; border: round $accent; padding: 0 1;
                               background: $surface; }
    RunDiffScreen DataTable { height: 1fr; }
    RunDiffScreen #diff-full { height: 2; }
    """
    BINDINGS = [Binding("escape,q", "close", "Close", id="diff.close")]

    def __init__(self, comparison: Comparison) -> None:
        super().__init__()
        self.comparison = comparison
        self._lines: list[Line] = []
        self._widths = (0, 0)

    def compose(self) -> ComposeResult:
        c = self.comparison
        with Vertical():
            yield Label(Text(f"A {c.a}\nB {c.b}"), id="diff-runs")
            table: DataTable[Text] = DataTable(cursor_type="row", id="diff", zebra_stripes=True)
            yield table
            yield Static("", id="diff-full")
            yield Label(Text.from_markup("[b]up/down[/b] scroll   [b]escape[/b] close"))

    def on_mount(self) -> None:
        c = self.comparison
        self.query_one(Vertical).border_title = Text(
            f"{c.differing} of {len(c.settings)} settings differ ({DIFFERS})")
        self._fill()
        self.query_one(DataTable).focus()

    def on_resize(self) -> None:
        self._fill()

    def _fill(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        width = (table.content_region.width or self.app.size.width - 4) - 2  # the scroll bar
        pad = 2 * table.cell_padding
        every = self.comparison.settings + self.comparison.results
        key_width = min(max(len(line.key) for line in every), KEY_WIDTH)
        value_width = max((width - 1 - key_width - 4 * pad) // 2, VALUE_MIN)
        if (key_width, value_width) == self._widths:
            return
        self._widths = (key_width, value_width)
        row = table.cursor_row
        table.clear(columns=True)
        table.add_column("", width=1)
        table.add_column("setting", width=key_width)
        table.add_column("A", width=value_width)
        table.add_column("B", width=value_width)
        self._lines = []
        for line in self.comparison.settings:
            self._add(table, line, key_width, value_width)
        table.add_row(Text(""), Text("results", style="bold"), Text(""), Text(""), key="--results--")
        self._lines.append(Line("", "", ""))
        for line in self.comparison.results:
            self._add(table, line, key_width, value_width)
        table.move_cursor(row=min(row, table.row_count - 1))

    def _add(self, table: DataTable[Text], line: Line, key_width: int, value_width: int) -> None:
        style = "bold" if line.differs else ""
        table.add_row(Text(DIFFERS if line.differs else " "), Text(cut(line.key, key_width), style=style),
                      Text(cut(line.a, value_width), style=style), Text(cut(line.b, value_width), style=style))
        self._lines.append(line)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        index = event.cursor_row
        line = self._lines[index] if 0 <= index < len(self._lines) else None
        full = self.query_one("#diff-full", Static)
        full.update(Text(f"{line.key}: A {line.a} | B {line.b}") if line and line.key else "")

    def action_close(self) -> None:
        self.dismiss(None)
