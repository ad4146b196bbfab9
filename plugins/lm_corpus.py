"""Helpers the language-modelling dataset plugins share: reading a UTF-8 corpus, contiguous
splits, and the common window parameters. No torch here, so the spec modules may import it while
plugins are listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.api import DataError, LanguageModelData, Param, read_text


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


def read_text_file(path: Path) -> str:
    """A UTF-8 text file's contents with Unix newlines; missing, unreadable, empty, binary or
    blank files are DataErrors naming it."""
    text = read_text(path)
    if not text:
        raise DataError(f"{path} is empty")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataError(f"{path} contains only whitespace")
    return text


def contiguous_split(text: str, valid_fraction: float, test_fraction: float, where: str) -> tuple[str, str, str]:
    """train | valid | test, in the text's own order (no shuffling: neighbouring characters are related)."""
    n = len(text)
    n_valid = int(round(n * valid_fraction))
    n_test = int(round(n * test_fraction))
    n_train = n - n_valid - n_test
    if n_train < 2:
        raise DataError(f"{where} has {n:,} characters: too few to hold out {valid_fraction:g} for validation "
                        f"and {test_fraction:g} for testing")
    return text[:n_train], text[n_train : n_train + n_valid], text[n_train + n_valid :]


def make_data(text: str, params: dict[str, Any], where: str, info: dict[str, Any]) -> LanguageModelData:
    train, valid, test = contiguous_split(text, params["valid_fraction"], params["test_fraction"], where)
    return LanguageModelData(
        train=train,
        valid=valid,
        test=test,
        tokenizer="char",
        seq_len=params["seq_len"],
        stride=params["stride"],
        info={**info, "characters": len(text), "distinct_characters": len(set(text)),
              "split_chars": {"train": len(train), "valid": len(valid), "test": len(test)}},
    )
