"""Run events: the written format of ``events.jsonl``, one frozen dataclass per kind.

The engine builds these, :class:`workbench.runs.EventWriter` writes them (one JSON object per line,
``{"type": kind, ...fields, "time": ...}``), and every reader (the console progress, the app's run
monitor, the tests) parses them back with :func:`parse_event` or an :class:`EventReader`. A renamed
field is then an error a type checker or the first test finds, not a blank plot.

Reading is tolerant, so runs written by any workbench stay watchable: a line of an unknown kind, or
one missing a field the event cannot do without, is skipped (``None``); any other missing or
wrong-typed field falls back to an empty value (``nan``, ``0``, ``""``, ``{}``, ``None``). Writing
is strict: the constructors take every field. No torch, no Textual.

Format versions: ``0`` is the format before it was written down (no ``events_version`` key);
``1`` adds ``events_version`` and ``headline_metrics`` to the start event. Every other key is the
same in both.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar, TypeVar, Union

from workbench.headlines import LOSS_SHOWN_AS, short_name

#: The version of this format written in each start event (``events_version``).
EVENTS_VERSION = 1

#: Run states in which a training process is (or should be) alive.
ACTIVE_STATES: tuple[str, ...] = ("starting", "running", "paused")

E = TypeVar("E", bound="BaseEvent")


class EventFormatError(ValueError):
    """A line that cannot be read as the event it says it is."""


def _omit_none(**kwargs: Any) -> Any:
    """A field written only when it has a value (as the engine always did)."""
    return field(metadata={"omit_none": True}, **kwargs)


def _missing_as(value: Any) -> Any:
    """A field that lines written before it existed read as ``value``."""
    return field(default=value, metadata={"fallback": value})


class _Mismatch(Exception):
    pass


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as the JSON shape of ``hint``, or :class:`_Mismatch`."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _coerce(value, arg)
                except _Mismatch:
                    pass
        raise _Mismatch
    if isinstance(value, bool) and hint is not bool:
        raise _Mismatch  # JSON true is not the number 1 here
    if hint is float and isinstance(value, (int, float)):
        return float(value)
    if hint in (int, str, bool) and isinstance(value, hint):
        return value
    if hint is dict and isinstance(value, dict):
        return dict(value)
    if origin is dict and isinstance(value, dict):
        item = typing.get_args(hint)[1]
        return {k: _coerce(v, item) for k, v in value.items()}
    if origin is tuple and isinstance(value, (list, tuple)):
        item = typing.get_args(hint)[0]
        return tuple(_coerce(v, item) for v in value)
    raise _Mismatch


def _empty(hint: Any) -> Any:
    """What a missing or unreadable field of this type reads as."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType) and type(None) in typing.get_args(hint):
        return None
    if hint is float:
        return math.nan
    if hint is dict or origin is dict:
        return {}
    if origin is tuple:
        return ()
    return {int: 0, str: "", bool: False}.get(hint)


_SCHEMAS: dict[type, tuple[tuple[Field[Any], Any], ...]] = {}


