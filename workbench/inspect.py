"""Step through a trained model one token at a time: the prediction after every prefix, the hidden
state and (LSTM, GRU) the gates at every step, interventions, and saliency. No Textual here: the
CLI (``workbench inspect``) and the app's Inspect screen both render what :func:`inspect_text` returns.

How it works. The model's own ``forward`` runs on each prefix of the input ("D", "Do", ...), so the
per-step prediction is exactly what ``predict`` would say about that prefix. While it runs, forward
hooks replace the output of every recurrent module the inspector knows (``nn.LSTM``, ``nn.GRU``,
``nn.RNN``, the Elman layer, the equation GRU/LSTM, and layers a plugin describes through the
``workbench_inspectors`` hook) by the same computation written out gate by gate
(:func:`workbench.nn.lstm_equations`, :func:`workbench.nn.gru_equations`) with the trained weights.
That is where states and gates are recorded and where interventions act; training never sees it
and keeps the fused kernels. Layers of other kinds run untouched: their internals are "not
available" but the prediction per prefix still is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from workbench.errors import WorkbenchError
from workbench.interventions import Intervention

# re-exported: the parsers were this module's before the app needed them without torch
from workbench.interventions import parse_gate as parse_gate
from workbench.interventions import parse_intervention as parse_intervention
from workbench.interventions import parse_unit as parse_unit
from workbench.nn import ElmanLayer, EquationGRU, EquationLSTM, RecurrentStack, gru_equations, lstm_equations

#: Longest input stepped through: each prefix is a forward pass, so the cost grows with its square.
MAX_TOKENS = 200
#: The gates each built-in cell has, the names interventions use.
CELL_GATES = {"lstm": ("input", "forget", "output"), "gru": ("update", "reset"), "rnn": (), "elman": ()}
#: Internal states recorded per step besides the hidden state (the cell candidate and cell state for LSTMs).
CELL_STATES = {"lstm": ("candidate", "cell"), "gru": ("candidate",), "rnn": (), "elman": ()}


# -- interventions (their specs live in workbench.interventions, which the app imports without torch) --


# -- the recurrent layers of a model -----------------------------------------------------------
@dataclass
class TracedLayer:
    """One direction of one recurrent layer the inspector steps through."""

    index: int  # 1-based, how interventions name it
    module: str  # the module's name in the model
    cell: str  # lstm, gru, rnn, elman, or a plugin's name
    layer: int  # the layer within a multi-layer module (0-based)
    backward: bool
    hidden_size: int
    gates: tuple[str, ...]
    states: tuple[str, ...]
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "module": self.module, "cell": self.cell,
                "direction": "backward" if self.backward else "forward", "causal": not self.backward,
                "hidden_size": self.hidden_size, "gates": list(self.gates), "states": list(self.states)}


@dataclass(frozen=True)
class _PluginStepper:
    """A layer type a plugin describes (hook ``workbench_inspectors``)."""

    name: str
    step: Callable[..., tuple[Tensor, Any, dict[str, Tensor]]]
    gates: tuple[str, ...]
    states: tuple[str, ...]


def plugin_steppers(registry: Any) -> dict[type, _PluginStepper]:
    """The layer classes plugins offer a step function for (hook ``workbench_inspectors``), imported now."""
    from workbench.api import resolve_callable

    found: dict[type, _PluginStepper] = {}
    for spec in getattr(registry, "inspectors", {}).values():
        try:
            layer_class = resolve_callable(spec.layer, "layer")
            step = resolve_callable(spec.step, "step")
        except Exception as exc:  # noqa: BLE001 - a broken plugin costs its own layers' internals only
            raise WorkbenchError(f"inspector {spec.name!r} cannot be imported: {type(exc).__name__}: {exc}") from None
        if not isinstance(layer_class, type):
            raise WorkbenchError(f"inspector {spec.name!r}: layer must name a class, not {spec.layer!r}")
        found[layer_class] = _PluginStepper(spec.name, step, tuple(spec.gates), tuple(spec.states))
    return found


def _kind_of(module: nn.Module, steppers: dict[type, _PluginStepper]) -> str | None:
    for layer_class, stepper in steppers.items():
        if isinstance(module, layer_class):
            return stepper.name
    if isinstance(module, nn.LSTM) and not module.proj_size:
        return "lstm"
    if isinstance(module, nn.GRU):
        return "gru"
    if isinstance(module, nn.RNN):
        return "rnn"
    if isinstance(module, EquationLSTM):
        return "lstm"
    if isinstance(module, EquationGRU):
        return "gru"
    if isinstance(module, ElmanLayer):
        return "elman"
    return None


def find_layers(model: nn.Module, steppers: dict[type, _PluginStepper],
                exclude: Sequence[str] = ()) -> list[TracedLayer]:
    """Every recurrent layer direction in ``model`` the inspector can step, in reading order."""
    stack_place: dict[str, tuple[int, bool]] = {}
    for stack_name, stack in model.named_modules():
        if isinstance(stack, RecurrentStack):
            for layer_index, directions in enumerate(stack):
                assert isinstance(directions, nn.ModuleList)  # RecurrentStack: layers of directions
                for direction_index, direction in enumerate(directions):
                    for sub_name, _ in direction.named_modules():
                        full = ".".join(p for p in (stack_name, str(layer_index), str(direction_index), sub_name) if p)
                        stack_place[full] = (layer_index, direction_index == 1)
    layers: list[TracedLayer] = []
    for name, module in model.named_modules():
        kind = _kind_of(module, steppers)
        if kind is None or excluded(name, exclude):
            continue
        stepper = next((s for c, s in steppers.items() if isinstance(module, c)), None)
        gates = stepper.gates if stepper else CELL_GATES[kind]
        states = stepper.states if stepper else CELL_STATES[kind]
        hidden = int(getattr(module, "hidden_size", 0))
        if name in stack_place:
            stack_layer, backward = stack_place[name]
            layers.append(TracedLayer(0, name, kind, 0, backward, hidden, gates, states, _label(stack_layer, backward)))
            continue
        count = int(getattr(module, "num_layers", 1)) if stepper is None else 1
        both = bool(getattr(module, "bidirectional", False)) and stepper is None
        for sub in range(count):
            for backward in ((False, True) if both else (False,)):
                layers.append(TracedLayer(0, name, kind, sub, backward, hidden, gates, states, _label(sub, backward)))
    # one-layer modules in a list (a translation encoder's) would all be "layer 1": name their modules then
    named = len({x.module.split('.')[0] for x in layers}) > 1 or len({(x.label, x.module) for x in layers}) > len(
        {x.label for x in layers})
    for index, layer in enumerate(layers, start=1):
        layer.index = index
        layer.label = f"{layer.module + ': ' if named else ''}{layer.cell.upper()} {layer.label}"
    return layers


def excluded(name: str, exclude: Sequence[str]) -> bool:
    """Whether module ``name`` is one of ``exclude`` or inside one of them."""
    return any(name == part or name.startswith(part + ".") for part in exclude)


def _label(layer: int, backward: bool) -> str:
    return f"layer {layer + 1}" + (" backward" if backward else "")


# -- the equations, one direction at a time ----------------------------------------------------
@dataclass
class _Direction:
    """What one direction of one layer needs to run: the cell, its weights, and where its steps sit."""

    layer: TracedLayer
    cell: str
    weights: tuple[Tensor | None, ...]
    activation: Callable[[Tensor], Tensor] = torch.tanh
    stepper: _PluginStepper | None = None
    module: nn.Module | None = None


def _weights(module: nn.Module, layer: int, backward: bool) -> tuple[Tensor | None, ...]:
    suffix = f"_l{layer}" + ("_reverse" if backward else "")
    return tuple(getattr(module, f"{name}{suffix}", None) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


class _Run:
    """The state of one pass: interventions to apply and, when recording, where states go.

    ``stream``: the module is called again and again on what follows (generation feeds one token at
    a time with the carried state), so each module's calls continue its token count instead of
    starting at token 1; ``positions`` holds how many tokens each module has read."""

    def __init__(self, interventions: Sequence[Intervention], record: bool, stream: bool = False) -> None:
        self.interventions = list(interventions)
        self.record = record
        self.stream = stream
        #: where the current call's first token sits in the whole text (0-based)
        self.offset = 0
        #: module name -> tokens read so far (stream mode)
        self.positions: dict[str, int] = {}
        #: layer index -> state name -> [T, H] tensor (in text order)
        self.traces: dict[int, dict[str, Tensor]] = {}

    def force(self, layer: TracedLayer, position: int) -> dict[str, float]:
        return {i.gate: i.value for i in self.interventions if i.kind == "gate" and i.gate
                and (i.layer is None or i.layer == layer.index) and self._reached(layer, i, position)}

    def clamps(self, layer: TracedLayer, position: int) -> list[tuple[int, float]]:
        return [(-1 if i.unit is None else i.unit, i.value) for i in self.interventions
                if i.kind == "unit" and i.layer == layer.index and self._reached(layer, i, position)]

    @staticmethod
    def _reached(layer: TracedLayer, intervention: Intervention, position: int) -> bool:
        """Forwards: tokens ``step`` and later; backwards (read from the end): ``step`` and earlier."""
        return position <= intervention.step - 1 if layer.backward else position >= intervention.step - 1


def _run_direction(direction: _Direction, x: Tensor, h: Tensor | None, c: Tensor | None,
                   run: _Run) -> tuple[Tensor, Tensor, Tensor | None]:
    """``x`` [T, D] in reading order -> (outputs [T, H], last h, last c); records states in text order."""
    layer, length = direction.layer, x.size(0)
    w_ih, w_hh, b_ih, b_hh = direction.weights if direction.stepper is None else (None,) * 4
    projected = F.linear(x, w_ih, b_ih) if w_ih is not None else x
    carry: Any = None
    outputs: list[Tensor] = []
    steps: list[dict[str, Tensor]] = []
    for t in range(length):
        position = run.offset + (length - 1 - t if layer.backward else t)
        force = run.force(layer, position)
        if direction.stepper is not None:
            new_h, carry, internals = direction.stepper.step(direction.module, x[t : t + 1], h, carry, force)
            named = {**internals, "hidden": new_h}
        elif direction.cell == "lstm":
            assert w_hh is not None
            zeros = projected.new_zeros(1, w_hh.size(1))
            named = lstm_equations(projected[t : t + 1], zeros if h is None else h, zeros if c is None else c,
                                   w_hh, b_hh, force)
            c = named["cell"]
        elif direction.cell == "gru":
            assert w_hh is not None
            named = gru_equations(projected[t : t + 1], projected.new_zeros(1, w_hh.size(1)) if h is None else h,
                                  w_hh, b_hh, force)
        else:
            assert w_hh is not None
            previous = projected.new_zeros(1, w_hh.size(1)) if h is None else h
            named = {"hidden": direction.activation(projected[t : t + 1] + F.linear(previous, w_hh, b_hh))}
        h = named["hidden"]
        for unit, value in run.clamps(layer, position):
            if unit < h.size(-1):
                h = h.clone()
                if unit < 0:  # every unit
                    h[...] = value
                else:
                    h[..., unit] = value
        named["hidden"] = h
        outputs.append(h[0])
        steps.append(named)
    if run.record and steps:
        order = list(reversed(steps)) if layer.backward else steps
        traced = {name: torch.stack([s[name][0] for s in order]).detach() for name in order[0]}
        earlier = run.traces.get(layer.index) if run.stream else None
        run.traces[layer.index] = {name: torch.cat([earlier[name], value]) for name, value in traced.items()} \
            if earlier else traced
    return torch.stack(outputs), h if h is not None else x.new_zeros(1, 0), c


def _directions_for(module: nn.Module, layers: list[TracedLayer],
                    steppers: dict[type, _PluginStepper]) -> list[_Direction]:
    result = []
    for layer in layers:
        stepper = next((s for c, s in steppers.items() if isinstance(module, c)), None)
        if stepper is not None:
            result.append(_Direction(layer, layer.cell, (), stepper=stepper, module=module))
        elif isinstance(module, ElmanLayer):
            weight = module.i2h.weight
            result.append(_Direction(layer, "elman", (weight[:, : module.input_size], weight[:, module.input_size :],
                                                      module.i2h.bias, None), activation=module.act))
        else:
            act = torch.relu if getattr(module, "nonlinearity", "tanh") == "relu" else torch.tanh
            # a backward direction of a RecurrentStack is its own one-way module, with plain weight names
            reverse = layer.backward and bool(getattr(module, "bidirectional", False))
            result.append(_Direction(layer, layer.cell, _weights(module, layer.layer, reverse), activation=act))
    return result


def _run_module(module: nn.Module, directions: list[_Direction], x: Tensor, initial: Any,
                run: _Run) -> tuple[Tensor, Any]:
    """A whole (multi-layer, maybe bidirectional) module on ``x`` [T, D] -> (outputs [T, H*dirs], final state)."""
    by_layer: dict[int, list[_Direction]] = {}
    for direction in directions:
        by_layer.setdefault(direction.layer.layer, []).append(direction)
    finals_h, finals_c = [], []
    layer_input = x
    for index in sorted(by_layer):
        parts = []
        for slot, direction in enumerate(by_layer[index]):
            h0, c0 = _initial(initial, index * len(by_layer[index]) + slot)
            reading = layer_input.flip(0) if direction.layer.backward and len(by_layer[index]) > 1 else layer_input
            out, h, c = _run_direction(direction, reading, h0, c0, run)
            parts.append(out.flip(0) if direction.layer.backward and len(by_layer[index]) > 1 else out)
            finals_h.append(h[0])
            finals_c.append(c[0] if c is not None else h[0])
        layer_input = torch.cat(parts, dim=-1)
    hidden = torch.stack(finals_h).unsqueeze(1)
    final = (hidden, torch.stack(finals_c).unsqueeze(1)) if directions[0].cell == "lstm" else hidden
    return layer_input, final


def _initial(initial: Any, index: int) -> tuple[Tensor | None, Tensor | None]:
    """The starting (h, c) of layer-direction ``index`` from a module's state argument ([L*D, 1, H])."""
    if initial is None:
        return None, None
    if isinstance(initial, tuple):
        return initial[0][index], initial[1][index]
    return initial[index], None


