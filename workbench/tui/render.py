"""Plain renderings (Rich text, no colour needed) of predictions and evaluations, for any task.

Nothing here knows a dataset: a prediction with a ``top`` list of ``{"label", "probability"}`` is
drawn as bars, anything else through the task's own ``render_prediction``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from workbench.terminal import printable

BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of ``width`` cells filled to ``fraction`` (eighth-cell resolution)."""
    if not math.isfinite(fraction):
        fraction = 0.0
    fraction = max(0.0, min(1.0, fraction))
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    text = "█" * full + (BLOCKS[rest] if rest else "")
    return text.ljust(width)


def has_top(prediction: dict[str, Any]) -> bool:
    top = prediction.get("top")
    return isinstance(top, list) and all(isinstance(t, dict) and "label" in t and "probability" in t for t in top)


def prediction_view(prediction: dict[str, Any], width: int, fallback: Callable[[dict[str, Any]], str]) -> RenderableType:
    """Top-k bars when the prediction has them, else the task's text rendering."""
    if not has_top(prediction):
        return Text(printable(fallback(prediction)))
    top = prediction["top"]
    label_width = min(24, max([len(printable(t["label"])) for t in top] + [5]))
    bar_width = max(10, width - label_width - 12)
    lines = Text()
    answer = prediction.get("label", top[0]["label"] if top else "")
    lines.append(f"{printable(prediction.get('input', ''), layout=False)} → ", style="bold")
    lines.append(f"{printable(answer, layout=False)}\n", style="bold reverse")
    for entry in top:
        p = float(entry["probability"])
        shown = f"{p:7.2%}" if p >= 0.001 or p == 0 else f"{p * 100:6.0e}%"  # 3e-05% rather than 0.00%
        lines.append(f"{printable(entry['label'], layout=False)[:label_width]:<{label_width}} {shown} ")
        lines.append(bar(p, bar_width) + "\n", style="bold")
    unknown = prediction.get("unknown_tokens")
    if unknown:
        lines.append(f"not in the vocabulary, read as <unk>: {printable(' '.join(map(str, unknown)), layout=False)}\n", style="italic")
    return lines


def _short(label: str, width: int) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def evaluation_view(metrics: dict[str, Any] | None, width: int = 80) -> RenderableType:
    """Headline metrics, per-class accuracy bars and the confusion matrix of a stored evaluation."""
    if not metrics:
        return Text("no evaluation is stored in this checkpoint (training did not finish)", style="italic")
    parts: list[RenderableType] = []
    headline = "  ".join(
        f"{key} {value:.4f}" for key, value in metrics.items()
        if isinstance(value, float) and key not in ("top_k",)
    )
    count = metrics.get("count")
    parts.append(Text(f"test set ({count:,} examples): {headline}" if count else headline))
    per_class = metrics.get("per_class_accuracy")
    if isinstance(per_class, dict) and per_class:
        label_width = min(16, max(len(printable(c, layout=False)) for c in per_class))
        bar_width = max(8, min(40, width - label_width - 20))
        text = Text("\nper-class accuracy (recall)\n", style="bold")
        support = metrics.get("support", {})
        for label, acc in per_class.items():
            shown = "  n/a " if acc is None else f"{acc:6.1%}"
            text.append(f"{_short(printable(label, layout=False), label_width):<{label_width}} {shown} ")
            text.append(bar(acc or 0.0, bar_width), style="bold")
            text.append(f" n={support.get(label, '?')}\n")
        parts.append(text)
    matrix = metrics.get("confusion_matrix")
    classes = metrics.get("classes")
    if isinstance(matrix, list) and isinstance(classes, list) and len(matrix) == len(classes):
        table = Table(title="confusion matrix (rows: true, columns: predicted)", show_edge=False, padding=(0, 0),
                      title_justify="left", box=None)
        table.add_column("", no_wrap=True)
        for label in classes:
            table.add_column(printable(label, layout=False)[:3], justify="right", no_wrap=True, min_width=4)
        for label, row in zip(classes, matrix, strict=False):
            cells = []
            total = sum(row) or 1
            for j, value in enumerate(row):
                style = "bold reverse" if value and j == classes.index(label) else ("bold" if value / total > 0.2 else "")
                cells.append(Text(str(value) if value else "·", style=style))
            table.add_row(_short(printable(label, layout=False), 10), *cells)
        parts.append(Text(""))
        parts.append(table)
    return Group(*parts)
