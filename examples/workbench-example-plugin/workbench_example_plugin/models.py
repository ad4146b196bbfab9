"""The meanpool classifier (imported only when the architecture is built, so torch loads late)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from workbench.api import ModelContext


class MeanPoolClassifier(nn.Module):
    """tokens [B, T] -> embeddings -> mean over real positions [B, E] -> MLP -> logits [B, C]."""

    def __init__(self, context: ModelContext, params: dict[str, Any]) -> None:
        super().__init__()
        self.pad_index = context.pad_index
        self.embedding = nn.Embedding(context.vocab_size, params["embedding_dim"], padding_idx=context.pad_index)
        hidden = params["hidden_size"]
        if hidden:
            self.head: nn.Module = nn.Sequential(
                nn.Linear(params["embedding_dim"], hidden), nn.ReLU(), nn.Dropout(params["dropout"]),
                nn.Linear(hidden, context.num_classes))
        else:
            self.head = nn.Sequential(nn.Dropout(params["dropout"]),
                                      nn.Linear(params["embedding_dim"], context.num_classes))

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        # lengths arrive on the CPU; the mask is built from the tokens so it lives on their device.
        mask = (tokens != self.pad_index).unsqueeze(-1).float()
        summed = (self.embedding(tokens) * mask).sum(dim=1)
        return self.head(summed / mask.sum(dim=1).clamp(min=1.0))


def build(context: ModelContext, params: dict[str, Any]) -> nn.Module:
    """workbench calls this with the task's sizes and the resolved model parameters."""
    if context.task != "classification":
        raise ValueError(f"meanpool does classification, not {context.task}")
    return MeanPoolClassifier(context, params)


__all__ = ["MeanPoolClassifier", "build"]
