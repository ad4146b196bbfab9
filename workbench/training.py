"""Pieces of the training loop that need no torch: typed options and early stopping.

:class:`TrainOptions` is ``config.train`` as a typed object, with every default taken from the
parameter schema (:data:`workbench.config.TRAIN_PARAMS`), so the engine reads ``options.lr`` and a
misspelt option is an error, not a silent default. :class:`EarlyStopping` keeps the state of the
patience rule and says why it stopped, like Lightning's ``EarlyStopping`` callback.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from workbench.config import TRAIN_PARAMS


@dataclass(frozen=True)
class TrainOptions:
    """The trainer's parameters (one field per entry of ``TRAIN_PARAMS``; a test keeps them equal)."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    momentum: float
    weight_decay: float
    schedule: str
    step_size: int
    gamma: float
    class_weight: str
    logit_adjustment: float
    clip_grad_norm: float
    patience: int
    seed: int
    threads: int
    log_every: int
    max_minutes: float
    top_k: int
    limit: int
    precision: str
    max_tokens: int
    allow_large: bool
    deterministic: bool
    compile: bool
    memory_every: int
    sinks: str

    @classmethod
    def from_config(cls, train: Mapping[str, Any]) -> TrainOptions:
        """``config.train`` (resolved, or an older run's, which may lack newer options) over the
        schema's defaults; keys this version does not know are left out."""
        values = {param.name: param.default for param in TRAIN_PARAMS}
        names = {f.name for f in fields(cls)}
        values.update((key, value) for key, value in train.items() if key in names)
        return cls(**values)


class EarlyStopping:
    """Stop after ``patience`` epochs without improvement of the monitored score (0: never).

    :meth:`update` after each epoch says whether the score improved; :attr:`reason` is set once the
    rule says stop. :meth:`state_dict` goes into each checkpoint so a resumed run continues counting.
    """

    def __init__(self, patience: int, higher_is_better: bool) -> None:
        self.patience = patience
        self.higher_is_better = higher_is_better
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        #: Epochs since the best one.
        self.wait_count = 0
        #: Why training should stop, or ``None`` while it should go on.
        self.reason: str | None = None

    def improves(self, score: float) -> bool:
        if self.best_score is None:
            return True
        return score > self.best_score if self.higher_is_better else score < self.best_score

    def update(self, score: float, epoch: int) -> bool:
        """Record one epoch's score; True when it is the best so far."""
        improved = self.improves(score)
        if improved:
            self.best_score, self.best_epoch, self.wait_count = float(score), epoch, 0
        else:
            self.wait_count += 1
        self.reason = None
        if self.patience and self.wait_count >= self.patience:
            self.reason = f"early stop: no validation improvement for {self.wait_count} epochs"
        return improved

    @property
    def should_stop(self) -> bool:
        return self.reason is not None

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "wait_count": self.wait_count,
                "reason": self.reason}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s output. The patience stays this run's own (a resumed
        run may be given another)."""
        score = state.get("best_score")
        self.best_score = float(score) if score is not None else None
        self.best_epoch = state.get("best_epoch")
        self.wait_count = int(state.get("wait_count") or 0)
        self.reason = state.get("reason")

    @staticmethod
    def state_from_progress(progress: Mapping[str, Any]) -> dict[str, Any]:
        """The state in a checkpoint's ``progress``: its ``early_stopping`` entry, or, in checkpoints
        written before it existed, the ``best_metric`` / ``best_epoch`` / ``bad_epochs`` keys."""
        state = progress.get("early_stopping")
        if isinstance(state, Mapping):
            return dict(state)
        return {"best_score": progress.get("best_metric"), "best_epoch": progress.get("best_epoch"),
                "wait_count": int(progress.get("bad_epochs", 0) or 0), "reason": None}


class LossWatch:
    """Notices a training loss that climbs far above where it started (a learning rate too high
    with clipping off), which NaN detection alone misses: the run goes on, but says so once.

    The first logged window's mean loss is the reference; a later window at ``factor`` times it
    (and at least ``min_rise`` above it, so tiny losses do not trip it) gives :attr:`warning`.
    """

    def __init__(self, factor: float = 10.0, min_rise: float = 1.0) -> None:
        self.factor = factor
        self.min_rise = min_rise
        self.first: float | None = None
        #: The sentence to show, once the loss has climbed; None while it has not.
        self.warning: str | None = None

    def update(self, loss: float) -> str | None:
        """Record one window's mean loss; the warning the first time the climb is seen, else None."""
        if self.first is None:
            self.first = loss
            return None
        if self.warning is not None or self.first <= 0:
            return None
        if loss >= self.first * self.factor and loss - self.first >= self.min_rise:
            self.warning = (f"the training loss rose to {loss / self.first:.0f}x its first value "
                            f"({self.first:.3g} -> {loss:.3g}): lower lr or set clip_grad_norm")
            return self.warning
        return None


