"""Helpers dataset plugins share: finding a local copy or downloading a verified one
(:func:`fetch`), decoding bytes with errors that say what to do (:func:`decode_text`), and
reproducible splits. Plugins reach these through :mod:`workbench.api`.

No torch here, and numpy and urllib.request are imported only when used: ``workbench.api``
re-exports this module, and listing plugins must stay cheap.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import os
import tarfile
import tempfile
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from workbench import settings
from workbench.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from workbench.api import LoadContext

Progress = Callable[[int, "int | None", str], None]
Example = TypeVar("Example", bound=tuple)


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
    import urllib.error
    import urllib.request

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


def fetch(
    context: LoadContext,
    url: str,
    cache_name: str,
    *,
    sha256: str | None = None,
    members: Mapping[str, str] | None = None,
    find: Callable[[Path], Path | None] | None = None,
    what: str = "the data",
    expected: str = "",
) -> Path:
    """The path of a dataset file: the user's own copy, else a verified download in the cache.

    With ``find`` and a ``context.data_dir``, ``find(data_dir)`` picks the user's copy (a file or a
    folder, whatever the loader reads) and nothing is downloaded or verified; when it finds
    nothing the error names ``what``, ``expected`` and ``url``. Otherwise the file is
    ``context.cache_dir / cache_name``, downloaded from ``url`` through ``context.mirror`` with
    ``context.progress`` when missing. ``sha256`` is the whole file's checksum; ``members`` maps
    archive member paths (zip or tar) to theirs, for archives whose own checksum is not published.
    Both are checked on every call: a cached file that fails is deleted and the error says so, so
    the next run downloads it again.
    """
    if find is not None and context.data_dir is not None:
        if not context.data_dir.exists():
            raise DataError(f"no {what} in {context.data_dir}: it does not exist")
        found = find(context.data_dir)
        if found is None:
            wanted = f": expected {expected}" if expected else ""
            raise DataError(f"no {what} in {context.data_dir}{wanted} (download {url})")
        return found
    path = context.cache_dir / cache_name
    if not path.is_file():
        download(url, path, sha256=sha256, progress=context.progress, mirror=context.mirror)
    elif sha256 is not None and sha256_file(path) != sha256:
        path.unlink()
        raise DataError(f"{path} did not match its sha256 (a damaged download?); it was removed, try again")
    if members:
        try:
            check_members(path, members)
        except DataError as exc:
            path.unlink(missing_ok=True)
            raise DataError(f"{exc}; the cached download was removed, try again") from None
    return path


def check_members(archive: Path, expected: Mapping[str, str]) -> None:
    """Raise :class:`DataError` unless the zip or tar ``archive`` holds each member of ``expected``
    (a path inside the archive, or its end such as ``names/Greek.txt`` -> sha256) with those bytes."""
    found = read_members(archive, expected)
    for key, digest in expected.items():
        if key not in found:
            raise DataError(f"{archive} lacks {key}")
        name, raw = found[key]
        if hashlib.sha256(raw).hexdigest() != digest:
            raise DataError(f"{archive}:{name} does not match its published sha256")


def read_members(archive: Path, keys: Iterable[str]) -> dict[str, tuple[str, bytes]]:
    """key -> (member path, bytes) for the members of a zip or tar archive whose path is a key or
    ends with ``/`` and a key (the first such member)."""
    wanted = list(keys)

    def key_of(name: str) -> str | None:
        return next((k for k in wanted if name == k or name.endswith("/" + k)), None)

    found: dict[str, tuple[str, bytes]] = {}
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                for name in handle.namelist():
                    key = key_of(name)
                    if key is not None and key not in found:
                        found[key] = (name, handle.read(name))
            return found
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                key = key_of(member.name) if member.isfile() else None
                data = tar.extractfile(member) if key is not None and key not in found else None
                if key is not None and data is not None:
                    found[key] = (member.name, data.read())
        return found
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(f"{archive} is not a readable archive ({exc})") from None


#: How :func:`decode_text` names an encoding in its errors (by Python's codec name).
_ENCODING_NAMES = {"utf-8": "UTF-8", "iso8859-1": "Latin-1", "ascii": "ASCII"}
DEFAULT_DECODE_HINT = "convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > NEW`"


def decode_text(raw: bytes, where: str | Path, encoding: str = "utf-8", hint: str = DEFAULT_DECODE_HINT) -> str:
    """Bytes read from ``where`` as text, without a byte-order mark.

    Bytes that are not ``encoding`` text, and UTF-16 or binary files (which Latin-1 would decode
    silently), are a :class:`DataError` naming the file, the line and byte, and ``hint``: what the
    user should do (convert the file, or set the loader's encoding parameter).
    """
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r} (try utf-8, latin-1 or cp1252)") from None
    label = _ENCODING_NAMES.get(codec, encoding)
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw:
        raise DataError(f"{where}: not {label} text (it holds NUL bytes or a UTF-16 mark: a UTF-16 or binary "
                        f"file?); {hint}")
    try:
        text = raw.decode("utf-8-sig" if codec == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        tail = " (the file ends in the middle of a character: truncated?)" if exc.end >= len(raw) else ""
        raise DataError(f"{where}:{line}: not {label} text (byte {exc.start}: {exc.reason}){tail}; {hint}") from None
    return text.removeprefix("\ufeff")


def require_text_file(path: Path) -> None:
    """A :class:`DataError` naming ``path`` unless it is a regular file (a missing path, a folder, a
    FIFO that would block for ever or a /dev/zero that would fill the memory are not)."""
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a text file")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (a device, pipe or socket); point at a text file")


def read_text(path: Path, encoding: str = "utf-8", hint: str = DEFAULT_DECODE_HINT) -> str:
    """A text file's contents through :func:`decode_text`; a missing, folder or unreadable path is a
    :class:`DataError` naming it."""
    require_text_file(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    return decode_text(raw, path, encoding, hint)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Per-class draw counts closest to proportional (scikit-learn's algorithm, so splits match)."""
    import numpy as np

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
    import numpy as np

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


def hold_out(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(kept, held out): a share ``fraction`` of ``(input, label)`` examples held out, stratified by
    label with :func:`stratified_split`; nothing held out when ``fraction`` is 0."""
    if fraction <= 0:
        return list(examples), []
    keep, held = stratified_split([example[1] for example in examples], fraction, seed)
    return [examples[i] for i in keep], [examples[i] for i in held]
