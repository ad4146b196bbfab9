"""The example plugin's event sink: ``notes.txt`` in the run folder, one readable line per epoch.

What a sink for a tracker looks like, without a tracker: ``create`` opens the destination, each
event the run sends is looked at by kind, ``close`` lets go of it. Replace the file with a tracker
client to feed your team's tracker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.api import EndEvent, EpochEvent, Event, StartEvent


def create(run_dir: Path, options: dict[str, Any]) -> NotesSink:
    return NotesSink(Path(run_dir) / "notes.txt", options["metric"])


class NotesSink:
    def __init__(self, path: Path, metric: str) -> None:
        self.path = path
        self.metric = metric
        self.handle = open(path, "a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        if isinstance(event, StartEvent):
            self.metric = self.metric or event.main_metric
            self.write(f"run {event.run}: {event.config['dataset']} with {event.config['arch']}")
        elif isinstance(event, EpochEvent):
            value = event.valid.get(self.metric)
            shown = f"{value:.4f}" if isinstance(value, float) else "n/a"
            self.write(f"epoch {event.epoch}/{event.epochs}: valid {self.metric} {shown}{' (best)' if event.best else ''}")
        elif isinstance(event, EndEvent):
            self.write(f"{event.state}: {event.message}" if event.message else event.state)

    def write(self, line: str) -> None:
        self.handle.write(line + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()
