"""Watch a run: progress, loss / metric / gradient-norm plots (with overlaid runs), and a log.

Redraws happen on a timer, at most a few times a second and only when the followed data changed;
the training itself runs in another process, so nothing here can slow it down except CPU time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.screen import Screen
from textual.widgets import ProgressBar, Static
from textual_plotext import PlotextPlot

from workbench.events import format_duration, format_system
from workbench.headlines import derived_metric, loss_factor, metric_label, plotted_metric, shown_value
from workbench.memory_view import memory_map
from workbench.tui.logview import LogView
from workbench.tui.monitor import RunMonitor, downsample
from workbench.tui.widgets import NavBar, footer

if TYPE_CHECKING:
    from workbench.tui.app import WorkbenchApp

#: Status and log refresh at most this often; one plot per tick (each plot every 1.5 s while training).
#: On a 2-core machine every percent of a core the app uses is taken from training.
REDRAW_SECONDS = 0.5
VIEWS = ("all", "loss", "metric", "grad", "memory", "log")
#: Distinct markers so the curves stay apart without colour (NO_COLOR).
MARKERS = ("braille", "dot", "x", "+", "o", "*", "#", "@")
#: How the legend (under each plot) shows each marker.
LEGEND_MARKS = ("⣿", "•", "x", "+", "o", "*", "#", "@")


class Chart(PlotextPlot):
    """A focusable plot (so it can be maximized and scrolled to with the keyboard).

    Building a plotext plot is pure Python and takes tens of milliseconds. The last build is kept:
    repaints with unchanged data and size reuse it, and when only the size changed (a view switch,
    a resize) the old picture is painted at once and the plot is rebuilt right after that frame, so
    the key that changed the layout is never kept waiting behind plotext.
    """

    can_focus = True

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._generation = 0
        self._built: tuple[tuple[int, int], int, str, object] | None = None
        self._rebuild_pending = False

    def redraw(self) -> None:
        """The plot's data changed: build it anew at the next paint."""
        self._generation += 1
        self.refresh()

    def render(self):  # type: ignore[no-untyped-def]
        size = (self.size.width, self.size.height)
        theme = self.app.theme
        built = self._built
        if built is not None and built[1] == self._generation and built[2] == theme:
            if built[0] == size:
                return built[3]
            if not self._rebuild_pending:
                self._rebuild_pending = True
                self.call_after_refresh(self._rebuild)
                return built[3]
        picture = super().render()
        self._built = (size, self._generation, theme, picture)
        return picture

    def _rebuild(self) -> None:
        self._rebuild_pending = False
        self._generation += 1
        self.refresh()


