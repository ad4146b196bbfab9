"""Sweeps (``workbench sweep``) as they fill in: configuration x seed, mean and spread per row.

The screen reads the sweep folders on a timer, like the Runs screen reads run folders; the sweep
itself is scheduled by the ``workbench sweep`` process that started it, so closing the app never
changes a sweep. From here one run of a sweep can be stopped (a diverging seed), and the table
written as sweep.md and sweep.csv.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from workbench import sweep as sw
from workbench.errors import WorkbenchError
from workbench.tui.widgets import NavBar, footer

if TYPE_CHECKING:
    from workbench.runs import Run
    from workbench.tui.app import WorkbenchApp

REFRESH_SECONDS = 2.0
MARKS = {"best": "best", "inside": "≈", "outside": "", "n<2": "?", "": ""}


SHORT_STATES = {"pending": "-", "starting": "start", "interrupted": "interr."}
RULE = ("≈ inside the seed spread: |mean - best mean| <= the larger of the two sds (n-1); ? fewer than two "
        "seeds. s stops the run under the cursor, w writes sweep.md and sweep.csv.")


def short_keys(keys: list[str]) -> dict[str, str]:
    """Grid keys without their namespace (model.gates -> gates) where that leaves them distinct."""
    bare = [key.rpartition(".")[2] for key in keys]
    return {key: name if bare.count(name) == 1 else key for key, name in zip(keys, bare, strict=True)}


class SweepScreen(Screen[None]):
    DEFAULT_CSS = """
    SweepScreen #sweep-title { height: 1; padding: 0 1; }
    SweepScreen DataTable { height: 1fr; }
    SweepScreen #sweep-detail-box { height: 7; border: round $primary; }
    """

    BINDINGS = [
        Binding("s", "stop", "Stop run", id="sweep.stop"),
        Binding("w", "write", "Write table", id="sweep.write"),
        Binding("enter,o", "open", "Watch run", id="sweep.open"),
        Binding("right_square_bracket", "cycle(1)", "Next sweep", id="sweep.next"),
        Binding("left_square_bracket", "cycle(-1)", "Previous sweep", id="sweep.previous"),
        Binding("r", "refresh", "Refresh", id="sweep.refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sweeps: list[sw.Sweep] = []
        self.name_shown: str | None = None
        self._rows: list[list[str]] = []

    @property
    def wb(self) -> WorkbenchApp:
        return self.app  # type: ignore[return-value]

    @property
    def sweep(self) -> sw.Sweep | None:
        return next((s for s in self.sweeps if s.name == self.name_shown), None)

    def compose(self) -> ComposeResult:
        yield NavBar("sweep")
        yield Static("", id="sweep-title")
        yield DataTable(cursor_type="cell", id="sweep-matrix", zebra_stripes=True)
        with VerticalScroll(id="sweep-detail-box"):
            yield Static("", id="sweep-detail")
        yield footer()

    def on_mount(self) -> None:
        self.set_interval(REFRESH_SECONDS, self._timer)
        self.refresh_sweeps()
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        self.refresh_sweeps()

    def _timer(self) -> None:
        if self.is_current:
            self.refresh_sweeps()

    def refresh_sweeps(self) -> None:
        self.sweeps = sw.list_sweeps(self.wb.runs_root)
        if self.sweep is None:  # first look, or the shown one was removed: the newest sweep
            newest = max(self.sweeps, key=lambda s: s.created, default=None)
            self.name_shown = newest.name if newest else None
        sweep = self.sweep
        title = self.query_one("#sweep-title", Static)
        if sweep is None:
            title.update("")
            self._fill([], [])
            self.query_one("#sweep-detail", Static).update(escape(
                f"No sweeps under {sw.sweeps_root(self.wb.runs_root)} yet. Start one in a terminal, e.g. "
                "`workbench sweep --dataset names --grid arch=lstm,gru --seeds 5`; it fills in here."))
            return
        report = sw.summarize(sweep)
        states = ", ".join(f"{n} {state}" for state, n in sorted(report.states.items()))
        position = f"{self.sweeps.index(sweep) + 1}/{len(self.sweeps)}"
        title.update(Text(f"{sweep.name} ({position}) · {sweep.dataset} {report.main} · {states}"))
        header = ["configuration", *[f"seed {seed}" for seed in sweep.seeds], "mean±sd", "vs best"]
        names = short_keys([axis.key for axis in sweep.axes])
        body = []
        for (_, texts), row in zip(sw.matrix(sweep), report.rows, strict=True):
            spread = row.metrics.get(report.main)
            mean = "-" if spread is None else sw.fmt(spread.mean) + (
                f"±{sw.fmt(spread.std)}" if spread.std is not None else "")
            label = " ".join(f"{names[key]}={value}" for key, value in row.values.items()) or row.label
            body.append([label, *(SHORT_STATES.get(text, text) for text in texts), mean, MARKS[row.verdict]])
        self._fill(header, body)

    def _fill(self, header: list[str], body: list[list[str]]) -> None:
        rows = [header, *body]
        if rows == self._rows:
            return
        table: DataTable[Text] = self.query_one(DataTable)
        cursor = table.cursor_coordinate
        same_shape = bool(self._rows) and self._rows[0] == header
        self._rows = rows
        table.clear(columns=not same_shape)
        if not same_shape:
            table.add_columns(*header)
        for index, row in enumerate(body):
            table.add_row(*(Text(cell) for cell in row), key=str(index))  # labels and states are not markup
        if same_shape and body:
            table.move_cursor(row=min(cursor.row, len(body) - 1), column=cursor.column)
        self._show_detail()

    # -- the cell under the cursor -------------------------------------------------------------
    def selected_cell(self) -> sw.Cell | None:
        sweep = self.sweep
        table: DataTable[Text] = self.query_one(DataTable)
        if sweep is None or not table.row_count:
            return None
        row, column = table.cursor_coordinate
        if not 1 <= column <= len(sweep.seeds):
            return None
        cells = sweep.cells_of(row)
        return cells[column - 1] if column - 1 < len(cells) else None

    def selected_run(self) -> Run | None:
        cell = self.selected_cell()
        run = self.sweep.run_of(cell) if self.sweep and cell else None
        if run is None:
            self.app.notify("move the cursor onto a seed's cell that has a run (left/right)", severity="warning")
        return run

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        self._show_detail()

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        self.action_open()

    def _show_detail(self) -> None:
        detail = self.query_one("#sweep-detail", Static)
        sweep, cell = self.sweep, self.selected_cell()
        if sweep is None:
            return
        lines = []
        if cell is not None:
            state = sw.cell_state(sweep, cell)
            lines.append(f"[b]{escape(sweep.label(cell.configuration))}[/b] seed {cell.seed}: [b]{state}[/b]"
                         + (f"  run {escape(cell.run)}" if cell.run else ""))
            if cell.message:
                lines.append(escape(f"message: {cell.message}"))
        lines.append(escape(RULE))
        if sweep.command:
            lines.append(escape(sweep.command))
        detail.update("\n".join(lines))

    # -- actions ---------------------------------------------------------------------------------
    def action_stop(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.wb.stop_run(run)  # asks first; a second s offers to force it

    def action_open(self) -> None:
        run = self.selected_run()
        if run is not None and run.config_path.exists():
            self.wb.watch_run(run, make_current=True)
            self.wb.switch_mode("monitor")

    def action_write(self) -> None:
        sweep = self.sweep
        if sweep is None:
            self.app.notify("no sweep to write", severity="warning")
            return
        try:
            paths = sw.write_tables(sw.summarize(sweep))
        except (WorkbenchError, OSError) as exc:
            self.app.notify(f"could not write the table: {exc}", severity="error")
            return
        self.app.notify("wrote " + " and ".join(str(p) for p in paths))

    def action_cycle(self, step: int) -> None:
        if not self.sweeps:
            return
        index = next((i for i, s in enumerate(self.sweeps) if s.name == self.name_shown), 0)
        self.name_shown = self.sweeps[(index + step) % len(self.sweeps)].name
        self._rows = []
        self.refresh_sweeps()

    def action_refresh(self) -> None:
        self._rows = []
        self.refresh_sweeps()
