"""What the training loop records per step, at no cost per step.

A step hands over its loss, gradient norm and hit count as tensors still on the device; they are
kept as they are (a list append, no arithmetic, no device sync) and reduced once per progress
window, when the step event is made. That one reduction also carries the divergence guard: a
non-finite loss in the window is found there, with the exact step it happened at.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn


def gradient_norm(params: list[nn.Parameter], clip: float) -> torch.Tensor:
    """The total 2-norm of the gradients before clipping; scales them down to ``clip`` when it is above 0.

    The same arithmetic as ``torch.nn.utils.clip_grad_norm_`` (coefficient ``clip / (norm + 1e-6)``,
    at most 1) without its per-call grouping of tensors by device and dtype, which costs more than
    the arithmetic itself for a small recurrent model; with clipping off only the norm is computed
    (``clip_grad_norm_(inf)`` would still multiply every gradient by 1.0). No device sync either way."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    try:
        norms = list(torch._foreach_norm(grads))  # one fused call over all tensors where supported
    except (AttributeError, RuntimeError):  # tensors on several devices, or an old torch
        norms = [torch.linalg.vector_norm(g) for g in grads]
    device = norms[0].device
    total = torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))
    if clip > 0:
        coefficient = torch.clamp(clip / (total + 1e-6), max=1.0)
        try:
            torch._foreach_mul_(grads, coefficient)
        except (AttributeError, RuntimeError):
            for grad in grads:
                grad.mul_(coefficient.to(grad.device))
    return total


@dataclass(frozen=True)
class WindowSums:
    """One window of steps, reduced (plain numbers)."""

    steps: int
    samples: int
    units: int
    loss_sum: float  # sum of the steps' mean losses
    weighted_loss: float  # sum of loss x units, for the epoch's unit-weighted mean
    max_grad_norm: float
    correct: int | None  # None when the task's loss reports no hits
    seconds: float


class Diverged(Exception):
    """A step's loss was not finite: ``step`` is its number within the epoch, ``loss`` its value."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"step {step}: loss {loss}")
        self.step = step
        self.loss = loss


class StepWindow:
    """The steps since the last progress event, kept as the tensors the steps returned."""

    def __init__(self) -> None:
        self.reset(time.monotonic(), 0)

    def reset(self, now: float, first_step: int) -> None:
        self.losses: list[torch.Tensor] = []
        self.grad_norms: list[torch.Tensor] = []
        self.corrects: list[torch.Tensor] = []
        self.units: list[int] = []
        self.samples = 0
        self.started = now
        self.first_step = first_step  # the epoch's step number of this window's first step

    @property
    def steps(self) -> int:
        return len(self.losses)

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor, correct: torch.Tensor | None, samples: int,
            units: int) -> None:
        self.losses.append(loss)
        self.grad_norms.append(grad_norm)
        if correct is not None:
            self.corrects.append(correct)
        self.units.append(units)
        self.samples += samples

    def close(self, now: float) -> WindowSums:
        """Reduce the window (one device sync) and start the next one; :class:`Diverged` when a
        step's loss was not finite."""
        sums = self._reduce(now)
        self.reset(now, self.first_step + sums.steps)
        return sums

    def _reduce(self, now: float) -> WindowSums:
        if not self.losses:
            return WindowSums(0, 0, 0, 0.0, 0.0, 0.0, None, now - self.started)
        losses = torch.stack([loss.float() for loss in self.losses])
        units = torch.tensor(self.units, dtype=losses.dtype, device=losses.device)
        grad_norm = torch.stack([g.float().to(losses.device) for g in self.grad_norms]).max()
        loss_sum, weighted, max_grad = torch.stack([losses.sum(), (losses * units).sum(), grad_norm]).tolist()
        if not math.isfinite(loss_sum):
            bad = int((~torch.isfinite(losses)).nonzero()[0, 0])
            raise Diverged(self.first_step + bad, float(losses[bad]))
        correct = int(torch.stack(self.corrects).sum()) if self.corrects else None
        return WindowSums(self.steps, self.samples, sum(self.units), loss_sum, weighted, max_grad, correct,
                          now - self.started)


class EpochTotals:
    """One epoch's training loss (weighted by each batch's units) and main-metric hits, from its windows."""

    def __init__(self) -> None:
        self.weighted_loss = 0.0
        self.correct = 0
        self.units = self.samples = 0
        #: Whether the task's loss reports correct predictions (then the main metric is tracked).
        self.has_correct = False

    def add(self, window: WindowSums) -> None:
        self.weighted_loss += window.weighted_loss
        self.units += window.units
        self.samples += window.samples
        if window.correct is not None:
            self.correct += window.correct
            self.has_correct = True

    def metrics(self, main_metric: str) -> dict[str, float]:
        metrics = {"loss": self.weighted_loss / max(self.units, 1)}
        if self.has_correct:
            metrics[main_metric] = self.correct / max(self.units, 1)
        return metrics
