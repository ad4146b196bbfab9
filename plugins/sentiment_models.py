"""Model code for the sentiment architectures (imported only when one is built).

- :class:`AttentionClassifier`: an LSTM (or GRU) encoder whose final hidden state attends over all
  its outputs; the attention weights of the last forward pass are kept in ``last_attention``.
- :class:`GatedLSTMLayer` / :class:`GatedLSTMClassifier`: an LSTM whose input, forget and output
  gates can each be removed (a removed gate is fixed open, = 1), with optional peephole connections,
  for the gate ablation.

Attention convention (what :meth:`ClassificationTask.predict` reads): a classifier that attends sets
``self.last_attention`` to a detached ``[batch, time]`` tensor in every ``forward``; each row sums to
1 over the sequence's real tokens and is exactly 0 at padding.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.api import ModelContext
from workbench.nn import RecurrentStack, SequenceEncoder, TokenInput, lengths_mask


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dimension where ``mask`` is true; exactly 0 elsewhere."""
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights.masked_fill(~mask, 0.0)  # a row with no real token would be NaN; lengths are >= 1


class AttentionClassifier(nn.Module):
    """Encoder outputs ``o_t``, query ``q`` = the final hidden state (both directions when
    bidirectional). ``a = softmax_t(o_t . W q)`` over real tokens, context ``c = sum_t a_t o_t``,
    logits from ``tanh(W_c [c; q])`` (Luong's "general" attention)."""

    def __init__(self, context: ModelContext, params: dict[str, Any]) -> None:
        super().__init__()
        self.input = TokenInput(context.vocab_size, params["embedding_dim"], params["input"] == "onehot",
                                context.pad_index)
        self.encoder = SequenceEncoder(
            params["cell"], self.input.output_size, params["hidden_size"], params["num_layers"],
            params["bidirectional"], params["dropout"], params["sequence_mode"],
        )
        size = self.encoder.output_size
        self.score = nn.Linear(size, size, bias=False)
        self.combine = nn.Linear(2 * size, size)
        self.dropout = nn.Dropout(params["dropout"])
        self.output = nn.Linear(size, context.num_classes)
        self.last_attention: Tensor | None = None

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        outputs, query = self.encoder(self.input(tokens), lengths)
        outputs = outputs[:, : tokens.size(1)]
        scores = torch.bmm(outputs, self.score(query).unsqueeze(-1)).squeeze(-1) / math.sqrt(outputs.size(-1))
        weights = masked_softmax(scores, lengths_mask(lengths.to(tokens.device), tokens.size(1)))
        self.last_attention = weights.detach()
        context = torch.bmm(weights.unsqueeze(1), outputs).squeeze(1)
        hidden = torch.tanh(self.combine(self.dropout(torch.cat([context, query], dim=-1))))
        return self.output(self.dropout(hidden))


GATE_CHOICES = ("none", "i", "f", "o", "if", "io", "fo", "ifo")


