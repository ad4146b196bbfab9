"""Browse runs on disk (from this app or `workbench train` elsewhere): open, compare, control, delete."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Input, Label, Static

from workbench.errors import WorkbenchError
from workbench.events import ACTIVE_STATES
from workbench.run_table import SORTS, RowCache, RunRow, filter_rows, sort_rows
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


#: Columns in the order shown, and the order they are dropped in when the pane is narrow (last first).
COLUMNS = ("mark", "run", "state", "epochs", "dataset", "arch", "time", "params", "metric")
PRIORITY = ("run", "state", "epochs", "metric", "mark", "dataset", "arch", "time", "params")
HEADERS = {"mark": "", "metric": "metric t/v"}
#: Spaces before each cell (the table's own padding is off: it would put two between columns).
GAP = 1
#: A run id as ``new_run`` makes it: time stamp, then dataset and architecture, maybe ``-2``.
_STAMPED = re.compile(r"^(\d{8}-\d{6})-(.+?)(-\d+)?$")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def short_id(row: RunRow) -> str:
    """The id without its dataset and architecture when they are the row's own (shown in their
    columns): ``20260101-000200`` for ``20260101-000200-names-rnn``; any other id in full."""
    match = _STAMPED.match(row.id)
    if match and row.dataset and row.arch and match.group(2) == _SAFE.sub("-", f"{row.dataset}-{row.arch}"):
        return match.group(1) + (match.group(3) or "")
    return row.id


def fit_columns(widths: dict[str, int], room: int) -> list[str]:
    """The columns (in :data:`COLUMNS` order) that fit in ``room`` cells, taken by :data:`PRIORITY`."""
    chosen: set[str] = set()
    used = 0
    for name in PRIORITY:
        if used + widths[name] <= room or not chosen:
            chosen.add(name)
            used += widths[name]
    return [name for name in COLUMNS if name in chosen]


class RunsScreen(Screen[None]):
    DEFAULT_CSS = """
    RunsScreen DataTable { height: 1fr; }
    RunsScreen #filter-row { height: 1; display: none; }
    RunsScreen #filter-row.-shown { display: block; }
    RunsScreen #filter-label { width: auto; text-style: bold; }
    RunsScreen #filter { width: 1fr; }
    RunsScreen #detail-box { height: 9; border: round $primary; }
    """

    BINDINGS = [
        Binding("enter,o", "open", "Watch", id="runs.open"),
        Binding("p", "predict", "Predict", id="runs.predict"),
        # footer room at 80 columns: generate, inspect, mark, diff and refresh are in help (F1) and the palette
        Binding("g", "generate", "Generate", id="runs.generate", show=False),
        Binding("i", "inspect", "Inspect", id="runs.inspect", show=False),
        Binding("c", "compare", "Overlay", id="runs.compare"),
        Binding("space", "pause", "Pause", id="runs.pause", show=False),
        Binding("s", "stop", "Stop", id="runs.stop"),
        Binding("d", "delete", "Delete", id="runs.delete"),
        Binding("slash", "filter", "Filter", id="runs.filter"),
        Binding("escape", "clear_filter", "Clear filter", id="runs.clear_filter", show=False),
        Binding("ctrl+s", "sort", "Sort", id="runs.sort"),
        Binding("m", "mark", "Mark to diff", id="runs.mark", show=False),
        Binding("equals_sign", "diff", "Diff settings", id="runs.diff"),
        Binding("e", "setup", "Settings to setup", id="runs.setup", show=False),
        Binding("r", "refresh", "Refresh", id="runs.refresh", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[str, Run] = {}
        #: Index into :data:`SORTS` (ctrl+s cycles); the first is ``workbench runs``'s order.
        self.sort = 0
        self.filter_text = ""
        #: The run marked (``m``) to be diffed against another.
        self.marked: str | None = None
        self.cache = RowCache()
        self._rows: list[RunRow] = []
        self._shown: list[tuple[str, ...]] = []
        self._columns: list[str] = []
        self._total = 0

    @property
    def wb(self) -> WorkbenchApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar("runs")
        with Horizontal(id="filter-row"):
            yield Label("filter ", id="filter-label")
            yield Input(placeholder="text, or dataset= arch= state= id= (enter keeps, escape clears)",
                        id="filter", compact=True)
        # one space between columns instead of two: two more columns fit at 80
        table: DataTable[Text] = DataTable(cursor_type="row", id="runs", zebra_stripes=True, cell_padding=0)
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

    def on_resize(self) -> None:
        self._shown = []
        self.refresh_runs()

    def _timer(self) -> None:
        if self.is_current:
            self.refresh_runs()

    def refresh_runs(self) -> None:
        """Read the runs (cheap: rows are cached by file times) and redraw the table if anything shown
        changed, keeping the cursor on the same run."""
        try:
            runs = list_runs(self.wb.runs_root)
        except WorkbenchError as exc:  # the runs folder itself cannot be read
            self.query_one("#detail", Static).update(escape(str(exc)))
            return
        self.runs = {r.id: r for r in runs}
        self._total = len(runs)
        rows = filter_rows(sort_rows(self.cache.rows(runs), SORTS[self.sort]), self.filter_text)
        self._rows = rows
        self._show_title()
        cells = [self._cells(row) for row in rows]
        columns = self._fit(cells)
        shown = [tuple(row[name] for name in columns) for row in cells]
        if shown == self._shown and columns == self._columns:
            return
        self._fill(rows, columns, shown)
        self._show_detail()
        if not runs:
            self.query_one("#detail", Static).update(
                f"No runs under {self.wb.runs_root} yet. F2 sets one up; `workbench train` in another terminal "
                "shows up here too.")
        elif not rows:
            self.query_one("#detail", Static).update(
                f"No run matches the filter {escape(self.filter_text)!r}; escape clears it.")

    def _cells(self, row: RunRow) -> dict[str, str]:
        cells = row.cells()
        cells["run"] = short_id(row)
        cells["mark"] = ("●" if row.id in self.wb.compare else "") + ("◆" if row.id == self.marked else "")
        return cells

    def _fit(self, cells: list[dict[str, str]]) -> list[str]:
        table: DataTable[Text] = self.query_one(DataTable)
        width = table.content_region.width or self.app.size.width - 2
        room = width - (2 if len(cells) > max(table.content_region.height - 1, 1) else 0)  # the scroll bar
        widths = {name: max([len(HEADERS.get(name, name))] + [len(row[name]) for row in cells]) + GAP
                  for name in COLUMNS}
        if all(not row["mark"] for row in cells):
            widths["mark"] = 0
        columns = fit_columns(widths, room)
        return [name for name in columns if widths[name] or name != "mark"]

    def _fill(self, rows: list[RunRow], columns: list[str], shown: list[tuple[str, ...]]) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        selected = self.selected_id()
        cursor = table.cursor_row
        first = not self._shown and not self._columns
        if columns != self._columns:
            table.clear(columns=True)
            table.add_columns(*(" " * GAP + HEADERS.get(name, name) for name in columns))
        else:
            table.clear()
        self._columns, self._shown = columns, shown
        for row, cells in zip(rows, shown, strict=True):
            table.add_row(*(Text(" " * GAP + cell) for cell in cells), key=row.id)  # a folder name is not markup
        if not rows:
            return
        ids = [row.id for row in rows]
        if selected in ids:
            table.move_cursor(row=ids.index(selected))
        elif first or selected is None:  # first look: the newest run
            newest = max(ids)
            table.move_cursor(row=ids.index(newest))
        else:  # the selected run is gone (deleted) or filtered out: the one now in its place
            table.move_cursor(row=min(cursor, len(rows) - 1))

    def shown(self) -> list[dict[str, str]]:
        """The table as shown: one ``column -> text`` per row, top to bottom (columns that fit only)."""
        return [dict(zip(self._columns, cells, strict=True)) for cells in self._shown]

    def _show_title(self) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        count = (f"{len(self._rows)} of {self._total} runs" if self.filter_text
                 else f"{self._total} run{'s' if self._total != 1 else ''}")
        title = f"{count} · {SORTS[self.sort]} first" if SORTS[self.sort] in ("oldest", "newest") \
            else f"{count} · by {SORTS[self.sort]}"
        if self.filter_text:
            title += f" · /{self.filter_text}"
        if str(table.border_title or "") != title:
            table.border_title = Text(title)

    def action_sort(self) -> None:
        self.sort = (self.sort + 1) % len(SORTS)
        self.app.notify(f"runs sorted by {SORTS[self.sort]}")
        self._shown = []
        self.refresh_runs()

    # -- filter ----------------------------------------------------------------------------
    def action_filter(self) -> None:
        self.query_one("#filter-row").add_class("-shown")
        self.query_one("#filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self.refresh_runs()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value.strip():
                self.query_one("#filter-row").remove_class("-shown")
            self.query_one(DataTable).focus()

    def action_clear_filter(self) -> None:
        field, row = self.query_one("#filter", Input), self.query_one("#filter-row")
        was = self.filter_text or row.has_class("-shown")
        field.value = ""
        row.remove_class("-shown")
        self.filter_text = ""
        self.query_one(DataTable).focus()
        if was:
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
        row = next((r for r in self._rows if r.id == run.id), None)
        if row is not None:
            parameters = f"{row.parameters:,} parameters" if row.parameters is not None else "parameters -"
            lines.append(escape(f"time {row.duration}   {parameters}   {row.metric_text(False)}"
                                + {"test": " (test)", "valid": " (best on validation)"}.get(row.split or "", "")))
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

    def action_setup(self) -> None:
        """This run's settings in the setup form (F2): change some and train again."""
        run = self.selected()
        if run is not None:
            self.wb.open_setup_from(run)

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
        self._shown = []
        self.refresh_runs()

    def action_mark(self) -> None:
        """Mark the highlighted run (again: unmark) to diff its settings against another with ``=``."""
        run = self.selected()
        if run is None:
            return
        self.marked = None if self.marked == run.id else run.id
        self.app.notify(f"{run.id} marked: = on another run shows their settings side by side"
                        if self.marked else f"{run.id} unmarked")
        self._shown = []
        self.refresh_runs()

    def action_diff(self) -> None:
        """The marked run's settings next to the highlighted one's."""
        run = self.selected()
        if run is None:
            return
        if self.marked is None or self.marked == run.id or self.marked not in self.runs:
            self.marked = None if self.marked not in self.runs else self.marked
            self.app.notify("mark a run with m, then press = on another run to compare their settings",
                            severity="warning")
            return
        from workbench.run_diff import compare_runs
        from workbench.tui.run_diff_screen import RunDiffScreen

        try:
            comparison = compare_runs(self.runs[self.marked], run)
        except WorkbenchError as exc:
            self.app.notify(f"cannot compare: {exc}", severity="error")
            return
        self.app.push_screen(RunDiffScreen(comparison))

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
        self._shown = []
        self.refresh_runs()
