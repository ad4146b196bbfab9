"""Tiny Shakespeare: 1.1 MB of Shakespeare's plays for character-level language modelling."""

from __future__ import annotations

from workbench_plugins.lm_corpus import window_params

from workbench.api import DatasetSpec, hookimpl

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


@hookimpl
def workbench_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="tinyshakespeare",
            task="language_model",
            description="Character-level language modelling on 1,115,394 characters of Shakespeare "
            "(karpathy/char-rnn); the first 90% trains, the last 10% validates, as in nanoGPT. "
            "Then generate text with `workbench generate`.",
            load="workbench_plugins.tinyshakespeare_data:load",
            params=window_params(seq_len=128, valid_fraction=0.1, test_fraction=0.0),
            default_arch="char-lstm",
            defaults={
                "train.epochs": 100,
                "train.max_minutes": 5.0,
                "train.batch_size": 32,
                "train.lr": 0.003,
                "train.precision": "auto",
                "train.patience": 3,
                "train.log_every": 10,
                "model.embedding_dim": 64,
                "model.hidden_size": 256,
                "model.num_layers": 2,
                "model.dropout": 0.0,
            },
            source=f"{URL} (public-domain text)",
        )
    ]
