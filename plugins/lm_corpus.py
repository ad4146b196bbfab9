"""Helpers the language-modelling dataset plugins share: a UTF-8 corpus file tokenised into the
data cache, contiguous splits, and the common window parameters. No torch here, so the spec
modules may import it while plugins are listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.api import (
    CorpusText,
    LanguageModelData,
    LoadContext,
    Param,
    char_corpus,
    split_sizes,
)


def window_params(seq_len: int = 128, valid_fraction: float = 0.1, test_fraction: float = 0.0) -> list[Param]:
    """The parameters every contiguous-text dataset takes, with per-dataset defaults."""
    return [
        Param("seq_len", int, seq_len, "characters per training window (backpropagation through time)",
              min=1, max=10_000),
        Param("stride", int, 0, "start a training window every this many characters (0 = seq_len: windows "
              "do not overlap; smaller = more, overlapping windows per epoch)", min=0, max=100_000),
        Param("valid_fraction", float, valid_fraction, "share of the text, after the training part, held out "
              "for validation (best checkpoint, early stopping)", min=0.0, max=0.5),
        Param("test_fraction", float, test_fraction, "share of the text, at the very end, held out for testing",
              min=0.0, max=0.5),
    ]


def contiguous_split(text: str, valid_fraction: float, test_fraction: float, where: str) -> tuple[str, str, str]:
    """train | valid | test, in the text's own order (no shuffling: neighbouring characters are related)."""
    n_train, n_valid, _ = split_sizes(len(text), valid_fraction, test_fraction, where)
    return text[:n_train], text[n_train : n_train + n_valid], text[n_train + n_valid :]


def make_data(text: str, params: dict[str, Any], where: str, info: dict[str, Any]) -> LanguageModelData:
    """A corpus held in memory (generated text) as LanguageModelData."""
    train, valid, test = contiguous_split(text, params["valid_fraction"], params["test_fraction"], where)
    return _data(train, valid, test, params, {**info, "characters": len(text), "distinct_characters": len(set(text))})


def make_file_data(context: LoadContext, path: Path, params: dict[str, Any], info: dict[str, Any]) -> LanguageModelData:
    """A UTF-8 text file as LanguageModelData, tokenised once into the data cache and read from it a
    batch at a time (memory does not grow with the file); the splits as :func:`contiguous_split`."""
    corpus = char_corpus(path, context.cache_dir, context.status)
    train, valid, test = corpus.split(params["valid_fraction"], params["test_fraction"], str(path))
    return _data(train, valid, test, params,
                 {**info, "characters": len(corpus), "distinct_characters": len(corpus.alphabet),
                  "file_sha256": corpus.sha256, "token_cache": str(corpus.bin_path or "a temporary file")})


def _data(train: str | CorpusText, valid: str | CorpusText, test: str | CorpusText, params: dict[str, Any],
          info: dict[str, Any]) -> LanguageModelData:
    return LanguageModelData(
        train=train,
        valid=valid,
        test=test,
        tokenizer="char",
        seq_len=params["seq_len"],
        stride=params["stride"],
        info={**info, "split_chars": {"train": len(train), "valid": len(valid), "test": len(test)}},
    )
