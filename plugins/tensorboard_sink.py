"""The ``tensorboard`` event sink: TensorBoard event files in ``RUN/tensorboard``, imported only when a
run uses it (the ``tensorboard`` package is an optional extra: ``pip install tensorboard``).

Scalars, each at its step: ``step/loss``, ``step/grad_norm``, ``step/lr`` and ``step/<main metric>``
per logged window (x: the global step); ``train/<metric>``, ``valid/<metric>`` and ``epoch/lr`` per
epoch (x: the epoch); ``test/<metric>`` once at the end (x: the best epoch). Written with
TensorBoard's own event-file writer, so exporting a run does not import torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event as TensorBoardEvent
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from workbench.api import EndEvent, EpochEvent, Event, StartEvent, StepEvent


def create(run_dir: Path, options: dict[str, Any]) -> TensorBoardSink:
    return TensorBoardSink(Path(run_dir) / "tensorboard")


def _numbers(prefix: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    return {f"{prefix}/{key}": float(value) for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


class TensorBoardSink:
    """Writes the run's numbers as TensorBoard scalars."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.writer = EventFileWriter(str(folder))
        self.main_metric = ""
        self.last_epoch = 0

    def scalars(self, values: Mapping[str, float], step: int, wall_time: float | None) -> None:
        kept = [Summary.Value(tag=tag, simple_value=value) for tag, value in values.items() if math.isfinite(value)]
        if kept:
            self.writer.add_event(TensorBoardEvent(wall_time=wall_time or 0.0, step=step, summary=Summary(value=kept)))

    def __call__(self, event: Event) -> None:
        if isinstance(event, StartEvent):
            self.main_metric = event.main_metric
        elif isinstance(event, StepEvent):
            values = {"step/loss": event.loss, "step/grad_norm": event.grad_norm, "step/lr": event.lr}
            if event.metric is not None and self.main_metric not in ("", "loss"):
                values[f"step/{self.main_metric}"] = event.metric
            self.scalars(values, event.global_step, event.time)
        elif isinstance(event, EpochEvent):
            self.last_epoch = event.epoch
            self.scalars({**_numbers("train", event.train), **_numbers("valid", event.valid), "epoch/lr": event.lr},
                         event.epoch, event.time)
        elif isinstance(event, EndEvent) and event.test:
            self.scalars(_numbers("test", event.test), event.best_epoch or self.last_epoch, event.time)

    def close(self) -> None:
        self.writer.close()
