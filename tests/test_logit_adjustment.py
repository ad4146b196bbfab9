"""The logit-adjusted loss (train option ``logit_adjustment``) for classification."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import FAST
from workbench.config import resolve_config
from workbench.engine import train
from workbench.tasks.base import Batch
from workbench.tasks.classification import ClassificationTask
from workbench.text import Vocab


def tiny_task() -> tuple[ClassificationTask, list[tuple[list[int], int]]]:
    task = ClassificationTask(Vocab(["<pad>", "<unk>", "a"]), ["x", "y", "z"], "char", "none", 0)
    return task, [([2], 0)] * 6 + [([2], 1)] * 2  # z never occurs


def test_offsets_are_tau_times_the_log_prior():
    task, examples = tiny_task()
    task.prepare_training(examples, {"logit_adjustment": 0.5})
    # z is absent: it gets the rarest present share (2/8), not log(0)
    assert task.logit_offsets.tolist() == pytest.approx([0.5 * math.log(6 / 8), 0.5 * math.log(2 / 8),
                                                         0.5 * math.log(2 / 8)])
    assert task.class_weights is None
    task.prepare_training(examples, {"logit_adjustment": 0.0, "class_weight": "balanced"})
    assert task.logit_offsets is None and task.class_weights is not None


def test_loss_adds_the_offsets_but_predictions_do_not():
    task, examples = tiny_task()
    task.prepare_training(examples, {"logit_adjustment": 1.0})
    logits = torch.tensor([[2.0, 1.5, 0.0], [0.0, 1.0, 3.0]])

    class Fixed(torch.nn.Module):
        def forward(self, tokens, lengths):
            return logits

    batch = Batch({"tokens": torch.zeros(2, 1, dtype=torch.long), "lengths": torch.ones(2, dtype=torch.long)},
                  torch.tensor([1, 2]), 2)
    loss, correct = task.loss(Fixed(), batch)
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits + task.logit_offsets, batch.targets)))
    assert float(loss) != pytest.approx(float(F.cross_entropy(logits, batch.targets)))
    assert int(correct) == 1  # hits count the model's own argmax (class 0, then 2), as prediction does


@pytest.mark.slow
def test_logit_adjustment_lifts_the_rare_classes(registry, shared_data):
    def run(*extra: str):
        config = resolve_config(registry, "names", "gru", "cpu", [*FAST, "epochs=2", "lr=0.01", *extra],
                                data_dir=str(shared_data))
        return train(config, registry=registry).metrics

    plain, adjusted = run(), run("logit_adjustment=1.0")
    # the same seed and data; only the loss's offsets differ, and they favour the 17 minority classes
    assert adjusted["balanced_accuracy"] > plain["balanced_accuracy"] + 0.03
    assert adjusted["accuracy"] < plain["accuracy"]
