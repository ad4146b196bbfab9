"""Bring your own text classification data, no plugin needed.

- ``text-folder``: ``--data-dir FOLDER`` holding one subfolder per class, one text per file; or
  ``train/`` and ``test/`` (optionally ``valid/``, or ``dev/`` as many corpora call it) each holding
  the same class subfolders.
- ``text-csv``: ``--data-dir FILE`` (.csv or .tsv) with a header row, or a folder holding
  ``train.csv`` (and optionally ``test.csv``, ``valid.csv`` or ``dev.csv``; or the .tsv equivalents).

Whatever is not given as its own split is carved out of the training data, stratified by class; the
dataset's ``info["files"]`` says where each split came from.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from workbench.api import ClassificationData, DataError, LoadContext, hold_out, read_text

Examples = list[tuple[str, str]]  # (text, class name)
_SPLITS = ("train", "valid", "test")
#: The names a split's file or folder may have, first found wins; two of them at once is an error.
_SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "dev", "validation"), "test": ("test",)}
_DELIMITERS = {"comma": ",", "tab": "\t", "semicolon": ";", "pipe": "|"}


def _read(path: Path, encoding: str) -> str:
    return read_text(path, encoding, hint="set encoding=latin-1 (or the file's encoding)")


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


# -- folders -------------------------------------------------------------------------------------
def read_class_folders(root: Path, encoding: str, extension: str) -> Examples:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class subfolders: put each class's texts in a folder named after it")
    examples: Examples = []
    for folder in classes:
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.name.endswith(extension))
        if not files:
            raise DataError(f"class folder {folder} holds no {extension + ' ' if extension else ''}files")
        for file in files:
            text = _read(file, encoding).strip()
            if not text:
                raise DataError(f"{file} is empty")
            examples.append((text, folder.name))
    return examples


def load_folder(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    root = _require_dir(context, "text-folder", params)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: text-folder wants one subfolder per class "
                        "(use text-csv for a CSV/TSV file)")
    if (root / "train").is_dir():
        sources = _split_sources(root, [""], Path.is_dir)
    else:
        sources = {"train": root}
    splits = {split: read_class_folders(folder, params["encoding"], params["extension"])
              for split, folder in sources.items()}
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
def read_table(path: Path, params: dict[str, Any]) -> Examples:
    text = _read(path, params["encoding"])
    if not text.strip():
        raise DataError(f"{path} is empty")
    choice = params["delimiter"]
    delimiter = ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",") if choice == "auto" else _DELIMITERS[choice]
    csv.field_size_limit(1 << 30)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: {exc}") from None
    columns = {}
    for role in ("text_column", "label_column"):
        name = params[role]
        if name not in header:
            raise DataError(f"{path}: no column {name!r} in the header (found: {', '.join(header)}); "
                            f"set {role}=NAME or delimiter=...")
        columns[role] = header.index(name)
    examples: Examples = []
    try:
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
            examples.append((body, label))
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: {exc}") from None
    if not examples:
        raise DataError(f"{path} has a header but no rows")
    return examples


def load_csv(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    path = _require_dir(context, "text-csv", params)
    sources: dict[str, Path] = {}
    if path.is_file():
        sources["train"] = path
    else:
        sources = _split_sources(path, [".csv", ".tsv"], Path.is_file)
        if "train" not in sources:
            raise DataError(f"no train.csv or train.tsv in {path} (or pass the CSV/TSV file itself)")
    splits = {split: read_table(file, params) for split, file in sources.items()}
    return _assemble(splits, params, sources)


# -- shared --------------------------------------------------------------------------------------
def _assemble(splits: dict[str, Examples], params: dict[str, Any], sources: dict[str, Path]) -> ClassificationData:
    classes = sorted({label for _, label in splits["train"]})
    if len(classes) < 2:
        raise DataError(f"{sources['train']}: found only the class {classes[0]!r}; classification needs two or more")
    index = {name: i for i, name in enumerate(classes)}
    for split, examples in splits.items():
        unknown = sorted({label for _, label in examples} - set(index))
        if unknown:
            raise DataError(f"{sources[split]}: labels not in the training data: {', '.join(unknown[:5])}")
    encoded = {split: [(text, index[label]) for text, label in examples] for split, examples in splits.items()}
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
        train=train,
        valid=valid,
        test=test,
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


def _split(examples: list[tuple[str, int]], fraction: float, seed: int, where: Path
           ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    try:
        return hold_out(examples, fraction, seed)
    except DataError as exc:
        raise DataError(f"{where}: too few texts to hold out {fraction:g} of them ({exc}); "
                        "add texts or set test_fraction/valid_fraction=0") from None
