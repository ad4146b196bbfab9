"""Console progress for headless training: a live line on a terminal, plain lines in a log."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from workbench import events as ev
from workbench.events import format_duration, format_epoch
from workbench.headlines import metric_label, shown_value
from workbench.resources import format_bytes
from workbench.terminal import printable

__all__ = ["ConsoleProgress", "format_bytes", "format_duration"]


class ConsoleProgress:
    """Turns engine events into progress output on ``stream`` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.main_metric = "accuracy"
        self.headline_metrics: tuple[str, ...] = ()
        self.task = ""
        self._line_open = False
        self._last_draw = 0.0

    def _write_line(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\r\033[K")
            self._line_open = False
        self.stream.write(printable(text) + "\n")
        self.stream.flush()

    def _draw(self, text: str) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = shutil.get_terminal_size((100, 24)).columns - 1
        self.stream.write("\r\033[K" + printable(text, layout=False)[:width])
        self.stream.flush()
        self._line_open = True

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.StartEvent):
            self._start(event)
        elif isinstance(event, ev.DownloadEvent):
            self._download(event)
        elif isinstance(event, ev.StepEvent):
            metric = f"{event.metric_name} {event.metric:.3f}  " if event.metric is not None else ""
            loss = f"{metric_label('loss', self.task)} {shown_value('loss', self.task, event.loss)}"
            self._draw(
                f"epoch {event.epoch} step {event.step}/{event.steps}  {loss}  "
                f"{metric}grad {event.grad_norm:.2f}  {event.samples_per_s:,.0f} samples/s  "
                f"ETA {format_duration(event.eta_s)}"
            )
        elif isinstance(event, ev.EpochEvent):
            self._write_line(format_epoch(event, self.main_metric, self.headline_metrics, kind=self.task))
        elif isinstance(event, ev.StateEvent):
            self._write_line(f"[{event.state}]")
        elif isinstance(event, ev.StatusEvent):
            if event.phase == "prepare":
                self._draw(event.message)  # transient: only on a terminal
            else:
                self._write_line(event.message)
        elif isinstance(event, ev.EndEvent) and self._line_open:
            self.stream.write("\r\033[K")
            self._line_open = False
            self.stream.flush()

    def _start(self, event: ev.StartEvent) -> None:
        self.main_metric = event.main_metric
        self.headline_metrics = event.headline_metrics
        self.task = event.task
        sizes, config = event.sizes, event.config
        resumed = f", resumed at epoch {event.resumed_at_epoch}" if event.resumed_at_epoch else ""
        memory = f" (~{format_bytes(event.memory_estimate)} per step)" if event.memory_estimate else ""
        processes = f" x {event.world_size} processes" if event.world_size > 1 else ""
        self._write_line(
            f"run {event.run}: {config.get('dataset')} / {config.get('arch')} on {event.device}{processes} "
            f"({event.threads} threads{f', {event.precision} autocast' if event.precision in ('bf16', 'fp16') else ''}), "
            f"{event.parameters:,} parameters{memory}; "
            f"train {sizes.get('train', 0):,}, valid {sizes.get('valid', 0):,}, test {sizes.get('test', 0):,}{resumed}"
        )
        files = event.dataset_info.get("files")
        if isinstance(files, dict) and files:  # where each split came from, for datasets that say it
            self._write_line("data: " + ", ".join(f"{split} {where}" for split, where in files.items()))

    def _download(self, event: ev.DownloadEvent) -> None:
        total, done = event.total, event.done
        if total:
            text = f"downloading {event.label}: {format_bytes(done)} / {format_bytes(total)} ({done / total:.0%})"
        else:
            text = f"downloading {event.label}: {format_bytes(done)}"
        if self.live:
            self._draw(text)
        elif total and done >= total:
            self._write_line(text)
