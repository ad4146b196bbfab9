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
        peep = self.peephole
        outputs = []
        for t in range(max_len):
            z = projected[:, t] + F.linear(h, self.weight_hh)
            parts = dict(zip(self.blocks, z.split(size, dim=-1), strict=True))
            g = torch.tanh(parts["g"])
            if "i" in parts:
                i = torch.sigmoid(parts["i"] + peep["i"] * c if "i" in peep else parts["i"])
                g = i * g
            if "f" in parts:
                f = torch.sigmoid(parts["f"] + peep["f"] * c if "f" in peep else parts["f"])
                new_c = f * c + g
            else:
                new_c = c + g
            new_h = torch.tanh(new_c)
            if "o" in parts:
                o = torch.sigmoid(parts["o"] + peep["o"] * new_c if "o" in peep else parts["o"])
                new_h = o * new_h
            step_mask = mask[:, t]
            h = torch.where(step_mask, new_h, h)
            c = torch.where(step_mask, new_c, c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


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
