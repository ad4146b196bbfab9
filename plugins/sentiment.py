"""Sentiment and text classification: IMDB reviews, rt-polarity sentences, your own files, synthetic
balanced brackets; and two architectures from the classic course material: attention over LSTM
outputs and the LSTM with selectable gates."""

from __future__ import annotations

from workbench.api import ArchitectureSpec, DatasetSpec, InspectorSpec, Param, hookimpl, recurrent_params

_DATA = "workbench_plugins.sentiment_data"
_FILES = "workbench_plugins.textfiles_data"
_MODELS = "workbench_plugins.sentiment_models"

_SPLIT_SEED = Param("split_seed", int, 0, "random state of the splits", min=0, max=2**31 - 1)


def _vocab_params(max_vocab: int, min_freq: int) -> list[Param]:
    return [
        Param("max_vocab", int, max_vocab, "keep at most this many of the most frequent training tokens "
              "(0 = all); the rest read as <unk>", min=0, max=10_000_000),
        Param("min_freq", int, min_freq, "drop tokens seen fewer times than this in training", min=1, max=1_000_000),
    ]


_TRUNCATE = Param("truncate", str, "start", "which part of a text longer than max_length is kept: its start or "
                  "its end (reviews often end with the verdict)", choices=("start", "end"))


def _max_length(default: int) -> Param:
    return Param("max_length", int, default, "cut each text to this many tokens (0 = no limit); truncate says "
                 "which part is kept",
                 min=0, max=1_000_000)


def _valid_fraction(default: float) -> Param:
    return Param("valid_fraction", float, default, "share of the training data held out for validation "
                 "(early stopping, best checkpoint)", min=0.0, max=0.5)


_BYO_COMMON = [
    Param("path", str, "", "your folder or file (default: --data-dir)"),
    Param("tokenizer", str, "word", "word: lower-cased words and punctuation; char: characters",
          choices=("word", "char")),
    *_vocab_params(30_000, 1),
    _max_length(0),
    _TRUNCATE,
    Param("test_fraction", float, 0.1, "share held out for testing (when there is no test split of its own)",
          min=0.0, max=0.5),
    _valid_fraction(0.1),
    _SPLIT_SEED,
    Param("encoding", str, "utf-8", "text encoding of the files (utf-8, latin-1, cp1252, ...)"),
]

_SENTIMENT_TRAINING = {"train.batch_size": 64, "train.lr": 0.002, "train.patience": 2,
                       "model.embedding_dim": 128, "model.hidden_size": 64, "model.bidirectional": True}


