"""Encoder-decoder architectures: a GRU encoder-decoder and the same with additive attention."""

from __future__ import annotations

from workbench.api import ArchitectureSpec, Param, hookimpl

_COMMON = [
    Param("embedding_dim", int, 256, "word embedding size (source and target)", min=1, max=4096),
    Param("hidden_size", int, 256, "GRU state size", min=1, max=8192),
    Param("num_layers", int, 2, "stacked GRU layers in the encoder and the decoder", min=1, max=8),
    Param("dropout", float, 0.1, "dropout on embeddings, between layers and before the output", min=0.0, max=0.9),
    Param("teacher_forcing", float, 1.0, "share of training steps where the decoder reads the reference word "
          "rather than its own previous guess", min=0.0, max=1.0),
]


@hookimpl
def workbench_architectures() -> list[ArchitectureSpec]:
    models = "workbench_plugins.seq2seq_models"
    return [
        ArchitectureSpec(
            name="gru-seq2seq",
            tasks=("seq2seq",),
            description="GRU encoder-decoder: the encoder's final state starts the decoder and is fed to it as "
            "context at every step (the whole source squeezed into one vector)",
            build=f"{models}:build_plain",
            params=list(_COMMON),
        ),
        ArchitectureSpec(
            name="gru-attention",
            tasks=("seq2seq",),
            description="GRU encoder-decoder with additive (Bahdanau) attention: each output step reads a "
            "weighted average of all encoder states; shows which input words it looked at",
            build=f"{models}:build_attention",
            params=[*_COMMON, Param("attention_size", int, 256, "size of the additive attention layer",
                                    min=1, max=8192)],
        ),
    ]
