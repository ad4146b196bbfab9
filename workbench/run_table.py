"""One row per run, as ``workbench runs`` and the app's Runs screen list them (no torch, no Textual).

A row holds what a list of runs shows: id, state, how far it got, dataset, architecture, time
trained, parameter count and the main metric (on the test split when the run was evaluated, else
its best on validation). Everything is read from what the run folder already stores: the
parameter count and the task kind from the ``start`` event at the head of ``events.jsonl``, the
test metric from ``results.json``, the rest from ``config.json`` and ``status.json``. No
checkpoint is loaded. :class:`RowCache` keeps rows by the files' modification times, so listing
200 runs every 2 s costs a few ``stat`` calls per run when nothing changed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.events import ACTIVE_STATES, format_duration
from workbench.headlines import metric_label, short_name, shown_value
from workbench.position import RunPosition
from workbench.runs import Run

__all__ = ["LOWER_IS_BETTER", "SORTS", "RowCache", "RunRow", "filter_rows", "format_parameters", "read_row",
           "sort_rows"]

#: Metrics where a smaller value is the better one (everything else: larger is better).
LOWER_IS_BETTER = frozenset({"loss", "perplexity", "bits_per_char"})
#: How far into ``events.jsonl`` the ``start`` event is looked for (it is the first or second line).
_HEAD_BYTES = 256 * 1024
#: Shown where a value is not known.
UNKNOWN = "-"


@dataclass(frozen=True)
class RunRow:
    """What a list of runs shows about one run; ``None`` where the folder does not say."""

    id: str
    state: str
    progress: str
    dataset: str | None
    arch: str | None
    #: Wall-clock time from start to the last status update.
    seconds: float | None
    parameters: int | None
    #: The run's main metric (``loss`` for a language model) and the task kind it belongs to.
    metric: str | None
    kind: str | None
    #: The metric's value and where it comes from: "test" (results.json) or "valid" (best so far).
    value: float | None
    split: str | None
    reason: str | None = None
    summary: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    @property
    def duration(self) -> str:
        return format_duration(self.seconds) if self.seconds is not None else UNKNOWN

    @property
    def params(self) -> str:
        return format_parameters(self.parameters)

    def metric_text(self, with_split: bool = True) -> str:
        """``acc 0.8000 t`` (test) or ``acc 0.8301 v`` (best on validation); ``-`` when unknown."""
        if self.metric is None or self.value is None:
            return UNKNOWN
        name = short_name(metric_label(self.metric, self.kind))
        name = {"accuracy": "acc", "bits/char": "bpc"}.get(name, name)
        text = f"{name} {shown_value(self.metric, self.kind, self.value)}"
        return f"{text} {(self.split or '?')[0]}" if with_split else text

    def cells(self) -> dict[str, str]:
        """Column name -> the text a table shows."""
        return {"run": self.id, "state": self.state, "epochs": self.progress or UNKNOWN,
                "dataset": self.dataset or UNKNOWN, "arch": self.arch or UNKNOWN, "time": self.duration,
                "params": self.params, "metric": self.metric_text()}

    def matches(self, terms: Sequence[tuple[str | None, str]]) -> bool:
        """Whether every ``(key, text)`` term holds: a bare term (key None) is a substring of the id,
        dataset, architecture or state; ``dataset=names`` a substring of that field (case ignored)."""
        fields = {"id": self.id, "run": self.id, "dataset": self.dataset or "", "arch": self.arch or "",
                  "architecture": self.arch or "", "state": self.state, "metric": self.metric or ""}
        for key, text in terms:
            haystacks = [fields[key]] if key else [self.id, fields["dataset"], fields["arch"], self.state]
            if not any(text in hay.lower() for hay in haystacks):
                return False
        return True


def format_parameters(count: int | None) -> str:
    """``12.3k``, ``1.2M``: a parameter count in five characters or so (three significant digits)."""
    if count is None:
        return UNKNOWN
    if count < 1000:
        return str(count)
    for limit, suffix in ((1e3, "k"), (1e6, "M")):
        if count / limit < 999.5:  # 999,999 is 1M, not "1e+03k"
            return f"{count / limit:.3g}{suffix}"
    scaled = count / 1e9
    return f"{scaled:.3g}G" if scaled < 999.5 else f"{scaled:.0f}G"


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def read_start(events_path: Path) -> dict[str, Any]:
    """The first ``start`` event of a run (parameters, task kind, main metric), read from the head of
    the file only; empty when there is none yet or it cannot be read."""
    try:
        with open(events_path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return {}
    for line in head.splitlines():
        if b'"start"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("type") == "start":
            return event
    return {}


def read_row(run: Run, start: dict[str, Any] | None = None) -> RunRow:
    """The row of ``run``; ``start`` is its start event when the caller already has it."""
    summary = run.summary()
    start = read_start(run.events_path) if start is None else start
    best: dict[str, Any] = summary["best"] if isinstance(summary.get("best"), dict) else {}
    metric = start.get("main_metric") if isinstance(start.get("main_metric"), str) else None
    metric = metric or next((k for k, v in best.items() if k != "epoch" and _number(v) is not None), None)
    results = run.results() or {}
    tested: dict[str, Any] = results["metrics"] if isinstance(results.get("metrics"), dict) else {}
    value, split = None, None
    if metric and _number(tested.get(metric)) is not None:
        value, split = _number(tested[metric]), "test"
    elif metric and _number(best.get(metric)) is not None:
        value, split = _number(best[metric]), "valid"
    started, updated = _number(summary.get("started")), _number(summary.get("updated"))
    seconds = updated - started if started is not None and updated is not None and updated >= started else None
    epochs = summary.get("epochs")
    progress = RunPosition.from_status(summary, epochs).short() if summary.get("state") != "unreadable" else ""
    parameters = start.get("parameters")
    return RunRow(
        id=run.id, state=str(summary.get("state") or "?"), progress=progress,
        dataset=_text(summary.get("dataset")), arch=_text(summary.get("arch")), seconds=seconds,
        parameters=parameters if isinstance(parameters, int) and not isinstance(parameters, bool) else None,
        metric=metric, kind=start.get("task") if isinstance(start.get("task"), str) else None,
        value=value, split=split, reason=summary.get("reason"), summary=summary)


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


class RowCache:
    """Rows of many runs, read again only when one of their files changed (or while a run is active:
    its process may have died without writing anything)."""

    def __init__(self) -> None:
        self._rows: dict[Path, tuple[tuple[Any, ...], RunRow]] = {}
        self._starts: dict[Path, tuple[int, dict[str, Any]]] = {}
        #: How many rows were read from disk (not from the cache) since this cache was made.
        self.reads = 0

    def rows(self, runs: Iterable[Run]) -> list[RunRow]:
        runs = list(runs)
        rows = [self.row(run) for run in runs]
        alive = {run.path for run in runs}
        for gone in [path for path in self._rows if path not in alive]:
            self._rows.pop(gone, None)
            self._starts.pop(gone, None)
        return rows

    def row(self, run: Run) -> RunRow:
        key = tuple(_stamp(path) for path in (run.config_path, run.status_path, run.results_path,
                                               run.events_path))
        cached = self._rows.get(run.path)
        if cached is not None and cached[0] == key and not cached[1].active:
            return cached[1]
        self.reads += 1
        row = read_row(run, self._start(run, key[3]))
        self._rows[run.path] = (key, row)
        return row

    def _start(self, run: Run, events_stamp: tuple[int, int] | None) -> dict[str, Any]:
        """The start event, read once per events file (it never changes after it is written)."""
        size = events_stamp[1] if events_stamp else 0
        known = self._starts.get(run.path)
        if known is not None and known[1] and size >= known[0]:
            return known[1]
        start = read_start(run.events_path)
        self._starts[run.path] = (size, start)
        return start


# -- orders and filters ---------------------------------------------------------------------------
def _metric_key(row: RunRow) -> tuple[Any, ...]:
    """Best first within one metric; runs without a value last."""
    if row.value is None or row.metric is None:
        return (1, "", 0.0)
    return (0, row.metric, -row.value if row.higher_is_better else row.value)


#: Orders of a list of runs, as ``name -> (key, reverse)``; ties keep the oldest-first order.
SORT_KEYS: dict[str, tuple[Callable[[RunRow], Any], bool]] = {
    "oldest": (lambda row: row.id, False),
    "newest": (lambda row: row.id, True),
    "metric": (_metric_key, False),
    "state": (lambda row: row.state, False),
    "dataset": (lambda row: row.dataset or "\uffff", False),
    "architecture": (lambda row: row.arch or "\uffff", False),
    "duration": (lambda row: -(row.seconds if row.seconds is not None else -1.0), False),
    "parameters": (lambda row: -(row.parameters if row.parameters is not None else -1), False),
}
#: The orders in the order ctrl+s cycles them; the first is ``workbench runs``'s.
SORTS: tuple[str, ...] = tuple(SORT_KEYS)


def sort_rows(rows: Iterable[RunRow], order: str) -> list[RunRow]:
    """``rows`` in ``order`` (a :data:`SORTS` name); ties oldest first."""
    key, reverse = SORT_KEYS[order]
    return sorted(sorted(rows, key=lambda row: row.id), key=key, reverse=reverse)


FILTER_KEYS = ("dataset", "arch", "architecture", "state", "id", "run", "metric")


def parse_filter(text: str) -> list[tuple[str | None, str]]:
    """``names state=failed`` -> ``[(None, "names"), ("state", "failed")]`` (lower case). A ``key=``
    with a key that is not a column is taken as plain text."""
    terms: list[tuple[str | None, str]] = []
    for word in text.lower().split():
        key, sep, value = word.partition("=")
        if sep and key in FILTER_KEYS:
            terms.append((key, value))
        else:
            terms.append((None, word))
    return terms


def filter_rows(rows: Iterable[RunRow], text: str) -> list[RunRow]:
    """The rows that match every term of ``text`` (see :func:`parse_filter`)."""
    terms = parse_filter(text)
    return [row for row in rows if row.matches(terms)]
