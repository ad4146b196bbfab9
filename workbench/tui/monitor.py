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

from workbench.runs import EventFollower, Run

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


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


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
        self.epochs: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        #: Lines ever logged (the deque forgets old ones); views compare it with what they drew.
        self.log_count = 0
        self.main_metric = "accuracy"
        self.task = ""
        self.state = "unknown"
        self.message = ""
        self.config: dict[str, Any] = {}
        self.start: dict[str, Any] = {}
        self.last_step: dict[str, Any] = {}
        self.end: dict[str, Any] | None = None
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
        return self.state in ("starting", "running", "paused")

    def add_log(self, line: str) -> None:
        self.log.append(line)
        self.log_count += 1
        self.version += 1

    # -- reading ---------------------------------------------------------------------------
    def poll(self, status_every: float = 0.5) -> bool:
        """Read new events (and the status file now and then); True when something changed."""
        changed = False
        for event in self._follower.read_new():
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

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "start":
            self.start = event
            self.config = event.get("config", {})
            self.main_metric = event.get("main_metric", self.main_metric)
            self.task = event.get("task", "")
            sizes = event.get("sizes", {})
            self.add_log(
                f"start: {self.config.get('dataset')} / {self.config.get('arch')} on {event.get('device')} "
                f"({event.get('threads')} threads), {event.get('parameters', 0):,} parameters; "
                f"train {sizes.get('train', 0):,} valid {sizes.get('valid', 0):,} test {sizes.get('test', 0):,}"
            )
        elif kind == "step":
            self.last_step = event
            self.samples_per_s = event.get("samples_per_s")
            self._add_step(event)
        elif kind == "epoch":
            self.epochs.append(event)
            self.samples_per_s = event.get("samples_per_s", self.samples_per_s)
            self.add_log(self._epoch_line(event))
        elif kind == "state":
            self.state = event.get("state", self.state)
            self.add_log(f"[{self.state}]")
        elif kind == "status":
            self.add_log(str(event.get("message", "")))
        elif kind == "download":
            total = event.get("total")
            self.add_log(f"downloading {event.get('label')}: {event.get('done')} / {total or '?'} bytes")
        elif kind == "end":
            self.end = event
            self.state = event.get("state", self.state)
            self.message = event.get("message", "")
            test = event.get("test") or {}
            shown = "  ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))
            self.add_log(f"end: {self.state}" + (f" ({self.message})" if self.message else ""))
            if shown:
                self.add_log(f"test: {shown}")

    def _add_step(self, event: dict[str, Any]) -> None:
        self._skipped += 1
        if self._skipped < self._stride:
            return
        self._skipped = 0
        steps = max(int(event.get("steps", 1)), 1)
        x = (int(event.get("epoch", 1)) - 1) + int(event.get("step", 0)) / steps
        self.step_x.append(x)
        self.step_loss.append(float(event.get("loss", math.nan)))
        self.step_grad.append(float(event.get("grad_norm", math.nan)))
        metric = event.get(self.main_metric)
        self.step_metric.append(float(metric) if isinstance(metric, (int, float)) else math.nan)
        if len(self.step_x) >= self.step_points:
            # thin to every second point and keep only every second new one from now on
            for buffer in (self.step_x, self.step_loss, self.step_grad, self.step_metric):
                kept = list(buffer)[::2]
                buffer.clear()
                buffer.extend(kept)
            self._stride *= 2

    def _epoch_line(self, event: dict[str, Any]) -> str:
        train = event.get("train", {})
        valid = event.get("valid") or {}
        metric = self.main_metric
        parts = [f"epoch {event.get('epoch')}/{event.get('epochs')}", f"loss {train.get('loss', math.nan):.4f}"]
        if metric in train:
            parts.append(f"{metric} {train[metric]:.4f}")
        if valid:
            parts.append(f"valid loss {valid.get('loss', math.nan):.4f}")
            if metric in valid:
                parts.append(f"valid {metric} {valid[metric]:.4f}")
        parts.append(f"{event.get('samples_per_s', 0):,.0f}/s")
        if event.get("best"):
            parts.append("*best")
        return "  ".join(parts)

    # -- views -----------------------------------------------------------------------------
    def epoch_series(self, split: str, key: str) -> tuple[list[float], list[float]]:
        xs: list[float] = []
        ys: list[float] = []
        for event in self.epochs:
            value = (event.get(split) or {}).get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                xs.append(float(event["epoch"]))
                ys.append(float(value))
        return xs, ys

    def progress(self) -> dict[str, Any]:
        """Epoch, step, fraction done, samples/s and ETA for the progress line."""
        epochs = int(self.config.get("train", {}).get("epochs") or 0)
        epoch = int(self.last_step.get("epoch", 0))
        step = int(self.last_step.get("step", 0))
        steps = int(self.last_step.get("steps", self.start.get("steps_per_epoch", 0)) or 0)
        if self.epochs:
            last = self.epochs[-1]
            if int(last.get("epoch", 0)) >= epoch:
                epoch, step = int(last["epoch"]), steps
        done = ((epoch - 1) + step / steps) / epochs if epochs and steps and epoch else 0.0
        if self.state == "finished":
            done = 1.0
        eta = self.last_step.get("eta_s") if self.active else None
        best = None
        if self.epochs:
            best_events = [e for e in self.epochs if e.get("best")]
            if best_events:
                valid = best_events[-1].get("valid") or best_events[-1].get("train") or {}
                best = valid.get(self.main_metric)
        return {
            "epoch": epoch, "epochs": epochs, "step": step, "steps": steps, "fraction": max(0.0, min(1.0, done)),
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
