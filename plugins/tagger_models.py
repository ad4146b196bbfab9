"""Model code for the tagger architectures (imported only when one is built)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from workbench.api import ModelContext
from workbench.nn import SequenceEncoder


class CharFeatures(nn.Module):
    """One vector per word from its characters: a CNN with max-pooling, or a BiLSTM's final states.

    This is what lets a tagger guess the tag of a word it never saw (suffixes, capitals, digits)."""

    def __init__(self, char_vocab: int, char_dim: int, size: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.embedding = nn.Embedding(char_vocab, char_dim, padding_idx=0)
        if kind == "cnn":
            self.conv = nn.Conv1d(char_dim, size, kernel_size=3, padding=1)
            self.output_size = size
        else:
            self.encoder = SequenceEncoder("lstm", char_dim, size // 2 or 1, bidirectional=True)
            self.output_size = self.encoder.output_size

    def forward(self, chars: Tensor) -> Tensor:
        batch, words, width = chars.shape
        flat = chars.reshape(batch * words, width)
        lengths = (flat != 0).sum(dim=1)
        real = lengths > 0  # padding words have no characters: compute only the real ones
        out = flat.new_zeros((batch * words, self.output_size), dtype=torch.float)
        if bool(real.any()):
            chosen = flat[real]
            vectors = self.embedding(chosen)
            if self.kind == "cnn":
                hidden = torch.relu(self.conv(vectors.transpose(1, 2)))
                hidden = hidden.masked_fill((chosen == 0).unsqueeze(1), float("-inf"))
                summary = hidden.max(dim=2).values
            else:
                _, summary = self.encoder(vectors, lengths[real].cpu())
            out = out.to(summary.dtype)
            out[real] = summary
        return out.view(batch, words, self.output_size)


class RecurrentTagger(nn.Module):
    """words (+ character features) -> embedding -> recurrent encoder -> linear over tags, per word."""

    def __init__(self, context: ModelContext, params: dict[str, Any], bidirectional: bool, use_chars: bool) -> None:
        super().__init__()
        self.unk_index = int(context.extra.get("unk_index", 1))
        self.word_dropout = params["word_dropout"]
        self.embedding = nn.Embedding(context.vocab_size, params["embedding_dim"], padding_idx=context.pad_index)
        size = params["embedding_dim"]
        self.chars: CharFeatures | None = None
        if use_chars:
            self.chars = CharFeatures(int(context.extra["char_vocab_size"]), params["char_dim"], params["char_size"],
                                      params["char_encoder"])
            size += self.chars.output_size
        self.dropout = nn.Dropout(params["dropout"])
        self.encoder = SequenceEncoder(params["cell"], size, params["hidden_size"], params["num_layers"], bidirectional,
                                       params["dropout"], params["sequence_mode"])
        self.output = nn.Linear(self.encoder.output_size, context.num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor, chars: Tensor | None = None) -> Tensor:
        if self.training and self.word_dropout > 0:
            # read some known words as <unk> so the <unk> embedding learns what unseen words look like
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout) & (tokens > self.unk_index)
            tokens = tokens.masked_fill(drop, self.unk_index)
        vectors = self.embedding(tokens)
        if self.chars is not None:
            if chars is None:
                raise ValueError("this tagger needs the chars input")
            vectors = torch.cat([vectors, self.chars(chars)], dim=-1)
        outputs, _ = self.encoder(self.dropout(vectors), lengths)
        return self.output(self.dropout(outputs))


def build_lstm_tagger(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    return RecurrentTagger(context, params, bidirectional=False, use_chars=False)


def build_bilstm_tagger(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    return RecurrentTagger(context, params, bidirectional=True, use_chars=False)


def build_char_bilstm_tagger(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    return RecurrentTagger(context, params, bidirectional=True, use_chars=True)
