"""Predict: type an input and see the model's answer as you type, plus its last evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, VerticalScroll
from textual.screen import Screen
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Static

from workbench.errors import WorkbenchError
from workbench.terminal import printable
from workbench.tui.guards import from_worker
from workbench.tui.latest import LatestOnly
from workbench.tui.render import (
    checkpoint_position,
    confusion_view,
    evaluation_view,
    prediction_view,
    stored_evaluation,
)
from workbench.tui.widgets import NavBar, footer

if TYPE_CHECKING:
    from workbench.engine import LoadedModel
    from workbench.tui.app import WorkbenchApp


class TopKValidator(Validator):
    def validate(self, value: str) -> ValidationResult:
        if value.strip().isdigit() and 1 <= int(value) <= 100:
            return self.success()
        return self.failure("k must be a whole number from 1 to 100")


class ModelScreen(Screen[None]):
    """Shared by predict and generate: which checkpoint is loaded, and loading one off the UI thread."""

    #: Offer only checkpoints whose model generates text (the Generate screen).
    generating_only = False

    def __init__(self) -> None:
        super().__init__()
        self.loaded: LoadedModel | None = None
        self.wanted: Path | None = None

    @property
    def wb(self) -> WorkbenchApp:
        return self.app  # type: ignore[return-value]

    def on_screen_resume(self) -> None:
        if self.wanted is None and self.loaded is None:
            default = self.wb.default_checkpoint(generating=self.generating_only)
            if default is not None:
                self.open_checkpoint(default)
            else:
                self._model_line("no trained model yet: train one (F2) or pick a run (ctrl+o)")

    def _model_line(self, text: str | Text) -> None:
        self.query_one("#model", Static).update(text)

    def open_checkpoint(self, path: Path) -> None:
        if self.loaded is not None and self.loaded.path == path:
            return
        self.wanted = path
        self._model_line(escape(f"loading {path} …"))
        self._load(path)

    @work(thread=True, exclusive=True, group="load")
    def _load(self, path: Path) -> None:
        try:
            loaded = self.wb.load_model(path)
        except WorkbenchError as exc:
            self.app.call_from_thread(self._load_failed, path, str(exc))
            return
        except Exception as exc:  # anything else is a bug, but the app must keep running
            self.app.call_from_thread(self._load_failed, path, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._loaded, path, loaded)

    @from_worker
    def _loaded(self, path: Path, loaded: LoadedModel) -> None:
        if self.wanted == path:  # not superseded by a later choice while it loaded
            self.use_model(loaded)

    @from_worker
    def _load_failed(self, path: Path, message: str) -> None:
        if self.wanted == path:
            self.wanted = None
        self._model_line(escape(f"could not load {path}"))
        self.app.notify(message, severity="error", title="checkpoint")

    def use_model(self, loaded: LoadedModel) -> None:
        """Show ``loaded`` (tests hand in a model directly)."""
        self.loaded = loaded
        self.wanted = loaded.path
        config = loaded.config
        run = loaded.payload.get("run_id") or loaded.path.parent.name
        self._model_line(Text.assemble((printable(run, layout=False), "bold"), " ", printable(
            f"{loaded.path.name}: {config.dataset} / {config.arch}, {loaded.task.kind}, "
            f"{checkpoint_position(loaded.payload)}  (ctrl+o: another)", layout=False)))
        self.model_ready()

    def model_ready(self) -> None:
        """Called on the UI thread once a model is loaded."""

    def action_choose(self) -> None:
        from workbench.runs import list_runs
        from workbench.tui.modals import ChooseScreen, choose_items

        def chosen(path: str | None) -> None:
            if path:
                self.open_checkpoint(Path(path))

        runs = list_runs(self.wb.runs_root)
        if self.generating_only:
            runs = [run for run in runs if self.wb.run_generates(run)]
        items = choose_items(runs)
        empty = ("no checkpoint of a model that generates text yet (F2: a language_model dataset)"
                 if self.generating_only else "no run has a checkpoint yet")
        self.app.push_screen(ChooseScreen("Choose a trained model", items, empty), chosen)


class PredictScreen(ModelScreen):
    DEFAULT_CSS = """
    PredictScreen #model { height: auto; max-height: 2; }
    PredictScreen #inputs { height: 3; }
    PredictScreen #text { width: 1fr; }
    PredictScreen #k { width: 10; }
    PredictScreen #inputs Label { padding: 1 1 0 1; }
    PredictScreen #answer-box { height: auto; max-height: 9; border: round $primary; }
    PredictScreen #eval-box { height: 1fr; border: round $primary; }
    PredictScreen #matrix-box { height: auto; margin-top: 1; }
    PredictScreen #matrix { width: auto; }
    """

    BINDINGS = [
        Binding("ctrl+o", "choose", "Open model", id="predict.open"),
        Binding("ctrl+l", "focus_input", "Input", id="predict.input"),
    ]

    def compose(self) -> ComposeResult:
        yield NavBar("predict")
        yield Static("", id="model")
        with Horizontal(id="inputs"):
            yield Input(placeholder="type an input: a surname, a review, a sentence", id="text")
            yield Label("top-k")
            yield Input("3", id="k", validators=[TopKValidator()])
        with VerticalScroll(id="answer-box"):
            yield Static("", id="answer")
        with VerticalScroll(id="eval-box"):
            yield Static("", id="evaluation")
            with HorizontalScroll(id="matrix-box"):
                yield Static("", id="matrix")
        yield footer()

    def on_mount(self) -> None:
        # one thread answers the newest text only: typing is echoed at once, however slow the model
        self._predictor: LatestOnly[tuple[LoadedModel, str, int]] = LatestOnly(self.app, self._compute,
                                                                               self._answered)
        self.query_one("#answer-box").border_title = "prediction"
        self.query_one("#eval-box").border_title = "last evaluation of this checkpoint"
        self.query_one("#text", Input).focus()

    def model_ready(self) -> None:
        assert self.loaded is not None
        heading, metrics = stored_evaluation(self.loaded.payload.get("evaluation"))
        self.query_one("#evaluation", Static).update(evaluation_view(metrics, self.size.width - 4, heading))
        matrix = confusion_view(metrics)
        self.query_one("#matrix", Static).update(matrix or "")
        self.query_one("#matrix-box").display = matrix is not None
        self.predict_now()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.predict_now()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.predict_now()

    def predict_now(self) -> None:
        text = self.query_one("#text", Input).value
        k_input = self.query_one("#k", Input)
        k_check = k_input.validate(k_input.value)
        if k_check is not None and not k_check.is_valid:
            self.query_one("#answer", Static).update(k_check.failure_descriptions[0])
            return
        if self.loaded is None:
            if text.strip():
                self.query_one("#answer", Static).update("no model loaded yet (ctrl+o chooses one)")
            return
        if not text.strip():
            self._predictor.drop()
            self.query_one("#answer", Static).update("")
            return
        self._predictor.submit((self.loaded, text, int(k_input.value)))

    def _compute(self, request: tuple[LoadedModel, str, int]) -> Any:
        loaded, text, k = request
        return loaded.task.predict(loaded.model, text, loaded.device, top_k=k)

    def _answered(self, request: tuple[LoadedModel, str, int], prediction: Any, error: BaseException | None) -> None:
        loaded, text, _ = request
        if isinstance(error, WorkbenchError):
            self._show(None, str(error))
        elif error is not None:
            self._show(None, f"prediction failed: {type(error).__name__}: {error}")
        else:
            self._show(prediction, "", text, loaded)

    def _show(self, prediction: dict[str, Any] | None, message: str, text: str = "",
              loaded: LoadedModel | None = None) -> None:
        answer = self.query_one("#answer", Static)
        if prediction is None:
            answer.update(escape(message))
            return
        if loaded is None or text != self.query_one("#text", Input).value or loaded is not self.loaded:
            return  # a newer keystroke or model has superseded this answer
        self.last_prediction = prediction
        answer.update(prediction_view(prediction, self.size.width - 4, loaded.task.render_prediction))

    def action_focus_input(self) -> None:
        self.query_one("#text", Input).focus()
