"""The built-in event sinks: ``csv`` writes a run's epochs and step windows as spreadsheets;
``tensorboard`` (in :mod:`workbench_plugins.tensorboard_sink`, imported only when used) writes
TensorBoard event files.

``--set sinks=csv`` while training, or ``workbench runs export RUN --format csv`` afterwards (the
same sink fed from ``events.jsonl``), writes into the folder:

- ``metrics.csv``: one row per epoch: ``epoch``, ``epochs``, the training metrics as ``train_loss``,
  ``train_accuracy``, ..., the validation metrics as ``valid_loss``, ``valid_accuracy``, ...,
  then ``lr``, ``seconds``, ``samples_per_s``, ``best``, ``partial``;
- ``steps.csv``: one row per logged window of steps.

A resumed run appends to the files its first part wrote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.api import EpochEvent, Event, EventSinkSpec, StartEvent, StepEvent, hookimpl

STEP_COLUMNS = ("epoch", "step", "steps", "global_step", "loss", "grad_norm", "lr", "samples_per_s", "eta_s")


@hookimpl
def workbench_event_sinks() -> list[EventSinkSpec]:
    return [
        EventSinkSpec(
            name="csv",
            description="metrics.csv (one row per epoch) and steps.csv (one row per logged step window) in "
            "the run folder",
            create=create,
        ),
        EventSinkSpec(
            name="tensorboard",
            description="TensorBoard event files in the run folder's tensorboard/ (needs the tensorboard "
            "package: pip install tensorboard)",
            create="workbench_plugins.tensorboard_sink:create",
            requires={"tensorboard": "tensorboard"},
        ),
    ]


def create(run_dir: Path, options: dict[str, Any]) -> CsvSink:
    return CsvSink(Path(run_dir))


def _scalars(prefix: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``{"loss": 0.3}`` as ``{"valid_loss": 0.3}``; lists and tables (a confusion matrix) are left out."""
    return {f"{prefix}_{key}": value for key, value in metrics.items()
            if isinstance(value, (int, float, str)) and not isinstance(value, bool)}


class _Table:
    """One CSV file whose columns are fixed by its first row (or by the header already in it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: list[str] | None = None
        self.handle: io.TextIOWrapper | None = None
        self.writer: csv.DictWriter[str] | None = None

    def start(self, append: bool) -> None:
        """Open for a (resumed) run: a resumed one keeps the rows and columns already written."""
        if self.handle is not None:
            return  # a replay meets a resumed run's second start event: go on in the same file
        if append and self.path.is_file() and self.path.stat().st_size:
            with open(self.path, newline="", encoding="utf-8") as existing:
                self.columns = next(csv.reader(existing), None)
            self.handle = open(self.path, "a", newline="", encoding="utf-8")
        else:
            self.handle = open(self.path, "w", newline="", encoding="utf-8")

    def add(self, row: dict[str, Any]) -> None:
        if self.handle is None:
            return
        if self.writer is None:
            if self.columns is None:
                self.columns = list(row)
                self.writer = csv.DictWriter(self.handle, self.columns, extrasaction="ignore")
                self.writer.writeheader()
            else:
                self.writer = csv.DictWriter(self.handle, self.columns, extrasaction="ignore")
        self.writer.writerow(row)
        self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        self.handle = None


class CsvSink:
    """Writes epoch events to ``metrics.csv`` and step events to ``steps.csv``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.metrics = _Table(folder / "metrics.csv")
        self.steps = _Table(folder / "steps.csv")
        self.main_metric = ""

    def __call__(self, event: Event) -> None:
        if isinstance(event, StartEvent):
            self.main_metric = event.main_metric
            for table in (self.metrics, self.steps):
                table.start(append=event.resumed_at_epoch is not None)
        elif isinstance(event, EpochEvent):
            self.metrics.add({"epoch": event.epoch, "epochs": event.epochs, **_scalars("train", event.train),
                              **_scalars("valid", event.valid), "lr": event.lr, "seconds": event.seconds,
                              "samples_per_s": event.samples_per_s, "best": event.best, "partial": event.partial})
        elif isinstance(event, StepEvent):
            row = {name: getattr(event, name) for name in STEP_COLUMNS}
            if self.main_metric and self.main_metric != "loss":
                row[self.main_metric] = event.metric if event.metric is not None else ""
            self.steps.add(row)

    def close(self) -> None:
        self.metrics.close()
        self.steps.close()
