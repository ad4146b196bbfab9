"""Console progress for headless training: a live line on a terminal, plain lines in a log."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


class ConsoleProgress:
    """Turns engine events into progress output on ``stream`` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.main_metric = "accuracy"
        self._line_open = False
        self._last_draw = 0.0

    def _write_line(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\r\033[K")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _draw(self, text: str) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = shutil.get_terminal_size((100, 24)).columns - 1
        self.stream.write("\r\033[K" + text[:width])
        self.stream.flush()
        self._line_open = True

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "start":
            self.main_metric = event.get("main_metric", "accuracy")
            sizes = event["sizes"]
            config = event["config"]
            resumed = f", resumed at epoch {event['resumed_at_epoch']}" if event.get("resumed_at_epoch") else ""
            self._write_line(
                f"run {event['run']}: {config['dataset']} / {config['arch']} on {event['device']} "
                f"({event['threads']} threads), {event['parameters']:,} parameters; "
                f"train {sizes['train']:,}, valid {sizes['valid']:,}, test {sizes['test']:,}{resumed}"
            )
        elif kind == "download":
            total = event.get("total")
            done = event["done"]
            if total:
                text = f"downloading {event['label']}: {format_bytes(done)} / {format_bytes(total)} ({done / total:.0%})"
            else:
                text = f"downloading {event['label']}: {format_bytes(done)}"
            if self.live:
                self._draw(text)
            elif total and done >= total:
                self._write_line(text)
        elif kind == "step":
            metric = event.get(self.main_metric)
            shown = f"{self.main_metric} {metric:.3f}  " if isinstance(metric, float) else ""
            self._draw(
                f"epoch {event['epoch']} step {event['step']}/{event['steps']}  loss {event['loss']:.4f}  "
                f"{shown}grad {event['grad_norm']:.2f}  {event['samples_per_s']:,.0f} samples/s  "
                f"ETA {format_duration(event['eta_s'])}"
            )
        elif kind == "epoch":
            train = event["train"]
            valid = event.get("valid") or {}
            metric = self.main_metric
            parts = [f"epoch {event['epoch']}/{event['epochs']}", f"loss {train['loss']:.4f}"]
            if metric in train:
                parts.append(f"{metric} {train[metric]:.4f}")
            if valid:
                parts.append(f"valid loss {valid.get('loss', float('nan')):.4f}")
                if metric in valid:
                    parts.append(f"valid {metric} {valid[metric]:.4f}")
                if "balanced_accuracy" in valid:
                    parts.append(f"balanced {valid['balanced_accuracy']:.4f}")
            parts.append(f"{event['samples_per_s']:,.0f} samples/s")
            parts.append(f"{event['seconds']:.1f}s")
            if event.get("partial"):
                parts.append("(partial epoch)")
            if event.get("best"):
                parts.append("*best")
            self._write_line("  ".join(parts))
        elif kind == "state":
            self._write_line(f"[{event['state']}]")
        elif kind == "status":
            if event.get("phase") == "prepare":
                self._draw(event["message"])  # transient: only on a terminal
            else:
                self._write_line(event["message"])
        elif kind == "end":
            if self._line_open:
                self.stream.write("\r\033[K")
                self._line_open = False
                self.stream.flush()
