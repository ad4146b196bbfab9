"""What the app knows about one run, built from its ``events.jsonl`` (no Textual, no torch).

A :class:`RunMonitor` follows a run's event file on the app's timer and keeps only bounded buffers,
so watching a run for days costs the same memory as watching it for a minute. ``version`` changes
whenever something visible changed, so views redraw only then.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench import events as ev
from workbench.events import ACTIVE_STATES, format_duration, format_epoch
from workbench.position import RunPosition
from workbench.runs import EventFollower, Run

__all__ = ["RunMonitor", "downsample", "format_duration"]

#: Points kept per step-level series (loss, gradient norm); older ones are thinned, not dropped.
STEP_POINTS = 4000
LOG_LINES = 400


def downsample(xs: Sequence[float], ys: Sequence[float], width: int) -> tuple[list[float], list[float]]:
    """At most ``width`` points: the mean of each bucket of consecutive points (keeps the shape,
    drops the noise a terminal cannot show anyway). Missing values (NaN) are left out."""
    n = len(xs)
    if width <= 0 or n <= width:
        kept = [(x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(y)]
        return [x for x, _ in kept], [y for _, y in kept]
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(width):
        lo = b * n // width
        hi = max(lo + 1, (b + 1) * n // width)
        chunk_y = [y for y in ys[lo:hi] if math.isfinite(y)]
        if not chunk_y:
            continue
        out_x.append(sum(xs[lo:hi]) / (hi - lo))
        out_y.append(sum(chunk_y) / len(chunk_y))
    return out_x, out_y


class RunMonitor:
    """Follows one run: curves, progress, state and a log, updated by :meth:`poll`."""

    def __init__(self, run: Run, step_points: int = STEP_POINTS) -> None:
        self.run = run
        self._follower = EventFollower(run.events_path)
        self.step_points = step_points
        self.step_x: deque[float] = deque()
        self.step_loss: deque[float] = deque()
        self.step_grad: deque[float] = deque()
        #: The running main metric of each log window (NaN when the engine does not send one).
        self.step_metric: deque[float] = deque()
        self._stride = 1  # keep every n-th step event once the buffer has been thinned
        self._skipped = 0
        self.epochs: deque[ev.EpochEvent] = deque(maxlen=10_000)
        #: Memory-across-time probes (workbench.memory), one per probed epoch.
        self.memory: deque[ev.MemoryEvent] = deque(maxlen=10_000)
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        #: Lines ever logged (the deque forgets old ones); views compare it with what they drew.
        self.log_count = 0
        self.main_metric = "accuracy"
        self.headline_metrics: tuple[str, ...] = ()
        self.task = ""
        self.state = "unknown"
        self.message = ""
        self.config: dict[str, Any] = {}
        self.start: ev.StartEvent | None = None
        self.last_step: ev.StepEvent | None = None
        #: The latest CPU/memory/GPU sample (None for runs written before system events existed).
        self.system: ev.SystemEvent | None = None
        self.end: ev.EndEvent | None = None
        self.version = 0
        self._last_status = 0.0
        self.samples_per_s: float | None = None

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def label(self) -> str:
        """A short name for plot legends: the run's time and architecture when the id has them."""
        parts = self.run.id.split("-")
        if len(parts) >= 4 and parts[0].isdigit() and parts[1].isdigit():
            return f"{parts[1]} {parts[-1]}"
        return self.run.id[-14:]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def add_log(self, line: str) -> None:
        self.log.append(line)
        self.log_count += 1
        self.version += 1

    # -- reading ---------------------------------------------------------------------------
    def poll(self, status_every: float = 0.5) -> bool:
        """Read new events (and the status file now and then); True when something changed."""
        changed = False
        for event in self._follower.read_events():
            self._apply(event)
            changed = True
        now = time.monotonic()
        if (now - self._last_status >= status_every or changed) and self.run.path.exists():
            self._last_status = now
            status = self.run.status()
            state = status.get("state", "unknown")
            if state != self.state:
                if state == "interrupted":
                    self.add_log("the training process ended without finishing (killed or machine lost)")
                self.state = state
                self.message = status.get("message") or self.message
                changed = True
        if changed:
            self.version += 1
        return changed

    def _apply(self, event: ev.Event) -> None:
        if isinstance(event, ev.StartEvent):
            self._apply_start(event)
        elif isinstance(event, ev.StepEvent):
            self.last_step = event
            self._note_rate(event.samples_per_s)
            self._add_step(event)
        elif isinstance(event, ev.EpochEvent):
            self.epochs.append(event)
            self._note_rate(event.samples_per_s)
            self.add_log(format_epoch(event, self.main_metric, self.headline_metrics, compact=True, kind=self.task))
        elif isinstance(event, ev.MemoryEvent):
            self.memory.append(event)
        elif isinstance(event, ev.StateEvent):
            self.state = event.state
            self.add_log(f"[{self.state}]")
        elif isinstance(event, ev.StatusEvent):
            self.add_log(event.message)
        elif isinstance(event, ev.SystemEvent):
            self.system = event
        elif isinstance(event, ev.DownloadEvent):
            self.add_log(f"downloading {event.label}: {event.done} / {event.total or '?'} bytes")
        elif isinstance(event, ev.EndEvent):
            self._apply_end(event)

    def _apply_start(self, event: ev.StartEvent) -> None:
        self.start = event
        self.config = event.config
        self.main_metric = event.main_metric
        self.headline_metrics = event.headline_metrics
        self.task = event.task
        sizes = event.sizes
        self.add_log(
            f"start: {self.config.get('dataset')} / {self.config.get('arch')} on {event.device} "
            f"({event.threads} threads), {event.parameters:,} parameters; "
            f"train {sizes.get('train', 0):,} valid {sizes.get('valid', 0):,} test {sizes.get('test', 0):,}"
        )

    def _apply_end(self, event: ev.EndEvent) -> None:
        self.end = event
        self.state = event.state
        self.message = event.message
        test = event.test or {}
        shown = "  ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
        self.add_log(f"end: {self.state}" + (f" ({self.message})" if self.message else ""))
        if shown:
            self.add_log(f"test: {shown}")

    def _note_rate(self, samples_per_s: float) -> None:
        if math.isfinite(samples_per_s):
            self.samples_per_s = samples_per_s

    def test_metrics(self) -> dict[str, Any]:
        """The final test metrics, once the run has ended with an evaluation (else empty)."""
        return dict(self.end.test or {}) if self.end is not None else {}

    def _add_step(self, event: ev.StepEvent) -> None:
        self._skipped += 1
        if self._skipped < self._stride:
            return
        self._skipped = 0
        self.step_x.append((event.epoch - 1) + event.step / max(event.steps, 1))
        self.step_loss.append(event.loss)
        self.step_grad.append(event.grad_norm)
        self.step_metric.append(event.metric if event.metric is not None else math.nan)
        if len(self.step_x) >= self.step_points:
            # thin to every second point and keep only every second new one from now on
            for buffer in (self.step_x, self.step_loss, self.step_grad, self.step_metric):
                kept = list(buffer)[::2]
                buffer.clear()
                buffer.extend(kept)
            self._stride *= 2

    # -- views -----------------------------------------------------------------------------
    def epoch_series(self, split: str, key: str) -> tuple[list[float], list[float]]:
        xs: list[float] = []
        ys: list[float] = []
        for event in self.epochs:
            value = (event.valid if split == "valid" else event.train).get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                xs.append(float(event.epoch))
                ys.append(float(value))
        return xs, ys

    def position(self) -> RunPosition:
        """How far the run got, by the one definition every view uses (:mod:`workbench.position`)."""
        epochs = int(self.config.get("train", {}).get("epochs") or 0)
        position = RunPosition.from_events(epochs, self.epochs, self.last_step)
        if not position.steps and self.start is not None:
            position = RunPosition(epochs, position.epochs_done, 0, self.start.steps_per_epoch)
        return position

    def progress(self) -> dict[str, Any]:
        """Position, fraction done, samples/s and ETA for the progress line."""
        position = self.position()
        last_step = self.last_step
        eta = last_step.eta_s if self.state == "running" and last_step and math.isfinite(last_step.eta_s) else None
        best = None
        best_events = [e for e in self.epochs if e.best]
        if best_events:
            valid = best_events[-1].valid or best_events[-1].train
            best = valid.get(self.main_metric)
        return {
            "position": position, "fraction": position.fraction,
            "samples_per_s": self.samples_per_s, "eta_s": eta, "best": best,
        }

    def log_path(self) -> Path:
        return self.run.path / "train.log"

    def log_tail(self, lines: int = 8) -> list[str]:
        """The last lines of the training process's own output (where a crash leaves its traceback)."""
        try:
            text = self.log_path().read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]
