"""Helpers the language-modelling dataset plugins share: reading a UTF-8 corpus with errors that
name the file and line, contiguous splits, and the common window parameters. No torch here, so
the spec modules may import it while plugins are listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.api import LanguageModelData, Param
from workbench.errors import DataError


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


def decode_text(raw: bytes, where: str) -> str:
    """UTF-8 bytes -> text with Unix newlines; a clear DataError for empty, binary or non-UTF-8 input."""
    if not raw:
        raise DataError(f"{where} is empty")
    if b"\x00" in raw[:65536]:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise DataError(f"{where} looks like a binary file (NUL byte on line {line}), not UTF-8 text")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        tail = " (the file ends in the middle of a character: truncated?)" if exc.end >= len(raw) else ""
        raise DataError(f"{where}: not UTF-8 text (line {line}, byte {exc.start}: {exc.reason}){tail}; "
                        "convert it, e.g. `iconv -f latin1 -t utf-8`") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataError(f"{where} contains only whitespace")
    return text


def read_text_file(path: Path) -> str:
    """A UTF-8 text file's contents; missing, folder, unreadable, empty or binary files are DataErrors."""
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a text file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    return decode_text(raw, str(path))


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
