"""Loaders for the sentiment datasets: IMDB movie reviews and the rt-polarity sentences.

Both accept the canonical archive, its extracted folder, or a folder holding either; without a local
copy they download the canonical archive into the cache and verify it. Reading IMDB's 50,000 files
from its tar.gz takes several seconds, so the parsed reviews are cached next to the download, keyed
by the archive's path, size and modification time.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

from workbench.api import ClassificationData, DataError, LoadContext, decode_text, fetch, hold_out

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

Reviews = dict[str, list[tuple[str, int]]]  # split -> [(text, label)]
_CACHE_VERSION = 1


# -- shared helpers ------------------------------------------------------------------------------
def _tar_error(path: Path, exc: BaseException) -> DataError:
    return DataError(f"{path} is not a readable tar.gz archive ({type(exc).__name__}: {exc}); "
                     "it may be truncated: delete it or point --data-dir elsewhere")


# -- IMDB ----------------------------------------------------------------------------------------
def _clean_review(text: str) -> str:
    return _BR.sub(" ", text)


def _sorted_reviews(found: dict[str, list[tuple[int, int, str]]]) -> Reviews:
    """Order by (label, review id) so a split never depends on archive or directory order."""
    return {split: [(text, label) for label, _, text in sorted(items, key=lambda x: (x[0], x[1]))]
            for split, items in found.items()}


def read_imdb_archive(path: Path) -> Reviews:
    """Stream the tar.gz once, keeping only the labelled train/test reviews."""
    found: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": []}
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
                found[split].append((IMDB_CLASSES.index(label), int(review_id), _clean_review(text)))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _tar_error(path, exc) from None
    return _check_imdb(_sorted_reviews(found), str(path))


def read_imdb_folder(root: Path) -> Reviews:
    """An extracted ``aclImdb`` folder (holding train/ and test/)."""
    found: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": []}
    for split in ("train", "test"):
        for label in IMDB_CLASSES:
            folder = root / split / label
            if not folder.is_dir():
                raise DataError(f"{folder} is missing: an extracted aclImdb folder holds train/ and test/, "
                                "each with pos/ and neg/")
            for file in folder.glob("*.txt"):
                match = re.fullmatch(r"(\d+)_(\d+)\.txt", file.name)
                if not match:
                    continue
                text = decode_text(file.read_bytes(), file)
                found[split].append((IMDB_CLASSES.index(label), int(match.group(1)), _clean_review(text)))
    return _check_imdb(_sorted_reviews(found), str(root))


def _check_imdb(reviews: Reviews, where: str) -> Reviews:
    for split in ("train", "test"):
        labels = {label for _, label in reviews[split]}
        missing = [IMDB_CLASSES[i] for i in range(2) if i not in labels]
        if missing:
            raise DataError(f"{where} has no aclImdb/{split}/{'/, '.join(missing)}/ reviews "
                            "(is it the Large Movie Review Dataset, complete?)")
    return reviews


def _cache_key(path: Path) -> str:
    stat = path.stat()
    raw = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{_CACHE_VERSION}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def read_imdb_archive_cached(path: Path, cache_dir: Path) -> Reviews:
    """:func:`read_imdb_archive`, remembered as gzipped JSON in the cache (about 1 s to read back)."""
    cached = cache_dir / "imdb" / f"parsed-{_cache_key(path)}.json.gz"
    if cached.is_file():
        try:
            with gzip.open(cached, "rt", encoding="utf-8") as handle:
                stored = json.load(handle)
            return {split: [(t, int(y)) for t, y in stored[split]] for split in ("train", "test")}
        except (OSError, EOFError, ValueError, KeyError, TypeError, zlib.error):
            cached.unlink(missing_ok=True)  # unreadable cache: parse the archive again
    reviews = read_imdb_archive(path)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=cached.name, suffix=".part", dir=cached.parent)
        with os.fdopen(fd, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8", compresslevel=1) as handle:
            json.dump(reviews, handle)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache only costs speed
    return reviews


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


def load_imdb_reviews(context: LoadContext) -> tuple[Reviews, str]:
    path = fetch(context, IMDB_URL, "imdb/aclImdb_v1.tar.gz", sha256=IMDB_SHA256, find=locate_imdb,
                 what="IMDB data", expected="aclImdb_v1.tar.gz, an extracted aclImdb/ folder, or imdb/ holding either")
    if path.is_dir():
        return read_imdb_folder(path), str(path)
    return read_imdb_archive_cached(path, context.cache_dir), str(path)


def load_imdb(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    reviews, where = load_imdb_reviews(context)
    train, valid = hold_out(reviews["train"], params["valid_fraction"], params["split_seed"])
    return ClassificationData(
        classes=list(IMDB_CLASSES),
        train=train,
        valid=valid,
        test=reviews["test"],
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


def read_rt(files: dict[str, tuple[str, bytes]], where: str) -> list[tuple[str, int]]:
    missing = [f"rt-polarity.{label}" for label in RT_CLASSES if label not in files]
    if missing:
        raise DataError(f"{where} lacks {', '.join(missing)}")
    examples: list[tuple[str, int]] = []
    for index, label in enumerate(RT_CLASSES):
        name, raw = files[label]
        # split on newlines only: str.splitlines would also break at Latin-1's 0x85 (NEL) inside sentences
        lines = [line.strip() for line in decode_text(raw, name, "latin-1").split("\n")]
        sentences = [line for line in lines if line]
        if not sentences:
            raise DataError(f"{name} contains no sentences")
        examples.extend((sentence, index) for sentence in sentences)
    return examples


def load_rt(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    path = fetch(context, RT_URL, "rt-polarity/rt-polaritydata.tar.gz", members=RT_CHECKSUMS, find=locate_rt,
                 what="rt-polarity data", expected="rt-polarity.pos and rt-polarity.neg, or rt-polaritydata.tar.gz")
    where = str(context.data_dir if context.data_dir is not None else path)
    examples = read_rt(read_rt_files(path), where)
    train, test = hold_out(examples, params["test_fraction"], params["split_seed"])
    train, valid = hold_out(train, params["valid_fraction"], params["split_seed"])
    return ClassificationData(
        classes=list(RT_CLASSES),
        train=train,
        valid=valid,
        test=test,
        tokenizer="word",
        max_vocab=params["max_vocab"],
        min_freq=params["min_freq"],
        info={"source": where, "sentences": len(examples), "train": len(train), "valid": len(valid),
              "test": len(test)},
    )
