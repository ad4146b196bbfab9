"""Pieces of the training loop that need no torch: typed options and early stopping.

:class:`TrainOptions` is ``config.train`` as a typed object, with every default taken from the
parameter schema (:data:`workbench.config.TRAIN_PARAMS`), so the engine reads ``options.lr`` and a
misspelt option is an error, not a silent default. :class:`EarlyStopping` keeps the state of the
patience rule and says why it stopped, like Lightning's ``EarlyStopping`` callback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from workbench.config import TRAIN_PARAMS


@dataclass(frozen=True)
class TrainOptions:
    """The trainer's parameters (one field per entry of ``TRAIN_PARAMS``; a test keeps them equal)."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    momentum: float
    weight_decay: float
    schedule: str
    step_size: int
    gamma: float
    class_weight: str
    clip_grad_norm: float
    patience: int
    seed: int
    threads: int
    log_every: int
    max_minutes: float
    top_k: int
    limit: int
    precision: str

    @classmethod
    def from_config(cls, train: Mapping[str, Any]) -> TrainOptions:
        """``config.train`` (resolved, or an older run's, which may lack newer options) over the
        schema's defaults; keys this version does not know are left out."""
        values = {param.name: param.default for param in TRAIN_PARAMS}
        names = {f.name for f in fields(cls)}
        values.update((key, value) for key, value in train.items() if key in names)
        return cls(**values)


class EarlyStopping:
    """Stop after ``patience`` epochs without improvement of the monitored score (0: never).

    :meth:`update` after each epoch says whether the score improved; :attr:`reason` is set once the
    rule says stop. :meth:`state_dict` goes into each checkpoint so a resumed run continues counting.
    """

    def __init__(self, patience: int, higher_is_better: bool) -> None:
        self.patience = patience
        self.higher_is_better = higher_is_better
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        #: Epochs since the best one.
        self.wait_count = 0
        #: Why training should stop, or ``None`` while it should go on.
        self.reason: str | None = None

    def improves(self, score: float) -> bool:
        if self.best_score is None:
            return True
        return score > self.best_score if self.higher_is_better else score < self.best_score

    def update(self, score: float, epoch: int) -> bool:
        """Record one epoch's score; True when it is the best so far."""
        improved = self.improves(score)
        if improved:
            self.best_score, self.best_epoch, self.wait_count = float(score), epoch, 0
        else:
            self.wait_count += 1
        self.reason = None
        if self.patience and self.wait_count >= self.patience:
            self.reason = f"early stop: no validation improvement for {self.wait_count} epochs"
        return improved

    @property
    def should_stop(self) -> bool:
        return self.reason is not None

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "wait_count": self.wait_count,
                "reason": self.reason}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output. The patience stays this run's own (a resumed
        run may be given another)."""
        score = state.get("best_score")
        self.best_score = float(score) if score is not None else None
        self.best_epoch = state.get("best_epoch")
        self.wait_count = int(state.get("wait_count") or 0)
        self.reason = state.get("reason")

    @staticmethod
    def state_from_progress(progress: Mapping[str, Any]) -> dict[str, Any]:
        """The state in a checkpoint's ``progress``: its ``early_stopping`` entry, or, in checkpoints
        written before it existed, the ``best_metric`` / ``best_epoch`` / ``bad_epochs`` keys."""
        state = progress.get("early_stopping")
        if isinstance(state, Mapping):
            return dict(state)
        return {"best_score": progress.get("best_metric"), "best_epoch": progress.get("best_epoch"),
                "wait_count": int(progress.get("bad_epochs", 0) or 0), "reason": None}