class MonitorScreen(Screen[None]):
    DEFAULT_CSS = """
    MonitorScreen #status { height: auto; max-height: 2; }
    MonitorScreen #progress-row { height: 1; }
    MonitorScreen #progress-row ProgressBar { width: 1fr; }
    MonitorScreen #progress-row #view { width: auto; margin-left: 1; }
    MonitorScreen #progress-row #system { width: auto; }
    MonitorScreen #progress-row #speed { width: auto; margin-left: 1; }
    MonitorScreen #plots { grid-size: 2 2; height: 1fr; }
    MonitorScreen #plots.-single { grid-size: 1 1; }
    MonitorScreen Chart { border: round $primary; height: 1fr; }
    MonitorScreen Chart:focus { border: round $accent; }
    MonitorScreen #grad-cell { height: 1fr; }
    MonitorScreen #memory { border: round $primary; height: 1fr; width: 1fr; }
    MonitorScreen LogView { border: round $primary; height: 1fr; }
    MonitorScreen LogView:focus { border: round $accent; }
    MonitorScreen .-hidden { display: none; }
    """

    BINDINGS = [
        Binding("space", "pause", "Pause/resume", id="monitor.pause"),
        Binding("s", "stop", "Stop", id="monitor.stop"),
        Binding("p", "predict", "Predict", id="monitor.predict"),
        Binding("v", "view", "View", id="monitor.view"),
        Binding("c", "compare", "Compare", id="monitor.compare"),
        Binding("x", "clear_compare", "Clear overlay", id="monitor.clear_compare", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view = "all"
        self._layout_key: tuple[object, ...] | None = None
        self._status_key: tuple[object, ...] | None = None
        self._chart_keys: dict[str, tuple[object, ...]] = {}
        self._chart_order = ["loss", "metric", "grad"]
        self._log_drawn = 0
        self._log_run: str | None = None

    @property
    def wb(self) -> WorkbenchApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar("monitor")
        yield Static("", id="status")
        with Horizontal(id="progress-row"):
            yield ProgressBar(total=1.0, show_eta=False, id="progress")
            yield Static("", id="system")
            yield Static("", id="speed")
            yield Static("view: all", id="view")
        with Grid(id="plots"):
            yield Chart(id="loss")
            yield Chart(id="metric")
            with Horizontal(id="grad-cell"):
                yield Chart(id="grad")
                yield Static("", id="memory")
            yield LogView(id="log")
        yield footer()

    def on_mount(self) -> None:
        self.set_interval(REDRAW_SECONDS, self.redraw)
        self.redraw()

    def on_screen_resume(self) -> None:
        self._layout_key = None
        self.redraw()

    def on_resize(self) -> None:
        self._layout_key = None

    # -- drawing ---------------------------------------------------------------------------
    def redraw(self, force: bool = False) -> None:
        """Status and log on every change; the plots one at a time (a frame never renders all three
        unless the layout changed), so a key press never waits long behind a redraw."""
        if not self.is_current:
            return
        monitor = self.wb.current_monitor()
        compared = [m for m in self.wb.compared_monitors() if monitor is None or m.id != monitor.id]
        data_key = (monitor.id if monitor else None, monitor.version if monitor else -1,
                    tuple((m.id, m.version) for m in compared))
        layout_key = (data_key[0], tuple(m.id for m in compared), self.view, self.size)
        full = force or layout_key != self._layout_key
        if full or data_key != self._status_key:
            self._status_key = data_key
            self._draw_status(monitor)
            self._draw_log(monitor)
        visible = {"all": {"loss", "metric", "grad", "log"}}.get(self.view, {self.view})
        self._draw_memory(monitor, compared, data_key)
        chart_keys = {c: (data_key, self.query_one(f"#{c}").size) for c in self._chart_order}
        stale = [c for c in self._chart_order if c in visible and self._chart_keys.get(c) != chart_keys[c]]
        if full:
            self._layout_key = layout_key
            for widget_id in ("loss", "metric", "log"):
                self.query_one(f"#{widget_id}").set_class(widget_id not in visible, "-hidden")
            self.query_one("#grad-cell").set_class(not visible & {"grad", "memory"}, "-hidden")
            self.query_one("#grad").set_class("grad" not in visible, "-hidden")
            self.query_one("#plots").set_class(self.view != "all", "-single")
        elif stale:
            # a plot whose size changed is rendered anew anyway: draw those now; otherwise one per tick
            resized = [c for c in stale if self._chart_keys.get(c, (None, None))[1] != chart_keys[c][1]]
            stale = resized or stale[:1]
            for chart_id in stale:
                self._chart_order.remove(chart_id)
                self._chart_order.append(chart_id)
        for chart_id in stale:
            self._chart_keys[chart_id] = chart_keys[chart_id]
            {"loss": self._draw_loss, "metric": self._draw_metric, "grad": self._draw_grad}[chart_id](
                monitor, compared)

    def _draw_memory(self, monitor: RunMonitor | None, compared: list[RunMonitor], data_key: object) -> None:
        """The epoch x lag map of memory across time, next to the gradient norm (shown only for runs
        that have probes; the memory view overlays the compared runs' maps below the current one)."""
        widget = self.query_one("#memory", Static)
        runs = [m for m in ([monitor] if monitor is not None else []) + compared if m.memory]
        if self.view != "memory":
            runs = runs[:1] if monitor is not None and monitor.memory else []
        key = (data_key, self.view, widget.size)
        if key == getattr(self, "_memory_key", None):
            return
        self._memory_key = key
        widget.set_class(not runs and self.view != "memory", "-hidden")
        width, height = max(widget.size.width, 8), max(widget.size.height, 3)
        lines: list[str] = []
        for index, run in enumerate(runs):
            share = max(3, (height - len(lines)) // (len(runs) - index))
            if len(runs) > 1:
                lines.append(f"{run.label} ({run.memory[-1].cell})"[:width])
                share -= 1
            lines.extend(memory_map(list(run.memory), width, share))
        text = "\n".join(lines[:height]) if lines else "no memory probes in this run"
        widget.update(Text(text, no_wrap=True, overflow="crop"))
        widget.border_title = "memory across time (|dL/dh| by lag)"

    def _draw_status(self, monitor: RunMonitor | None) -> None:
        status = self.query_one("#status", Static)
        bar = self.query_one("#progress", ProgressBar)
        # CPU, memory and GPUs of the training process while it runs; nothing for older runs
        sample = monitor.system if monitor is not None and monitor.active else None
        self.query_one("#system", Static).update(escape(" " + format_system(sample)) if sample else "")
        if monitor is None:
            status.update("No run is open. [b]F2[/b] set one up and train, [b]F4[/b] open a run (also ones started "
                          "with `workbench train`).")
            bar.update(progress=0)
            return
        p = monitor.progress()
        parts = [f"[b]{monitor.state.upper()}[/b]"]
        if monitor.active and monitor.run.read_control() == "stop":
            parts = ["[b]STOPPING...[/b] (s again: force)"]
        parts.append(p["position"].long())
        if p["best"] is not None:
            parts.append(f"best {metric_label(monitor.main_metric, monitor.task)} "
                         f"{shown_value(monitor.main_metric, monitor.task, p['best'])}")
        if monitor.state == "failed" and monitor.message:
            parts.append(escape(f"error: {monitor.message}"))
        elif not monitor.active and monitor.message:
            parts.append(escape(monitor.message))
        status.update("  ".join(parts))
        speed = []
        if p["samples_per_s"]:
            speed.append(f"{p['samples_per_s']:,.0f} samples/s")
        if p["eta_s"] is not None:
            speed.append(f"ETA {format_duration(p['eta_s'])}")
        self.query_one("#speed", Static).update("  ".join(speed))
        bar.update(progress=p["fraction"])

    def _draw_log(self, monitor: RunMonitor | None) -> None:
        log = self.query_one("#log", LogView)
        if monitor is None:
            log.border_title = "log"
            if self._log_run is not None:
                log.clear()
                self._log_run = None
            return
        if self._log_run != monitor.id:
            log.clear()
            self._log_run = monitor.id
            self._log_drawn = 0
        new = monitor.log_count - self._log_drawn
        if new > 0:
            log.write_lines(list(monitor.log)[-min(new, len(monitor.log)):])
            self._log_drawn = monitor.log_count
        log.border_title = f"log: {monitor.id}"

    def _prepare(self, chart_id: str, title: str) -> tuple[Chart, object]:
        chart = self.query_one(f"#{chart_id}", Chart)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        chart.border_title = title
        chart.border_subtitle = ""
        plt.xlabel("epoch")
        return chart, plt

    def _width(self, chart: Chart) -> int:
        return max(chart.size.width - 10, 10)

    def _series(self, plt: object, xs: list[float], ys: list[float], index: int) -> bool:
        """One curve, unlabelled: plotext would draw the legend over a 4-row plot's curves, so the
        legend goes into the border (:meth:`_legend`)."""
        if not xs:
            return False
        plt.plot(xs, ys, marker=MARKERS[index % len(MARKERS)])  # type: ignore[attr-defined]
        return True

    @staticmethod
    def _legend(chart: Chart, labels: list[tuple[int, str]], left_out: int = 0) -> None:
        """The legend under the plot, each curve by its marker: ``⣿ train  • valid  x 000100 lstm``."""
        parts = [f"{LEGEND_MARKS[index % len(LEGEND_MARKS)]} {label}" for index, label in labels]
        if left_out:
            parts.append(f"{left_out} other-task run{'s' if left_out > 1 else ''} not shown")
        chart.border_subtitle = escape("  ".join(parts))

    @staticmethod
    def _sharing(monitor: RunMonitor | None, compared: list[RunMonitor]) -> tuple[list[RunMonitor], int]:
        """The compared runs that share the current run's metrics (the same task kind), and how many
        others were left out: a language model's loss does not belong on a classifier's axes."""
        if monitor is None or not monitor.task:
            return compared, 0
        kept = [m for m in compared if not m.task or m.task == monitor.task]
        return kept, len(compared) - len(kept)

    def _draw_loss(self, monitor: RunMonitor | None, compared: list[RunMonitor]) -> None:
        task = monitor.task if monitor is not None else None
        label = metric_label("loss", task)
        chart, plt = self._prepare("loss", label)
        factor = loss_factor(task)
        compared, left_out = self._sharing(monitor, compared)
        labels: list[tuple[int, str]] = []
        series = 0
        if monitor is not None:
            xs, ys = downsample(list(monitor.step_x), list(monitor.step_loss), self._width(chart))
            if self._series(plt, xs, [y * factor for y in ys], series):
                labels.append((series, "train/step"))
            series += 1
            xs, ys = monitor.epoch_series("valid", "loss")
            if self._series(plt, xs, [y * factor for y in ys], series):
                labels.append((series, "valid/epoch"))
            series += 1
        for other in compared:
            xs, ys = other.epoch_series("valid", "loss")
            if not xs:
                xs, ys = downsample(list(other.step_x), list(other.step_loss), self._width(chart))
            if self._series(plt, xs, [y * factor for y in ys], series):
                labels.append((series, other.label))
            series += 1
        if not labels:
            plt.title("no data yet")  # type: ignore[attr-defined]
        self._legend(chart, labels, left_out)
        chart.redraw()

    def _draw_metric(self, monitor: RunMonitor | None, compared: list[RunMonitor]) -> None:
        task = monitor.task if monitor is not None else None
        main = monitor.main_metric if monitor is not None else "accuracy"
        metric = plotted_metric(main, task, monitor.headline_metrics if monitor is not None else ())
        by_step = metric == main and metric != "loss"
        chart, plt = self._prepare("metric", metric_label(metric, task))
        compared, left_out = self._sharing(monitor, compared)
        labels: list[tuple[int, str]] = []
        series = 0
        if monitor is not None:
            xs, ys = (downsample(list(monitor.step_x), list(monitor.step_metric), self._width(chart))
                      if by_step else ([], []))
            per = "step" if xs else "epoch"
            if not xs:  # no running metric from the engine: the epoch summaries
                xs, ys = self._epoch_metric(monitor, "train", metric)
            if self._series(plt, xs, ys, series):
                labels.append((series, f"train/{per}"))
            xs, ys = self._epoch_metric(monitor, "valid", metric)
            if self._series(plt, xs, ys, series + 1):
                labels.append((series + 1, "valid/epoch"))
            series += 2
        for other in compared:
            xs, ys = self._epoch_metric(other, "valid", metric)
            if self._series(plt, xs, ys, series):
                labels.append((series, other.label))
            series += 1
        if not labels:
            plt.title("no data yet")  # type: ignore[attr-defined]
        self._legend(chart, labels, left_out)
        chart.redraw()

    @staticmethod
    def _epoch_metric(monitor: RunMonitor, split: str, metric: str) -> tuple[list[float], list[float]]:
        xs: list[float] = []
        ys: list[float] = []
        for event in monitor.epochs:
            value = derived_metric(metric, event.valid if split == "valid" else event.train)
            if value is not None and math.isfinite(value):
                xs.append(float(event.epoch))
                ys.append(value)
        return xs, ys

    def _draw_grad(self, monitor: RunMonitor | None, compared: list[RunMonitor]) -> None:
        chart, plt = self._prepare("grad", "grad norm (max per window)")
        labels: list[tuple[int, str]] = []
        series = 0
        for m in ([monitor] if monitor is not None else []) + compared:
            xs, ys = downsample(list(m.step_x), list(m.step_grad), self._width(chart))
            pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(y)]
            if self._series(plt, [x for x, _ in pairs], [y for _, y in pairs], series):
                labels.append((series, "this run" if m is monitor else m.label))
            series += 1
        if not labels:
            plt.title("no data yet")  # type: ignore[attr-defined]
        self._legend(chart, labels)
        chart.redraw()

    # -- actions ---------------------------------------------------------------------------
    def action_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.query_one("#view", Static).update(f"view: {self.view}")
        self.redraw()

    def action_pause(self) -> None:
        monitor = self.wb.current_monitor()
        if monitor is None:
            self.app.notify("no run is open", severity="warning")
            return
        self.wb.toggle_pause(monitor.run)

    def action_stop(self) -> None:
        monitor = self.wb.current_monitor()
        if monitor is None:
            self.app.notify("no run is open", severity="warning")
            return
        self.wb.stop_run(monitor.run)

    def action_predict(self) -> None:
        monitor = self.wb.current_monitor()
        self.wb.open_predict(monitor.run if monitor else None)

    def action_compare(self) -> None:
        self.app.notify("mark runs to overlay with c in the runs list, then come back with F3 (x clears)")
        self.wb.switch_mode("runs")

    def action_clear_compare(self) -> None:
        self.wb.compare.clear()
        self.redraw(force=True)
