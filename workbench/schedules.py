"""The one-cycle learning-rate schedule (L. Smith and N. Topin, "Super-Convergence", 2017), which
pairs with the learning-rate finder: the rate warms up from ``lr / 25`` to ``lr`` over the first 30%
of the steps, then anneals (cosine) to ``lr / 25e4``. Unlike the other schedules it moves every
optimisation step, so the engine steps it per batch and its length is the run's total steps.

A resumed run keeps its place in the cycle; a new ``lr`` becomes the peak, and a new ``epochs`` or
``batch_size`` stretches the cycle to the new total (steps already taken stay taken).
"""

from __future__ import annotations

from typing import Any

import torch

ONE_CYCLE = "one-cycle"
#: torch's defaults: the cycle starts at lr / 25 and ends at lr / 25 / 1e4.
DIV_FACTOR = 25.0
FINAL_DIV_FACTOR = 1e4


def make_one_cycle(optimizer: torch.optim.Optimizer, lr: float, epochs: int, steps_per_epoch: int,
                   steps_done: int = 0) -> torch.optim.lr_scheduler.OneCycleLR:
    """A cycle peaking at ``lr`` over ``epochs * steps_per_epoch`` steps, ``steps_done`` of them
    already taken (the optimiser's rates are set for the next step)."""
    total = max(epochs * max(steps_per_epoch, 1), steps_done + 1, 2)
    if steps_done > 0:
        for group in optimizer.param_groups:
            group["max_lr"] = lr
            group["initial_lr"] = lr / DIV_FACTOR
            group["min_lr"] = group["initial_lr"] / FINAL_DIV_FACTOR
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=total, div_factor=DIV_FACTOR, final_div_factor=FINAL_DIV_FACTOR,
        last_epoch=steps_done - 1)


def steps_per_batch(scheduler: Any) -> bool:
    """Whether ``scheduler`` moves every batch (one-cycle) rather than every epoch."""
    return isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)


def step_batch(scheduler: Any) -> None:
    """After each optimisation step; a cycle that is over (a run extended past its planned steps
    without a resume) stays at its final rate."""
    if steps_per_batch(scheduler) and scheduler.last_epoch + 1 < scheduler.total_steps:
        scheduler.step()
