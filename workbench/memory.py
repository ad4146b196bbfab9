"""Memory across time: how much the loss still depends on the hidden state k steps before the end.

For a fixed probe batch (the longest examples of the validation split, so the same strings every
time), the training engine asks now and then for ``|| dL / dh_t ||`` at each lag ``k = length - 1 -
t`` back from each sequence's last step, averaged over the probe's examples. A vanilla RNN's
gradient shrinks geometrically with the lag (vanishing gradients: what happened long ago cannot be
learned from), an LSTM's or GRU's much less.

The fused ``nn.RNN``/``nn.LSTM``/``nn.GRU`` kernels do not expose the gradient with respect to their
per-step states (only the direct gradient of each output reaches the output tensor), so for the
probe the top layer's forward direction of a :class:`workbench.nn.SequenceEncoder` is unrolled from
its own weights, step by step with the same equations, and the gradient is taken with respect to
each step's state. Training itself keeps the fused kernels. A language model has no
``SequenceEncoder``: there the model's one recurrent module (a multi-layer ``nn.RNN``/``nn.LSTM``/
``nn.GRU`` or equation GRU/LSTM, one direction) is unrolled, every layer, and the top layer's states
are the ones measured; its probe batch is the first validation windows. A packed ``SequenceEncoder``
is run step by step over the padded batch (:func:`unrolled_packed`). Other models without a
``SequenceEncoder`` (custom plugins, translation) are not probed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.nn import ElmanLayer, EquationGRU, EquationLSTM, SequenceEncoder, lengths_mask, reverse_padded
from workbench.tasks.base import Batch, Task

#: Examples in the probe batch and the most lags reported.
PROBE_SIZE = 32
MAX_LAGS = 100


def recurrent_direction(model: nn.Module, task_kind: str = "") -> tuple[nn.Module, str] | None:
    """The top layer's forward direction of the model's outermost SequenceEncoder (a tagger's
    sentence encoder, not its per-word character encoder), and its cell; a packed encoder is
    returned whole (:func:`unrolled_packed` runs it); for a language model (``task_kind``) without
    one, its single recurrent stack (see :func:`language_model_stack`)."""
    encoders = [(name.count("."), index, module) for index, (name, module) in enumerate(model.named_modules())
                if isinstance(module, SequenceEncoder)]
    if not encoders:
        return language_model_stack(model) if task_kind == "language_model" else None
    encoder = min(encoders, key=lambda found: found[:2])[2]
    if encoder.mode == "packed":
        return encoder, encoder.cell
    layers = encoder.layers
    return layers[len(layers) - 1][0], encoder.cell  # type: ignore[index]


def language_model_stack(model: nn.Module) -> tuple[nn.Module, str] | None:
    """A language model's recurrence: its only recurrent module, if it is a one-directional,
    batch-first ``nn.RNN``/``nn.LSTM``/``nn.GRU`` (no projection) or an equation GRU/LSTM."""
    found = [module for module in model.modules() if isinstance(module, (nn.RNNBase, EquationGRU, EquationLSTM))]
    if len(found) != 1:
        return None
    module = found[0]
    if isinstance(module, nn.RNNBase):
        if module.bidirectional or not module.batch_first or module.proj_size > 0:
            return None
        cell = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}.get(type(module))
        return (module, cell) if cell else None
    return module, "lstm" if isinstance(module, EquationLSTM) else "gru"


def _step_function(direction: nn.Module, cell: str) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``step(x_t [B, D], h, c) -> (h', c')`` with the direction's own weights (c is unused but by the LSTM)."""
    if isinstance(direction, ElmanLayer):
        weight_x = direction.i2h.weight[:, : direction.input_size]
        weight_h = direction.i2h.weight[:, direction.input_size:]
        bias, act = direction.i2h.bias, direction.act
        return lambda x, h, c: (act(F.linear(x, weight_x, bias) + F.linear(h, weight_h)), c)
    rnn: Any = direction.rnn  # the _TorchLayer of workbench.nn: one nn.RNN/LSTM/GRU layer
    return _cell_step(cell, rnn, 0)


