"""Helpers dataset plugins share: finding local copies, downloading with progress and checksums,
and reproducible splits. No torch here.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from workbench import settings
from workbench.errors import DataError

Progress = Callable[[int, "int | None", str], None]


def default_cache_dir() -> Path:
    """``WORKBENCH_CACHE_DIR``, else ``./datasets`` (the project's data cache folder)."""
    return settings.current().cache_dir


def default_data_dir() -> Path | None:
    return settings.current().data_dir


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mirrored_url(url: str, mirror: str | None) -> str:
    """Replace the scheme and host of ``url`` with ``mirror`` (keeping the path)."""
    if not mirror:
        return url
    path = urllib.parse.urlsplit(url).path
    if mirror.startswith(("http://", "https://", "file://")):
        return mirror.rstrip("/") + path
    return Path(mirror).joinpath(path.lstrip("/")).as_uri()


def download(
    url: str,
    destination: Path,
    sha256: str | None = None,
    progress: Progress | None = None,
    mirror: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch ``url`` to ``destination`` atomically, verifying ``sha256`` when given.

    A partial or corrupt download never lands at ``destination``.
    """
    source = mirrored_url(url, mirror)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=destination.name + ".", suffix=".part", dir=destination.parent)
    tmp = Path(tmp_name)
    try:
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
                total = response.headers.get("Content-Length")
                total_bytes = int(total) if total and total.isdigit() else None
                done = 0
                label = destination.name
                if progress:
                    progress(0, total_bytes, label)
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total_bytes, label)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(
                f"could not download {source}: {reason}. Download it yourself and pass its folder with "
                "--data-dir (or WORKBENCH_DATA_DIR), or set WORKBENCH_DATA_MIRROR to a mirror"
            ) from None
        if sha256 is not None:
            actual = sha256_file(tmp)
            if actual != sha256:
                raise DataError(f"checksum mismatch for {source}: expected sha256 {sha256}, got {actual}")
        os.replace(tmp, destination)
        return destination
    finally:
        if tmp.exists():
            tmp.unlink()


def verify_checksums(folder: Path, expected: Mapping[str, str]) -> None:
    """Raise :class:`DataError` naming the first file whose sha256 differs from ``expected``."""
    for relative, digest in expected.items():
        path = folder / relative
        if not path.is_file():
            raise DataError(f"{path} is missing")
        actual = sha256_file(path)
        if actual != digest:
            raise DataError(f"{path} has sha256 {actual}, expected {digest}; delete it to download again")


def copy_into_cache(source: Path, cache: Path) -> Path:
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, cache)
    return cache


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Per-class draw counts closest to proportional (scikit-learn's algorithm, so splits match)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        values = np.sort(np.unique(remainder))[::-1]
        for value in values:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def stratified_split(labels: Sequence[int], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of a stratified train/test split.

    Same result as scikit-learn's ``train_test_split(..., test_size=test_fraction, stratify=labels,
    random_state=seed)``, which the classic notebooks use, without depending on scikit-learn.
    """
    y = np.asarray(labels)
    n = len(y)
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    classes, y_indices = np.unique(y, return_inverse=True)
    class_counts = np.bincount(y_indices)
    if n_train < len(classes) or n_test < len(classes):
        raise DataError(f"cannot stratify {n} examples of {len(classes)} classes with test fraction {test_fraction}")
    class_indices = np.split(np.argsort(y_indices, kind="mergesort"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(len(classes)):
        permutation = rng.permutation(class_counts[i])
        members = class_indices[i].take(permutation, mode="clip")
        train.extend(members[: n_i[i]])
        test.extend(members[n_i[i] : n_i[i] + t_i[i]])
    return [int(i) for i in rng.permutation(train)], [int(i) for i in rng.permutation(test)]
