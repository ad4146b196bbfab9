"""Two runs' settings side by side: ``workbench runs diff A B`` and the app's Runs screen (``=``).

The settings are each run's ``config.json`` flattened to dotted keys (``train.lr``, ``model.hidden``);
keys whose values differ come first, each marked ``≠``, then the keys the two runs share. Under
them the runs' headline metrics (test split, else the best on validation) and their size and time,
so a difference in settings can be read next to the difference it made. No torch, no Textual.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench.errors import WorkbenchError
from workbench.headlines import headline_values, metric_label, short_name, shown_value
from workbench.run_table import RunRow, read_row
from workbench.runs import Run

__all__ = ["DIFFERS", "Comparison", "Line", "compare_runs", "flatten", "render_text"]

#: The marker of a line whose values differ (a character, so it reads without colour).
DIFFERS = "≠"
#: Shown for a key one run's settings do not have.
MISSING = "(none)"


@dataclass(frozen=True)
class Line:
    """One key and its value in each run."""

    key: str
    a: str
    b: str

    @property
    def differs(self) -> bool:
        return self.a != self.b


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    #: Settings, differing keys first (each group in key order).
    settings: list[Line]
    #: Headline metrics, time and size of the two runs.
    results: list[Line]

    @property
    def differing(self) -> int:
        return sum(line.differs for line in self.settings)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 0.003}}`` -> ``{"train.lr": "0.003"}``; lists and scalars as JSON-ish text."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):  # an empty table sets nothing
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = _text(value)
    return flat


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "(not set)"  # data_dir of a run that read $WORKBENCH_DATA_DIR or downloaded
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _config(run: Run) -> dict[str, Any]:
    """The run's settings; one whose config cannot be read cannot be compared (one clear line)."""
    return run.config()  # raises WorkbenchError naming the run and what is wrong


def _results(run: Run, row: RunRow) -> dict[str, str]:
    results = run.results() or {}
    tested = results.get("metrics") if isinstance(results.get("metrics"), dict) else None
    split, metrics = ("test", tested) if tested else ("valid", results.get("valid_metrics"))
    shown: dict[str, str] = {"state": row.state, "epochs": row.progress or "-", "time": row.duration,
                             "parameters": f"{row.parameters:,}" if row.parameters is not None else "-"}
    if isinstance(metrics, dict) and metrics:
        for name, value in headline_values(metrics, row.kind):
            label = short_name(metric_label(name, row.kind))
            shown[f"{split} {label}"] = shown_value(name, row.kind, float(value))
    elif row.value is not None and row.metric is not None:
        label = short_name(metric_label(row.metric, row.kind))
        shown[f"best valid {label}"] = shown_value(row.metric, row.kind, row.value)
    return shown


def compare_runs(a: Run, b: Run) -> Comparison:
    """The settings of ``a`` and ``b`` line by line, differing keys first, and their results."""
    if a.path.resolve() == b.path.resolve():
        raise WorkbenchError(f"both sides are run {a.id}; name two different runs")
    flat_a, flat_b = flatten(_config(a)), flatten(_config(b))
    keys = sorted(set(flat_a) | set(flat_b))
    lines = [Line(key, flat_a.get(key, MISSING), flat_b.get(key, MISSING)) for key in keys]
    settings = [line for line in lines if line.differs] + [line for line in lines if not line.differs]
    results_a, results_b = _results(a, read_row(a)), _results(b, read_row(b))
    order = list(results_a) + [key for key in results_b if key not in results_a]
    results = [Line(key, results_a.get(key, "-"), results_b.get(key, "-")) for key in order]
    return Comparison(a.id, b.id, settings, results)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def render_text(comparison: Comparison, width: int = 100) -> list[str]:
    """The comparison as plain lines at most ``width`` wide: key, value in A, value in B, values cut
    with an ellipsis; differing lines start with ``≠``."""
    every = comparison.settings + comparison.results
    key_width = min(max(len(line.key) for line in every), max(width // 3, 12))
    value_width = max((width - key_width - 6) // 2, 8)
    out = [_cut(f"A {comparison.a}", width), _cut(f"B {comparison.b}", width),
           f"{comparison.differing} of {len(comparison.settings)} settings differ ({DIFFERS})", ""]

    def row(mark: str, key: str, a: str, b: str) -> str:
        return f"{mark} {_cut(key, key_width):<{key_width}}  {_cut(a, value_width):<{value_width}}  " \
               f"{_cut(b, value_width)}".rstrip()

    out.append(row(" ", "", "A", "B"))
    out.extend(row(DIFFERS if line.differs else " ", line.key, line.a, line.b) for line in comparison.settings)
    out.append("")
    out.append("results")
    out.extend(row(DIFFERS if line.differs else " ", line.key, line.a, line.b) for line in comparison.results)
    return out
