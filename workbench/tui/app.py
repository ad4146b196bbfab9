"""The terminal app ``workbench`` opens: set up, train and watch, browse runs, predict, generate.

Training runs in a detached ``workbench train`` process; the app follows run folders on a timer.
The first frame is drawn before anything slow: plugins are loaded in a worker thread after it (a hung
plugin leaves the dataset list saying so, not a blank screen), devices are listed by a child process
(importing torch in a thread would hold the interpreter lock for a second at a time), and torch is
imported in this process only to load a checkpoint.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.filter import LineFilter
from textual.screen import Screen

from workbench import settings
from workbench.errors import WorkbenchError
from workbench.tui.heap import HeapKeeper, thaw
from workbench.tui.keygate import KeyGate
from workbench.tui.keys import key_conflicts, keymap_path, load_keymap
from workbench.tui.widgets import FOCUS_CSS, NoControlCharacters

if TYPE_CHECKING:
    import argparse

    # the registry is imported by the worker that loads the plugins, after the first paint; runs,
    # their monitors and the launcher (run events, configs) when a run is first watched or started
    from workbench.registry import Registry
    from workbench.runs import Run
    from workbench.tui.launch import Launched
    from workbench.tui.monitor import RunMonitor

POLL_SECONDS = 0.25
#: How often the app checks for modules imported since its last freeze of long-lived objects (heap.py).
HEAP_SECONDS = 1.0
#: Mode name -> (title shown in help and the palette, screen class).
#: Mode name -> (title shown in help and the palette, "module:class"). Screens are imported when
#: first shown (or when help / the palette lists their keys), so opening the app imports only Setup.
SCREEN_PATHS: dict[str, tuple[str, str]] = {
    "setup": ("Setup", "workbench.tui.setup:SetupScreen"),
    "monitor": ("Train", "workbench.tui.monitor_screen:MonitorScreen"),
    "runs": ("Runs", "workbench.tui.runs_screen:RunsScreen"),
    "predict": ("Predict", "workbench.tui.predict:PredictScreen"),
    "generate": ("Generate", "workbench.tui.generate:GenerateScreen"),
    "inspect": ("Inspect", "workbench.tui.inspect_screen:InspectScreen"),
    "sweep": ("Sweep", "workbench.tui.sweep_screen:SweepScreen"),
}


def screen_class(mode: str) -> type[Screen[Any]]:
    module, _, name = SCREEN_PATHS[mode][1].partition(":")
    return getattr(importlib.import_module(module), name)


def screens() -> dict[str, tuple[str, type[Screen[Any]]]]:
    return {mode: (title, screen_class(mode)) for mode, (title, _) in SCREEN_PATHS.items()}


def _mode_screen(mode: str) -> Screen[Any]:
    return screen_class(mode)()


#: The mode the app opens in. Its screen comes from ``get_default_screen`` and the mode is declared
#: only once it is shown (``on_mount``): Textual builds a MODES screen with a full reparse and
#: re-application of the stylesheet, which delayed the first frame by ~80 ms of CPU (issue 12).
FIRST_MODE = "setup"


class WorkbenchApp(App[int]):
    TITLE = "workbench"
    MODES = {name: partial(_mode_screen, name) for name in SCREEN_PATHS if name != FIRST_MODE}
    DEFAULT_MODE = FIRST_MODE
    ENABLE_COMMAND_PALETTE = True
    CSS = FOCUS_CSS

    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", id="app.help", show=False),
        Binding("f2", "mode('setup')", "Setup", id="app.setup", show=False),
        Binding("f3", "mode('monitor')", "Train", id="app.monitor", show=False),
        Binding("f4", "mode('runs')", "Runs", id="app.runs", show=False),
        Binding("f5", "mode('predict')", "Predict", id="app.predict", show=False),
        Binding("f6", "mode('generate')", "Generate", id="app.generate", show=False),
        Binding("f7", "mode('inspect')", "Inspect", id="app.inspect", show=False),
        Binding("f8", "mode('sweep')", "Sweep", id="app.sweep", show=False),
        Binding("f9", "problems", "Problems", id="app.problems", show=False),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", show=False),
    ]

    def __init__(self, runs_root: Path | None = None, registry: Registry | None = None,
                 keys_file: Path | None = None) -> None:
        super().__init__()
        self.runs_root = runs_root or settings.current().runs_dir  # workbench.runs.default_runs_dir
        self._plugin_registry = registry
        self._plugin_registry_lock = threading.Lock()
        self._plugins_ready = registry is not None
        self._plugin_waiters: list[Callable[[], None]] = []
        self.keys_file = keys_file or keymap_path()
        self.monitors: dict[str, RunMonitor] = {}
        self.current: str | None = None
        self.compare: set[str] = set()
        self.launched: dict[str, Launched] = {}
        self._models: dict[tuple[str, float], Any] = {}
        self._model_lock = threading.Lock()
        self._key_notes: list[str] = []
        self._key_problems: list[str] = []
        #: (title, message) of each problem reported since start, for the Problems screen.
        self.problems: list[tuple[str, str]] = []
        self._no_controls = NoControlCharacters()
        self._keys_held = KeyGate(self)
        self._heap = HeapKeeper()

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Textual's filters, then :class:`NoControlCharacters` on every line the app draws."""
        return [*super().get_line_filters(), self._no_controls]

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Notifications carry file names and error text: no markup unless asked for."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # -- start-up --------------------------------------------------------------------------
    def on_load(self) -> None:
        keymap, self._key_problems = load_keymap(None, self.keys_file)  # ids are checked after first paint
        if keymap:
            self.set_keymap(keymap)
            self._key_notes.append(f"{len(keymap)} key(s) remapped from {self.keys_file}")

    def get_default_screen(self) -> Screen[Any]:
        """The first screen: the setup screen, outside MODES until it is up (see FIRST_MODE)."""
        return _mode_screen(FIRST_MODE)

    def on_mount(self) -> None:
        self.add_mode(FIRST_MODE, partial(_mode_screen, FIRST_MODE))  # its stack exists: switch_mode finds it
        for problem in self._key_problems:
            self.report_problem("keys", problem)
        if self._plugins_ready:
            self._plugins_loaded()
        else:
            self.call_after_refresh(self._load_plugins)
        self.set_interval(POLL_SECONDS, self.poll_runs)

    def on_unmount(self) -> None:
        thaw()

    # -- plugins (loaded after the first paint) ---------------------------------------------
    @property
    def registry(self) -> Registry:
        """The plugins; loaded by a worker after the first paint (here, at once, only if needed sooner)."""
        with self._plugin_registry_lock:
            if self._plugin_registry is None:
                from workbench.registry import get_registry

                self._plugin_registry = get_registry()
            return self._plugin_registry

    @work(thread=True, exclusive=True, group="plugins")
    def _load_plugins(self) -> None:
        self.registry  # noqa: B018 (loads it)
        self.call_from_thread(self._plugins_loaded)

    def _plugins_loaded(self) -> None:
        self._plugins_ready = True
        for plugin, error in self.registry.errors:
            self.report_problem("plugin failed", f"plugin {plugin.name}: {error}")
        waiters, self._plugin_waiters = self._plugin_waiters, []
        for callback in waiters:
            callback()
        self.call_after_refresh(self._check_keymap)  # imports every screen: after the setup screen is filled

    @property
    def plugins_ready(self) -> bool:
        """Whether the plugins are loaded (given to the app, or loaded by its worker)."""
        return self._plugins_ready

    def when_plugins_loaded(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the UI thread once the plugins are loaded (now if they are)."""
        if self._plugins_ready:
            callback()
        else:
            self._plugin_waiters.append(callback)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            self._keys_held.hold(event)
            return
        await super().on_event(event)

    async def deliver_key(self, event: events.Key) -> None:
        """What Textual does with a key (priority bindings, then the focused widget); see KeyGate."""
        await super().on_event(event)

    def report_problem(self, title: str, message: str) -> None:
        """A problem worth reading again (a plugin that failed to load, a bad key binding): kept for
        the Problems screen (F9) and announced by a notification that says so."""
        self.problems.append((title, message))
        self.notify(f"{message}\n(F9: all problems)", severity="error" if title == "plugin failed" else "warning",
                    title=title, timeout=10)

    def action_problems(self) -> None:
        from workbench.tui.modals import ProblemsScreen

        if not isinstance(self.screen, ProblemsScreen):
            self.push_screen(ProblemsScreen(self.problems))

    def _check_keymap(self) -> None:
        """Unknown action ids in the keys file (needs every screen's bindings, so after first paint)."""
        known = {b.id for b in self.all_bindings() if b.id}
        for binding_id in self._keymap:
            if binding_id not in known:
                self.report_problem("keys", f"{self.keys_file}: unknown action {binding_id!r}")
        scopes = {"Everywhere": [(b.id, b.key) for b in self._bindings_of(type(self)) if b.id]}
        scopes.update((title, [(b.id, b.key) for b in self._bindings_of(cls) if b.id])
                      for title, cls in screens().values())
        conflicts = key_conflicts(scopes, self._keymap)
        for _, problem in conflicts:
            self.report_problem("keys", f"{self.keys_file}: {problem}")
        if conflicts:
            dropped = {binding_id for binding_id, _ in conflicts}
            self.set_keymap({k: v for k, v in self._keymap.items() if k not in dropped})
        self._heap.settle()  # plugins, torch and every screen's module are imported by now
        self.set_interval(HEAP_SECONDS, self._heap.settle)  # and again after later imports

    def all_bindings(self) -> list[Binding]:
        found = list(self._bindings_of(type(self)))
        for _, cls in screens().values():
            found.extend(self._bindings_of(cls))
        return found

    @staticmethod
    def _bindings_of(cls: type) -> Iterable[Binding]:
        for item in getattr(cls, "BINDINGS", []):
            if isinstance(item, Binding):
                yield item

    # -- following runs --------------------------------------------------------------------
    def watch_run(self, run: Run, make_current: bool = False) -> RunMonitor:
        monitor = self.monitors.get(run.id)
        if monitor is None:
            from workbench.tui.monitor import RunMonitor

            monitor = RunMonitor(run)
            monitor.poll()
            self.monitors[run.id] = monitor
            if monitor.state in ("failed", "interrupted"):
                self._state_changed(monitor, "unknown")
        if make_current:
            self.current = run.id
        return monitor

    def forget_run(self, run_id: str) -> None:
        self.monitors.pop(run_id, None)
        self.compare.discard(run_id)
        if self.current == run_id:
            self.current = None

    def current_monitor(self) -> RunMonitor | None:
        return self.monitors.get(self.current or "")

    def compared_monitors(self) -> list[RunMonitor]:
        return [self.monitors[r] for r in sorted(self.compare) if r in self.monitors]

    def poll_runs(self) -> None:
        """Read what the watched runs wrote since last time (a few hundred bytes; cheap)."""
        for monitor in list(self.monitors.values()):
            before = monitor.state
            monitor.poll()  # finished runs too: `workbench train --resume` appends to the same file
            if monitor.state != before:
                self._state_changed(monitor, before)
        for run_id, launched in list(self.launched.items()):
            code = launched.finished()
            if code is None:
                continue
            del self.launched[run_id]
            if code != 0:
                self._process_failed(run_id, launched, code)
            launched.close()

    def _state_changed(self, monitor: RunMonitor, before: str) -> None:
        if monitor.state == "finished":
            test = monitor.test_metrics()
            metric = monitor.main_metric
            shown = f": test {metric} {test[metric]:.4f}" if isinstance(test.get(metric), float) else ""
            self.notify(f"run {monitor.id} finished{shown}. F5 / p: predict with it", title="training finished")
        elif monitor.state == "stopped":
            self.notify(f"run {monitor.id} stopped; its best checkpoint is kept", title="training stopped")
        elif monitor.state in ("failed", "interrupted"):
            tail = monitor.log_tail(6)
            for line in tail:
                monitor.add_log(f"| {line}")
            why = monitor.message or (tail[-1] if tail else "no message")
            self.notify(f"run {monitor.id} {monitor.state}: {why}", severity="error", title="training failed",
                        timeout=12)

    def _process_failed(self, run_id: str, launched: Launched, code: int) -> None:
        monitor = self.monitors.get(run_id)
        if monitor is not None and monitor.state in ("failed", "interrupted", "stopped"):
            return  # already reported from the run folder
        lines = [line for line in launched.output().splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {code}"
        if monitor is not None:
            for line in lines[-6:]:
                monitor.add_log(f"| {line}")
            if not launched.run.path.exists():
                monitor.state = "failed"
                monitor.message = why
                monitor.version += 1
        self.notify(f"training {run_id} could not run: {why}", severity="error", title="training failed",
                    timeout=12)

    # -- run control -----------------------------------------------------------------------
    def start_run(self, config: Any, processes: int = 1) -> Run | None:
        from workbench.tui.launch import start_training

        try:
            launched = start_training(config, self.runs_root, processes)
        except (OSError, WorkbenchError) as exc:
            self.notify(f"could not start training: {exc}", severity="error")
            return None
        self.launched[launched.run.id] = launched
        self.watch_run(launched.run, make_current=True)
        self.switch_mode("monitor")
        self.notify(f"training {launched.run.id} in the background; it keeps going if you quit (ctrl+q)",
                    title="training started")
        return launched.run

    def toggle_pause(self, run: Run) -> None:
        from workbench.runs import ACTIVE_STATES

        state = run.status().get("state")
        if state not in ACTIVE_STATES:
            self.notify(f"{run.id} is {state}, not training", severity="warning")
            return
        paused = state == "paused" or run.read_control() == "pause"
        run.request("resume" if paused else "pause")
        self.notify(f"asked {run.id} to {'resume' if paused else 'pause'}")

    def stop_run(self, run: Run) -> None:
        from workbench.runs import ACTIVE_STATES

        state = run.status().get("state")
        if state not in ACTIVE_STATES:
            self.notify(f"{run.id} is {state}, not training", severity="warning")
            return
        from workbench.tui.modals import ConfirmScreen

        if run.read_control() == "stop":  # asked already and still running: offer to force it
            self.push_screen(ConfirmScreen(
                f"Run {run.id} was asked to stop and is still running. Force it to stop now? Its process is "
                "killed: the step in progress is lost, the checkpoint of the last finished epoch is kept."),
                partial(self._force_stop, run))
            return

        def answer(yes: bool | None) -> None:
            if yes:
                run.request("stop")
                self.notify(f"asked {run.id} to stop after this step (checkpoints are kept); press s again to "
                            "force it")

        self.push_screen(ConfirmScreen(f"Stop run {run.id}? It finishes the current step and keeps its checkpoints."),
                         answer)

    def _force_stop(self, run: Run, yes: bool | None) -> None:
        from workbench.tui.launch import force_stop

        if not yes:
            return
        if force_stop(run):
            self.notify(f"{run.id} was forced to stop (the last finished epoch's checkpoint is kept)")
        else:
            self.notify(f"{run.id} has no live training process to stop", severity="warning")

    # -- models (torch, on worker threads) -------------------------------------------------
    def load_model(self, path: Path) -> Any:
        """Load (or reuse) a checkpoint; call from a worker thread: this imports torch."""
        key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
        with self._model_lock:
            if key in self._models:
                return self._models[key]
        import torch

        from workbench.engine import choose_threads, load_trained

        torch.set_num_threads(choose_threads(0))  # leave the other core to training on a small machine
        loaded = load_trained(path, self.registry, device="auto")
        with self._model_lock:
            self._models[key] = loaded
        self._heap.settle()  # the model and what loading it imported stay for the app's life
        return loaded

    def run_generates(self, run: Run) -> bool:
        """Whether ``run``'s model generates text (its dataset's task kind says so; no torch)."""
        from workbench.headlines import GENERATING_KINDS

        try:
            return self.registry.dataset(str(run.config().get("dataset"))).task in GENERATING_KINDS
        except WorkbenchError:
            return False

    def default_checkpoint(self, run: Run | None = None, generating: bool = False) -> Path | None:
        """The checkpoint a model screen opens: ``run``'s, the watched run's, else the newest run's;
        for Generate (``generating``) only runs whose model generates, so it never opens a classifier."""
        candidates: list[Run] = []
        if run is not None:
            candidates.append(run)
        monitor = self.current_monitor()
        if monitor is not None and (not generating or self.run_generates(monitor.run)):
            candidates.append(monitor.run)
        from workbench.runs import list_runs

        newest = sorted(list_runs(self.runs_root), key=lambda r: r.path.stat().st_mtime, reverse=True)
        candidates.extend(r for r in newest if not generating or self.run_generates(r))
        for candidate in candidates:
            for which in ("best", "last"):
                path = candidate.checkpoint_path(which)
                if path.exists():
                    return path
        return None

    def _open_model_screen(self, mode: str, run: Run | None) -> None:
        path = self.default_checkpoint(run, generating=mode == "generate")
        if run is not None and (path is None or path.parent != run.path):
            self.notify(f"{run.id} has no checkpoint yet", severity="warning")
            return

        async def switch() -> None:
            await self.switch_mode(mode)
            screen = self.screen
            if path is not None and hasattr(screen, "open_checkpoint"):
                screen.open_checkpoint(path)

        self.call_later(switch)

    def open_setup_from(self, run: Run) -> None:
        """The setup form with ``run``'s settings, to change some and train again."""
        from workbench.config import stored_config

        try:
            config = stored_config(self.registry, run.config(), f"run {run.id}")
        except WorkbenchError as exc:
            self.notify(str(exc), severity="error", title="cannot take its settings")
            return
        if config.dataset not in self.registry.datasets:
            self.notify(f"run {run.id}: dataset {config.dataset!r} is not installed (see `workbench plugins`)",
                        severity="error", title="cannot take its settings")
            return

        async def switch() -> None:
            await self.switch_mode(FIRST_MODE)
            show = getattr(self.screen, "show_config", None)
            if show is not None:
                show(config)
                self.notify(f"the settings of {run.id}: change any, then t trains")

        self.call_later(switch)

    def open_predict(self, run: Run | None = None) -> None:
        self._open_model_screen("predict", run)

    def open_generate(self, run: Run | None = None) -> None:
        self._open_model_screen("generate", run)

    def open_inspect(self, run: Run | None = None) -> None:
        self._open_model_screen("inspect", run)

    # -- actions, help and the command palette ---------------------------------------------
    def action_mode(self, mode: str) -> None:
        self.switch_mode(mode)

    def help_sections(self) -> list[tuple[str, list[tuple[str, str, str]]]]:
        def rows(cls: type) -> list[tuple[str, str, str]]:
            out = []
            for b in self._bindings_of(cls):
                keys = self._keymap.get(b.id, b.key) if b.id else b.key
                out.append((keys.replace("question_mark", "?"), b.description, b.id or ""))
            return out

        sections = [("Everywhere", rows(type(self)) + [("ctrl+p", "Command palette", "")])]
        sections.extend((title, rows(cls)) for title, cls in screens().values())
        return sections

    def action_help(self) -> None:
        from workbench.tui.modals import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.help_sections(), str(self.keys_file), self._key_notes))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for b in self._bindings_of(type(self)):
            if b.action != "quit":
                yield SystemCommand(b.description, f"key: {self._keymap.get(b.id or '', b.key)}",
                                    partial(self.run_action, b.action))
        for mode, (title, cls) in screens().items():
            for b in self._bindings_of(cls):
                yield SystemCommand(f"{title}: {b.description}", f"key: {self._keymap.get(b.id or '', b.key)} "
                                    f"(on the {title} screen)", partial(self._run_on_mode, mode, b.action))

    async def _run_on_mode(self, mode: str, action: str) -> None:
        if self.current_mode != mode:
            await self.switch_mode(mode)
        await self.screen.run_action(action)


def run_app(args: argparse.Namespace | None = None) -> int:
    """Entry point for ``workbench`` with no command."""
    runs_dir = getattr(args, "runs_dir", None) if args is not None else None
    app = WorkbenchApp(runs_root=Path(runs_dir) if runs_dir else None)
    app.run()
    still = [r for r in app.monitors.values() if r.active]
    if still:
        print("still training (detached; see `workbench runs`): " + ", ".join(m.id for m in still))
    return 0