def _schema(cls: type) -> tuple[tuple[Field[Any], Any], ...]:
    """Each field of an event class with its resolved type (worked out once per class)."""
    if cls not in _SCHEMAS:
        hints = typing.get_type_hints(cls)
        _SCHEMAS[cls] = tuple((f, hints[f.name]) for f in fields(cls))
    return _SCHEMAS[cls]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class BaseEvent:
    """What every event has: its kind (the ``type`` key) and when it happened."""

    kind: ClassVar[str]
    #: Fields without which a line is not read at all (skipped); the rest fall back.
    required: ClassVar[tuple[str, ...]] = ()

    #: Seconds since the epoch; the writer fills it in when the producer leaves it out.
    time: float | None = field(default=None, kw_only=True, metadata={"omit_none": True})

    def to_json(self) -> dict[str, Any]:
        """The JSON object of one ``events.jsonl`` line: ``type`` first, ``time`` last."""
        out: dict[str, Any] = {"type": self.kind}
        for f, _ in _schema(type(self)):
            value = getattr(self, f.name)
            if f.name == "time" or f.metadata.get("internal") or (value is None and f.metadata.get("omit_none")):
                continue
            out[f.name] = _plain(value)
        self._extra_json(out)
        if self.time is not None:
            out["time"] = self.time
        return out

    def _extra_json(self, out: dict[str, Any]) -> None:
        """Keys a kind writes beyond its plain fields."""

    @classmethod
    def parse(cls: type[E], raw: Mapping[str, Any], *, main_metric: str | None = None) -> E:
        """Read one line's object; raises :class:`EventFormatError` only when a required field is
        missing or unreadable (other fields fall back, see the module's docstring)."""
        if raw.get("type") != cls.kind:
            raise EventFormatError(f"not a {cls.kind} event: {raw.get('type')!r}")
        values: dict[str, Any] = {}
        for f, hint in _schema(cls):
            if f.metadata.get("internal"):
                continue
            try:
                values[f.name] = _coerce(raw[f.name], hint)
                continue
            except (KeyError, _Mismatch):
                pass
            if f.name in cls.required:
                raise EventFormatError(f"{cls.kind} event without a readable {f.name!r}")
            if "fallback" in f.metadata:
                values[f.name] = f.metadata["fallback"]
            elif f.default is not MISSING:
                values[f.name] = f.default
            else:
                values[f.name] = _empty(hint)
        values.update(cls._extra_fields(raw, main_metric))
        return cls(**values)

    @classmethod
    def _extra_fields(cls, raw: Mapping[str, Any], main_metric: str | None) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class StatusEvent(BaseEvent):
    """A message about the run; ``phase="prepare"`` ones are transient (loading the dataset)."""

    kind: ClassVar[str] = "status"
    phase: str | None = field(default=None, kw_only=True, metadata={"omit_none": True})
    message: str


@dataclass(frozen=True)
class DownloadEvent(BaseEvent):
    """Bytes of a dataset download so far (``total`` is ``None`` when the server did not say)."""

    kind: ClassVar[str] = "download"
    label: str
    done: int
    total: int | None


@dataclass(frozen=True)
class StartEvent(BaseEvent):
    """Training begins (or resumes): what runs where, on how much data."""

    kind: ClassVar[str] = "start"
    run: str
    config: dict[str, Any]
    task: str
    main_metric: str
    device: str
    threads: int
    precision: str
    parameters: int
    sizes: dict[str, int]
    steps_per_epoch: int
    dataset_info: dict[str, Any]
    resumed_at_epoch: int | None
    workbench_version: str
    #: The task kind's :attr:`~workbench.tasks.base.Task.headline_metrics` (empty in version 0).
    headline_metrics: tuple[str, ...] = _missing_as(())
    #: The estimated peak memory of one training step, in bytes (None in runs written before it existed).
    memory_estimate: int | None = _missing_as(None)
    #: How many processes train the run together (torchrun's WORLD_SIZE; 1 in runs written before it existed).
    world_size: int = _missing_as(1)
    events_version: int = field(default=EVENTS_VERSION, metadata={"fallback": 0})

    @classmethod
    def _extra_fields(cls, raw: Mapping[str, Any], main_metric: str | None) -> dict[str, Any]:
        # lines of version 0 without a main metric meant accuracy (the engine's first task kind)
        return {} if isinstance(raw.get("main_metric"), str) else {"main_metric": "accuracy"}


@dataclass(frozen=True)
class StepEvent(BaseEvent):
    """One log window of training steps: mean loss, max gradient norm, and the running main metric
    (written under the metric's own name, e.g. ``"accuracy": 0.71``, as it always was)."""

    kind: ClassVar[str] = "step"
    required: ClassVar[tuple[str, ...]] = ("epoch", "step", "steps", "loss")
    epoch: int
    step: int
    steps: int
    global_step: int
    loss: float
    grad_norm: float
    lr: float
    samples_per_s: float
    eta_s: float
    #: The task's main metric name and its value over the window (``None``: the task sends none).
    metric_name: str = field(metadata={"internal": True})
    metric: float | None = field(metadata={"internal": True})

    def _extra_json(self, out: dict[str, Any]) -> None:
        if self.metric is not None and self.metric_name not in out:
            out[self.metric_name] = self.metric

    @classmethod
    def _extra_fields(cls, raw: Mapping[str, Any], main_metric: str | None) -> dict[str, Any]:
        name = main_metric or ""
        value = raw.get(name) if name and name not in _own_keys(cls) else None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return {"metric_name": name, "metric": float(value) if number else None}  # type: ignore[arg-type]


