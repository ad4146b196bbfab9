"""Loaders for tagged sentences: CoNLL-U treebanks (UD English EWT and any other) and plain
``word/TAG`` or two-column files. No torch here.

Files are read a line at a time and their sentences tokenised once into the data cache
(``<cache>/texts``, see :func:`workbench.api.tokenized_texts`: words and tags as two id streams
sharing offsets); a later run with the same files and settings reads the cached ids.
"""

from __future__ import annotations

import codecs
import random
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from workbench.api import (
    DataError,
    LoadContext,
    Record,
    TaggedSplit,
    TaggingData,
    fetch,
    read_text,
    tokenized_texts,
)

EWT_BASE = "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/master/"
EWT_FILES = {
    "train": "en_ewt-ud-train.conllu",
    "valid": "en_ewt-ud-dev.conllu",
    "test": "en_ewt-ud-test.conllu",
}
EWT_SHA256 = {
    "en_ewt-ud-train.conllu": "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
    "en_ewt-ud-dev.conllu": "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
    "en_ewt-ud-test.conllu": "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
}
#: The 17 universal part-of-speech tags, in the order UD documents them.
UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"]
COLUMNS = {"upos": 3, "xpos": 4}
_ID = re.compile(r"\d+")
_RANGE = re.compile(r"\d+-\d+")
_EMPTY = re.compile(r"\d+\.\d+")

Sentence = tuple[list[str], list[str]]


def parse_conllu(text: str, where: str, column: str = "upos") -> list[Sentence]:
    """Sentences of a CoNLL-U file: one word per line with 10 tab-separated fields, blank lines
    between sentences, ``#`` comments. Multi-word token lines (``3-4``, the surface form of "don't")
    and empty nodes (``5.1``) are skipped: the syntactic words carry the tags."""
    return list(conllu_sentences(text.splitlines(), where, column))


def conllu_sentences(lines: Iterable[str], where: str, column: str = "upos") -> Iterator[Sentence]:
    """:func:`parse_conllu` over lines (a file read a line at a time), a sentence at a time."""
    index = COLUMNS[column]
    words: list[str] = []
    tags: list[str] = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if words:
                yield words, tags
                words, tags = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(f"{where}:{number}: expected 10 tab-separated CoNLL-U fields, found {len(fields)}")
        word_id = fields[0]
        if _RANGE.fullmatch(word_id) or _EMPTY.fullmatch(word_id):
            continue
        if not _ID.fullmatch(word_id):
            raise DataError(f"{where}:{number}: word id {word_id!r} is not a number, a range (3-4) or a decimal (5.1)")
        if int(word_id) != len(words) + 1:
            raise DataError(f"{where}:{number}: word id {word_id} out of order (expected {len(words) + 1}; "
                            "is a blank line missing between sentences?)")
        form, tag = fields[1], fields[index]
        if not form:
            raise DataError(f"{where}:{number}: empty word form")
        if tag in ("", "_"):
            raise DataError(f"{where}:{number}: no {column.upper()} tag for {form!r}")
        words.append(form)
        tags.append(tag)
    if words:
        yield words, tags


def parse_tagged_text(text: str, where: str, fmt: str = "auto") -> list[Sentence]:
    """``word/TAG word/TAG ...`` one sentence per line ("slash"), or one ``word TAG`` per line with
    blank lines between sentences ("columns", tab or spaces; CoNLL-2000/2003 style with the tag in the
    last column). "auto" picks by the first non-blank line."""
    lines = text.splitlines()
    return list(tagged_sentences(lines, where, tagged_format(lines, fmt)))


def tagged_format(lines: Iterable[str], fmt: str = "auto") -> str:
    """"slash" or "columns": ``fmt``, or for "auto" what the first non-blank line looks like."""
    if fmt != "auto":
        return fmt
    first = next((ln for ln in lines if ln.strip() and not ln.startswith("#")), "")
    fields = first.split()
    slashed = bool(fields) and all(f.rpartition("/")[0] and f.rpartition("/")[2] for f in fields)
    return "slash" if slashed else "columns"


