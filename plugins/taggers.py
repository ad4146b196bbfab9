"""Sequence taggers: the classic LSTM tagger, a bidirectional multi-layer tagger, and one with
character-level word features for unknown words."""

from __future__ import annotations

from workbench.api import ArchitectureSpec, Param, hookimpl


def _params(layers: int, dropout: float, word_dropout: float) -> list[Param]:
    return [
        Param("cell", str, "lstm", "recurrent cell", choices=("lstm", "gru", "rnn")),
        Param("embedding_dim", int, 100, "word embedding size", min=1, max=4096),
        Param("hidden_size", int, 128, "recurrent state size per direction", min=1, max=8192),
        Param("num_layers", int, layers, "stacked recurrent layers", min=1, max=16),
        Param("dropout", float, dropout, "dropout on the embeddings, between layers and before the output",
              min=0.0, max=0.9),
        Param("word_dropout", float, word_dropout, "share of known words read as <unk> while training, so the "
              "<unk> vector learns something", min=0.0, max=0.5),
        Param("sequence_mode", str, "padded", "skip padding by masking (padded, fast on CPU) or packing (packed)",
              choices=("padded", "packed")),
    ]


_CHAR = [
    Param("char_encoder", str, "cnn", "how characters become a word vector: cnn (fast) or lstm (bidirectional)",
          choices=("cnn", "lstm")),
    Param("char_dim", int, 30, "character embedding size", min=1, max=1024),
    Param("char_size", int, 50, "size of the character feature vector per word", min=2, max=4096),
]


@hookimpl
def workbench_architectures() -> list[ArchitectureSpec]:
    models = "workbench_plugins.tagger_models"
    return [
        ArchitectureSpec(
            name="lstm-tagger",
            tasks=("tagging",),
            description="The classic LSTM tagger: word embedding -> one LSTM reading left to right -> linear "
            "over tags; sees only the words before each word",
            build=f"{models}:build_lstm_tagger",
            params=_params(1, 0.0, 0.0),
        ),
        ArchitectureSpec(
            name="bilstm-tagger",
            tasks=("tagging",),
            description="Bidirectional multi-layer LSTM tagger: each word's tag reads the whole sentence",
            build=f"{models}:build_bilstm_tagger",
            params=_params(2, 0.33, 0.05),
        ),
        ArchitectureSpec(
            name="char-bilstm-tagger",
            tasks=("tagging",),
            description="Bidirectional LSTM tagger whose word vectors include character features (CNN or "
            "BiLSTM over letters), so unknown words are tagged from their spelling",
            build=f"{models}:build_char_bilstm_tagger",
            params=_params(2, 0.33, 0.05) + _CHAR,
        ),
    ]
