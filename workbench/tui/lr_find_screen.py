"""The learning-rate finder as a dialog of the setup form: the sweep runs on a worker thread (the UI
stays live and shows each step), escape cancels it, and enter carries the suggestion into the form."""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, ProgressBar, Static

from workbench.config import RunConfig
from workbench.errors import WorkbenchError
from workbench.lr_find import LRFinding, format_lr, plot
from workbench.tui.guards import from_worker


class LRFindScreen(ModalScreen[float | None]):
    """Sweep the learning rate for the form's setup; dismissed with the suggested rate, or None."""

    DEFAULT_CSS = """
    LRFindScreen { align: center middle; }
    LRFindScreen > Vertical { width: 100%; max-width: 100; height: auto; max-height: 100%;
                              border: round $accent; padding: 0 1; background: $surface; }
    LRFindScreen #lr-plot { height: auto; }
    LRFindScreen ProgressBar { width: 1fr; }
    """
    BINDINGS = [
        Binding("enter", "use", "Use suggestion", id="lrfind.use"),
        Binding("escape", "cancel", "Cancel", id="lrfind.cancel"),
    ]

    def __init__(self, config: RunConfig, registry: Any = None, steps: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.registry = registry
        self.steps = steps
        self.finding: LRFinding | None = None
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Learning-rate finder: {self.config.dataset} / {self.config.arch} (nothing is saved)",
                        id="lr-title")
            yield ProgressBar(total=self.steps or 200, show_eta=False, id="lr-progress")
            yield Static("loading the data...", id="lr-status")
            yield Static("", id="lr-plot")
            yield Label("[b]escape[/b] cancel", id="lr-keys")

    def on_mount(self) -> None:
        self.sweep()

    @work(thread=True, exclusive=True, group="lr-find")
    def sweep(self) -> None:
        from workbench.lr_find import DEFAULT_STEPS, find_lr

        steps = self.steps or DEFAULT_STEPS
        try:
            finding = find_lr(self.config, self.registry, steps=steps, on_step=self._step_done,
                              should_stop=self._cancel.is_set)
        except WorkbenchError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        except Exception as exc:  # a plugin's model or data that breaks: say so, keep the app
            self.app.call_from_thread(self._failed, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._show, finding)

    def _step_done(self, step: int, steps: int, lr: float, loss: float) -> None:
        if step % 5 == 0 or step == steps:
            self.app.call_from_thread(self._progress, step, steps, lr, loss)

    @from_worker
    def _progress(self, step: int, steps: int, lr: float, loss: float) -> None:
        if self._cancel.is_set() or not self.is_attached:  # closed while the sweep was between steps
            return
        self.query_one("#lr-progress", ProgressBar).update(total=steps, progress=step)
        self.query_one("#lr-status", Static).update(f"step {step}/{steps}  lr {lr:.2e}  smoothed loss {loss:.4f}")

    @from_worker
    def _failed(self, message: str) -> None:
        if self._cancel.is_set() or not self.is_attached:
            return
        self.query_one("#lr-status", Static).update(Text(f"the finder failed: {message}", style="bold"))
        self.app.notify(message, severity="error", title="lr-find")

    @from_worker
    def _show(self, finding: LRFinding) -> None:
        self.finding = finding
        if self._cancel.is_set() or not self.is_attached:
            return
        bar = self.query_one("#lr-progress", ProgressBar)
        bar.update(progress=bar.total or 0)
        width = max(40, min(self.size.width - 6, 94))
        height = max(8, min(self.size.height - 9, 20))
        self.query_one("#lr-plot", Static).update(Text.from_ansi(plot(finding, width, height)))
        self.query_one("#lr-status", Static).update(Text(finding.summary()))
        keys = "[b]enter[/b] use it   [b]escape[/b] close" if finding.suggestion else "[b]escape[/b] close"
        self.query_one("#lr-keys", Label).update(keys)

    def action_use(self) -> None:
        if self.finding is not None and self.finding.suggestion is not None:
            self.dismiss(float(format_lr(self.finding.suggestion)))

    def action_cancel(self) -> None:
        self._cancel.set()
        self.dismiss(None)
