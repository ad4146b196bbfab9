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

from workbench.position import RunPosition
from workbench.terminal import printable
from workbench.text import cut_note

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
    attention = prediction.get("attention")
    if isinstance(attention, list) and attention:
        lines.append_text(attention_line(attention, width))
    unknown = prediction.get("unknown_tokens")
    if unknown:
        lines.append(f"not in the vocabulary, read as <unk>: {printable(' '.join(map(str, unknown)), layout=False)}\n", style="italic")
    note = cut_note(prediction)
    if note:
        lines.append(f"{note}\n", style="italic")
    return lines


#: Eighth-block heights: a token's attention weight, relative to the largest, readable without colour.
HEIGHTS = "▁▂▃▄▅▆▇█"


def attention_line(attention: list[Any], width: int) -> Text:
    """The input's tokens, each followed by a block as high as its attention weight (relative to
    the strongest) and the strongest token's weight: ``attention: the▁ film▂ was▁ dreadful█ (dreadful 61%)``.
    Wraps between tokens at ``width``."""
    entries = [a for a in attention if isinstance(a, dict) and "token" in a and isinstance(a.get("weight"), (int, float))]
    if not entries:
        return Text()
    top = max(float(a["weight"]) for a in entries) or 1.0
    strongest = max(entries, key=lambda a: float(a["weight"]))
    text = Text("attention: ", style="bold")
    column = len("attention: ")
    for entry in entries:
        token = printable(str(entry["token"]), layout=False)
        level = HEIGHTS[max(0, min(7, round(float(entry["weight"]) / top * 7)))]
        if column + len(token) + 2 > width and column > len("attention: "):
            text.append("\n  ")
            column = 2
        text.append(token)
        text.append(level, style="bold")
        text.append(" ")
        column += len(token) + 2
    summary = f"({printable(str(strongest['token']), layout=False)} {float(strongest['weight']):.0%})"
    if column + len(summary) > width:
        text.append("\n  ")
    text.append(summary + "\n", style="italic")
    return text


def _short(label: str, width: int) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def stored_evaluation(evaluation: Any) -> tuple[str, dict[str, Any] | None]:
    """What a checkpoint's stored ``evaluation`` holds, as (heading, metrics) for the Predict screen:
    the test split's metrics; the validation split's for a dataset without a test split (a language
    model's text); ``None`` metrics with the reason when nothing was evaluated."""
    if not isinstance(evaluation, dict):
        return "no evaluation is stored in this checkpoint (training did not finish)", None
    test, valid = evaluation.get("test"), evaluation.get("valid")
    if isinstance(test, dict) and test:
        return "test set", test
    if isinstance(valid, dict) and valid:
        return "this dataset has no test split; validation set", valid
    return "this dataset has no test or validation split: nothing to evaluate on", None


def evaluation_view(metrics: dict[str, Any] | None, width: int = 80, heading: str = "test set") -> RenderableType:
    """Headline metrics and per-class accuracy bars of a stored evaluation (the confusion matrix is
    :func:`confusion_view`, in a box of its own that scrolls sideways)."""
    if not metrics:
        return Text(heading if heading != "test set" else
                    "no evaluation is stored in this checkpoint (training did not finish)", style="italic")
    parts: list[RenderableType] = []
    headline = "  ".join(
        f"{key} {value:.4f}" for key, value in metrics.items()
        if isinstance(value, float) and key not in ("top_k",)
    )
    count = metrics.get("count")
    parts.append(Text(f"{heading} ({count:,} examples): {headline}" if count else f"{heading}: {headline}"))
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
    return Group(*parts)


def confusion_view(metrics: dict[str, Any] | None) -> RenderableType | None:
    """The confusion matrix with every class (its own width: the box around it scrolls sideways),
    at least one space between counts so wide ones never run together; ``None`` when there is none."""
    if not metrics:
        return None
    matrix = metrics.get("confusion_matrix")
    classes = metrics.get("classes")
    if not (isinstance(matrix, list) and isinstance(classes, list) and classes and len(matrix) == len(classes)):
        return None
    table = Table(title=f"confusion matrix, {len(classes)} classes (rows: true, columns: predicted)",
                  show_edge=False, padding=(0, 0, 0, 1), title_justify="left", box=None, expand=False)
    table.add_column("", no_wrap=True)
    for label in classes:
        table.add_column(printable(label, layout=False)[:3], justify="right", no_wrap=True, min_width=3)
    for index, (label, row) in enumerate(zip(classes, matrix, strict=False)):
        cells = []
        total = sum(row) or 1
        for j, value in enumerate(row):
            style = "bold reverse" if value and j == index else ("bold" if value / total > 0.2 else "")
            cells.append(Text(str(value) if value else "·", style=style))
        table.add_row(_short(printable(label, layout=False), 10), *cells)
    return table


def checkpoint_position(payload: dict[str, Any]) -> str:
    """How far training had got when a checkpoint was written, by :mod:`workbench.position`'s
    definition: ``after 3/12 epochs``, or ``after 0.2/1 epochs (epoch 1 step 60/226)`` for one
    written when a run stopped mid-epoch."""
    epochs = (payload.get("config") or {}).get("train", {}).get("epochs") if isinstance(payload.get("config"), dict) \
        else None
    position = payload.get("position")
    status = position if isinstance(position, dict) else {"epoch": payload.get("epoch")}
    return f"after {RunPosition.from_status(status, epochs).long()}"