def tagged_sentences(lines: Iterable[str], where: str, fmt: str) -> Iterator[Sentence]:
    """:func:`parse_tagged_text` over lines, in the format ``fmt`` ("slash" or "columns")."""
    if fmt == "slash":
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            words, tags = [], []
            for item in line.split():
                word, sep, tag = item.rpartition("/")
                if not sep or not word or not tag:
                    raise DataError(f"{where}:{number}: {item!r} is not word/TAG")
                words.append(word)
                tags.append(tag)
            yield words, tags
        return
    words, tags = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            if words:
                yield words, tags
                words, tags = [], []
            continue
        if line.startswith("#") or line.startswith("-DOCSTART-"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) < 2 or not fields[0] or not fields[-1]:
            raise DataError(f"{where}:{number}: expected a word and a tag separated by a tab or spaces, got {line!r}")
        words.append(fields[0])
        tags.append(fields[-1])
    if words:
        yield words, tags


# -- reading files a line at a time into the token cache ---------------------------------------
def file_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 file as ``read_text(path).splitlines()`` gives them, read a line at a time;
    a file that is not UTF-8 text gets :func:`read_text`'s one-line error (line and byte)."""
    read_text(path) if not path.is_file() else None  # a missing path or a folder: its one-line error
    decoder = codecs.getincrementaldecoder("utf-8")()
    first = True
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                if b"\x00" in raw:
                    raise UnicodeError("NUL")
                text = decoder.decode(raw)
                if first and text:
                    text, first = text.removeprefix("\ufeff").removeprefix("\ufeff"), False
                yield from text.splitlines()
            tail = decoder.decode(b"", final=True)
            yield from tail.splitlines()
    except (UnicodeError, ValueError):
        read_text(path)  # names the line and byte (reading the file whole, on this error only)
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None


def _cached(context: LoadContext, path: Path, sentences: Callable[[], Iterator[Sentence]],
            settings: dict[str, Any]) -> TaggedSplit:
    """The sentences of ``path`` through the token cache, all of them, in file order."""
    import numpy as np

    def records() -> Iterator[Record]:
        for words, tags in sentences():
            yield Record("", "", words=words, tags=tags)

    texts = tokenized_texts(f"tagged-{path.stem}", [path], records, context.cache_dir, tokenizer="given",
                            settings={"reader": 1, **settings}, where=str(path), status=context.status)
    return TaggedSplit(texts, np.arange(len(texts)))