@dataclass(frozen=True)
class EpochEvent(BaseEvent):
    """One epoch's summary; ``partial`` when it was cut short (a stop or the time limit)."""

    kind: ClassVar[str] = "epoch"
    required: ClassVar[tuple[str, ...]] = ("epoch",)
    epoch: int
    epochs: int
    train: dict[str, Any]
    valid: dict[str, Any]
    lr: float
    seconds: float
    samples_per_s: float
    best: bool
    partial: bool

    def history_entry(self) -> dict[str, Any]:
        """The entry of a checkpoint's ``progress.history``: the event without type and time."""
        return {k: v for k, v in self.to_json().items() if k not in ("type", "time")}


@dataclass(frozen=True)
class StateEvent(BaseEvent):
    """The run was paused or resumed."""

    kind: ClassVar[str] = "state"
    required: ClassVar[tuple[str, ...]] = ("state",)
    state: str


@dataclass(frozen=True)
class EndEvent(BaseEvent):
    """The run is over. A run that got to its final evaluation carries the results (``test`` is not
    ``None``); a failed one only its state and message."""

    kind: ClassVar[str] = "end"
    required: ClassVar[tuple[str, ...]] = ("state",)
    state: str
    message: str
    test: dict[str, Any] | None = _omit_none(default=None)
    valid: dict[str, Any] | None = _omit_none(default=None)
    best_epoch: int | None = None
    checkpoint: str | None = _omit_none(default=None)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.test is None:
            out.pop("best_epoch", None)
        return out


@dataclass(frozen=True)
class SystemEvent(BaseEvent):
    """What the training process costs the machine, sampled every few seconds
    (:mod:`workbench.system_metrics`). Runs written before it existed have none."""

    kind: ClassVar[str] = "system"
    #: CPU time over wall time since the last sample, in percent of one core (200 = two cores busy).
    cpu_percent: float
    #: Resident memory of the process now, and its peak so far (None where the system does not say).
    rss_bytes: int | None
    peak_rss_bytes: int | None
    #: Logical CPUs of the machine.
    cpus: int
    #: Per GPU: ``index``; from torch for the device trained on, ``name``, ``allocated_bytes``,
    #: ``max_reserved_bytes``, ``total_bytes``; from NVML where installed, ``utilization`` (percent),
    #: ``used_bytes`` (all processes) and ``total_bytes``.
    gpus: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class MemoryEvent(BaseEvent):
    """Memory across time (:mod:`workbench.memory`): on a fixed probe batch, the mean norm of the
    loss's gradient with respect to the hidden state at each lag back from the last step (``lags[0]``
    is the last step). Epoch 0 is the model before training. Runs written before it have none."""

    kind: ClassVar[str] = "memory"
    required: ClassVar[tuple[str, ...]] = ("epoch", "lags")
    epoch: int
    global_step: int
    lags: tuple[float, ...]
    #: The recurrent cell probed (its top layer, forward direction) and the probe's size.
    cell: str
    examples: int


Event = (StartEvent | StepEvent | EpochEvent | EndEvent | StateEvent | StatusEvent | DownloadEvent | SystemEvent
         | MemoryEvent)

#: Every event class by its ``type`` key.
EVENT_TYPES: dict[str, type[BaseEvent]] = {
    cls.kind: cls for cls in (StartEvent, StepEvent, EpochEvent, EndEvent, StateEvent, StatusEvent, DownloadEvent,
                              SystemEvent, MemoryEvent)
}


def _own_keys(cls: type[BaseEvent]) -> frozenset[str]:
    return frozenset({"type", "time"} | {f.name for f, _ in _schema(cls)})


