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
each step's state. Training itself keeps the fused kernels. Models without a padded
``SequenceEncoder`` (custom plugins, ``sequence_mode=packed``) are not probed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.nn import ElmanLayer, SequenceEncoder, lengths_mask
from workbench.tasks.base import Batch, Task

#: Examples in the probe batch and the most lags reported.
PROBE_SIZE = 32
MAX_LAGS = 100


def recurrent_direction(model: nn.Module) -> tuple[nn.Module, str] | None:
    """The top layer's forward direction of the model's outermost padded SequenceEncoder (a tagger's
    sentence encoder, not its per-word character encoder), and its cell."""
    encoders = [(name.count("."), index, module) for index, (name, module) in enumerate(model.named_modules())
                if isinstance(module, SequenceEncoder) and module.mode == "padded"]
    if not encoders:
        return None
    encoder = min(encoders, key=lambda found: found[:2])[2]
    layers = encoder.layers
    return layers[len(layers) - 1][0], encoder.cell  # type: ignore[index]


def _step_function(direction: nn.Module, cell: str) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    """``step(x_t [B, D], h, c) -> (h', c')`` with the direction's own weights (c is unused but by the LSTM)."""
    if isinstance(direction, ElmanLayer):
        weight_x = direction.i2h.weight[:, : direction.input_size]
        weight_h = direction.i2h.weight[:, direction.input_size:]
        bias, act = direction.i2h.bias, direction.act
        return lambda x, h, c: (act(F.linear(x, weight_x, bias) + F.linear(h, weight_h)), c)
    rnn: Any = direction.rnn  # the _TorchLayer of workbench.nn: one nn.RNN/LSTM/GRU layer
    w_ih, w_hh, b_ih, b_hh = rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
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
    act = torch.tanh if rnn.nonlinearity == "tanh" else torch.relu
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


class MemoryProbe:
    """A fixed probe batch and the measurement on it (see the module's docstring)."""

    def __init__(self, task: Task, examples: Sequence[Any], size: int = PROBE_SIZE, max_lags: int = MAX_LAGS) -> None:
        known = getattr(examples, "lengths", None)  # a split in the token cache knows them without reading
        lengths = ([int(n) for n in known] if known is not None and len(known) == len(examples)
                   else [_length(example) for example in examples])
        longest = sorted(range(len(examples)), key=lambda i: (-lengths[i], i))[:size]
        chosen = [examples[i] for i in sorted(longest)]
        self.batch: Batch | None = next(iter(task.batches(chosen, len(chosen), False)), None) if chosen else None
        self.task = task
        self.max_lags = max_lags
        self.examples = len(chosen)

    def measure(self, model: nn.Module, device: torch.device) -> list[float] | None:
        """Mean ``|| dL/dh ||`` per example at lags 0, 1, ... (None when the model cannot be probed).
        Leaves no gradients, the training mode as it was and the random state untouched."""
        found = recurrent_direction(model)
        if found is None or self.batch is None:
            return None
        direction, cell = found
        states: list[Tensor] = []
        lengths: list[Tensor] = []
        batch = self.batch.to(device)
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[]), unrolled(direction, cell, states, lengths):
                output = self.task.loss(model, batch)
                loss = output[0] if isinstance(output, tuple) else output
                grads = torch.autograd.grad(loss * batch.size, states, allow_unused=True)
        finally:
            model.train(was_training)
        return _by_lag(grads, lengths[0] if len(lengths) == 1 else None, self.max_lags)


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
