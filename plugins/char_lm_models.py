"""Model code for the character language models and the equation GRU classifier (imported on use)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from workbench.api import ModelContext
from workbench.nn import EquationGRU, RecurrentStack, TokenInput, last_step


class CharLanguageModel(nn.Module):
    """tokens -> embedding -> recurrent stack -> linear over the vocabulary, at every position.

    ``forward(tokens, lengths, state=None, return_state=False)``: with ``return_state`` it also
    returns the recurrent state after the last position, which generation feeds back in so that
    each new character costs one step. Padding only ever trails a window, and the recurrence reads
    left to right, so padded positions never change the logits of real ones; ``lengths`` is
    accepted for the task contract and not needed here.
    """

    def __init__(self, context: ModelContext, cell: str, params: dict[str, Any]) -> None:
        super().__init__()
        embedding_dim, hidden = params["embedding_dim"], params["hidden_size"]
        layers, dropout = params["num_layers"], params["dropout"]
        self.cell = cell
        self.embedding = nn.Embedding(context.vocab_size, embedding_dim, padding_idx=context.pad_index)
        between = dropout if layers > 1 else 0.0
        if cell == "rnn":
            self.rnn: nn.Module = nn.RNN(embedding_dim, hidden, layers, batch_first=True, dropout=between,
                                         nonlinearity=params.get("nonlinearity", "tanh"))
        elif cell == "lstm":
            self.rnn = nn.LSTM(embedding_dim, hidden, layers, batch_first=True, dropout=between)
        elif cell == "gru":
            self.rnn = nn.GRU(embedding_dim, hidden, layers, batch_first=True, dropout=between)
        elif cell == "gru-eq":
            self.rnn = EquationGRU(embedding_dim, hidden, layers, dropout=between)
        else:
            raise ValueError(f"unknown cell {cell!r}")
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden, context.vocab_size)

    def forward(self, tokens: Tensor, lengths: Tensor, state: Any = None,
                return_state: bool = False) -> Tensor | tuple[Tensor, Any]:
        # the fast path skips self.rnn: not while a forward hook watches it (the inspector's equation
        # cells, interventions in generation), which must see every step
        if tokens.size(1) == 1 and self.cell in _CELL_FUNCTIONS and not self.training \
                and not torch.is_grad_enabled() and not self.rnn._forward_hooks:
            return self._step(tokens, state, return_state)
        outputs, new_state = self.rnn(self.dropout(self.embedding(tokens)), state)
        logits = self.output(self.dropout(outputs))
        return (logits, new_state) if return_state else logits


    def _step(self, tokens: Tensor, state: Any, return_state: bool) -> Tensor | tuple[Tensor, Any]:
        """One position, layer by layer with the fused cell functions: the same arithmetic as the
        nn.RNN/LSTM/GRU call, without its per-call set-up, which dominates a one-character step on a
        CPU (about 4x faster generation there). Inference only; training always takes the full path."""
        rnn = self.rnn
        step = _CELL_FUNCTIONS[self.cell if self.cell != "rnn" else f"rnn_{rnn.nonlinearity}"]
        batch = tokens.size(0)
        if state is None:
            zeros = tokens.new_zeros((rnn.num_layers, batch, rnn.hidden_size), dtype=self.output.weight.dtype)
            state = (zeros, zeros) if self.cell == "lstm" else zeros
        layer_input = self.embedding(tokens[:, 0])
        new_h, new_c = [], []
        for layer in range(rnn.num_layers):
            weights = (getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}"),
                       getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}"))
            if self.cell == "lstm":
                h, c = step(layer_input, (state[0][layer], state[1][layer]), *weights)
                new_c.append(c)
            else:
                h = step(layer_input, state[layer], *weights)
            new_h.append(h)
            layer_input = h
        logits = self.output(layer_input).unsqueeze(1)
        if not return_state:
            return logits
        hidden = torch.stack(new_h)
        return logits, ((hidden, torch.stack(new_c)) if self.cell == "lstm" else hidden)


_CELL_FUNCTIONS = {
    "lstm": torch.lstm_cell,
    "gru": torch.gru_cell,
    "rnn_tanh": torch.rnn_tanh_cell,
    "rnn_relu": torch.rnn_relu_cell,
}
_CELL_FUNCTIONS["rnn"] = _CELL_FUNCTIONS["rnn_tanh"]


class _EquationGRUDirection(EquationGRU):
    """One single-layer direction for :class:`RecurrentStack`: outputs only (the stack reads the
    final state at the last real step, which padding never changes)."""

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, lengths=lengths)[0]


class EquationGRUClassifier(nn.Module):
    """tokens -> vectors -> EquationGRU layers (optionally both directions) -> last real step -> classes."""

    def __init__(self, context: ModelContext, params: dict[str, Any]) -> None:
        super().__init__()
        self.input = TokenInput(context.vocab_size, params["embedding_dim"], params["input"] == "onehot",
                                context.pad_index)
        hidden = params["hidden_size"]
        self.layers = RecurrentStack(lambda size_in: _EquationGRUDirection(size_in, hidden), self.input.output_size,
                                     hidden, params["num_layers"], params["bidirectional"], params["dropout"])
        self.dropout = nn.Dropout(params["dropout"])
        self.output = nn.Linear(self.layers.output_size, context.num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        _, summary = self.layers(self.input(tokens), lengths)
        return self.output(self.dropout(summary))


def _language_model_builder(cell: str) -> Callable[[ModelContext, dict[str, Any]], nn.Module]:
    """The ``build`` of the character language model on ``cell`` (each spec names its own)."""
    def build(context: ModelContext, params: dict[str, Any]) -> nn.Module:
        return CharLanguageModel(context, cell, params)
    return build


build_rnn, build_lstm, build_gru, build_gru_eq = map(_language_model_builder, ("rnn", "lstm", "gru", "gru-eq"))


def build_gru_eq_classifier(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    return EquationGRUClassifier(context, params)


__all__ = ["CharLanguageModel", "EquationGRUClassifier", "last_step"]
