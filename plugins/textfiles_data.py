"""Bring your own text classification data, no plugin needed.

- ``text-folder``: ``--data-dir FOLDER`` holding one subfolder per class, one text per file; or
  ``train/`` and ``test/`` (optionally ``valid/``, or ``dev/`` as many corpora call it) each holding
  the same class subfolders.
- ``text-csv``: ``--data-dir FILE`` (.csv or .tsv) with a header row, or a folder holding
  ``train.csv`` (and optionally ``test.csv``, ``valid.csv`` or ``dev.csv``; or the .tsv equivalents).

Whatever is not given as its own split is carved out of the training data, stratified by class; the
dataset's ``info["files"]`` says where each split came from.

The texts are never held in memory: each split's file or folder is read record by record and
tokenised once into the data cache (``<cache>/texts``, see :func:`workbench.api.tokenized_texts`);
a later run with the same files and settings reads the cached ids without reading the text.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workbench.api import (
    ClassificationData,
    DataError,
    LoadContext,
    Record,
    TextSplit,
    TokenizedTexts,
    read_text,
    tokenized_texts,
)

_SPLITS = ("train", "valid", "test")
#: The names a split's file or folder may have, first found wins; two of them at once is an error.
_SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "dev", "validation"), "test": ("test",)}
_DELIMITERS = {"comma": ",", "tab": "\t", "semicolon": ";", "pipe": "|"}
_HINT = "set encoding=latin-1 (or the file's encoding)"
#: Part of the token cache's key: bump when what a record's text is changes (stripping, columns).
_READER = 1


def _read(path: Path, encoding: str) -> str:
    return read_text(path, encoding, hint=_HINT)


def _require_dir(context: LoadContext, what: str, params: dict[str, Any]) -> Path:
    """``data.path`` when set, else ``--data-dir``."""
    chosen = str(params.get("path", "")).strip()
    path = Path(chosen).expanduser() if chosen else context.data_dir
    if path is None:
        raise DataError(f"{what} reads your own files: --set data.path=PATH or pass --data-dir PATH "
                        "(or set WORKBENCH_DATA_DIR)")
    if not path.exists():
        raise DataError(f"{path} does not exist")
    return path


def _check_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r} (try utf-8, latin-1 or cp1252)") from None


# -- folders -------------------------------------------------------------------------------------
def _class_folders(root: Path, extension: str) -> list[tuple[Path, list[Path]]]:
    """Each class folder of ``root`` with its text files, sorted (file names only: nothing is read)."""
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class subfolders: put each class's texts in a folder named after it")
    found = []
    for folder in classes:
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name.endswith(extension))
        if not files:
            raise DataError(f"class folder {folder} holds no {extension + ' ' if extension else ''}files")
        found.append((folder, files))
    return found


def iter_class_folders(root: Path, encoding: str, extension: str) -> Iterator[Record]:
    """Every text under ``root``'s class folders, one file at a time, labelled with its folder's name."""
    for folder, files in _class_folders(root, extension):
        for file in files:
            text = _read(file, encoding).strip()
            if not text:
                raise DataError(f"{file} is empty")
            yield Record(text, folder.name)


def read_class_folders(root: Path, encoding: str, extension: str) -> list[tuple[str, str]]:
    """(text, class name) of every text under ``root``, in memory (small folders, tests)."""
    return [(record.text, record.label) for record in iter_class_folders(root, encoding, extension)]


def load_folder(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    root = _require_dir(context, "text-folder", params)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: text-folder wants one subfolder per class "
                        "(use text-csv for a CSV/TSV file)")
    if (root / "train").is_dir():
        sources = _split_sources(root, [""], Path.is_dir)
    else:
        sources = {"train": root}
    encoding, extension = params["encoding"], params["extension"]
    settings = {"reader": _READER, "encoding": _check_encoding(encoding), "extension": extension}
    splits = {}
    for split, folder in sources.items():
        _class_folders(folder, extension)  # a folder without classes or texts fails before any reading
        splits[split] = tokenized_texts(
            f"text-folder-{folder.name}", [folder],
            lambda folder=folder: iter_class_folders(folder, encoding, extension),  # type: ignore[misc]
            context.cache_dir, tokenizer=params["tokenizer"], settings=settings, where=str(folder),
            status=context.status)
    return _assemble(splits, params, sources)


def _split_sources(root: Path, suffixes: list[str], exists: Any) -> dict[str, Path]:
    """split -> the file or folder in ``root`` that holds it (``dev`` counts as ``valid``)."""
    sources: dict[str, Path] = {}
    for split in _SPLITS:
        found = [root / f"{name}{suffix}" for name in _SPLIT_NAMES[split] for suffix in suffixes
                 if exists(root / f"{name}{suffix}")]
        if len(found) > 1:
            raise DataError(f"{root} holds {' and '.join(p.name for p in found)}: both would be the {split} split; "
                            "keep one")
        if found:
            sources[split] = found[0]
    return sources


# -- CSV / TSV -----------------------------------------------------------------------------------
def _delimiter(path: Path, params: dict[str, Any]) -> str:
    choice = params["delimiter"]
    return ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",") if choice == "auto" else _DELIMITERS[choice]


def iter_table(path: Path, params: dict[str, Any]) -> Iterator[Record]:
    """The rows of a CSV/TSV file as records, read a row at a time (the file is never held whole)."""
    encoding = params["encoding"]
    codec = _check_encoding(encoding)
    if path.is_dir() or not path.exists():
        _read(path, encoding)  # the same one-line errors as a whole read
    csv.field_size_limit(1 << 30)
    try:
        handle = open(path, encoding="utf-8-sig" if codec == "utf-8" else encoding, newline="")
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    reader = csv.reader(handle, delimiter=_delimiter(path, params))
    try:
        with handle:
            yield from _rows(path, reader, params)
    except UnicodeDecodeError as exc:
        _read(path, encoding)  # names the line and byte (reading the file whole, on this error only)
        raise DataError(f"{path}: not {encoding} text ({exc.reason}); {_HINT}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: {exc}") from None


def _rows(path: Path, reader: Any, params: dict[str, Any]) -> Iterator[Record]:
    header_row = next(reader, None)
    if header_row is None or (not any(cell.strip() for cell in header_row) and next(reader, None) is None):
        raise DataError(f"{path} is empty")
    header = [h.strip() for h in header_row]
    columns = {}
    for role in ("text_column", "label_column"):
        name = params[role]
        if name not in header:
            raise DataError(f"{path}: no column {name!r} in the header (found: {', '.join(header)}); "
                            f"set {role}=NAME or delimiter=...")
        columns[role] = header.index(name)
    rows = 0
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}")
        label = row[columns["label_column"]].strip()
        body = row[columns["text_column"]].strip()
        if not label:
            raise DataError(f"{path}: line {line} has no label")
        if not body:
            raise DataError(f"{path}: line {line} has an empty text")
        rows += 1
        yield Record(body, label)
    if not rows:
        raise DataError(f"{path} has a header but no rows")


def read_table(path: Path, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(text, class name) of every row, in memory (small files, tests)."""
    return [(record.text, record.label) for record in iter_table(path, params)]


