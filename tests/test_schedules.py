"""The one-cycle schedule: stepped per batch, peaking at lr, and resumed where it was."""

from __future__ import annotations

import math

import pytest

from workbench.config import resolve_config
from workbench.engine import Trainer, train

TINY = ["model.hidden_size=16", "model.embedding_dim=8", "limit=640", "batch_size=64", "log_every=1",
        "schedule=one-cycle", "lr=0.01", "threads=1", "patience=0", "data.valid_fraction=0.02"]


def step_lrs(run) -> dict[int, float]:
    """The learning rate of each optimisation step, by global step (the last event of a step wins)."""
    return {e.global_step: e.lr for e in run.events() if e.kind == "step"}


@pytest.mark.slow
def test_one_cycle_warms_up_to_lr_anneals_and_resumes_in_place(registry, shared_data):
    config = resolve_config(registry, "names", "gru", "cpu", [*TINY, "epochs=4"], data_dir=str(shared_data))
    whole = step_lrs(train(config, registry=registry).run)
    steps = sorted(whole)
    assert len(steps) == 40  # 640 names in batches of 64, 4 epochs
    lrs = [whole[s] for s in steps]
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    # (the rate the next step will take) from lr / 25 up to lr at 30% of the steps, then down towards lr / 25e4
    assert 0.01 / 25 < lrs[0] < 0.01 / 10 and lrs[peak] == pytest.approx(0.01, rel=0.01)
    assert 0.25 * len(lrs) <= peak <= 0.35 * len(lrs)
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1], strict=False))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:], strict=False)) and lrs[-1] < 0.01 / 100

    # two epochs, then resumed with epochs=4: the cycle stretches to 40 steps and goes on from step 20,
    # so every later step has the rate the uninterrupted run had
    short = resolve_config(registry, "names", "gru", "cpu", [*TINY, "epochs=2"], data_dir=str(shared_data))
    first = train(short, registry=registry)
    short.train["epochs"] = 4
    resumed = step_lrs(Trainer(short, registry=registry, resume=first.run).train().run)
    later = [s for s in sorted(resumed) if s > 20]
    assert len(later) == 20
    for step in later:
        assert math.isclose(resumed[step], whole[step], rel_tol=1e-6), step
