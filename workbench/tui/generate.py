"""Generate: stream text from any checkpoint whose task generates, stoppable at any time."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import Input, Label, Static

from workbench.errors import ParamError, WorkbenchError
from workbench.generation import GENERATE_PARAMS
from workbench.interventions import parse_interventions
from workbench.terminal import printable
from workbench.tui.guards import from_worker
from workbench.tui.predict import ModelScreen
from workbench.tui.setup import ParamValidator
from workbench.tui.stream_text import StreamText
from workbench.tui.widgets import ChoiceInput, NavBar, footer

if TYPE_CHECKING:
    from workbench.engine import LoadedModel

#: How often streamed text is handed to the UI (batching keeps call_from_thread cheap).
FLUSH_SECONDS = 0.05


class GenerateScreen(ModelScreen):
    generating_only = True
    DEFAULT_CSS = """
    GenerateScreen #model { height: auto; max-height: 2; }
    GenerateScreen #prime { margin: 0; }
    GenerateScreen #options { grid-size: 3; grid-rows: 3; height: 6; }
    GenerateScreen #options .option { height: 3; }
    GenerateScreen #options Label { padding: 1 1 0 1; width: 13; }
    GenerateScreen #options Input { width: 1fr; }
    GenerateScreen #intervene-row { height: 3; }
    GenerateScreen #intervene-row Label { padding: 1 1 0 1; width: 13; }
    GenerateScreen #intervene-row Input { width: 1fr; }
    GenerateScreen #out-box { height: 1fr; border: round $primary; }
    GenerateScreen #gen-hint { height: 1; }
    """

    BINDINGS = [
        Binding("ctrl+g", "generate", "Generate", id="generate.start"),
        Binding("escape", "stop", "Stop", id="generate.stop"),
        Binding("ctrl+o", "choose", "Open model", id="generate.open"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self.generating = False
        self.text = ""
        self._generation = 0

    def compose(self) -> ComposeResult:
        yield NavBar("generate")
        yield Static("", id="model")
        yield Input(placeholder="priming text (enter starts, escape stops)", id="prime")
        with Grid(id="options"):  # three to a row: every value readable at 80 columns
            for param in GENERATE_PARAMS:
                with Horizontal(classes="option"):
                    yield Label(param.name)
                    field_args: dict[str, Any] = {"id": f"g-{param.name}", "validators": [ParamValidator(param)],
                                                  "tooltip": param.help}
                    if param.choices:
                        yield ChoiceInput(str(param.default), [str(c) for c in param.choices], **field_args)
                    else:
                        yield Input(str(param.default), **field_args)
            with Horizontal(classes="option"):
                yield Label("seed")
                yield Input("", id="g-seed", placeholder="random", restrict=r"\d*")
        with Horizontal(id="intervene-row"):  # interventions (docs/inspect.md), the inspector's syntax
            yield Label("intervene")
            yield Input("", id="g-intervene", placeholder="none; e.g. forget=0@20 1:*@30 (step: prime chars first)",
                        tooltip="from character STEP on, counting the prime's first: LAYER:UNIT@STEP zeroes a unit, "
                        "LAYER:UNIT=VALUE@STEP clamps it (* for all), [LAYER:]GATE=VALUE@STEP forces a gate")
        yield Static("", id="gen-hint")
        yield StreamText(id="out-box")  # appending costs the same however long the text gets
        yield footer()

    def on_mount(self) -> None:
        self.query_one("#out-box").border_title = "generated text"
        self.query_one("#prime", Input).focus()

    def model_ready(self) -> None:
        assert self.loaded is not None
        if not self.loaded.task.supports_generation:
            self.query_one("#gen-hint", Static).update(
                escape(f"this is a {self.loaded.task.kind} model; it does not generate text "
                       "(ctrl+o: choose a language model)"))
        else:
            self.query_one("#gen-hint", Static).update("enter or ctrl+g generates; escape stops")

    def options(self) -> dict[str, Any]:
        """Validated generation options, or a ParamError naming the bad field (which gets focus)."""
        values: dict[str, Any] = {}
        for param in GENERATE_PARAMS:
            widget = self.query_one(f"#g-{param.name}", Input)
            try:
                values[param.name] = param.parse(widget.value)
            except ParamError:
                widget.focus()
                raise
        seed = self.query_one("#g-seed", Input).value.strip()
        values["seed"] = int(seed) if seed else None
        field = self.query_one("#g-intervene", Input)
        try:
            values["interventions"] = parse_interventions(field.value)
        except WorkbenchError:
            field.focus()
            raise
        return values

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.action_generate()

    def action_generate(self) -> None:
        if self.loaded is None:
            self.app.notify("no model loaded: ctrl+o chooses one", severity="warning")
            return
        if not self.loaded.task.supports_generation:
            self.app.notify(f"a {self.loaded.task.kind} model does not generate text", severity="error")
            return
        try:
            options = self.options()
        except WorkbenchError as exc:
            self.app.notify(str(exc), severity="error", title="cannot generate")
            return
        self.action_stop()
        self._stop = threading.Event()
        prime = self.query_one("#prime", Input).value
        self.text = prime
        out = self.query_one("#out-box", StreamText)
        out.clear()
        out.append(printable(prime))
        self.generating = True
        self._generation += 1
        self.query_one("#gen-hint", Static).update("generating… escape stops")
        self._generate(self.loaded, prime, options, self._stop, self._generation)

    def action_stop(self) -> None:
        self._stop.set()

    @work(thread=True, exclusive=True, group="generate")
    def _generate(self, loaded: LoadedModel, prime: str, options: dict[str, Any], stop: threading.Event,
                  generation: int) -> None:
        length = options.pop("length")
        interventions = options.pop("interventions", [])
        pending: list[str] = []
        last = time.monotonic()
        message = ""
        try:
            from workbench.inspect import plugin_steppers
            from workbench.intervened_generation import generate

            steppers = plugin_steppers(self.wb.registry) if interventions else None
            for piece in generate(loaded.task, loaded.model, prime, length, loaded.device, interventions,
                                  arch=loaded.config.arch, steppers=steppers, **options):
                if stop.is_set():
                    message = "stopped"
                    break
                pending.append(piece)
                now = time.monotonic()
                if now - last >= FLUSH_SECONDS:
                    self.app.call_from_thread(self._append, "".join(pending), generation)
                    pending.clear()
                    last = now
            else:
                message = "done" + (f" with {len(interventions)} intervention{'s' if len(interventions) > 1 else ''}"
                                    if interventions else "")
        except WorkbenchError as exc:
            message = str(exc)
            self.app.call_from_thread(self.app.notify, message, severity="error", title="generate")
        except Exception as exc:
            message = f"generation failed: {type(exc).__name__}: {exc}"
            self.app.call_from_thread(self.app.notify, message, severity="error", title="generate")
        finally:
            self.app.call_from_thread(self._finish, "".join(pending), message, generation)

    @from_worker
    def _append(self, chunk: str, generation: int) -> None:
        if generation != self._generation:
            return  # a stopped, superseded generation
        self.text += chunk
        self.query_one("#out-box", StreamText).append(printable(chunk))

    @from_worker
    def _finish(self, chunk: str, message: str, generation: int) -> None:
        if generation != self._generation:
            return
        if chunk:
            self._append(chunk, generation)
        self.generating = False
        self.query_one("#gen-hint", Static).update(escape(f"{message}: {len(self.text)} characters (enter: again)"))