def load_csv(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    path = _require_dir(context, "text-csv", params)
    sources: dict[str, Path] = {}
    if path.is_file():
        sources["train"] = path
    else:
        sources = _split_sources(path, [".csv", ".tsv"], Path.is_file)
        if "train" not in sources:
            raise DataError(f"no train.csv or train.tsv in {path} (or pass the CSV/TSV file itself)")
    splits = {}
    for split, file in sources.items():
        settings = {"reader": _READER, "encoding": _check_encoding(params["encoding"]),
                    "text_column": params["text_column"], "label_column": params["label_column"],
                    "delimiter": _delimiter(file, params)}
        splits[split] = tokenized_texts(
            f"text-csv-{file.stem}", [file], lambda file=file: iter_table(file, params),  # type: ignore[misc]
            context.cache_dir, tokenizer=params["tokenizer"], settings=settings, where=str(file),
            status=context.status)
    return _assemble(splits, params, sources)


# -- shared --------------------------------------------------------------------------------------
def _assemble(splits: dict[str, TokenizedTexts], params: dict[str, Any], sources: dict[str, Path]
              ) -> ClassificationData:
    classes = sorted(splits["train"].label_names)
    if len(classes) < 2:
        raise DataError(f"{sources['train']}: found only the class {classes[0]!r}; classification needs two or more")
    for split, texts in splits.items():
        unknown = sorted(set(texts.label_names) - set(classes))
        if unknown:
            raise DataError(f"{sources[split]}: labels not in the training data: {', '.join(unknown[:5])}")
    encoded = {split: texts.split(_all(texts), texts.label_table(classes)[texts.labels])
               for split, texts in splits.items()}
    train = encoded["train"]
    seed = params["split_seed"]
    test = encoded.get("test")
    if test is None:
        train, test = _split(train, params["test_fraction"], seed, sources["train"])
    valid = encoded.get("valid")
    if valid is None:
        train, valid = _split(train, params["valid_fraction"], seed, sources["train"])
    return ClassificationData(
        classes=classes,
        train=train,  # type: ignore[arg-type]  # a TextSplit reads as a list of (text, label)
        valid=valid,  # type: ignore[arg-type]
        test=test,  # type: ignore[arg-type]
        tokenizer=params["tokenizer"],
        max_vocab=params["max_vocab"],
        min_freq=params["min_freq"],
        max_length=params["max_length"],
        truncate=params["truncate"],
        info={"source": str(sources["train"]), "classes": len(classes), "train": len(train),
              "valid": len(valid), "test": len(test),
              "files": {split: str(sources[split]) if split in sources else "held out of train"
                        for split in _SPLITS}},
    )


def _all(texts: TokenizedTexts) -> Any:
    import numpy as np

    return np.arange(len(texts))


def _split(examples: TextSplit, fraction: float, seed: int, where: Path) -> tuple[TextSplit, TextSplit]:
    try:
        return examples.hold_out(fraction, seed)
    except DataError as exc:
        raise DataError(f"{where}: too few texts to hold out {fraction:g} of them ({exc}); "
                        "add texts or set test_fraction/valid_fraction=0") from None
