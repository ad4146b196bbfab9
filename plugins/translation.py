"""Sequence-to-sequence data: English-French sentence pairs, your own parallel TSV, and the
synthetic copy / reverse task."""

from __future__ import annotations

from workbench.api import DatasetSpec, Param, hookimpl

_SPLIT = [
    Param("valid_fraction", float, 0.05, "share of distinct source sentences held out for validation",
          min=0.0, max=0.5),
    Param("test_fraction", float, 0.05, "share of distinct source sentences held out for testing (corpus BLEU)",
          min=0.0, max=0.5),
    Param("split_seed", int, 0, "random state of the split", min=0, max=2**31 - 1),
    Param("min_freq", int, 1, "words seen fewer times in training are read as <unk>", min=1, max=1000),
]
_LIMITS = [
    Param("max_length", int, 10, "keep pairs with at most this many tokens on each side (0 = all)",
          min=0, max=10_000),
    Param("max_pairs", int, 0, "keep only the first N pairs after filtering (0 = all; the d2l course uses 600)",
          min=0, max=10_000_000),
]


@hookimpl
def workbench_datasets() -> list[DatasetSpec]:
    data = "workbench_plugins.translation_data"
    return [
        DatasetSpec(
            name="fra-eng",
            task="seq2seq",
            description="English -> French sentence pairs from Tatoeba (manythings.org, 167,130 pairs); "
            "lower-cased with punctuation split off, short sentences by default",
            load=f"{data}:load_fra_eng",
            params=[
                Param("direction", str, "eng-fra", "translate English to French or French to English",
                      choices=("eng-fra", "fra-eng")),
                Param("max_length", int, 10, "keep pairs with at most this many tokens on each side (0 = all)",
                      min=0, max=10_000),
                Param("max_pairs", int, 20_000, "keep only the first N pairs after filtering (0 = all 140,000 "
                      "short pairs; the file runs from short to long; the d2l course uses 600)", min=0,
                      max=10_000_000),
                Param("prefixes", str, "", "keep only English sentences starting with one of these "
                      "comma-separated prefixes; 'tutorial' = the PyTorch tutorial's (i am, he is, ...)"),
                *_SPLIT[:3],
                Param("min_freq", int, 2, "words seen fewer times in training are read as <unk>", min=1, max=1000),
            ],
            default_arch="gru-attention",
            # the setting of benchmarks/translation.py (docs/tagging-and-translation.md)
            defaults={"train.epochs": 30, "train.batch_size": 128, "train.lr": 0.002, "train.patience": 4,
                      "train.clip_grad_norm": 1.0, "model.embedding_dim": 128, "model.hidden_size": 256,
                      "model.num_layers": 1},
            source="http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip (Tatoeba via manythings.org/anki, "
            "CC BY 2.0 FR)",
        ),
        DatasetSpec(
            name="parallel-tsv",
            task="seq2seq",
            description="Your own sentence pairs (--data-dir: a source<TAB>target file, split at random by "
            "source sentence, or a folder with train.tsv, dev.tsv, test.tsv)",
            load=f"{data}:load_parallel_tsv",
            params=[
                Param("path", str, "", "your file or folder (default: --data-dir)"),
                Param("normalize", str, "nmt", "nmt: lower-case and split off , . ! ?; lower; none",
                      choices=("nmt", "lower", "none")),
                Param("tokenizer", str, "whitespace", "whitespace, word (words and punctuation) or char",
                      choices=("whitespace", "word", "char")),
                Param("swap", bool, False, "the file is target<TAB>source"),
                *_LIMITS, *_SPLIT,
            ],
            default_arch="gru-attention",
            defaults={"train.epochs": 30, "train.patience": 4, "train.clip_grad_norm": 1.0},
        ),
        DatasetSpec(
            name="copy-reverse",
            task="seq2seq",
            description="Synthetic, no download: copy or reverse a random sequence of symbols; a quick check "
            "that an encoder-decoder learns at all",
            load=f"{data}:load_copy_reverse",
            params=[
                Param("mode", str, "reverse", "copy the sequence or reverse it", choices=("copy", "reverse")),
                Param("symbols", int, 10, "distinct symbols (a, b, c, ...)", min=2, max=36),
                Param("min_length", int, 3, "shortest sequence", min=1, max=200),
                Param("max_length", int, 8, "longest sequence", min=1, max=200),
                Param("train_size", int, 5000, "training sequences", min=1, max=10_000_000),
                Param("valid_size", int, 500, "validation sequences", min=0, max=1_000_000),
                Param("test_size", int, 500, "test sequences", min=0, max=1_000_000),
                Param("long_test_size", int, 500, "sequences of twice max_length for the length-generalisation "
                      "test (reported as test_2x_exact_match, test_2x_bleu, ...; 0 = none)", min=0, max=1_000_000),
                Param("sample_seed", int, 0, "random state of the generator", min=0, max=2**31 - 1),
            ],
            default_arch="gru-attention",
            defaults={"train.epochs": 10, "train.lr": 0.003, "train.clip_grad_norm": 1.0,
                      "model.embedding_dim": 32, "model.hidden_size": 64, "model.num_layers": 1,
                      "model.attention_size": 64, "model.dropout": 0.0},
        ),
    ]