@hookimpl
def workbench_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="imdb",
            task="classification",
            description="IMDB movie reviews, positive or negative (25,000 train / 25,000 test, word level, "
            "balanced classes)",
            load=f"{_DATA}:load_imdb",
            params=[*_vocab_params(25_000, 2), _max_length(400), _TRUNCATE, _valid_fraction(0.1), _SPLIT_SEED],
            default_arch="lstm-attention",
            defaults={**_SENTIMENT_TRAINING, "train.epochs": 4, "train.max_minutes": 20.0},
            source="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz (Maas et al., ACL 2011)",
        ),
        DatasetSpec(
            name="rt-polarity",
            task="classification",
            description="Movie-review sentences, positive or negative (10,662, Latin-1, word level): "
            "a small, fast sentiment set",
            load=f"{_DATA}:load_rt",
            params=[
                *_vocab_params(0, 1),
                Param("test_fraction", float, 0.1, "share of sentences held out for testing", min=0.05, max=0.5),
                _valid_fraction(0.1),
                _SPLIT_SEED,
            ],
            default_arch="lstm-attention",
            defaults={**_SENTIMENT_TRAINING, "train.epochs": 8, "train.patience": 3},
            source="https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz "
            "(Pang & Lee, ACL 2005)",
        ),
        DatasetSpec(
            name="text-folder",
            task="classification",
            description="Your own texts: --data-dir FOLDER with one subfolder per class, one text per file "
            "(train/ and test/ subfolders, each holding the class folders, are used as given)",
            load=f"{_FILES}:load_folder",
            params=[*_BYO_COMMON, Param("extension", str, ".txt", "read files ending with this ('' = every file)")],
            default_arch="gru",
            defaults={"train.epochs": 10, "train.patience": 3},
        ),
        DatasetSpec(
            name="text-csv",
            task="classification",
            description="Your own texts: --data-dir FILE.csv or .tsv with a header row naming a text and a "
            "label column",
            load=f"{_FILES}:load_csv",
            params=[
                *_BYO_COMMON,
                Param("text_column", str, "text", "header of the column holding the text"),
                Param("label_column", str, "label", "header of the column holding the class"),
                Param("delimiter", str, "auto", "auto (tab for .tsv, else comma), comma, tab, semicolon, pipe",
                      choices=("auto", "comma", "tab", "semicolon", "pipe")),
            ],
            default_arch="gru",
            defaults={"train.epochs": 10, "train.patience": 3},
        ),
        DatasetSpec(
            name="brackets",
            task="classification",
            description="Synthetic, no download: is a string of brackets balanced? Long-range memory in a "
            "nutshell: the Elman RNN loses count over long strings, the LSTM keeps it",
            load="workbench_plugins.brackets_data:load",
            params=[
                Param("length", int, 100, "characters per string (even)", min=2, max=10_000),
                Param("min_fraction", float, 0.4, "training strings get random even lengths from this share of "
                      "length up to length, an easy-to-hard mix that lets the GRU learn to count (0 = all exactly "
                      "length long); validation and test strings are always length long", min=0.0, max=1.0),
                Param("defects", str, "mixed", "what is wrong with the unbalanced strings: count (one bracket "
                      "turned round), order (the depth dips below zero once), kind (a wrong closing bracket), "
                      "or mixed", choices=("mixed", "count", "order", "kind")),
                Param("pairs", int, 1, "kinds of bracket pair: 1 = (), 2 = () [], 3 = () [] {}", min=1, max=3),
                Param("train_size", int, 8000, "training strings (half balanced)", min=10, max=10_000_000),
                Param("test_size", int, 2000, "test strings", min=2, max=10_000_000),
                Param("long_test_size", int, 1000, "strings of twice length for the length-generalisation "
                      "test (reported as test_2x_accuracy; 0 = none)", min=0, max=10_000_000),
                _valid_fraction(0.1),
                Param("data_seed", int, 0, "random state of the generator", min=0, max=2**31 - 1),
            ],
            default_arch="lstm",
            # measured in docs/sentiment.md: the GRU needs the length mix, a gentle lr, tight clipping
            # and 30-50 epochs; the LSTM is done in about 10; the best checkpoint is kept either way
            defaults={"train.epochs": 60, "train.batch_size": 64, "train.lr": 0.002, "train.clip_grad_norm": 1.0,
                      "train.schedule": "cosine", "train.patience": 0,
                      "model.embedding_dim": 8, "model.hidden_size": 32},
            source="generated (no download)",
        ),
    ]


_ENCODER_PARAMS = [
    *recurrent_params(),
]


@hookimpl
def workbench_architectures() -> list[ArchitectureSpec]:
    return [
        ArchitectureSpec(
            name="lstm-attention",
            tasks=("classification",),
            description="LSTM whose final hidden state attends over all its outputs; predict shows the "
            "attention weight of every token",
            build=f"{_MODELS}:build_attention",
            params=[
                *_ENCODER_PARAMS,
                Param("cell", str, "lstm", "recurrent cell of the encoder", choices=("lstm", "gru")),
                Param("sequence_mode", str, "padded", "skip padding by masking (padded, fast on CPU) or "
                      "packing (packed)", choices=("padded", "packed")),
            ],
        ),
        ArchitectureSpec(
            name="gated-lstm",
            tasks=("classification",),
            description="LSTM with selectable gates (the gate ablation): none, i, f, o or any combination; "
            "a missing gate is fixed open. Optional peepholes. Stepped in Python: slower than lstm",
            build=f"{_MODELS}:build_gated_lstm",
            params=[
                *_ENCODER_PARAMS,
                Param("gates", str, "ifo", "gates present: i = input, f = forget, o = output, none = gateless",
                      choices=("none", "i", "f", "o", "if", "io", "fo", "ifo")),
                Param("peephole", bool, False, "gates also read the cell state (peephole connections)"),
            ],
        ),
    ]


@hookimpl
def workbench_inspectors() -> list[InspectorSpec]:
    """The gated LSTM steps in Python already: offer its gates to ``workbench inspect``."""
    return [
        InspectorSpec(name="gated-lstm", layer=f"{_MODELS}:GatedLSTMLayer", step=f"{_MODELS}:inspect_step",
                      gates=("input", "forget", "output"), states=("candidate", "cell")),
    ]
