"""Which metrics each task kind puts in summaries, readable without importing torch.

Each :class:`workbench.tasks.base.Task` kind's ``headline_metrics`` is its entry here, so the
``workbench train`` summary, ``workbench runs`` and the app's first paint can name a run's metrics
without importing the task modules (and torch with them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Task kind -> the metrics (besides loss) that summaries show, most important first.
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "balanced_accuracy", "top_k_accuracy"),
    "language_model": ("perplexity", "bits_per_char", "accuracy"),
    "tagging": ("accuracy", "oov_accuracy"),
    "seq2seq": ("bleu", "perplexity"),
}


#: How a one-line summary (the epoch line) names a metric, where its full name would crowd the line.
SHORT_NAMES: dict[str, str] = {
    "balanced_accuracy": "balanced",
    "top_k_accuracy": "top-k",
    "bits_per_char": "bpc",
    "perplexity": "ppl",
    "oov_accuracy": "oov",
}


def short_name(metric: str) -> str:
    return SHORT_NAMES.get(metric, metric)


def headline_metrics(kind: str | None) -> tuple[str, ...]:
    """The headline of ``kind``; empty for a kind this version does not know."""
    return HEADLINE_METRICS.get(kind or "", ())


def headline_values(metrics: Mapping[str, Any], kind: str | None) -> list[tuple[str, float]]:
    """(name, value) for loss and the kind's headline metrics that ``metrics`` holds as numbers;
    for an unknown kind, every number in ``metrics``."""
    names = ("loss", *headline_metrics(kind)) if kind in HEADLINE_METRICS else tuple(metrics)
    return [(name, metrics[name]) for name in names
            if isinstance(metrics.get(name), (int, float)) and not isinstance(metrics.get(name), bool)]


# -- how a metric is shown ---------------------------------------------------------------------
#: Task kinds whose loss (mean nats per token) is shown converted: (label, factor). A language model's
#: cross-entropy reads as bits per character, the figure character-level models are compared by.
LOSS_SHOWN_AS: dict[str, tuple[str, float]] = {"language_model": ("bits/char", 1 / math.log(2))}


def metric_label(metric: str, kind: str | None) -> str:
    """The name a view gives ``metric``: a language model's loss is "bits/char"."""
    if metric == "loss" and kind in LOSS_SHOWN_AS:
        return LOSS_SHOWN_AS[kind or ""][0]
    return metric


def shown_value(metric: str, kind: str | None, value: float) -> str:
    """``value`` of ``metric`` as a view shows it (converted where :func:`metric_label` renames it)."""
    if metric == "loss" and kind in LOSS_SHOWN_AS:
        value *= LOSS_SHOWN_AS[kind or ""][1]
    return f"{value:.4f}"


def loss_factor(kind: str | None) -> float:
    """What a view multiplies a loss by (1 unless the kind's loss is shown converted)."""
    return LOSS_SHOWN_AS[kind][1] if kind in LOSS_SHOWN_AS else 1.0


def plotted_metric(main_metric: str, kind: str | None, headline: tuple[str, ...] = ()) -> str:
    """The metric a view plots next to the loss: the main metric, or, for a kind whose main metric
    *is* the loss (a language model), its first other headline metric (perplexity)."""
    if main_metric != "loss":
        return main_metric
    return next((name for name in headline or headline_metrics(kind) if name not in ("loss", "bits_per_char")),
                main_metric)


def derived_metric(name: str, metrics: Mapping[str, Any]) -> float | None:
    """``metrics[name]``, or what the loss gives when a split holds only the loss (a language model's
    training split): perplexity is exp(loss), bits per character loss / ln 2."""
    value = metrics.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    loss = metrics.get("loss")
    if not isinstance(loss, (int, float)) or isinstance(loss, bool) or not math.isfinite(loss):
        return None
    if name == "perplexity":
        return math.exp(min(float(loss), 700.0))
    if name == "bits_per_char":
        return float(loss) / math.log(2)
    return None


#: Task kinds whose models generate text (each one's ``Task.supports_generation``; a test keeps them
#: equal), readable without importing torch: the Generate screen offers only their checkpoints.
GENERATING_KINDS: frozenset[str] = frozenset({"language_model"})
