"""Sequence classifiers: the textbook Elman RNN, nn.RNN, LSTM and GRU."""

from __future__ import annotations

from workbench.api import ArchitectureSpec, Param, hookimpl, recurrent_params

_COMMON = [
    *recurrent_params(),
    Param("sequence_mode", str, "padded", "skip padding by masking (padded, fast on CPU) or packing (packed)",
          choices=("padded", "packed")),
]
#: The n-gram bag beside the recurrent summary (workbench.nn.NgramBag), for the fused-cell classifiers.
_NGRAMS = (
    Param("ngrams", int, 0, "also read a bag of hashed token n-grams of 1..N tokens (fastText-style) beside "
          "the recurrent summary; 0 = off", min=0, max=8),
    Param("ngram_buckets", int, 16384, "hash buckets (learned vectors of embedding_dim) of the n-gram bag",
          min=1, max=2**22),
)
_NONLINEARITY = Param("nonlinearity", str, "tanh", "activation of the recurrent state", choices=("tanh", "relu"))


def _with(*overrides: Param, extra: tuple[Param, ...] = ()) -> list[Param]:
    by_name = {p.name: p for p in overrides}
    return [by_name.get(p.name, p) for p in _COMMON] + list(extra)


@hookimpl
def workbench_architectures() -> list[ArchitectureSpec]:
    models = "workbench_plugins.classifier_models"
    return [
        ArchitectureSpec(
            name="elman",
            tasks=("classification",),
            description="The textbook Elman RNN from Linear layers (i2h, i2o) over one-hot characters, "
            "stepped in a Python loop: slow, transparent, forgets long-range information",
            build="workbench_plugins.classifier_models:build_elman",
            params=_with(Param("input", str, "onehot", "how tokens enter the network", choices=("embedding", "onehot")),
                         extra=(_NONLINEARITY,)),
        ),
        ArchitectureSpec(
            name="rnn",
            tasks=("classification",),
            description="nn.RNN (Elman) classifier: the last hidden state feeds a linear layer",
            build=f"{models}:build_rnn",
            params=_with(extra=(_NONLINEARITY, *_NGRAMS)),
        ),
        ArchitectureSpec(
            name="lstm",
            tasks=("classification",),
            description="LSTM classifier: gated memory keeps information across long sequences",
            build=f"{models}:build_lstm",
            params=_with(extra=_NGRAMS),
        ),
        ArchitectureSpec(
            name="gru",
            tasks=("classification",),
            description="GRU classifier: gated like the LSTM with fewer parameters; a good default",
            build=f"{models}:build_gru",
            params=_with(extra=_NGRAMS),
        ),
    ]