def _cell_step(cell: str, module: Any, layer: int,
               reverse: bool = False) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    """One step of layer ``layer`` (its backward direction with ``reverse``) of ``module``, weights
    named as in nn.RNN/LSTM/GRU."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih, w_hh = getattr(module, f"weight_ih{suffix}"), getattr(module, f"weight_hh{suffix}")
    b_ih, b_hh = getattr(module, f"bias_ih{suffix}", None), getattr(module, f"bias_hh{suffix}", None)
    if cell == "lstm":
        def lstm(x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
            i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        return lstm
    if cell == "gru":
        def gru(x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
            i_r, i_z, i_n = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)
            h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
            reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            return (1 - update) * torch.tanh(i_n + reset * h_n) + update * h, c
        return gru
    act = torch.tanh if getattr(module, "nonlinearity", "tanh") == "tanh" else torch.relu
    return lambda x, h, c: (act(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)), c)


@contextmanager
def unrolled(direction: nn.Module, cell: str, states: list[Tensor],
             seen_lengths: list[Tensor] | None = None) -> Iterator[None]:
    """While inside, ``direction`` runs step by step and appends each step's state [B, H] to ``states``
    (and the lengths it was given to ``seen_lengths``)."""
    step = _step_function(direction, cell)

    def forward(x: Tensor, lengths: Tensor) -> Tensor:
        if seen_lengths is not None:
            seen_lengths.append(lengths)
        batch, max_len, _ = x.shape
        mask = lengths_mask(lengths.to(x.device), max_len).unsqueeze(-1)
        layer: Any = direction if isinstance(direction, ElmanLayer) else direction.rnn
        hidden_size = int(layer.hidden_size)
        h = c = x.new_zeros(batch, hidden_size)
        for t in range(max_len):
            new_h, new_c = step(x[:, t], h, c)
            h, c = torch.where(mask[:, t], new_h, h), torch.where(mask[:, t], new_c, c)
            states.append(h)
        return torch.stack(states, dim=1)

    direction.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        del direction.forward


@contextmanager
def unrolled_stack(module: nn.Module, cell: str, states: list[Tensor]) -> Iterator[None]:
    """While inside, the multi-layer ``module`` (a language model's, :func:`language_model_stack`)
    runs step by step, every layer, and appends its top layer's state [B, H] at each step to
    ``states``; it takes and returns the state as the module does (dropout between layers is not
    applied: the probe runs in eval mode)."""
    layers = int(getattr(module, "num_layers", 1))
    steps = [_cell_step(cell, module, layer) for layer in range(layers)]
    hidden_size = int(getattr(module, "hidden_size", 0))

    def forward(x: Tensor, state: Any = None, *args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        if not isinstance(x, Tensor) or x.dim() != 3:
            raise TypeError(f"the memory probe unrolls padded batch-first input, not {type(x).__name__}")
        zeros = x.new_zeros(layers, x.size(0), hidden_size)
        h0, c0 = (state if isinstance(state, tuple) else (state, None)) if state is not None else (zeros, None)
        c0 = zeros if c0 is None else c0
        layer_input, finals_h, finals_c = x, [], []
        for index, step in enumerate(steps):
            h, c = h0[index], c0[index]
            outputs = []
            for t in range(x.size(1)):
                h, c = step(layer_input[:, t], h, c)
                outputs.append(h)
                if index == layers - 1:
                    states.append(h)
            layer_input = torch.stack(outputs, dim=1)
            finals_h.append(h)
            finals_c.append(c)
        final = torch.stack(finals_h)
        return layer_input, ((final, torch.stack(finals_c)) if cell == "lstm" else final)

    module.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        del module.forward


@contextmanager
def unrolled_packed(encoder: SequenceEncoder, states: list[Tensor], seen_lengths: list[Tensor]) -> Iterator[None]:
    """While inside, a packed SequenceEncoder runs its ``packed_rnn`` step by step over the padded
    batch instead (every layer and direction, padding masked as packing leaves it out), returning
    what the packed pass returns, and appends the top layer's forward state at each step to
    ``states`` (and the lengths to ``seen_lengths``). Eval mode: no dropout between layers."""
    rnn: Any = encoder.packed_rnn
    layers, directions = int(rnn.num_layers), encoder.directions

    def forward_packed(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        seen_lengths.append(lengths)
        mask = lengths_mask(lengths.to(x.device), x.size(1)).unsqueeze(-1)
        zeros = x.new_zeros(x.size(0), int(rnn.hidden_size))
        layer_input, finals = x, list[Tensor]()
        for layer in range(layers):
            parts, finals = [], []
            for backward in range(directions):
                step = _cell_step(encoder.cell, rnn, layer, reverse=bool(backward))
                sequence = reverse_padded(layer_input, lengths) if backward else layer_input
                h = c = zeros
                outputs = []
                for t in range(x.size(1)):
                    new_h, new_c = step(sequence[:, t], h, c)
                    h, c = torch.where(mask[:, t], new_h, h), torch.where(mask[:, t], new_c, c)
                    outputs.append(torch.where(mask[:, t], h, zeros))  # padding reads as zeros, as unpacked
                    if layer == layers - 1 and not backward:
                        states.append(h)
                out = torch.stack(outputs, dim=1)
                parts.append(reverse_padded(out, lengths) if backward else out)
                finals.append(h)
            layer_input = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        return layer_input, torch.cat(finals, dim=-1) if len(finals) > 1 else finals[0]

    encoder._forward_packed = forward_packed  # type: ignore[method-assign]
    try:
        yield
    finally:
        del encoder._forward_packed


class MemoryProbe:
    """A fixed probe batch and the measurement on it (see the module's docstring)."""

    def __init__(self, task: Task, examples: Sequence[Any], size: int = PROBE_SIZE, max_lags: int = MAX_LAGS) -> None:
        self.task = task
        self.max_lags = max_lags
        self.batch: Batch | None
        if task.kind == "language_model":  # windows of one length, cut by the task: the first ones
            self.batch = next(iter(task.batches(examples, size, False)), None)
            self.examples = self.batch.size if self.batch is not None else 0
            return
        known = getattr(examples, "lengths", None)  # a split in the token cache knows them without reading
        lengths = ([int(n) for n in known] if known is not None and len(known) == len(examples)
                   else [_length(example) for example in examples])
        longest = sorted(range(len(examples)), key=lambda i: (-lengths[i], i))[:size]
        chosen = [examples[i] for i in sorted(longest)]
        self.batch = next(iter(task.batches(chosen, len(chosen), False)), None) if chosen else None
        self.examples = len(chosen)

    def measure(self, model: nn.Module, device: torch.device) -> list[float] | None:
        """Mean ``|| dL/dh ||`` per example at lags 0, 1, ... (None when the model cannot be probed).
        Leaves no gradients, the training mode as it was and the random state untouched."""
        found = recurrent_direction(model, self.task.kind)
        if found is None or self.batch is None:
            return None
        direction, cell = found
        states: list[Tensor] = []
        lengths: list[Tensor] = []
        batch = self.batch.to(device)
        was_training = model.training
        model.eval()
        stack = isinstance(direction, (nn.RNNBase, EquationGRU, EquationLSTM))  # a language model's
        unroll = (unrolled_stack(direction, cell, states) if stack
                  else unrolled_packed(direction, states, lengths) if isinstance(direction, SequenceEncoder)
                  else unrolled(direction, cell, states, lengths))
        try:
            with torch.random.fork_rng(devices=[]), unroll:
                loss = _last_step_loss(model, batch) if stack else self.task.loss(model, batch)
                loss = loss[0] if isinstance(loss, tuple) else loss
                grads = torch.autograd.grad(loss * batch.size, states, allow_unused=True)
        finally:
            model.train(was_training)
        return _by_lag(grads, lengths[0] if len(lengths) == 1 else None, self.max_lags)


def _last_step_loss(model: nn.Module, batch: Batch) -> Tensor:
    """A language model's loss at each window's last position only: its training loss reads every
    position, so each lag would also carry that position's own loss; the last position's alone shows
    how far back one prediction still reaches (the windows of the probe are full, never padded)."""
    from workbench.tasks.language_model import IGNORE_INDEX

    logits = model(**batch.inputs)
    return F.cross_entropy(logits[:, -1].float(), batch.targets[:, -1], ignore_index=IGNORE_INDEX)


def _by_lag(grads: Sequence[Tensor | None], lengths: Tensor | None, max_lags: int) -> list[float]:
    """Per-step gradients [B, H] -> mean norm over the examples at each lag from their last step."""
    present = [g for g in grads if g is not None]
    if not present:
        return []
    zeros = torch.zeros(present[0].shape[0], device=present[0].device)
    norms = torch.stack([g.norm(dim=-1) if g is not None else zeros for g in grads], dim=1)  # [B, T]
    batch, steps = norms.shape
    ends = lengths.to(norms.device) if lengths is not None else torch.full((batch,), steps)
    lags = ends.unsqueeze(1) - 1 - torch.arange(steps, device=norms.device).unsqueeze(0)  # [B, T]
    result = []
    for lag in range(min(steps, max_lags)):
        at = lags == lag
        if not at.any():
            break
        result.append(float(norms[at].mean()))
    return result


def _length(example: Any) -> int:
    """The token count of an encoded example (a classification pair, a tagged sentence, ...)."""
    first = example[0] if isinstance(example, (tuple, list)) and example else example
    try:
        return len(first)
    except TypeError:
        return 0
