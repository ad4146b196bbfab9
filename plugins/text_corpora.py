"""Language-modelling corpora that need no download: your own text file, and a synthetic one."""

from __future__ import annotations

from workbench_plugins.lm_corpus import window_params

from workbench.api import DatasetSpec, Param, hookimpl

_LOADERS = "workbench_plugins.text_corpora_data"


@hookimpl
def workbench_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="text-file",
            task="language_model",
            description="Character-level language model on any UTF-8 text file of yours: "
            "--set data.path=FILE (or --data-dir FILE); split contiguously into train/valid/test.",
            load=f"{_LOADERS}:load_text_file",
            params=[
                Param("path", str, "", "the UTF-8 text file to learn (default: --data-dir when it is a file)"),
                *window_params(seq_len=128, valid_fraction=0.1, test_fraction=0.0),
            ],
            default_arch="char-lstm",
            defaults={
                "train.epochs": 20,
                "train.batch_size": 64,
                "train.lr": 0.002,
                "train.patience": 3,
                "model.hidden_size": 256,
                "model.num_layers": 2,
            },
            source="your own file",
        ),
        DatasetSpec(
            name="synthetic-text",
            task="language_model",
            description="Repetitive generated sentences ('the old dog sees a red ball.') from a tiny grammar: "
            "no download, learned in seconds, a first-run check that training and generation work.",
            load=f"{_LOADERS}:load_synthetic",
            params=[
                Param("chars", int, 40_000, "characters of text to generate (all splits together)",
                      min=200, max=20_000_000),
                Param("variety", int, 4, "choices per slot of the grammar (more = less predictable text)",
                      min=1, max=8),
                Param("text_seed", int, 0, "random seed of the generated text", min=0, max=2**31 - 1),
                *window_params(seq_len=64, valid_fraction=0.1, test_fraction=0.1),
                Param("test_2x", bool, True, "also score the test text in windows of twice seq_len (length "
                      "generalisation: reported as test_2x_bits_per_char, ...)"),
            ],
            default_arch="char-gru",
            defaults={
                "train.epochs": 6,
                "train.batch_size": 32,
                "train.lr": 0.005,
                "train.log_every": 10,
                "model.embedding_dim": 32,
                "model.hidden_size": 128,
                "model.num_layers": 1,
            },
            source="generated locally",
        ),
    ]