def parse_event(raw: Any, main_metric: str | None = None) -> Event | None:
    """One line's object as its event, or ``None`` for anything this workbench cannot read
    (not an object, an unknown kind, a required field missing). ``main_metric`` names the step
    events' running metric (the run's start event says which)."""
    if not isinstance(raw, Mapping):
        return None
    cls = EVENT_TYPES.get(raw.get("type"))  # type: ignore[arg-type]
    if cls is None:
        return None
    try:
        return cls.parse(raw, main_metric=main_metric)  # type: ignore[return-value]
    except EventFormatError:
        return None


class EventReader:
    """Parses one run's lines in order, remembering what later lines need from the start event."""

    def __init__(self) -> None:
        self.main_metric: str | None = None

    def __call__(self, raw: Any) -> Event | None:
        event = parse_event(raw, self.main_metric)
        if isinstance(event, StartEvent):
            self.main_metric = event.main_metric
        return event


# -- one way to show them ------------------------------------------------------------------------
def format_duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_epoch(event: EpochEvent, main_metric: str, headline_metrics: Sequence[str] = (), *,
                 compact: bool = False, kind: str | None = None) -> str:
    """The one-line summary of an epoch: losses, the main metric on both splits, the other headline
    metrics on the validation split, speed. ``compact`` (the app's log pane) leaves out the seconds.
    A ``kind`` whose loss is shown converted (a language model's, in bits per character) names it so."""
    train, valid = event.train, event.valid
    loss_name, factor = LOSS_SHOWN_AS.get(kind or "", ("loss", 1.0))
    loss_name = short_name("bits_per_char") if loss_name == "bits/char" else loss_name
    parts = [f"epoch {event.epoch}/{event.epochs}", f"{loss_name} {train.get('loss', math.nan) * factor:.4f}"]
    if main_metric != "loss" and _number(train.get(main_metric)):
        parts.append(f"{main_metric} {train[main_metric]:.4f}")
    if valid:
        parts.append(f"valid {loss_name} {valid.get('loss', math.nan) * factor:.4f}")
        if main_metric != "loss" and _number(valid.get(main_metric)):
            parts.append(f"valid {main_metric} {valid[main_metric]:.4f}")
        for name in headline_metrics:
            if name not in (main_metric, "loss") and short_name(name) != loss_name and _number(valid.get(name)):
                parts.append(f"{short_name(name)} {valid[name]:.4f}")
    if compact:
        parts.append(f"{event.samples_per_s:,.0f}/s")
    else:
        parts.append(f"{event.samples_per_s:,.0f} samples/s")
        parts.append(f"{event.seconds:.1f}s")
    if event.partial:
        parts.append("(partial epoch)")
    if event.best:
        parts.append("*best")
    return "  ".join(parts)


def _size(value: Any) -> str:
    """Bytes as a short size: ``512M``, ``1.2G``."""
    if not _number(value):
        return "?"
    if value >= 10 * 2**30:
        return f"{value / 2**30:.0f}G"
    if value >= 2**30:
        return f"{value / 2**30:.1f}G"
    return f"{value / 2**20:.0f}M"


def format_system(event: SystemEvent) -> str:
    """The compact line of a system sample, as the app's Train screen shows it:
    ``cpu 180% mem 512M gpu0 45% 1.2G/80G`` (utilisation only where NVML reports it)."""
    parts = []
    if _number(event.cpu_percent) and math.isfinite(event.cpu_percent):
        parts.append(f"cpu {event.cpu_percent:.0f}%")
    if event.rss_bytes is not None:
        parts.append(f"mem {_size(event.rss_bytes)}")
    for gpu in event.gpus:
        if not isinstance(gpu, Mapping):
            continue
        text = f"gpu{gpu.get('index', '')}"
        if _number(gpu.get("utilization")):
            text += f" {gpu['utilization']:.0f}%"
        used = gpu.get("allocated_bytes", gpu.get("used_bytes"))
        if _number(used):
            total = gpu.get("total_bytes")
            text += f" {_size(used)}" + (f"/{_size(total)}" if _number(total) else "")
        parts.append(text)
    return " ".join(parts)
