"""Model code for the encoder-decoder architectures (imported only when one is built).

Both follow the contract in ``workbench.tasks.seq2seq``: ``forward`` for training, ``encode`` and
``decode_step`` (state: a dict of batch-first tensors) for greedy and beam search.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from workbench.api import ModelContext
from workbench.nn import last_step, lengths_mask


class Encoder(nn.Module):
    """Embedding -> stacked GRU layers over the padded source. Returns every position's top-layer
    output and each layer's state at the sequence's last real token (padding never reaches them)."""

    def __init__(self, vocab: int, embedding_dim: int, hidden: int, layers: int, dropout: float, pad: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding_dim, padding_idx=pad)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            nn.GRU(embedding_dim if i == 0 else hidden, hidden, batch_first=True) for i in range(layers))

    def forward(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self.dropout(self.embedding(tokens))
        finals = []
        for index, layer in enumerate(self.layers):
            if index > 0:
                x = self.dropout(x)
            x, _ = layer(x)
            finals.append(last_step(x, lengths))
        return x, torch.stack(finals, dim=1)  # [B, S, H], [B, L, H]


class Seq2Seq(nn.Module):
    """GRU encoder-decoder; the decoder reads [previous word; context] at every step.

    Plain: the context is the encoder's final top-layer state, the same at every step (d2l's
    Seq2SeqDecoder). Attention: the context is an additive (Bahdanau) attention average of the
    encoder outputs, queried with the decoder's previous top-layer state, and the output layer reads
    [decoder state; context].
    """

    def __init__(self, context: ModelContext, params: dict[str, Any], attention: bool) -> None:
        super().__init__()
        hidden, emb, layers, dropout = (params["hidden_size"], params["embedding_dim"], params["num_layers"],
                                        params["dropout"])
        self.attention = attention
        self.teacher_forcing = params["teacher_forcing"]
        self.encoder = Encoder(context.vocab_size, emb, hidden, layers, dropout, context.pad_index)
        self.embedding = nn.Embedding(context.target_vocab_size, emb, padding_idx=context.pad_index)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.GRU(emb + hidden, hidden, num_layers=layers, batch_first=True,
                              dropout=dropout if layers > 1 else 0.0)
        # as in Bahdanau et al. (2015), the attention model's output layer also reads the context it
        # attended to; the plain model's output reads only the decoder state (d2l's Seq2SeqDecoder)
        self.output = nn.Linear(hidden * 2 if attention else hidden, context.target_vocab_size)
        if attention:
            size = params["attention_size"]
            self.key = nn.Linear(hidden, size, bias=False)
            self.query = nn.Linear(hidden, size, bias=False)
            self.score = nn.Linear(size, 1, bias=False)

    # -- the contract ------------------------------------------------------------------------
    def encode(self, tokens: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        memory, finals = self.encoder(tokens, lengths)
        if not self.attention:
            return {"hidden": finals, "context": finals[:, -1]}
        mask = lengths_mask(lengths.to(tokens.device), tokens.size(1))
        return {"hidden": finals, "memory": memory, "keys": self.key(memory), "mask": mask}

    def _attend(self, state: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        query = self.query(state["hidden"][:, -1]).unsqueeze(1)  # [B, 1, A]
        scores = self.score(torch.tanh(query + state["keys"])).squeeze(-1)  # [B, S]
        scores = scores.masked_fill(~state["mask"], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights.unsqueeze(1), state["memory"]).squeeze(1), weights

    def decode_step(self, previous: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
        weights = None
        if self.attention:
            context, weights = self._attend(state)
        else:
            context = state["context"]
        x = torch.cat([self.dropout(self.embedding(previous)), context], dim=-1).unsqueeze(1)
        out, hidden = self.decoder(x, state["hidden"].transpose(0, 1).contiguous())
        features = torch.cat([out.squeeze(1), context], dim=-1) if self.attention else out.squeeze(1)
        logits = self.output(self.dropout(features))
        return logits, {**state, "hidden": hidden.transpose(0, 1)}, weights

    def forward(self, tokens: Tensor, lengths: Tensor, target_in: Tensor) -> Tensor:
        state = self.encode(tokens, lengths)
        forcing = not self.training or self.teacher_forcing >= 1.0
        if forcing and not self.attention:
            # the context is constant, so the whole target goes through the GRU in one call
            steps = target_in.size(1)
            context = state["context"].unsqueeze(1).expand(-1, steps, -1)
            x = torch.cat([self.dropout(self.embedding(target_in)), context], dim=-1)
            out, _ = self.decoder(x, state["hidden"].transpose(0, 1).contiguous())
            return self.output(self.dropout(out))
        logits = []
        previous = target_in[:, 0]
        for t in range(target_in.size(1)):
            step_logits, state, _ = self.decode_step(previous, state)
            logits.append(step_logits)
            if t + 1 < target_in.size(1):
                gold = target_in[:, t + 1]
                if forcing:
                    previous = gold
                else:  # feed the model's own guess instead of the reference, with probability 1 - ratio
                    use_gold = torch.rand(gold.shape, device=gold.device) < self.teacher_forcing
                    previous = torch.where(use_gold, gold, step_logits.detach().argmax(dim=-1))
        return torch.stack(logits, dim=1)


def build_plain(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    return Seq2Seq(context, params, attention=False)


def build_attention(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    return Seq2Seq(context, params, attention=True)