class StepInterrupted(KeyboardInterrupt):
    """Raised in the main thread by :class:`StopWatchdog` (a KeyboardInterrupt, so whatever treats
    Ctrl-C as "stopped" treats it so too)."""


def interrupt_thread(thread_id: int) -> None:
    """Raise :class:`StepInterrupted` in the thread ``thread_id`` at its next Python instruction.
    Unlike ``_thread.interrupt_main`` this goes through no signal handler, so the CLI's SIGINT
    handler (which only counts presses) cannot swallow it."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(StepInterrupted))


class StopWatchdog:
    """Ends a step that outlasts a stop request.

    The epoch loop checks for stop requests (the app's stop, SIGTERM, ``max_minutes``) between steps,
    so a single step of minutes (a huge model) would ignore them. This thread asks ``requested`` a few
    times a second; when it names a reason while the loop is :meth:`arm`-ed and the loop has not
    :meth:`acknowledge`-d it within ``grace`` seconds, it interrupts the main thread
    (:class:`StepInterrupted` at the next Python instruction: between two torch operations, not inside
    one). Checkpoint writes are never armed, so the last finished epoch's checkpoint stays intact.
    """

    def __init__(self, requested: Callable[[], str | None], grace: float = 5.0, interval: float = 0.2) -> None:
        self.requested = requested
        self.grace = grace
        self.interval = interval
        #: Why the watchdog interrupted the main thread; None while it has not.
        self.fired: str | None = None
        self._lock = threading.Lock()
        self._armed = False
        self._acknowledged = False
        self._since: float | None = None
        self._armed_at = 0.0
        self._done = threading.Event()
        self._target = threading.get_ident()  # the thread that made the watchdog: the training loop
        self._thread = threading.Thread(target=self._watch, name="workbench-stop-watchdog", daemon=True)

    def __enter__(self) -> StopWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._armed = False
        self._done.set()
        self._thread.join(timeout=2)

    def arm(self, armed: bool = True) -> None:
        """Whether an interrupt may land now (steps and evaluation: yes; checkpoint writes: no)."""
        with self._lock:
            if armed and not self._armed:
                self._armed_at = time.monotonic()  # the grace period starts again for each armed stretch
            self._armed = armed

    def acknowledge(self) -> None:
        """The loop has seen the stop and winds down on its own; no interrupt needed."""
        with self._lock:
            self._acknowledged = True

    def _watch(self) -> None:
        while not self._done.wait(self.interval):
            try:
                reason = self.requested()
            except Exception:  # a control file being rewritten; ask again next time
                continue
            if reason is None:
                continue
            now = time.monotonic()
            if self._since is None:
                self._since = now
            with self._lock:
                waited = now - max(self._since, self._armed_at)
                if waited >= self.grace and self._armed and not self._acknowledged:
                    self.fired = reason
                    self._armed = False
                    interrupt_thread(self._target)
                    return
