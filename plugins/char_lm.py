"""Character language models (RNN, LSTM, GRU decoders) and the GRU written out from its equations."""

from __future__ import annotations

from workbench.api import ArchitectureSpec, Param, hookimpl, recurrent_params

_MODELS = "workbench_plugins.char_lm_models"

_LM_PARAMS = [
    Param("embedding_dim", int, 64, "character embedding size", min=1, max=4096),
    Param("hidden_size", int, 256, "recurrent state size per layer", min=1, max=8192),
    Param("num_layers", int, 2, "stacked recurrent layers", min=1, max=16),
    Param("dropout", float, 0.0, "dropout on embeddings, between layers and before the output", min=0.0, max=0.9),
]
_NONLINEARITY = Param("nonlinearity", str, "tanh", "activation of the recurrent state", choices=("tanh", "relu"))

_CLASSIFIER_PARAMS = [
    *recurrent_params(),
]


@hookimpl
def workbench_architectures() -> list[ArchitectureSpec]:
    return [
        ArchitectureSpec(
            name="char-rnn",
            tasks=("language_model",),
            description="Character language model: embedding -> nn.RNN (Elman) stack -> linear over characters",
            build=f"{_MODELS}:build_rnn",
            params=[*_LM_PARAMS, _NONLINEARITY],
        ),
        ArchitectureSpec(
            name="char-lstm",
            tasks=("language_model",),
            description="Character language model: embedding -> LSTM stack -> linear over characters "
            "(Karpathy's char-rnn)",
            build=f"{_MODELS}:build_lstm",
            params=_LM_PARAMS,
        ),
        ArchitectureSpec(
            name="char-gru",
            tasks=("language_model",),
            description="Character language model: embedding -> GRU stack -> linear over characters",
            build=f"{_MODELS}:build_gru",
            params=_LM_PARAMS,
        ),
        ArchitectureSpec(
            name="char-gru-eq",
            tasks=("language_model",),
            description="Character language model on a GRU written out from its gate equations "
            "(update, reset, candidate) in a Python loop: same maths as char-gru, readable, slower",
            build=f"{_MODELS}:build_gru_eq",
            params=_LM_PARAMS,
        ),
        ArchitectureSpec(
            name="gru-eq",
            tasks=("classification",),
            description="Classifier on a GRU written out from its gate equations (update, reset, "
            "candidate); matches nn.GRU given the same weights",
            build=f"{_MODELS}:build_gru_eq_classifier",
            params=_CLASSIFIER_PARAMS,
        ),
    ]