# -- hooks -------------------------------------------------------------------------------------
class Tracer:
    """Forward hooks that run each traced module through its equations during one pass."""

    def __init__(self, model: nn.Module, layers: list[TracedLayer], steppers: dict[type, _PluginStepper]) -> None:
        self.model = model
        self.layers = layers
        self.steppers = steppers
        modules = dict(model.named_modules())
        self.plan: dict[str, tuple[nn.Module, list[_Direction]]] = {}
        for layer in layers:
            module = modules[layer.module]
            held = self.plan.setdefault(layer.module, (module, []))[1]
            held.extend(_directions_for(module, [layer], steppers))
        self.run = _Run((), record=False)
        self.owner = threading.get_ident()

    @contextmanager
    def active(self, interventions: Sequence[Intervention] = (), record: bool = False,
               stream: bool = False) -> Iterator[_Run]:
        """Hooks on for the calling thread only: the app shares a loaded model between screens, and
        another thread's ``predict`` must not see this pass's interventions. ``stream``: successive
        calls continue one text (generation) instead of each starting at its first token."""
        self.run = _Run(interventions, record, stream)
        self.owner = threading.get_ident()
        handles = [module.register_forward_hook(self._hook(name, directions), with_kwargs=True)
                   for name, (module, directions) in self.plan.items()]
        try:
            yield self.run
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, name: str, directions: list[_Direction]) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
            if threading.get_ident() != self.owner:
                return None
            x = args[0] if args else kwargs.get("input", kwargs.get("x"))
            packed = isinstance(x, PackedSequence)
            data = x.data if isinstance(x, PackedSequence) else x
            if not isinstance(data, Tensor) or data.dim() != (2 if packed else 3) or (not packed and data.size(0) != 1):
                return None  # not one sequence of the text (a batch of words' characters): leave it alone
            first = getattr(module, "batch_first", True)
            sequence = data if packed else (data[0] if first else data[:, 0])
            initial = _state_argument(module, args, kwargs)
            run = self.run
            run.offset = run.positions.get(name, 0) if run.stream else 0
            outputs, final = _run_module(module, directions, sequence, initial, run)
            run.positions[name] = run.offset + sequence.size(0)
            return _like(output, outputs, final, x, first)
        return hook


