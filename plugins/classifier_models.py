"""Model code for the classifier architectures (imported only when one is built)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from workbench.api import ModelContext
from workbench.nn import NgramBag, SequenceEncoder, TokenInput, last_step


class RecurrentClassifier(nn.Module):
    """tokens -> input vectors -> recurrent encoder -> summary -> linear over classes; with
    ``ngrams`` > 0 the summary is joined by the mean vector of the text's hashed n-grams."""

    def __init__(self, context: ModelContext, cell: str, params: dict[str, Any]) -> None:
        super().__init__()
        self.input = TokenInput(context.vocab_size, params["embedding_dim"], params["input"] == "onehot",
                                context.pad_index)
        self.encoder = SequenceEncoder(
            cell, self.input.output_size, params["hidden_size"], params["num_layers"], params["bidirectional"],
            params["dropout"], params["sequence_mode"], params.get("nonlinearity", "tanh"),
        )
        # absent from configs written before the bag existed: those models have none
        ngrams = int(params.get("ngrams", 0))
        self.ngrams = (NgramBag(context.vocab_size, ngrams, params["ngram_buckets"], params["embedding_dim"])
                       if ngrams else None)
        features = self.encoder.output_size + (self.ngrams.output_size if self.ngrams is not None else 0)
        self.dropout = nn.Dropout(params["dropout"])
        self.output = nn.Linear(features, context.num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        _, summary = self.encoder(self.input(tokens), lengths)
        if self.ngrams is not None:
            summary = torch.cat([summary, self.ngrams(tokens, lengths)], dim=-1)
        return self.output(self.dropout(summary))


class ElmanClassifier(nn.Module):
    """The classic character-RNN classifier: ``hidden = i2h([x; h])``, ``output = i2o([x; h])``.

    With one layer this is the tutorial's cell; more layers and a backward direction stack Elman
    layers, and ``i2o`` reads the last input next to the final state(s).
    """

    def __init__(self, context: ModelContext, params: dict[str, Any]) -> None:
        super().__init__()
        self.input = TokenInput(context.vocab_size, params["embedding_dim"], params["input"] == "onehot",
                                context.pad_index)
        self.encoder = SequenceEncoder(
            "elman", self.input.output_size, params["hidden_size"], params["num_layers"], params["bidirectional"],
            params["dropout"], "padded", params["nonlinearity"],
        )
        self.dropout = nn.Dropout(params["dropout"])
        self.i2o = nn.Linear(self.input.output_size + self.encoder.output_size, context.num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        vectors = self.input(tokens)
        _, summary = self.encoder(vectors, lengths)
        combined = torch.cat([last_step(vectors, lengths), summary], dim=-1)
        return self.i2o(self.dropout(combined))


def _classifier_builder(cell: str) -> Callable[[ModelContext, dict[str, Any]], nn.Module]:
    """The ``build`` of the recurrent classifier on ``cell`` (each spec names its own)."""
    def build(context: ModelContext, params: dict[str, Any]) -> nn.Module:
        return RecurrentClassifier(context, cell, params)
    return build


build_rnn, build_lstm, build_gru = map(_classifier_builder, ("rnn", "lstm", "gru"))


def build_elman(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    return ElmanClassifier(context, params)