def _split(sentences: Any, valid: float, test: float, seed: int) -> tuple[Any, Any, Any]:
    """(train, valid, test) of a list of sentences or a :class:`TaggedSplit`, shuffled with ``seed``."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    n_test = round(len(order) * test)
    n_valid = round(len(order) * valid)
    parts = (order[n_test + n_valid :], order[n_test : n_test + n_valid], order[:n_test])
    if isinstance(sentences, TaggedSplit):
        return tuple(sentences.select(part) for part in parts)  # type: ignore[return-value]
    train_part, valid_part, test_part = ([sentences[i] for i in part] for part in parts)
    return train_part, valid_part, test_part


def _seen(split: Any) -> set[str]:
    if isinstance(split, TaggedSplit):
        return set(split.tag_counts())
    return {t for _, tags in split for t in tags}


def _words(split: Any) -> int:
    return split.words if isinstance(split, TaggedSplit) else sum(len(w) for w, _ in split)


def _tag_list(splits: list[Any], preferred: list[str] | None = None) -> list[str]:
    """The full UPOS list when every tag is a UPOS tag (so models trained on different slices agree),
    else the sorted tags seen."""
    seen = set().union(*(_seen(split) for split in splits))
    if preferred and seen <= set(preferred):
        return list(preferred)
    return sorted(seen)


def _data(train: Any, valid: Any, test: Any, params: dict[str, Any],
          info: dict[str, Any], preferred: list[str] | None = None) -> TaggingData:
    if not train:
        raise DataError(f"no training sentences in {info.get('source')}")
    if params.get("max_train_sentences"):
        train = train[: params["max_train_sentences"]]
    info = {**info, "sentences": {"train": len(train), "valid": len(valid), "test": len(test)},
            "words": {"train": _words(train), "valid": _words(valid), "test": _words(test)}}
    return TaggingData(tags=_tag_list([train, valid, test], preferred), train=train, valid=valid, test=test,
                       lowercase=params["lowercase"], min_freq=params["min_freq"], info=info)


# -- UD English EWT ----------------------------------------------------------------------------
def _find_ewt(folder: Path) -> Path | None:
    for candidate in (folder, folder / "ud-english-ewt", folder / "UD_English-EWT"):
        if all((candidate / name).is_file() for name in EWT_FILES.values()):
            return candidate
    return None


def _ewt_file(data_dir: Path, name: str) -> Path | None:
    folder = _find_ewt(data_dir)
    return folder / name if folder is not None else None


def load_ewt(context: LoadContext, params: dict[str, Any]) -> TaggingData:
    expected = f"{', '.join(EWT_FILES.values())} there or in ud-english-ewt/"
    paths = {split: fetch(context, EWT_BASE + name, f"ud-english-ewt/{name}", sha256=EWT_SHA256[name],
                          find=lambda data_dir, name=name: _ewt_file(data_dir, name), what="UD English EWT",
                          expected=expected)
             for split, name in EWT_FILES.items()}
    folder = paths["train"].parent
    splits = {split: _conllu_file(context, path, params["column"]) for split, path in paths.items()}
    return _data(splits["train"], splits["valid"], splits["test"], params,
                 {"source": str(folder), "format": "CoNLL-U", "column": params["column"]},
                 UPOS if params["column"] == "upos" else None)


# -- bring your own ----------------------------------------------------------------------------
_SPLIT_NAMES = {"train": ("train",), "valid": ("dev", "valid", "validation"), "test": ("test",)}


def _split_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """train/dev/test files in ``folder`` by name (en_ewt-ud-train.conllu, train.txt, dev.tsv, ...)."""
    found: dict[str, Path] = {}
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    for split, keys in _SPLIT_NAMES.items():
        matches = [p for p in files if any(re.search(rf"(^|[-_.]){k}([-_.]|$)", p.stem.lower()) for k in keys)]
        if len(matches) > 1:
            raise DataError(f"{folder} has several {split} files: {', '.join(p.name for p in matches)}")
        if matches:
            found[split] = matches[0]
    return found


def _load_own(context: LoadContext, params: dict[str, Any], suffixes: tuple[str, ...], parse: Any,
              what: str, preferred: list[str] | None = None) -> TaggingData:
    path = Path(params["path"]).expanduser() if params.get("path") else context.data_dir
    if path is None:
        raise DataError(f"point --data-dir (or data.path) at a {what} file, or a folder with train/dev/test "
                        f"{what} files")
    if path.is_file():
        sentences = parse(path)
        train, valid, test = _split(sentences, params["valid_fraction"], params["test_fraction"], params["split_seed"])
        return _data(train, valid, test, params, {"source": str(path), "split": "random", "format": what}, preferred)
    if not path.is_dir():
        raise DataError(f"{path} does not exist")
    files = _split_files(path, suffixes)
    if "train" not in files:
        raise DataError(f"no training file in {path}: expected a name with 'train' ending in {' or '.join(suffixes)}")
    parsed = {split: parse(p) for split, p in files.items()}
    train, valid, test = parsed["train"], parsed.get("valid"), parsed.get("test")
    if valid is None and test is None:
        train, valid, test = _split(train, params["valid_fraction"], params["test_fraction"], params["split_seed"])
    empty = train[0:0]
    valid, test = (empty if valid is None else valid), (empty if test is None else test)
    return _data(train, valid, test, params, {"source": str(path), "files": {k: v.name for k, v in files.items()},
                                               "format": what}, preferred)


def _conllu_file(context: LoadContext, path: Path, column: str) -> TaggedSplit:
    return _cached(context, path, lambda: conllu_sentences(file_lines(path), str(path), column),
                   {"format": "conllu", "column": column})


def _tagged_file(context: LoadContext, path: Path, fmt: str) -> TaggedSplit:
    fmt = tagged_format(file_lines(path), fmt)  # reads up to the first sentence line
    return _cached(context, path, lambda: tagged_sentences(file_lines(path), str(path), fmt), {"format": fmt})


def load_conllu(context: LoadContext, params: dict[str, Any]) -> TaggingData:
    return _load_own(context, params, (".conllu", ".conll"),
                     lambda path: _conllu_file(context, path, params["column"]), "CoNLL-U",
                     UPOS if params["column"] == "upos" else None)


def load_tagged_text(context: LoadContext, params: dict[str, Any]) -> TaggingData:
    return _load_own(context, params, (".txt", ".tsv", ".pos", ".tag", ".tags"),
                     lambda path: _tagged_file(context, path, params["format"]), "tagged text")
