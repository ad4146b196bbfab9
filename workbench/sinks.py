"""Event sinks: plugins (hook ``workbench_event_sinks``) that receive a run's events as they happen.

A run asks for sinks by name with the train parameter ``sinks`` (``--set sinks=csv,mytracker``);
:func:`sink_names` reads it and :func:`check_sink_names` refuses an unknown name before the run starts.
:class:`EventSinks` creates the sinks when the run's start event comes (so a sink's first event is
always a :class:`~workbench.events.StartEvent`), hands each of them every event after it, in order,
and closes them at the end. A sink that raises, in ``create``, a call or ``close``, is dropped with
one sentence naming it (the engine shows it as a status line) and the run goes on: a broken tracker
must never cost a training run. Sinks are called in the training thread without a time limit, so a
sink that does slow work (network) should queue it. ``workbench runs export`` replays a finished
run's ``events.jsonl`` through the same class. No torch here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.api import EventSink, EventSinkSpec, resolve_callable
from workbench.errors import WorkbenchError
from workbench.events import Event, StartEvent
from workbench.registry import Registry


def sink_names(value: str) -> list[str]:
    """The names in a ``sinks`` value (``"csv, mytracker"``), in order, each once."""
    return list(dict.fromkeys(name.strip() for name in str(value).split(",") if name.strip()))


def check_sink_names(registry: Registry, value: str) -> None:
    """Raise a one-line :class:`WorkbenchError` for the first name no plugin provides, or whose
    sink needs a package that is not installed."""
    for name in sink_names(value):
        check_sink(registry.sink(name))


def check_sink(spec: EventSinkSpec) -> None:
    """Refuse a sink whose ``requires`` are not importable here, naming what to install."""
    missing = [package for module, package in spec.requires.items() if not _importable(module)]
    if missing:
        raise WorkbenchError(f"event sink {spec.name!r} needs {', '.join(missing)}: pip install {' '.join(missing)}")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class EventSinks:
    """The sinks one run asked for; call :meth:`send` with every event and :meth:`close` once."""

    def __init__(self, registry: Registry, names: Iterable[str], run_dir: Path) -> None:
        self.specs: list[EventSinkSpec] = [registry.sink(name) for name in names]
        for spec in self.specs:
            check_sink(spec)
        self.run_dir = run_dir
        self.active: list[tuple[str, EventSink]] = []
        self.opened = False

    def _open(self) -> list[str]:
        self.opened = True
        problems = []
        for spec in self.specs:
            options: dict[str, Any] = {param.name: param.default for param in spec.params}
            try:
                create = resolve_callable(spec.create, f"event sink {spec.name!r} create")
                self.active.append((spec.name, create(self.run_dir, options)))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a broken plugin never stops the run, sys.exit() included
                problems.append(f"event sink {spec.name!r} could not start ({_describe(exc)}); "
                                "the run goes on without it")
        return problems

    def send(self, event: Event) -> list[str]:
        """Hand ``event`` to every working sink; returns a sentence for each sink that failed (and
        is now dropped). Nothing is sent before the first start event."""
        problems: list[str] = []
        if not self.opened:
            if not isinstance(event, StartEvent):
                return problems
            problems += self._open()
        for name, sink in list(self.active):
            try:
                sink(event)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                self.active.remove((name, sink))
                problems.append(f"event sink {name!r} failed on a {event.kind} event ({_describe(exc)}) and "
                                "is disabled; the run goes on without it")
        return problems

    def close(self) -> list[str]:
        """Close every sink (each at most once); a sentence for each that failed to."""
        problems: list[str] = []
        active, self.active = self.active, []
        for name, sink in active:
            closer = getattr(sink, "close", None)
            if closer is None:
                continue
            try:
                closer()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                problems.append(f"event sink {name!r} failed to close ({_describe(exc)})")
        return problems


def replay(registry: Registry, names: Iterable[str], events: Iterable[Event], output: Path) -> list[str]:
    """Feed recorded ``events`` to the named sinks writing into ``output`` (``workbench runs
    export``); returns what went wrong, as sentences. Raises when no start event was recorded."""
    sinks = EventSinks(registry, names, output)
    problems: list[str] = []
    try:
        for event in events:
            problems += sinks.send(event)
    finally:
        problems += sinks.close()
    if not sinks.opened:
        raise WorkbenchError("the run has no start event in its events.jsonl: nothing to export")
    return problems

