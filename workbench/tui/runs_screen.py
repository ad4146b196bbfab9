"""Browse runs on disk (from this app or `workbench train` elsewhere): open, compare, control, delete."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static

from workbench.errors import WorkbenchError
from workbench.events import ACTIVE_STATES, format_duration
from workbench.position import RunPosition
from workbench.runs import Run, list_runs
from workbench.tui.widgets import NavBar, footer

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp

REFRESH_SECONDS = 2.0


def _when(timestamp: float) -> str:
    """A status time as local date and time ("?" for one no clock can show)."""
    try:
        return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "?"


#: Orders of the runs table, cycled by ctrl+s: (name, row column, newest first?).
SORTS = ("newest", "oldest", "state", "dataset", "architecture")


def sort_rows(rows: list[tuple[str, ...]], order: str) -> list[tuple[str, ...]]:
    """The table's rows (run id first) in ``order``; ties newest first."""
    newest = sorted(rows, key=lambda row: row[0], reverse=True)
    column = {"state": 1, "dataset": 5, "architecture": 6}.get(order)
    if order == "oldest":
        return newest[::-1]
    return newest if column is None else sorted(newest, key=lambda row: row[column])


class RunsScreen(Screen[None]):
    DEFAULT_CSS = """
    RunsScreen DataTable { height: 1fr; }
    RunsScreen #detail-box { height: 9; border: round $primary; }
    """

    BINDINGS = [
        Binding("enter,o", "open", "Watch", id="runs.open"),
        Binding("p", "predict", "Predict", id="runs.predict"),
        # footer room at 80 columns: generate is in help (F1) and the palette
        Binding("g", "generate", "Generate", id="runs.generate", show=False),
        Binding("i", "inspect", "Inspect", id="runs.inspect", show=False),
        Binding("c", "compare", "Compare", id="runs.compare"),
        Binding("space", "pause", "Pause", id="runs.pause"),
        Binding("s", "stop", "Stop", id="runs.stop"),
        Binding("d", "delete", "Delete", id="runs.delete"),
        Binding("ctrl+s", "sort", "Sort", id="runs.sort"),
        Binding("r", "refresh", "Refresh", id="runs.refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, Run] = {}
        #: Index into :data:`SORTS` (ctrl+s cycles).
        self.sort = 0
        self._rows: list[tuple[Any, ...]] = []

    @property
    def wb(self) -> WorkbenchApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar("runs")
        table: DataTable[Text] = DataTable(cursor_type="row", id="runs", zebra_stripes=True)
        table.add_columns("run", "state", "epochs", "best", "cmp", "dataset", "arch", "time")
        yield table
        with VerticalScroll(id="detail-box"):
            yield Static("", id="detail")
        yield footer()

    def on_mount(self) -> None:
        self.set_interval(REFRESH_SECONDS, self._timer)
        self.refresh_runs()
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    def _timer(self) -> None:
        if self.is_current:
            self.refresh_runs()

    def refresh_runs(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        try:
            runs = sorted(list_runs(self.wb.runs_root), key=lambda r: r.id, reverse=True)
        except WorkbenchError as exc:  # the runs folder itself cannot be read
            self.query_one("#detail", Static).update(escape(str(exc)))
            return
        self.runs = {r.id: r for r in runs}
        rows = sort_rows([self._row(run) for run in runs], SORTS[self.sort])
        if rows == self._rows:
            return
        self._rows = rows
        selected = self.selected_id()
        cursor = table.cursor_row
        table.clear()
        for row in rows:
            table.add_row(*(Text(cell) for cell in row), key=row[0])  # a folder name is not markup
        if selected in self.runs and cursor != 0:  # on the top row, follow the newest run
            table.move_cursor(row=table.get_row_index(selected))
        elif rows and cursor > 0:  # the selected run is gone (deleted): the one now in its place
            table.move_cursor(row=min(cursor, len(rows) - 1))
        self._show_detail()
        if not rows:
            self.query_one("#detail", Static).update(
                f"No runs under {self.wb.runs_root} yet. F2 sets one up; `workbench train` in another terminal "
                "shows up here too.")

    def _row(self, run: Run) -> tuple[str, ...]:
        """run, state, epochs, best, overlaid, dataset, architecture, time trained (wall clock)."""
        s = run.summary()
        best = s.get("best") or {}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in best.items() if isinstance(v, float))
        epoch = RunPosition.from_status(s, s.get("epochs")).short()
        started, updated = s.get("started"), s.get("updated")
        took = format_duration(updated - started) if isinstance(started, float) and isinstance(updated, float) else ""
        return (run.id, s.get("state") or "?", epoch, shown, "●" if run.id in self.wb.compare else "",
                str(s.get("dataset") or "?"), str(s.get("arch") or "?"), took)

    def action_sort(self) -> None:
        self.sort = (self.sort + 1) % len(SORTS)
        self.app.notify(f"runs sorted by {SORTS[self.sort]}")
        self._rows = []
        self.refresh_runs()

    def selected_id(self) -> str | None:
        table: DataTable[Text] = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value

    def selected(self) -> Run | None:
        run_id = self.selected_id()
        if run_id is None:
            self.app.notify("no run selected", severity="warning")
            return None
        return self.runs.get(run_id)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def _show_detail(self) -> None:
        run_id = self.selected_id()
        run = self.runs.get(run_id or "")
        detail = self.query_one("#detail", Static)
        if run is None:
            detail.update("")
            return
        s = run.summary()
        what = escape(f"{s.get('dataset')} / {s.get('arch')}")
        lines = [f"[b]{escape(run.id)}[/b]  {what}  [b]{s.get('state')}[/b]  {escape(str(run.path))}"]
        if s.get("reason"):
            lines.append(escape(f"cannot read this run: {s['reason']}"))
        if s.get("started"):
            lines.append(f"started {_when(s['started'])}"
                         + f"   checkpoints: {', '.join(s.get('checkpoints') or []) or 'none yet'}")
        try:
            train = run.config().get("train", {})
            lines.append(escape("  ".join(f"{k}={train[k]}" for k in ("epochs", "batch_size", "lr", "optimizer")
                                          if k in train)))
        except WorkbenchError:
            pass
        metrics = (run.results() or {}).get("metrics")
        if metrics and isinstance(metrics, dict):
            lines.append(escape("test: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                                     if isinstance(v, float))))
        status = run.status()
        if status.get("message"):
            lines.append(escape(f"message: {status['message']}"))
        if s.get("state") in ("failed", "interrupted"):
            from workbench.tui.monitor import RunMonitor

            tail = RunMonitor(run).log_tail(4)
            lines.extend(escape(f"  log: {line}") for line in tail)
        detail.update("\n".join(lines))

    # -- actions ---------------------------------------------------------------------------
    def action_open(self) -> None:
        run = self.selected()
        if run is not None:
            self.wb.watch_run(run, make_current=True)
            self.wb.switch_mode("monitor")

    def action_predict(self) -> None:
        run = self.selected()
        if run is not None:
            self.wb.open_predict(run)

    def action_generate(self) -> None:
        run = self.selected()
        if run is not None:
            self.wb.open_generate(run)

    def action_inspect(self) -> None:
        run = self.selected()
        if run is not None:
            self.wb.open_inspect(run)

    def action_compare(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.id in self.wb.compare:
            self.wb.compare.discard(run.id)
            self.app.notify(f"{run.id} removed from the overlay")
        else:
            self.wb.watch_run(run)
            self.wb.compare.add(run.id)
            self.app.notify(f"{run.id} overlaid on the plots (F3)")
        self._rows = []
        self.refresh_runs()

    def action_pause(self) -> None:
        run = self.selected()
        if run is not None:
            self.wb.toggle_pause(run)

    def action_stop(self) -> None:
        run = self.selected()
        if run is not None:
            self.wb.stop_run(run)

    def action_delete(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.status().get("state") in ACTIVE_STATES:
            self.app.notify(f"{run.id} is still training; stop it first (s)", severity="error")
            return
        from workbench.tui.modals import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            try:
                run.delete()
            except (WorkbenchError, OSError) as exc:
                self.app.notify(f"could not delete {run.id}: {exc}", severity="error")
                return
            self.wb.forget_run(run.id)
            self.app.notify(f"deleted {run.id}")
            self.refresh_runs()

        self.app.push_screen(ConfirmScreen(f"Delete run {run.id} and its checkpoints?"), answer)

    def action_refresh(self) -> None:
        self._rows = []
        self.refresh_runs()