class GatedLSTMLayer(nn.Module):
    """One direction of an LSTM with selectable gates, stepped in a Python loop.

    ``i = sigma(W_i x + U_i h + p_i * c_prev + b_i)``, ``f`` likewise, ``g = tanh(W_g x + U_g h + b_g)``,
    ``c = f * c_prev + i * g``, ``o = sigma(W_o x + U_o h + p_o * c + b_o)``, ``h = o * tanh(c)``.
    A gate not in ``gates`` is 1; peephole terms ``p`` exist only with ``peephole``. The weight
    blocks are stacked in nn.LSTM's order (i, f, g, o) leaving out missing gates, so with all three
    gates and no peepholes ``weight_ih``/``weight_hh`` have nn.LSTM's layout and ``bias`` is
    ``bias_ih + bias_hh``. Padding positions keep the previous state.
    """

    def __init__(self, input_size: int, hidden_size: int, gates: str = "ifo", peephole: bool = False) -> None:
        super().__init__()
        if gates not in GATE_CHOICES:
            raise ValueError(f"gates must be one of {GATE_CHOICES}")
        self.hidden_size = hidden_size
        self.gates = "" if gates == "none" else gates
        self.blocks = [b for b in "ifgo" if b == "g" or b in self.gates]
        rows = len(self.blocks) * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias = nn.Parameter(torch.empty(rows))
        self.peephole = nn.ParameterDict(
            {g: nn.Parameter(torch.empty(hidden_size)) for g in self.gates} if peephole else {}
        )
        bound = 1.0 / math.sqrt(hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        batch, max_len, _ = x.shape
        size = self.hidden_size
        projected = F.linear(x, self.weight_ih, self.bias)  # the input half for every step at once
        mask = lengths_mask(lengths.to(x.device), max_len).unsqueeze(-1)
        h = x.new_zeros(batch, size)
        c = x.new_zeros(batch, size)
        outputs = []
        for t in range(max_len):
            step = self.equations(projected[:, t], h, c)
            step_mask = mask[:, t]
            h = torch.where(step_mask, step["hidden"], h)
            c = torch.where(step_mask, step["cell"], c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)

    def equations(self, projected: Tensor, h: Tensor, c: Tensor,
                  force: dict[str, float] | None = None) -> dict[str, Tensor]:
        """One step from ``projected`` = ``W x + b`` [B, rows]: every present gate, the candidate,
        the cell and the hidden state, by name; ``force`` fixes present gates (the inspector's interventions)."""
        force = force or {}
        peep = self.peephole
        z = projected + F.linear(h, self.weight_hh)
        parts = dict(zip(self.blocks, z.split(self.hidden_size, dim=-1), strict=True))
        named: dict[str, Tensor] = {"candidate": torch.tanh(parts["g"])}

        def gate(key: str, name: str, cell: Tensor) -> Tensor:
            value = torch.sigmoid(parts[key] + peep[key] * cell if key in peep else parts[key])
            value = torch.full_like(value, force[name]) if name in force else value
            named[name] = value
            return value

        written = gate("i", "input", c) * named["candidate"] if "i" in parts else named["candidate"]
        new_c = gate("f", "forget", c) * c + written if "f" in parts else c + written
        new_h = torch.tanh(new_c)
        if "o" in parts:
            new_h = gate("o", "output", new_c) * new_h
        named.update(cell=new_c, hidden=new_h)
        return named


def inspect_step(layer: GatedLSTMLayer, x: Tensor, h: Tensor | None, carry: Any,
                 force: dict[str, float]) -> tuple[Tensor, Any, dict[str, Tensor]]:
    """``workbench inspect``'s step for :class:`GatedLSTMLayer` (hook ``workbench_inspectors``):
    the same equations as ``forward``, one token at a time; ``carry`` is the cell state."""
    zeros = x.new_zeros(x.size(0), layer.hidden_size)
    named = layer.equations(F.linear(x, layer.weight_ih, layer.bias), zeros if h is None else h,
                            zeros if carry is None else carry, force)
    hidden, cell = named.pop("hidden"), named["cell"]
    return hidden, cell, named


class GatedLSTMClassifier(nn.Module):
    """tokens -> embedding -> stacked (bi)directional :class:`GatedLSTMLayer` -> final state -> classes."""

    def __init__(self, context: ModelContext, params: dict[str, Any]) -> None:
        super().__init__()
        self.input = TokenInput(context.vocab_size, params["embedding_dim"], params["input"] == "onehot",
                                context.pad_index)
        hidden = params["hidden_size"]
        self.layers = RecurrentStack(
            lambda size_in: GatedLSTMLayer(size_in, hidden, params["gates"], params["peephole"]),
            self.input.output_size, hidden, params["num_layers"], params["bidirectional"], params["dropout"],
        )
        self.dropout = nn.Dropout(params["dropout"])
        self.output = nn.Linear(self.layers.output_size, context.num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        _, summary = self.layers(self.input(tokens), lengths)
        return self.output(self.dropout(summary))


def build_attention(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    return AttentionClassifier(context, params)


def build_gated_lstm(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    return GatedLSTMClassifier(context, params)
