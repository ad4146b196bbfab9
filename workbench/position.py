"""How far a run got: one definition for the Train screen, the Runs screen and ``workbench runs``.

A run's position is its *complete* epochs (what the checkpoint's ``epoch`` holds and what a resume
continues after) plus the steps it trained of the next epoch, if any. A run stopped by a request or
by its time limit at step 260 of 392 in epoch 4 of 12 has done 3 epochs and 260 steps: every view
shows that as ``3.6/12`` (the whole-epoch count rounded *down*, so nothing claims more than was
trained) and, where there is room, ``epoch 4 step 260/392``.

The engine writes the position into ``status.json`` (:func:`status_fields`); readers of events
build it with :meth:`RunPosition.from_events`, readers of the status file with
:meth:`RunPosition.from_status`. No torch, no Textual.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workbench import events as ev

__all__ = ["RunPosition", "status_fields"]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True)
class RunPosition:
    """Complete epochs and the steps trained of the next one."""

    #: Epochs the run was set up for (0 when unknown).
    epochs: int
    #: Complete epochs: the checkpoint's ``epoch``, the ``N`` of "N/12" when no epoch is under way.
    epochs_done: int
    #: Steps trained of epoch ``epochs_done + 1`` (0: none; the run is between epochs).
    step: int = 0
    #: Steps per epoch (0 when unknown).
    steps: int = 0

    @property
    def epoch(self) -> int:
        """The epoch under way (or cut short): ``epochs_done + 1`` while it has steps, else the last done."""
        return self.epochs_done + 1 if self.step else self.epochs_done

    @property
    def done(self) -> float:
        """Epochs trained, counting the steps of an unfinished epoch as a fraction."""
        partial = min(self.step / self.steps, 1.0) if self.step and self.steps else 0.0
        return self.epochs_done + partial

    @property
    def fraction(self) -> float:
        """Share of the planned epochs trained (0 when the plan is unknown)."""
        return max(0.0, min(1.0, self.done / self.epochs)) if self.epochs else 0.0

    def short(self) -> str:
        """``3/12``, or ``3.6/12`` when part of the next epoch was trained (rounded down)."""
        total = str(self.epochs) if self.epochs else "?"
        if not self.step or not self.steps:
            return f"{self.epochs_done}/{total}"
        tenths = math.floor(self.done * 10 + 1e-9) / 10
        return f"{tenths:.1f}/{total}"

    def long(self) -> str:
        """``3.6/12 epochs (epoch 4 step 260/392)``; just ``12/12 epochs`` between epochs."""
        text = f"{self.short()} epochs"
        if self.step:
            steps = f"/{self.steps}" if self.steps else ""
            text += f" (epoch {self.epoch} step {self.step}{steps})"
        return text

    # -- building one ------------------------------------------------------------------------
    @classmethod
    def from_events(cls, epochs: int, epoch_events: Iterable[ev.EpochEvent],
                    last_step: ev.StepEvent | None) -> RunPosition:
        """From a run's events: the last complete epoch, and the last step event after it."""
        done = max((e.epoch for e in epoch_events if not e.partial), default=0)
        if last_step is None or last_step.epoch <= done:
            return cls(epochs, done, 0, last_step.steps if last_step else 0)
        return cls(epochs, last_step.epoch - 1, last_step.step, last_step.steps)

    @classmethod
    def from_status(cls, status: Mapping[str, Any], epochs: Any) -> RunPosition:
        """From ``status.json`` (``epoch`` complete epochs; ``step`` / ``steps`` of the next one)."""
        return cls(_count(epochs), _count(status.get("epoch")), _count(status.get("step")),
                   _count(status.get("steps")))


def status_fields(epochs_done: int, step: int, steps: int) -> dict[str, Any]:
    """What the engine writes into ``status.json`` for the position (read by :meth:`RunPosition.from_status`)."""
    return {"epoch": epochs_done, "step": step, "steps": steps}
