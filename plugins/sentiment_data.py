"""Loaders for the sentiment datasets: IMDB movie reviews and the rt-polarity sentences.

Both accept the canonical archive, its extracted folder, or a folder holding either; without a local
copy they download the canonical archive into the cache and verify it. The reviews are read one at
a time and tokenised once into the data cache (``<cache>/texts``, see
:func:`workbench.api.tokenized_texts`), keyed by the archive's (or the files') path, size and
modification time: a later run reads the cached ids, not the 50,000 files of the archive.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from workbench.api import (
    ClassificationData,
    DataError,
    LoadContext,
    Record,
    TextSplit,
    TokenizedTexts,
    decode_text,
    fetch,
    tokenized_texts,
)

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
IMDB_CLASSES = ["neg", "pos"]
#: aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt; the unlabelled train/unsup reviews are not read.
_IMDB_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)

RT_URL = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
RT_CLASSES = ["neg", "pos"]
#: The archive's own checksum is not published; its two members' are (see the shared data README).
RT_CHECKSUMS = {
    "rt-polarity.neg": "4ace77d558c3714723843f1d65b60c01e3417b208180f0728808d76ad0eeeaca",
    "rt-polarity.pos": "2da124ec187a9d5a29c9f04e91c540e02baed5af8868f550a26bd6fd4dbf8bf0",
}
#: Part of the token caches' keys: bump when what a record's text is changes (the <br> clean-up).
_READER = 1


# -- shared helpers ------------------------------------------------------------------------------
def _tar_error(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path} is not a readable tar.gz archive ({type(exc).__name__}: {exc}); "
                     "it may be truncated: delete it or point --data-dir elsewhere")


# -- IMDB ----------------------------------------------------------------------------------------
def _clean_review(text: str) -> str:
    return _BR.sub(" ", text)


def iter_imdb_archive(path: Path) -> Iterator[Record]:
    """The labelled train/test reviews of the tar.gz, streamed, one at a time (group: the split, key:
    the review id)."""
    try:
        with tarfile.open(path, "r|gz") as archive:
            for member in archive:
                match = _IMDB_MEMBER.search(member.name)
                if not match or not member.isfile():
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                split, label, review_id, _rating = match.groups()
                text = decode_text(handle.read(), f"{path}:{member.name}")
                yield Record(_clean_review(text), label, split, int(review_id))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _tar_error(path, exc) from None


def _imdb_folders(root: Path) -> list[Path]:
    folders = [root / split / label for split in ("train", "test") for label in IMDB_CLASSES]
    for folder in folders:
        if not folder.is_dir():
            raise DataError(f"{folder} is missing: an extracted aclImdb folder holds train/ and test/, "
                            "each with pos/ and neg/")
    return folders


def iter_imdb_folder(root: Path) -> Iterator[Record]:
    """The reviews of an extracted ``aclImdb`` folder (holding train/ and test/), a file at a time."""
    for folder in _imdb_folders(root):
        for file in sorted(folder.glob("*.txt")):
            match = re.fullmatch(r"(\d+)_(\d+)\.txt", file.name)
            if not match:
                continue
            text = decode_text(file.read_bytes(), file)
            yield Record(_clean_review(text), folder.name, folder.parent.name, int(match.group(1)))


def imdb_split(texts: TokenizedTexts, split: str, where: str) -> TextSplit:
    """The reviews of ``split`` ordered by (label, review id), so a split never depends on archive or
    directory order."""
    records = texts.group(split)
    labels = texts.label_table(IMDB_CLASSES)[texts.labels[records]]
    missing = [IMDB_CLASSES[i] for i in range(2) if not (labels == i).any()]
    if missing:
        raise DataError(f"{where} has no aclImdb/{split}/{'/, '.join(missing)}/ reviews "
                        "(is it the Large Movie Review Dataset, complete?)")
    order = np.lexsort((texts.keys[records], labels))
    return texts.split(records[order], labels[order])


def locate_imdb(data_dir: Path) -> Path | None:
    """The first IMDB copy at or under ``data_dir``: an archive, or an extracted aclImdb folder."""
    if data_dir.is_file():
        return data_dir
    for base in (data_dir, data_dir / "imdb"):
        if (base / "train" / "pos").is_dir() and (base / "test").is_dir():
            return base
        if (base / "aclImdb" / "train").is_dir():
            return base / "aclImdb"
        for name in ("aclImdb_v1.tar.gz", "aclImdb_labeled.tar.gz"):
            if (base / name).is_file():
                return base / name
        if base.is_dir():
            archives = sorted(base.glob("aclImdb*.tar.gz"))
            if archives:
                return archives[0]
    return None


def load_imdb_reviews(context: LoadContext) -> tuple[dict[str, TextSplit], str]:
    """split ("train", "test") -> its reviews, tokenised in the data cache; and where they came from."""
    path = fetch(context, IMDB_URL, "imdb/aclImdb_v1.tar.gz", sha256=IMDB_SHA256, find=locate_imdb,
                 what="IMDB data", expected="aclImdb_v1.tar.gz, an extracted aclImdb/ folder, or imdb/ holding either")
    if path.is_dir():
        sources, records = _imdb_folders(path), lambda: iter_imdb_folder(path)
    else:
        sources, records = [path], lambda: iter_imdb_archive(path)
    texts = tokenized_texts("imdb", sources, records, context.cache_dir, tokenizer="word",
                            settings={"reader": _READER}, where=str(path), status=context.status)
    return {split: imdb_split(texts, split, str(path)) for split in ("train", "test")}, str(path)


def load_imdb(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    reviews, where = load_imdb_reviews(context)
    train, valid = reviews["train"].hold_out(params["valid_fraction"], params["split_seed"])
    return ClassificationData(
        classes=list(IMDB_CLASSES),
        train=train,  # type: ignore[arg-type]  # a TextSplit reads as a list of (text, label)
        valid=valid,  # type: ignore[arg-type]
        test=reviews["test"],  # type: ignore[arg-type]
        tokenizer="word",
        normalize="none",
        max_vocab=params["max_vocab"],
        min_freq=params["min_freq"],
        max_length=params["max_length"],
        truncate=params["truncate"],
        info={"source": where, "train": len(train), "valid": len(valid), "test": len(reviews["test"]),
              "classes": "neg, pos", "max_length": params["max_length"] or "none", "truncate": params["truncate"]},
    )


# -- rt-polarity ---------------------------------------------------------------------------------
def _rt_from_archive(path: Path) -> dict[str, tuple[str, bytes]]:
    files: dict[str, tuple[str, bytes]] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                name = Path(member.name).name
                if member.isfile() and name in ("rt-polarity.pos", "rt-polarity.neg"):
                    handle = archive.extractfile(member)
                    if handle is not None:
                        files[name.rsplit(".", 1)[1]] = (f"{path}:{member.name}", handle.read())
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _tar_error(path, exc) from None
    return files


def locate_rt(data_dir: Path) -> Path | None:
    """The archive, or a folder with rt-polarity.pos/.neg (also under rt-polarity/ or rt-polaritydata/)."""
    if data_dir.is_file():
        return data_dir
    for base in (data_dir, data_dir / "rt-polarity", data_dir / "rt-polaritydata",
                 data_dir / "rt-polarity" / "rt-polaritydata"):
        if (base / "rt-polarity.pos").is_file() or (base / "rt-polarity.neg").is_file():
            return base
        archive = base / "rt-polaritydata.tar.gz"
        if archive.is_file():
            return archive
    return None


def read_rt_files(path: Path) -> dict[str, tuple[str, bytes]]:
    """label -> (where, bytes) from what :func:`locate_rt` found (or the downloaded archive)."""
    if path.is_file():
        return _rt_from_archive(path)
    return {label: (str(path / f"rt-polarity.{label}"), (path / f"rt-polarity.{label}").read_bytes())
            for label in RT_CLASSES if (path / f"rt-polarity.{label}").is_file()}


def read_rt(files: dict[str, tuple[str, bytes]], where: str) -> Iterator[Record]:
    """Each sentence of the two files, negative ones first, as records."""
    missing = [f"rt-polarity.{label}" for label in RT_CLASSES if label not in files]
    if missing:
        raise DataError(f"{where} lacks {', '.join(missing)}")
    for label in RT_CLASSES:
        name, raw = files[label]
        # split on newlines only: str.splitlines would also break at Latin-1's 0x85 (NEL) inside sentences
        lines = [line.strip() for line in decode_text(raw, name, "latin-1").split("\n")]
        sentences = [line for line in lines if line]
        if not sentences:
            raise DataError(f"{name} contains no sentences")
        yield from (Record(sentence, label) for sentence in sentences)


def load_rt(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    path = fetch(context, RT_URL, "rt-polarity/rt-polaritydata.tar.gz", members=RT_CHECKSUMS, find=locate_rt,
                 what="rt-polarity data", expected="rt-polarity.pos and rt-polarity.neg, or rt-polaritydata.tar.gz")
    where = str(context.data_dir if context.data_dir is not None else path)
    sources = [path] if path.is_file() else [path / f"rt-polarity.{label}" for label in RT_CLASSES
                                             if (path / f"rt-polarity.{label}").is_file()]
    texts = tokenized_texts("rt-polarity", sources, lambda: read_rt(read_rt_files(path), where), context.cache_dir,
                            tokenizer="word", settings={"reader": _READER}, where=where, status=context.status)
    examples = texts.split(np.arange(len(texts)), texts.label_table(RT_CLASSES)[texts.labels])
    train, test = examples.hold_out(params["test_fraction"], params["split_seed"])
    train, valid = train.hold_out(params["valid_fraction"], params["split_seed"])
    return ClassificationData(
        classes=list(RT_CLASSES),
        train=train,  # type: ignore[arg-type]  # a TextSplit reads as a list of (text, label)
        valid=valid,  # type: ignore[arg-type]
        test=test,  # type: ignore[arg-type]
        tokenizer="word",
        max_vocab=params["max_vocab"],
        min_freq=params["min_freq"],
        info={"source": where, "sentences": len(examples), "train": len(train), "valid": len(valid),
              "test": len(test)},
    )
