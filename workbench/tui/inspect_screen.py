"""Inspect: step a trained model through an input one token at a time (workbench.inspect renders
nothing itself; this screen draws what it returns): the prediction so far as bars, the hidden state
and the gates as shade strips, saliency and attention under the input, interventions by key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Input, Static

from workbench.errors import WorkbenchError
from workbench.inspect import (
    Inspection,
    Intervention,
    TracedLayer,
    bar,
    decoder_lines,
    gate_summary,
    parse_gate,
    parse_unit,
    prediction_summary,
    shade_strip,
    show_token,
)
from workbench.terminal import printable
from workbench.tui.guards import from_worker
from workbench.tui.predict import ModelScreen
from workbench.tui.widgets import NavBar, footer

if TYPE_CHECKING:
    from workbench.engine import LoadedModel

LEVELS = " ▁▂▃▄▅▆▇█"
PLAY_SECONDS = 0.6
#: Steps of gate history drawn next to each gate (the latest ones).
HISTORY = 12


def level(fraction: float) -> str:
    """One block whose height is ``fraction`` (0..1): reads without colour."""
    return LEVELS[max(0, min(len(LEVELS) - 1, round(fraction * (len(LEVELS) - 1))))]


class InspectScreen(ModelScreen):
    DEFAULT_CSS = """
    InspectScreen #model { height: 1; }
    InspectScreen #text { height: 3; }
    InspectScreen #tokens { height: auto; max-height: 4; padding: 0 1; }
    InspectScreen #answer { height: auto; max-height: 5; padding: 0 1; }
    InspectScreen #internals-box { height: 1fr; border: round $primary; }
    InspectScreen #status { height: 1; padding: 0 1; }
    """

    BINDINGS = [
        Binding("ctrl+o", "choose", "Open model", id="inspect.open"),
        Binding("ctrl+l", "focus_input", "Input", id="inspect.input"),
        Binding("right,l", "step(1)", "Next", id="inspect.next"),
        Binding("left,h", "step(-1)", "Back", id="inspect.back"),
        Binding("home", "jump(0)", "First", id="inspect.first", show=False),
        Binding("end", "jump(-1)", "Last", id="inspect.last", show=False),
        Binding("space", "play", "Play/pause", id="inspect.play"),
        Binding("left_square_bracket,right_square_bracket", "layer", "Layer", id="inspect.layer", show=False),
        Binding("comma", "unit(-1)", "Unit -", id="inspect.unit_back", show=False),
        Binding("full_stop", "unit(1)", "Unit +", id="inspect.unit_next", show=False),
        Binding("z", "zero", "Zero unit", id="inspect.zero"),
        Binding("f", "force(1)", "Hold memory", id="inspect.hold"),
        Binding("u", "force(0)", "Overwrite", id="inspect.overwrite", show=False),
        Binding("x", "clear", "Clear", id="inspect.clear"),
        Binding("down,j", "scroll(1)", "Scroll down", id="inspect.down", show=False),
        Binding("up,k", "scroll(-1)", "Scroll up", id="inspect.up", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.result: Inspection | None = None
        self.step = 0  # 0-based index of the token shown
        self.chosen_layer = 0  # 0-based index into result.layers
        self.unit = 0
        self.interventions: list[Intervention] = []
        self.playing = False
        self._timer: Any = None

    def compose(self) -> ComposeResult:
        yield NavBar("inspect")
        yield Static("", id="model")
        yield Input(placeholder="an input to step through, e.g. Dostoevsky; enter, then ←/→", id="text")
        yield Static("", id="tokens")
        yield Static("", id="answer")
        with VerticalScroll(id="internals-box", can_focus=False):
            yield Static("", id="internals")
        yield Static("", id="status")
        yield footer()

    def on_mount(self) -> None:
        self.query_one("#internals-box").border_title = "inside: hidden state and gates at this step"
        self.query_one("#text", Input).focus()

    # -- running the inspector off the UI thread -------------------------------------------
    def model_ready(self) -> None:
        self.interventions = []
        self.refresh_inspection()

    @on(Input.Submitted, "#text")
    def _submitted(self, event: Input.Submitted) -> None:
        self.refresh_inspection()
        self.set_focus(None)  # the step keys now reach the screen

    def refresh_inspection(self) -> None:
        text = self.query_one("#text", Input).value
        if self.loaded is None:
            self._status("no model loaded yet (ctrl+o chooses one)")
            return
        if not text.strip():
            self._status("type an input and press enter")
            return
        self._status("reading …")
        self._inspect(self.loaded, text, list(self.interventions))

    @work(thread=True, exclusive=True, group="inspect")
    def _inspect(self, loaded: LoadedModel, text: str, interventions: list[Intervention]) -> None:
        from workbench.inspect import inspect_model, plugin_steppers

        try:
            result = inspect_model(loaded.model, loaded.task, text, arch=loaded.config.arch, checkpoint=str(loaded.path),
                                   interventions=interventions, allow_unknown=True,
                                   steppers=plugin_steppers(self.wb.registry), device=loaded.device)
        except WorkbenchError as exc:
            self.app.call_from_thread(self._failed, str(exc), bool(interventions))
            return
        except Exception as exc:  # a bug must not take the app down
            self.app.call_from_thread(self._failed, f"inspect failed: {type(exc).__name__}: {exc}", False)
            return
        self.app.call_from_thread(self._show_result, result, loaded)

    @from_worker
    def _failed(self, message: str, undo_intervention: bool) -> None:
        if undo_intervention and self.interventions:
            self.interventions.pop()
        self._status(message)
        self.app.notify(message, severity="error", title="inspect")

    @from_worker
    def _show_result(self, result: Inspection, loaded: LoadedModel) -> None:
        if loaded is not self.loaded or result.text != self.query_one("#text", Input).value:
            return  # superseded by a newer input or model
        first = self.result is None or self.result.text != result.text
        self.result = result
        if first:
            self.step = len(result.steps) - 1
        self.step = min(self.step, len(result.steps) - 1)
        self.chosen_layer = min(self.chosen_layer, max(0, len(result.layers) - 1))
        self.draw()

    # -- drawing -----------------------------------------------------------------------------
    def _status(self, text: str) -> None:
        self.query_one("#status", Static).update(Text(printable(text, layout=False), no_wrap=True, overflow="ellipsis"))

    def draw(self) -> None:
        result = self.result
        if result is None or not result.steps:
            return
        width = max(20, self.size.width - 4)
        self.query_one("#tokens", Static).update(self.tokens_view(result, width))
        self.query_one("#answer", Static).update(self.answer_view(result, width))
        self.query_one("#internals", Static).update(self.internals_view(result, width))
        state = "playing" if self.playing else f"step {self.step + 1}/{len(result.steps)}"
        done = "; ".join(i.describe() for i in result.interventions) or "no intervention (z, f, u)"
        self._status(f"{state} · {done}")

    def tokens_view(self, result: Inspection, width: int) -> Text:
        """The input with the current token in reverse video, then saliency and attention as block heights."""
        shares = result.saliency_shares()
        attention = result.steps[self.step]["prediction"].get("attention")
        line, sal, att = Text("input     "), Text("saliency  "), Text("attention ")
        top_share = max(shares or [0.0]) or 1.0
        for index, token in enumerate(result.tokens):
            shown = show_token(token)[:12]
            style = "reverse bold" if index == self.step else ("" if index < self.step else "dim")
            line.append(shown, style=style)
            line.append(" ")
            cell = len(shown) + 1
            if shares is not None:
                sal.append(level(shares[index] / top_share) * len(shown) + " ")
            if attention is not None and index < len(attention):
                att.append(level(attention[index]) * len(shown) + " ")
            else:
                att.append(" " * cell)
        out = Text("\n").join([line] + ([sal] if shares is not None else []) + ([att] if attention else []))
        out.no_wrap, out.overflow = True, "ellipsis"
        return out

    def answer_view(self, result: Inspection, width: int) -> Text:
        step = result.steps[self.step]
        prediction = step["prediction"]
        head = f"after {printable(''.join(result.tokens[: self.step + 1]) if result.task != 'tagging' else ' '.join(result.tokens[: self.step + 1]), layout=False)!r}"
        lines = [Text(head[: width], style="bold")]
        if "top" in prediction and result.task == "classification":
            for entry in prediction["top"][:3]:
                lines.append(Text(f"{printable(entry['label'], layout=False)[:16]:<16} {entry['probability']:6.1%} "
                                  f"{bar(entry['probability'], max(5, width - 26))}"))
        else:
            lines.append(Text(printable(prediction_summary(result.task, prediction, width), layout=False)))
        if "baseline" in step and step["baseline"] != prediction:
            lines.append(Text("without: " + printable(prediction_summary(result.task, step["baseline"], width - 9),
                                                      layout=False), style="italic"))
        return Text("\n").join(lines)

    def internals_view(self, result: Inspection, width: int) -> Text:
        if not result.layers:
            return Text("\n".join(result.notes) or "internals are not available for this architecture")
        history = min(HISTORY, len(result.steps))
        strip_width = max(8, width - 14 - history)
        units = "each unit at this step" + (f" (first {strip_width})" if any(
            layer.hidden_size > strip_width for layer in result.layers) else "")
        label = "mean per step" if history >= 13 else "means"  # over the last steps, right of the strips
        lines = [Text(f"{'':11}{units:<{strip_width + 2}}{label}", style="dim", no_wrap=True, overflow="ellipsis")]
        for position, layer in enumerate(result.layers):
            lines.extend(self._layer_lines(result, layer, position, strip_width))
        if result.decoder:  # a translation: its decoder per output word, for the whole input
            lines.extend(Text(printable(line, layout=False)[:width], no_wrap=True, style="" if index else "bold")
                         for index, line in enumerate(decoder_lines(result.decoder)))
        lines.extend(Text(f"note: {note}", style="dim") for note in result.notes)
        return Text("\n").join(lines)

    def _layer_lines(self, result: Inspection, layer: TracedLayer, position: int, width: int) -> list[Text]:
        entry = result.steps[self.step]["layers"][position]
        hidden = entry["hidden"]
        scale = max((abs(v) for s in result.steps for v in s["layers"][position]["hidden"]), default=1.0)
        selected = position == self.chosen_layer
        title = Text(f"{'▶ ' if selected else '  '}{layer.index} {printable(layer.label, layout=False)} "
                     f"({layer.hidden_size} units)  {gate_summary(layer, entry)}", style="bold" if selected else "")
        lines = [title, Text(f"  hidden  |{shade_strip(hidden[:width], scale)}|")]
        if selected and hidden:
            unit = min(self.unit, len(hidden) - 1)
            if unit < width:
                lines.append(Text(f"  unit {unit:<3}{' ' * unit}^ {hidden[unit]:+.3f}"))
        shown = result.steps[max(0, self.step + 1 - HISTORY): self.step + 1]
        for gate in layer.gates:
            if gate in entry["gates"]:
                means = "".join(level(sum(s["layers"][position]["gates"][gate]) / max(1, len(hidden))) for s in shown)
                lines.append(Text(f"  {gate[:7]:<7} |{shade_strip(entry['gates'][gate][:width], 1.0)}| {means}"))
        cell = entry["states"].get("cell")
        if cell:
            cell_scale = max(abs(v) for v in cell) or 1.0
            lines.append(Text(f"  cell    |{shade_strip(cell[:width], cell_scale)}| ±{cell_scale:.1f}"))
        return lines

    # -- keys --------------------------------------------------------------------------------
    def action_focus_input(self) -> None:
        self.query_one("#text", Input).focus()

    def action_scroll(self, lines: int) -> None:
        self.query_one("#internals-box", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_step(self, delta: int) -> None:
        if self.result is None:
            return
        self.step = max(0, min(len(self.result.steps) - 1, self.step + delta))
        self.draw()

    def action_jump(self, where: int) -> None:
        if self.result is not None:
            self.step = 0 if where == 0 else len(self.result.steps) - 1
            self.draw()

    def action_play(self) -> None:
        if self.result is None:
            return
        self.playing = not self.playing
        if self.playing:
            if self.step >= len(self.result.steps) - 1:
                self.step = 0
            self._timer = self.set_interval(PLAY_SECONDS, self._tick)
        elif self._timer is not None:
            self._timer.stop()
        self.draw()

    def _tick(self) -> None:
        if self.result is None or self.step >= len(self.result.steps) - 1:
            self.playing = False
            if self._timer is not None:
                self._timer.stop()
        else:
            self.step += 1
        self.draw()

    def action_layer(self) -> None:
        if self.result and self.result.layers:
            self.chosen_layer = (self.chosen_layer + 1) % len(self.result.layers)
            self.unit = min(self.unit, self.result.layers[self.chosen_layer].hidden_size - 1)
            self.draw()

    def action_unit(self, delta: int) -> None:
        if self.result and self.result.layers:
            self.unit = max(0, min(self.result.layers[self.chosen_layer].hidden_size - 1, self.unit + delta))
            self.draw()

    def action_zero(self) -> None:
        if self._can_intervene():
            self._intervene(parse_unit(f"{self.chosen_layer + 1}:{self.unit}@{self.step + 1}"))

    def action_force(self, value: int) -> None:
        """Hold the memory (LSTM forget = 1, GRU update = 1) or overwrite it (0) from this step on."""
        if not self._can_intervene():
            return
        assert self.result is not None
        layer = self.result.layers[self.chosen_layer]
        gate = "forget" if "forget" in layer.gates else "update" if "update" in layer.gates else None
        if gate is None:
            self.app.notify(f"{layer.label} has no forget or update gate", severity="warning")
            return
        self._intervene(parse_gate(f"{layer.index}:{gate}={value}@{self.step + 1}"))

    def action_clear(self) -> None:
        if self.interventions:
            self.interventions = []
            self.refresh_inspection()

    def _can_intervene(self) -> bool:
        if self.result is None or not self.result.layers:
            self.app.notify("nothing to intervene on: no recurrent layer is shown", severity="warning")
            return False
        return True

    def _intervene(self, intervention: Intervention) -> None:
        self.interventions.append(intervention)
        self.app.notify(escape(intervention.describe()), title="intervention")
        self.refresh_inspection()