def _state_argument(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The initial state a module was called with (nn.RNN family, EquationGRU/LSTM), else None."""
    if not isinstance(module, (nn.RNNBase, EquationLSTM)) and type(module).forward is not EquationGRU.forward:
        return None
    state = args[1] if len(args) > 1 else kwargs.get("hx", kwargs.get("state"))
    return state if isinstance(state, (Tensor, tuple)) else None


def _like(original: Any, outputs: Tensor, final: Any, x: Any, batch_first: bool) -> Any:
    """``outputs`` [T, H] shaped as the module's own output (tensor, tuple, packed)."""
    if isinstance(x, PackedSequence):
        shaped: Any = PackedSequence(outputs, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
    else:
        shaped = outputs.unsqueeze(0) if batch_first else outputs.unsqueeze(1)
    if isinstance(original, tuple):
        return (shaped, final)
    return shaped


# -- reading the input, per task kind ----------------------------------------------------------
class Reader:
    """How one task kind turns the text into tokens and a prefix of them into a prediction."""

    #: Modules the inspector does not step, with what they contain (a tagger's per-word character encoder).
    exclude: tuple[str, ...] = ()
    #: Whether :meth:`objective` exists (saliency needs a differentiable score).
    differentiable = True

    def __init__(self, task: Any, model: nn.Module, device: torch.device, top_k: int) -> None:
        self.task, self.model, self.device, self.top_k = task, model, device, top_k
        self.tokens: list[str] = []
        self.unknown: list[str] = []

    def forward(self, count: int) -> Tensor:
        """The model's output (logits) for the first ``count`` tokens."""
        raise NotImplementedError

    def summarise(self, output: Tensor, count: int) -> dict[str, Any]:
        """The prediction in words (JSON-able)."""
        raise NotImplementedError

    def objective(self, output: Tensor) -> Tensor:
        """The log-probability of the model's own top answer (what saliency explains)."""
        raise NotImplementedError

    def _top(self, logits: Tensor, names: Sequence[str], key: str) -> list[dict[str, Any]]:
        probs = torch.softmax(logits.detach().float(), dim=-1).cpu()
        values, indices = probs.topk(max(1, min(self.top_k, probs.numel())))
        return [{key: names[int(i)], "probability": round(float(p), 6)} for p, i in zip(values, indices, strict=True)]


class ClassificationReader(Reader):
    def __init__(self, task: Any, model: nn.Module, device: torch.device, top_k: int, text: str) -> None:
        super().__init__(task, model, device, top_k)
        self.tokens = task.tokens(text)
        self.unknown = sorted(set(task.vocab.unknown(self.tokens)))
        self.ids = task.vocab.encode(self.tokens)

    def forward(self, count: int) -> Tensor:
        if hasattr(self.model, "last_attention"):
            self.model.last_attention = None  # type: ignore[assignment]
        tokens = torch.tensor([self.ids[:count]], dtype=torch.long, device=self.device)
        return self.model(tokens=tokens, lengths=torch.tensor([count]))[0]  # type: ignore[no-any-return]

    def summarise(self, output: Tensor, count: int) -> dict[str, Any]:
        top = self._top(output, self.task.classes, "label")
        result: dict[str, Any] = {"label": top[0]["label"], "top": top}
        weights = getattr(self.model, "last_attention", None)
        if weights is not None:
            result["attention"] = [round(float(w), 6) for w in weights[0, :count].float().cpu()]
        return result

    def objective(self, output: Tensor) -> Tensor:
        return torch.log_softmax(output.float(), dim=-1).max()


class LanguageModelReader(Reader):
    def __init__(self, task: Any, model: nn.Module, device: torch.device, top_k: int, text: str) -> None:
        super().__init__(task, model, device, top_k)
        self.ids = list(task.encode_prime(text))  # an unseen character is an error, as in predict
        self.tokens = list(text)

    def forward(self, count: int) -> Tensor:
        tokens = torch.tensor([self.ids[:count]], dtype=torch.long, device=self.device)
        last = self.model(tokens=tokens, lengths=torch.tensor([count]))[0, -1].float()
        banned = torch.zeros_like(last, dtype=torch.bool)
        banned[self.task.banned] = True
        return last.masked_fill(banned, float("-inf"))

    def summarise(self, output: Tensor, count: int) -> dict[str, Any]:
        top = self._top(output, self.task.vocab.itos, "char")
        return {"next": top}

    def objective(self, output: Tensor) -> Tensor:
        return torch.log_softmax(output, dim=-1).max()


class TaggingReader(Reader):
    exclude = ("chars",)

    def __init__(self, task: Any, model: nn.Module, device: torch.device, top_k: int, text: str) -> None:
        from workbench.tasks.tagging import split_words

        super().__init__(task, model, device, top_k)
        self.tokens = split_words(text)
        if not self.tokens:
            raise WorkbenchError(f"nothing to tag: {text!r} has no words")
        self.ids, self.chars = task.encode_words(self.tokens)
        self.unknown = [w for w, i in zip(self.tokens, self.ids, strict=True) if i == task.words.unk_index]

    def forward(self, count: int) -> Tensor:
        batch = self.task.make_batch([(self.ids[:count], self.chars[:count], [0] * count)]).to(self.device)
        return self.model(**batch.inputs)[0]  # type: ignore[no-any-return]

    def summarise(self, output: Tensor, count: int) -> dict[str, Any]:
        tags = [self.task.tags[int(i)] for i in output.argmax(dim=-1)]
        return {"tags": tags, "top": self._top(output[-1], self.task.tags, "tag")}

    def objective(self, output: Tensor) -> Tensor:
        return torch.log_softmax(output[-1].float(), dim=-1).max()


class TranslationReader(Reader):
    """Each prefix of the source translated greedily; the encoder is what steps per source token.
    The decoder steps per output word, once, for the whole source (:func:`_decoder_steps`); saliency
    is per output word (:func:`translation_saliency`), beam search itself not being differentiable."""

    differentiable = False

    def __init__(self, task: Any, model: nn.Module, device: torch.device, top_k: int, text: str) -> None:
        super().__init__(task, model, device, top_k)
        self.tokens = task.tokens(text)
        self.unknown = sorted(set(task.source.unknown(self.tokens)))
        self.ids = task.source.encode(self.tokens)
        self.exclude = tuple(name for name, _ in model.named_children() if name != "encoder")
        self.best: dict[str, Any] = {}

    def forward(self, count: int) -> Tensor:
        self.best = self.task.beam_search(self.model, self.ids[:count], self.device, width=1)[0]
        return torch.zeros(0)

    def summarise(self, output: Tensor, count: int) -> dict[str, Any]:
        words = self.task.detokenize(self.best["ids"])
        result: dict[str, Any] = {"translation": " ".join(words)}
        if self.best.get("attention") is not None:
            result["alignment"] = {"source": self.tokens[:count] + ["<eos>"],
                                   "target": words + ["<eos>"] if len(self.best["attention"]) > len(words) else words,
                                   "weights": [[round(float(w), 4) for w in row] for row in self.best["attention"]]}
        return result


_READERS: dict[str, type[Reader]] = {"classification": ClassificationReader, "language_model": LanguageModelReader,
                                     "tagging": TaggingReader, "seq2seq": TranslationReader}


def make_reader(task: Any, model: nn.Module, device: torch.device, top_k: int, text: str) -> Reader:
    if not text.strip():
        raise WorkbenchError("nothing to inspect: the input is empty (give a name, a word or a sentence)")
    reader_class = _READERS.get(task.kind)
    if reader_class is None:
        raise WorkbenchError(f"inspect does not know how to read a {task.kind} model's input")
    reader = reader_class(task, model, device, top_k, text)  # type: ignore[call-arg]
    if not reader.tokens:
        raise WorkbenchError(f"nothing to inspect: {text!r} has no tokens after normalisation")
    if len(reader.tokens) > MAX_TOKENS:
        raise WorkbenchError(f"the input has {len(reader.tokens)} tokens; inspect steps through at most {MAX_TOKENS} "
                             "(each step is a forward pass): give a shorter text")
    return reader


# -- the whole inspection ----------------------------------------------------------------------
@dataclass
class Inspection:
    """Everything :func:`inspect_text` found; ``to_dict`` is ``workbench inspect --json``."""

    checkpoint: str
    arch: str
    task: str
    text: str
    tokens: list[str]
    unknown: list[str]
    layers: list[TracedLayer]
    steps: list[dict[str, Any]]
    interventions: list[Intervention] = field(default_factory=list)
    saliency: list[float] | None = None
    notes: list[str] = field(default_factory=list)
    continuation: dict[str, str] | None = None
    #: translation: the decoder per output word of the whole source's greedy translation
    decoder: dict[str, Any] | None = None

    @property
    def internals(self) -> bool:
        return bool(self.layers)

    def saliency_shares(self) -> list[float] | None:
        """Each token's share of the total |gradient x input| (they sum to 1)."""
        if self.saliency is None:
            return None
        total = sum(abs(s) for s in self.saliency) or 1.0
        return [abs(s) / total for s in self.saliency]

    def to_dict(self) -> dict[str, Any]:
        shares = self.saliency_shares()
        return {
            "checkpoint": self.checkpoint, "arch": self.arch, "task": self.task, "input": self.text,
            "tokens": self.tokens, "unknown_tokens": self.unknown,
            "internals": self.internals,
            "layers": [layer.to_dict() for layer in self.layers],
            "interventions": [i.to_dict() for i in self.interventions],
            "steps": self.steps,
            "saliency": None if self.saliency is None else [
                {"token": t, "score": round(s, 6), "share": round(p, 6)}
                for t, s, p in zip(self.tokens, self.saliency, shares or [], strict=True)],
            "continuation": self.continuation,
            "decoder": self.decoder,
            "notes": self.notes,
        }


def inspect_checkpoint(path: Path, text: str, *, top_k: int = 3, interventions: Sequence[Intervention] = (),
                       allow_unknown: bool = False, generate: int = 0, registry: Any = None) -> Inspection:
    """Load ``path`` (as ``predict`` does) and step through ``text``."""
    from workbench.engine import load_trained
    from workbench.registry import get_registry

    registry = registry or get_registry()
    loaded = load_trained(path, registry, device="cpu")
    return inspect_model(loaded.model, loaded.task, text, arch=loaded.config.arch, checkpoint=str(path),
                         top_k=top_k, interventions=interventions, allow_unknown=allow_unknown, generate=generate,
                         steppers=plugin_steppers(registry))


def inspect_model(model: nn.Module, task: Any, text: str, *, arch: str = "", checkpoint: str = "", top_k: int = 3,
                  interventions: Sequence[Intervention] = (), allow_unknown: bool = False, generate: int = 0,
                  steppers: dict[type, _PluginStepper] | None = None,
                  device: torch.device | None = None) -> Inspection:
    """Step ``model`` through ``text`` one token at a time (see the module docstring)."""
    device = device or next(model.parameters()).device
    model.eval()
    reader = make_reader(task, model, device, top_k, text)
    if reader.unknown and not allow_unknown:
        shown = " ".join(repr(t) for t in reader.unknown[:10])
        raise WorkbenchError(f"{shown} never occurred in this model's training data, so it would read "
                             f"{'them' if len(reader.unknown) > 1 else 'it'} as <unk>; change the text or "
                             "pass --allow-unknown to inspect it anyway")
    steppers = steppers or {}
    layers = find_layers(model, steppers, reader.exclude)
    check_interventions(interventions, layers, len(reader.tokens) + max(0, generate), arch)
    tracer = Tracer(model, layers, steppers)
    result = Inspection(checkpoint, arch, task.kind, text, reader.tokens, reader.unknown, layers, [],
                        list(interventions))
    if not layers:
        result.notes.append(f"internals are not available for architecture {arch or type(model).__name__!r}: it has "
                            "no LSTM, GRU or Elman layer and no plugin offers a step function for its layers "
                            "(hook workbench_inspectors); the prediction after each token is still shown")
    if any(layer.backward for layer in layers):
        result.notes.append("a backward direction reads the input from its end, so it cannot be stepped causally: "
                            "its state at token t is shown as it is after reading the whole input back to t")
    with torch.enable_grad(), tracer.active(interventions, record=True) as run:
        result.saliency = _saliency(reader, model, result.notes)
    result.steps = _steps(reader, tracer, interventions, run.traces, layers)
    if isinstance(reader, TranslationReader):
        result.decoder = _decoder_steps(reader, steppers, interventions)
        result.saliency = _summed_saliency(result.decoder)
    if generate > 0 and isinstance(reader, LanguageModelReader):
        result.continuation = _continue(reader, tracer, interventions, generate)
    return result


def check_interventions(interventions: Sequence[Intervention], layers: list[TracedLayer], tokens: int,
                        arch: str, too_far: str = "the input has only {tokens} tokens", token: str = "token") -> None:
    """One clear error for an intervention the model cannot take (layer, unit, gate, or a step past
    ``tokens``; ``too_far`` says what the tokens are)."""
    if interventions and not layers:
        raise WorkbenchError(f"interventions need a recurrent layer the inspector can step; architecture {arch!r} "
                             "has none")
    for item in interventions:
        if item.step > tokens:
            raise WorkbenchError(f"{item.describe(token)}: {too_far.format(tokens=tokens)}")
        if item.layer is not None and item.layer > len(layers):
            listing = "; ".join(f"{layer.index} = {layer.label}" for layer in layers)
            raise WorkbenchError(f"there is no layer {item.layer}; the layers are {listing}")
        if item.kind == "unit":
            size = layers[int(item.layer or 1) - 1].hidden_size
            if item.unit is not None and item.unit >= size:
                raise WorkbenchError(f"layer {item.layer} has units 0 to {size - 1}, not {item.unit}")
        else:
            chosen = [layers[item.layer - 1]] if item.layer else layers
            if not any(item.gate in layer.gates for layer in chosen):
                have = sorted({g for layer in chosen for g in layer.gates})
                raise WorkbenchError(f"no {item.gate!r} gate in {'that layer' if item.layer else 'this model'}; "
                                     f"gates there: {', '.join(have) or 'none (not an LSTM or GRU)'}")


def _saliency(reader: Reader, model: nn.Module, notes: list[str]) -> list[float] | None:
    """Gradient x input on the input vectors (the embedding outputs), for the full text's top answer."""
    count = len(reader.tokens)
    if not reader.differentiable:
        reader.forward(count)
        return None
    leaves: list[Tensor] = []

    owner = threading.get_ident()

    def capture(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if threading.get_ident() == owner and isinstance(output, Tensor) and output.dim() == 3 and output.shape[:2] == (1, count):
            leaf = output.detach().float().requires_grad_()
            leaves.append(leaf)
            return leaf.to(output.dtype)
        return None

    handles = [m.register_forward_hook(capture) for name, m in model.named_modules()
               if isinstance(m, nn.Embedding) or type(m).__name__ == "TokenInput"
               if not excluded(name, reader.exclude)]
    try:
        score = reader.objective(reader.forward(count))
    finally:
        for handle in handles:
            handle.remove()
    used = [leaf for leaf in leaves if leaf.requires_grad]
    if not used or not score.requires_grad:
        notes.append("saliency is not available: no input vectors (embedding) were found in this model")
        return None
    grads = torch.autograd.grad(score, used, allow_unused=True)
    total = torch.zeros(count)
    for leaf, grad in zip(used, grads, strict=True):
        if grad is not None:
            total += (grad * leaf.detach())[0].sum(dim=-1).cpu()
    return [float(v) for v in total]


def _steps(reader: Reader, tracer: Tracer, interventions: Sequence[Intervention], traces: dict[int, dict[str, Tensor]],
           layers: list[TracedLayer]) -> list[dict[str, Any]]:
    steps = []
    for count in range(1, len(reader.tokens) + 1):
        step: dict[str, Any] = {"step": count, "token": reader.tokens[count - 1],
                                "prediction": _predict(reader, tracer, interventions, count)}
        if interventions:
            step["baseline"] = _predict(reader, tracer, (), count)
        step["layers"] = [_layer_step(layer, traces.get(layer.index, {}), count - 1) for layer in layers]
        steps.append(step)
    return steps


def _predict(reader: Reader, tracer: Tracer, interventions: Sequence[Intervention], count: int) -> dict[str, Any]:
    # gradients on: a language model's one-token fast path skips its recurrent module (and the hooks) without
    with torch.enable_grad(), tracer.active(interventions):
        output = reader.forward(count)
        return reader.summarise(output, count)


def _layer_step(layer: TracedLayer, trace: dict[str, Tensor], index: int) -> dict[str, Any]:
    def values(name: str) -> list[float]:
        return [round(float(v), 5) for v in trace[name][index]]

    entry: dict[str, Any] = {"index": layer.index, "hidden": values("hidden") if "hidden" in trace else []}
    entry["gates"] = {g: values(g) for g in layer.gates if g in trace}
    entry["states"] = {s: values(s) for s in layer.states if s in trace}
    return entry


def _continue(reader: LanguageModelReader, tracer: Tracer, interventions: Sequence[Intervention],
              length: int) -> dict[str, str]:
    """Greedy continuation of the text, with the interventions and (when there are any) without."""
    def generate(chosen: Sequence[Intervention]) -> str:
        ids = list(reader.ids)
        saved = reader.ids
        try:
            for _ in range(length):
                reader.ids = ids
                with torch.enable_grad(), tracer.active(chosen):
                    ids.append(int(reader.forward(len(ids)).argmax()))
        finally:
            reader.ids = saved
        return "".join(reader.task.vocab.itos[i] for i in ids[len(saved):])

    result = {"text": generate(interventions)}
    if interventions:
        result["baseline"] = generate(())
    return result


# -- translation: the decoder per output word, and saliency per output word --------------------
def _decoder_steps(reader: TranslationReader, steppers: dict[type, _PluginStepper],
                   interventions: Sequence[Intervention]) -> dict[str, Any]:
    """The whole source translated greedily once, with the decoder's recurrent layers (every one
    outside ``encoder``) run through the equations: their state and gates at each output word (the
    end marker included), and which source tokens moved each word (gradient x input). Encoder
    interventions act here too, so the decoder is seen as the intervened encoder leaves it."""
    model, task = reader.model, reader.task
    layers = find_layers(model, steppers, exclude=("encoder",))
    decoder = Tracer(model, layers, steppers)
    encoder = Tracer(model, find_layers(model, steppers, exclude=reader.exclude), steppers)
    with torch.no_grad(), _intervened(encoder, interventions), decoder.active(record=True, stream=True) as run:
        best = task.beam_search(model, reader.ids, reader.device, width=1)[0]
    words = task.detokenize(best["ids"])
    calls = run.positions.get(layers[0].module, 0) if layers else len(best["ids"]) + 1
    finished = calls > len(best["ids"])
    outputs = [*best["ids"], task.eos] if finished else list(best["ids"])  # out of steps: no end marker read
    with torch.enable_grad(), _intervened(encoder, interventions):
        saliency = translation_saliency(model, task, reader.ids, outputs, reader.device)
    shown = [*words, "<eos>"][: len(outputs)]
    source = [*reader.tokens, "<eos>"]
    steps = []
    for index, word in enumerate(shown):
        scores = saliency[index] if saliency else None
        total = sum(abs(v) for v in scores or []) or 1.0
        steps.append({"step": index + 1, "token": word,
                      "layers": [_layer_step(layer, run.traces.get(layer.index, {}), index) for layer in layers
                                 if len(run.traces.get(layer.index, {}).get("hidden", ())) > index],
                      "saliency": None if scores is None else [
                          {"token": t, "score": round(v, 6), "share": round(abs(v) / total, 6)}
                          for t, v in zip(source, scores, strict=True)]})
    return {"translation": " ".join(words), "source": source, "layers": [layer.to_dict() for layer in layers],
            "steps": steps}


def _intervened(encoder: Tracer, interventions: Sequence[Intervention]) -> AbstractContextManager[Any]:
    """The encoder through the equations with the interventions (which name the encoder's layers and
    count source tokens), or untouched, the fused module, when there are none."""
    return encoder.active(interventions) if interventions else nullcontext()


def translation_saliency(model: nn.Module, task: Any, source: Sequence[int], outputs: Sequence[int],
                         device: torch.device) -> list[list[float]] | None:
    """Per output word, gradient x input on the source's input vectors (the encoder's embedding
    outputs, end marker included) for that word's log-probability, the decoder fed the words before
    it (the greedy translation's own computation). None if no source vectors were found."""
    from workbench.tasks.base import pad_sequences

    ids = [*source, task.src_eos]
    tokens, lengths = pad_sequences([ids], 0)
    leaves: list[Tensor] = []
    owner = threading.get_ident()

    def capture(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if threading.get_ident() == owner and isinstance(output, Tensor) and output.shape[:2] == (1, len(ids)):
            leaf = output.detach().float().requires_grad_()
            leaves.append(leaf)
            return leaf.to(output.dtype)
        return None

    handles = [m.register_forward_hook(capture) for m in model.modules() if isinstance(m, nn.Embedding)]
    try:
        state = model.encode(tokens.to(device), lengths)  # type: ignore[operator]
    finally:
        for handle in handles:
            handle.remove()
    if not leaves:
        return None
    previous = torch.full((1,), task.bos, dtype=torch.long, device=device)
    per_word: list[list[float]] = []
    for word in outputs:
        logits, state, _ = model.decode_step(previous, state)  # type: ignore[operator]
        objective = torch.log_softmax(logits.float(), dim=-1)[0, word]
        grads = torch.autograd.grad(objective, leaves, retain_graph=True, allow_unused=True)
        total = torch.zeros(len(ids))
        for leaf, grad in zip(leaves, grads, strict=True):
            if grad is not None:
                total += (grad * leaf.detach())[0].sum(dim=-1).cpu()
        per_word.append([float(v) for v in total])
        previous = torch.full((1,), word, dtype=torch.long, device=device)
    return per_word


def _summed_saliency(decoder: dict[str, Any]) -> list[float] | None:
    """The source tokens' saliency for the whole translation (the sum over its words, end marker
    excluded from the tokens): gradient x input of the translation's log-probability."""
    steps = decoder["steps"]
    if not steps or steps[0]["saliency"] is None:
        return None
    count = len(decoder["source"]) - 1
    return [sum(step["saliency"][i]["score"] for step in steps) for i in range(count)]


# -- text views (the CLI prints them; the app's screen reuses the pieces) -----------------------
SHADES = " ░▒▓█"


def shade_strip(values: Sequence[float], scale: float) -> str:
    """One character per value, darker for larger magnitude (readable without colour)."""
    scale = scale or 1.0
    top = len(SHADES) - 1
    return "".join(SHADES[min(top, round(abs(v) / scale * top))] for v in values)


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of ``fraction`` (0..1) of ``width`` cells, with eighth-cell precision."""
    eighths = max(0, min(width * 8, round(fraction * width * 8)))
    return "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]


def show_token(token: str) -> str:
    return {" ": "␣", "\n": "⏎", "\t": "⇥"}.get(token, token)


def prediction_summary(task: str, prediction: dict[str, Any], width: int = 60) -> str:
    """The prediction after one prefix, in one line of at most ``width`` characters."""
    if task == "language_model":
        text = "next: " + "  ".join(f"{show_token(e['char'])} {e['probability']:.0%}" for e in prediction["next"])
    elif task == "tagging":
        text = " ".join(prediction["tags"][-6:]) + f"   (last: {prediction['top'][0]['probability']:.0%})"
    elif task == "seq2seq":
        text = "-> " + prediction["translation"]
    else:
        text = "  ".join(f"{e['label']} {e['probability']:.0%}" for e in prediction["top"])
    return text if len(text) <= width else text[: width - 1] + "…"


def gate_summary(layer: TracedLayer, step: dict[str, Any]) -> str:
    """Each gate's mean over the layer's units (``f0.83``: the forget gate keeps 83% on average)."""
    parts = [f"{g[0]}{_mean(step['gates'][g]):.2f}" for g in layer.gates if g in step["gates"]]
    return " ".join(parts)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def render_text(result: Inspection, strip_units: int = 24) -> str:
    """``workbench inspect`` without ``--json``: per step the token, the prediction so far, and per
    layer a gate summary and a heat strip of the hidden state's first units."""
    lines = [f"{result.text}   ({result.task}, {result.arch or 'model'}; {len(result.tokens)} tokens)"]
    if result.layers:
        lines.append("layers: " + ", ".join(f"{x.index} = {x.label} ({x.hidden_size} units)" for x in result.layers))
    for item in result.interventions:
        lines.append(f"intervention: {item.describe()}")
    scales = {x.index: max((abs(v) for s in result.steps for e in s["layers"] if e["index"] == x.index
                            for v in e["hidden"]), default=1.0) for x in result.layers}
    lines.append("step token   prediction so far")
    for step in result.steps:
        lines.append(f"{step['step']:>4} {show_token(step['token'])[:7]:<7}  "
                     f"{prediction_summary(result.task, step['prediction'], 64)}")
        if "baseline" in step and step["baseline"] != step["prediction"]:
            lines.append(f"{'':13}without: {prediction_summary(result.task, step['baseline'], 56)}")
        for layer, entry in zip(result.layers, step["layers"], strict=True):
            strip = shade_strip(entry["hidden"][:strip_units], scales[layer.index])
            lines.append(f"{'':13}L{layer.index} |{strip}| {gate_summary(layer, entry)}")
    shares = result.saliency_shares()
    if shares is not None:
        lines.append("saliency (gradient x input, share of the total: which tokens moved the answer most):")
        ranked = sorted(range(len(shares)), key=lambda i: -shares[i])[:10]
        for i in ranked:
            lines.append(f"  {i + 1:>4} {show_token(result.tokens[i])[:12]:<12} {shares[i]:6.1%} {bar(shares[i], 30)}")
    if result.decoder:
        lines.extend(decoder_lines(result.decoder))
    if result.continuation:
        lines.append(f"continues (greedy): {result.continuation['text']!r}")
        if "baseline" in result.continuation:
            lines.append(f"without the intervention: {result.continuation['baseline']!r}")
    lines.extend(f"note: {note}" for note in result.notes)
    return "\n".join(lines)


def salient_sources(step: dict[str, Any], count: int = 3) -> str:
    """The source tokens that moved one output word most, with their shares (``d 42%  a 30%``)."""
    ranked = sorted(step["saliency"] or [], key=lambda entry: -entry["share"])[:count]
    return "  ".join(f"{show_token(e['token'])} {e['share']:.0%}" for e in ranked)


def decoder_lines(decoder: dict[str, Any]) -> list[str]:
    """A translation's decoder in text: per output word its gate means per layer and the source
    tokens that moved it most."""
    listing = ", ".join(f"{layer['index']} = {layer['label']}" for layer in decoder["layers"])
    lines = [f"decoder, per output word of the whole input's translation {decoder['translation']!r}:"]
    if listing:
        lines.append(f"  decoder layers: {listing}")
    for step in decoder["steps"]:
        gates = "  ".join(f"L{entry['index']} " + " ".join(f"{g[0]}{_mean(v):.2f}" for g, v in entry["gates"].items())
                          for entry in step["layers"])
        moved = f"   moved by: {salient_sources(step)}" if step["saliency"] else ""
        lines.append(f"{step['step']:>4} {show_token(step['token'])[:10]:<10} {gates}{moved}")
    return lines
