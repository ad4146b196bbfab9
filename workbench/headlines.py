"""Which metrics each task kind puts in summaries, readable without importing torch.

Each :class:`workbench.tasks.base.Task` kind's ``headline_metrics`` is its entry here, so the
``workbench train`` summary, ``workbench runs`` and the app's first paint can name a run's metrics
without importing the task modules (and torch with them).
"""

from __future__ import annotations

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
