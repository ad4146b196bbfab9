"""Character corpora tokenised once into a cached file of small integers, read window by window.

A language-model corpus used to be read whole into a ``str``, then a list of characters and two
tensors of int64 ids: about 16 bytes of memory per character before the first step. Here a UTF-8
text file is decoded in chunks, twice (its alphabet, then its ids), into
``<cache>/tokens/<name>-<key>.bin``: one uint8, uint16 or uint32 per character, as nanoGPT's
``prepare.py`` writes ``train.bin``, with a JSON description and a table of character counts per
block next to it. Training reads only the windows of each batch from that file, so memory does not
grow with the corpus, and a later run with the same file starts without reading the text at all.

The ids index the file's *alphabet* (its distinct characters in code-point order), not a model's
vocabulary: a task maps them through a small table, so a checkpoint's vocabulary reads the same
cache. A cache whose description, size, sampled contents or source file do not match is rebuilt
(with one status line), never trusted.

No torch here, and numpy is imported when used: ``workbench.api`` re-exports this module.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from workbench.data import DEFAULT_DECODE_HINT, require_text_file, sha256_file
from workbench.errors import DataError

if TYPE_CHECKING:
    import numpy as np

#: Bump when the layout of the .bin or its description changes: older caches are then rebuilt.
CACHE_VERSION = 1
#: How text becomes ids; part of the cache key, so a new tokenisation never reads an old cache.
TOKENIZER = {"tokenizer": "char", "newlines": "\\r\\n and \\r become \\n", "bom": "dropped"}
#: Bytes read from the source per chunk: memory while tokenising is a few times this, whatever the size.
READ_BYTES = 1 << 20
#: Blocks of the .bin (and of the source) hashed to tell a damaged or foreign file in constant time.
SAMPLED_BLOCKS = 32
SAMPLE_BYTES = 1 << 16
#: Characters decoded at a time when a stretch of the corpus is iterated.
ITER_CHARS = 1 << 20
#: Character counts are kept per block of at least this many characters (``<name>.counts.npy``), so
#: the vocabulary of any split is a sum of rows plus at most two partial blocks, whatever the size.
MIN_COUNT_BLOCK = 1 << 20
#: Most entries (blocks x alphabet) of that table: a large alphabet gets larger blocks.
MAX_COUNT_CELLS = 1 << 22

Status = Callable[[str], None]


def _numpy() -> Any:
    import numpy

    return numpy


# -- reading the text in chunks ------------------------------------------------------------------
def _utf8_cut(raw: bytes) -> int:
    """Where ``raw`` may be cut without splitting a UTF-8 character: before an incomplete last one."""
    for back in range(1, min(4, len(raw)) + 1):
        byte = raw[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): does its character end inside raw?
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(raw) - back if need > back else len(raw)
    return len(raw)


def iter_text(path: Path, digest: Any = None, chunk_bytes: int | None = None) -> Iterator[str]:
    """The UTF-8 text of ``path`` in pieces, with Unix newlines and without a byte-order mark, as
    :func:`workbench.data.read_text` would read it whole, and with its errors (file, line, byte).
    ``digest`` (a hashlib object) is fed every byte read."""
    require_text_file(path)
    offset = newlines = 0
    carry = b""
    held_cr = False
    started = False
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
    with handle:
        while True:
            try:
                block = handle.read(chunk_bytes or READ_BYTES)
            except OSError as exc:
                raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from None
            if digest is not None:
                digest.update(block)
            final = not block
            raw = carry + block
            if (offset == 0 and raw.startswith((b"\xff\xfe", b"\xfe\xff"))) or b"\x00" in raw:
                raise DataError(f"{path}: not UTF-8 text (it holds NUL bytes or a UTF-16 mark: a UTF-16 or binary "
                                f"file?); {DEFAULT_DECODE_HINT}")
            cut = len(raw) if final else _utf8_cut(raw)
            piece, carry = raw[:cut], raw[cut:]
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = newlines + piece[: exc.start].count(b"\n") + 1
                tail = " (the file ends in the middle of a character: truncated?)" if final and exc.end >= len(piece) else ""
                raise DataError(f"{path}:{line}: not UTF-8 text (byte {offset + exc.start}: {exc.reason}){tail}; "
                                f"{DEFAULT_DECODE_HINT}") from None
            offset += len(piece)
            newlines += piece.count(b"\n")
            if held_cr:
                text = "\r" + text
            held_cr = not final and text.endswith("\r")  # its \n may start the next piece
            if held_cr:
                text = text[:-1]
            if not started and text:
                text = text.removeprefix("\ufeff").removeprefix("\ufeff")  # utf-8-sig, then one more, as read_text
                started = True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text:
                yield text
            if final:
                return


def _code_points(text: str) -> np.ndarray:
    return _numpy().frombuffer(text.encode("utf-32-le"), dtype="<u4")


# -- building ------------------------------------------------------------------------------------
def _scan_alphabet(path: Path) -> tuple[np.ndarray, int, str]:
    """The file's distinct code points (sorted), its length in characters and its sha256."""
    np = _numpy()
    basic = np.zeros(1 << 16, dtype=np.int64)
    astral: set[int] = set()
    length = 0
    digest = hashlib.sha256()
    for text in iter_text(path, digest):
        points = _code_points(text)
        length += len(points)
        small = points[points < (1 << 16)]
        basic += np.bincount(small, minlength=1 << 16)
        if len(small) != len(points):
            astral.update(int(p) for p in np.unique(points[points >= (1 << 16)]))
    alphabet = np.concatenate([np.flatnonzero(basic), np.array(sorted(astral), dtype=np.int64)]).astype(np.uint32)
    return alphabet, length, digest.hexdigest()


def id_dtype(alphabet_size: int) -> str:
    """The smallest unsigned integer type that holds every id."""
    return "uint8" if alphabet_size <= 1 << 8 else "uint16" if alphabet_size <= 1 << 16 else "uint32"


def count_block(length: int, alphabet_size: int) -> int:
    """Characters per row of the count table (see :data:`MIN_COUNT_BLOCK`)."""
    return max(MIN_COUNT_BLOCK, -(-length * alphabet_size // MAX_COUNT_CELLS))


class _BlockCounter:
    """Counts of each id per block of ``block`` characters, fed piece by piece."""

    def __init__(self, block: int, alphabet_size: int) -> None:
        np = _numpy()
        self.block, self.size = block, alphabet_size
        self.rows: list[Any] = []
        self.current = np.zeros(alphabet_size, dtype=np.int64)
        self.filled = 0

    def add(self, ids: Any) -> None:
        np = _numpy()
        done = 0
        while done < len(ids):
            take = min(self.block - self.filled, len(ids) - done)
            self.current += np.bincount(ids[done : done + take], minlength=self.size)
            self.filled += take
            done += take
            if self.filled == self.block:
                self.rows.append(self.current)
                self.current, self.filled = np.zeros(self.size, dtype=np.int64), 0

    def table(self) -> np.ndarray:
        np = _numpy()
        rows = self.rows + ([self.current] if self.filled else [])
        return np.stack(rows) if rows else np.zeros((0, self.size), dtype=np.int64)


def _write_ids(path: Path, alphabet: np.ndarray, dtype: str, out: IO[bytes], counter: _BlockCounter) -> int:
    """Writes the file's characters as alphabet ids to ``out``, counting them per block; the number written."""
    np = _numpy()
    if int(alphabet[-1]) < 1 << 16:
        lookup = np.zeros(1 << 16, dtype=dtype)
        lookup[alphabet] = np.arange(len(alphabet), dtype=dtype)
        to_ids: Callable[[Any], Any] = lambda points: lookup[points]  # noqa: E731
    else:
        to_ids = lambda points: np.searchsorted(alphabet, points).astype(dtype)  # noqa: E731
    written = 0
    for text in iter_text(path):
        ids = to_ids(_code_points(text))
        out.write(ids.tobytes())
        counter.add(ids)
        written += len(ids)
    return written


def _sampled_digest(path: Path | None, handle: IO[bytes] | None = None) -> str:
    """A hash of the size and of ``SAMPLED_BLOCKS`` evenly spread blocks of a file (first and last
    included): a truncated, foreign or rewritten file differs, in constant time."""
    own = handle is None
    file = open(path, "rb") if own else handle  # type: ignore[arg-type]
    assert file is not None
    try:
        size = os.fstat(file.fileno()).st_size
        digest = hashlib.blake2b(str(size).encode(), digest_size=16)
        span = max(size - SAMPLE_BYTES, 0)
        for block in range(SAMPLED_BLOCKS):
            file.seek(span * block // (SAMPLED_BLOCKS - 1))
            digest.update(file.read(SAMPLE_BYTES))
        return digest.hexdigest()
    finally:
        if own:
            file.close()


def _source_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "sampled": _sampled_digest(path)}


# -- the corpus ----------------------------------------------------------------------------------
class CharCorpus:
    """A text file as one array of alphabet ids in a file, with its alphabet and description.

    Windows are read with positional reads (``os.pread``), not through a map held for the run: a
    map counts every page it touches in the process's resident memory (on this Linux a random
    window brings in about a megabyte of the file around it), so after an epoch the process would
    look as large as the corpus. Read, the pages stay in the kernel's page cache, shared and
    reclaimable, and the process holds only the batch.
    """

    def __init__(self, handle: IO[bytes], description: dict[str, Any], block_counts: np.ndarray,
                 paths: tuple[Path, Path, Path] | None) -> None:
        self._handle = handle
        self.description = description
        self.dtype: str = description["dtype"]
        self.length = int(description["length"])
        #: Row b: how often each id occurs in characters [b * block, (b + 1) * block).
        self.block_counts = block_counts
        self.block = int(description["count_block"])
        self.alphabet: list[str] = list(description["alphabet"])
        #: The cache's files (see :func:`cache_paths`), or None when the ids live in an unlinked
        #: temporary file (the cache folder could not be written).
        self.paths = paths
        self.bin_path = paths[0] if paths else None
        self._points = _numpy().array([ord(c) for c in self.alphabet], dtype="<u4")

    def __len__(self) -> int:
        return self.length

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (for worker processes) by its cache files, which the copy opens anew, not by value."""
        if self.paths is None:
            return (_from_ids, (self.read(0, len(self)), self.description, self.block_counts))
        return (_reopen, (self.paths,))

    @property
    def sha256(self) -> str:
        return str(self.description["source"].get("sha256", ""))

    def take(self, positions: np.ndarray) -> np.ndarray:
        """The ids at ``positions``: rows of nearby positions (windows, shape [..., width]); each row
        is one read of the stretch from its smallest to its largest position."""
        np = _numpy()
        rows = positions.reshape(-1, positions.shape[-1]) if positions.ndim else positions.reshape(1, 1)
        out = np.empty(rows.shape, dtype=self.dtype)
        for number, row in enumerate(rows):
            if len(row):
                low, high = int(row.min()), int(row.max()) + 1
                out[number] = self.read(low, high)[row - low]
        return out.reshape(positions.shape)

    def read(self, start: int, stop: int) -> np.ndarray:
        """The ids of ``[start, stop)`` (a copy)."""
        np = _numpy()
        item = np.dtype(self.dtype).itemsize
        size = max(stop - start, 0) * item
        raw = _read_at(self._handle, start * item, size)
        if len(raw) != size or start < 0 or stop > self.length:
            raise DataError(f"the token cache {self.bin_path or ''} ended early (it changed during the run?); start again")
        return np.frombuffer(raw, dtype=self.dtype)

    def text(self, start: int = 0, stop: int | None = None) -> CorpusText:
        return CorpusText(self, start, len(self) if stop is None else stop)

    def decode(self, start: int, stop: int) -> str:
        return self._points[self.read(start, stop)].astype("<u4").tobytes().decode("utf-32-le")

    def split(self, valid_fraction: float, test_fraction: float, where: str) -> tuple[CorpusText, ...]:
        """train | valid | test, contiguous and in order (see :func:`split_sizes`)."""
        n_train, n_valid, _ = split_sizes(len(self), valid_fraction, test_fraction, where)
        return self.text(0, n_train), self.text(n_train, n_train + n_valid), self.text(n_train + n_valid)

    def counts(self, start: int, stop: int) -> np.ndarray:
        """How often each alphabet id occurs in ``[start, stop)``: whole blocks from the count
        table, the ragged ends counted from the file (at most two blocks read, whatever the size)."""
        np = _numpy()
        first, last = -(-start // self.block), stop // self.block
        if first >= last:
            return self._count_ids(start, stop)
        whole = np.asarray(self.block_counts[first:last]).sum(axis=0, dtype=np.int64)
        return whole + self._count_ids(start, first * self.block) + self._count_ids(last * self.block, stop)

    def _count_ids(self, start: int, stop: int) -> np.ndarray:
        np = _numpy()
        chunk = self.read(start, stop)
        if len(chunk) and int(chunk.max()) >= len(self.alphabet):
            raise DataError(f"the token cache {self.bin_path} is damaged (ids beyond its alphabet); delete it")
        return np.bincount(chunk, minlength=len(self.alphabet)).astype(np.int64)


def _read_at(handle: IO[bytes], offset: int, size: int) -> bytes:
    """``size`` bytes of ``handle`` from ``offset`` (fewer at its end), without moving a shared position."""
    if not hasattr(os, "pread"):  # Windows: a map for the duration of the read
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapping:
            return mapping[offset : offset + size]
    parts = []
    while size > 0:
        part = os.pread(handle.fileno(), min(size, 1 << 30), offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        size -= len(part)
    return b"".join(parts)


class CorpusText:
    """A stretch of a :class:`CharCorpus` that reads like a string (``len``, indexing and slicing
    give characters, ``str()`` the whole text) without holding it."""

    def __init__(self, corpus: CharCorpus, start: int, stop: int) -> None:
        self.corpus = corpus
        self.start = start
        self.stop = max(start, stop)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Alphabet ids at ``positions`` counted from this stretch's start (all inside it)."""
        return self.corpus.take(positions + self.start)

    @property
    def alphabet(self) -> list[str]:
        return self.corpus.alphabet

    def char_counts(self) -> dict[str, int]:
        """Each character that occurs here and how often."""
        counts = self.corpus.counts(self.start, self.stop)
        return {self.alphabet[i]: int(c) for i, c in enumerate(counts.tolist()) if c}

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int | slice) -> str:
        if isinstance(index, slice):
            begin, end, step = index.indices(len(self))
            if step != 1:
                return str(self)[index]
            return self.corpus.decode(self.start + begin, self.start + max(begin, end))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("corpus index out of range")
        return self.alphabet[int(self.corpus.read(self.start + index, self.start + index + 1)[0])]

    def __iter__(self) -> Iterator[str]:
        for begin in range(0, len(self), ITER_CHARS):
            yield from self[begin : begin + ITER_CHARS]

    def __str__(self) -> str:
        return self[:]

    def __repr__(self) -> str:
        return f"CorpusText({len(self):,} characters of {self.corpus.bin_path or 'a temporary cache'})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, CorpusText)):
            return len(self) == len(other) and str(self) == str(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def split_sizes(n: int, valid_fraction: float, test_fraction: float, where: str) -> tuple[int, int, int]:
    """Characters in train, valid and test of a text of ``n`` (valid and test rounded, train the rest)."""
    n_valid = int(round(n * valid_fraction))
    n_test = int(round(n * test_fraction))
    n_train = n - n_valid - n_test
    if n_train < 2:
        raise DataError(f"{where} has {n:,} characters: too few to hold out {valid_fraction:g} for validation "
                        f"and {test_fraction:g} for testing")
    return n_train, n_valid, n_test


# -- the cache -----------------------------------------------------------------------------------
def cache_paths(source: Path, cache_dir: Path) -> tuple[Path, Path, Path]:
    """The ids (.bin), description (.json) and count table (.counts.npy) of ``source``'s cache:
    one cache per file and tokenisation, replaced when the file changes."""
    key = hashlib.sha256(json.dumps([str(source.resolve()), TOKENIZER, CACHE_VERSION]).encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", source.stem)[:40] or "corpus"
    folder = cache_dir / "tokens"
    return folder / f"{stem}-{key}.bin", folder / f"{stem}-{key}.json", folder / f"{stem}-{key}.counts.npy"


def char_corpus(path: Path, cache_dir: Path, status: Status | None = None) -> CharCorpus:
    """The corpus of the UTF-8 text file ``path``, from the cache in ``cache_dir/tokens`` or
    tokenised into it now (streamed: memory does not grow with the file). A missing, unreadable,
    empty, blank or non-UTF-8 file is a :class:`DataError` naming it; a cache that does not match
    its description or its file is rebuilt, saying so through ``status``."""
    say = status or (lambda message: None)
    require_text_file(path)
    paths = cache_paths(path, cache_dir)
    source = _source_identity(path)
    if any(p.exists() for p in paths):
        corpus, reason = _open_cached(paths, source)
        if corpus is not None:
            return corpus
        say(f"the token cache of {path} is {reason}: tokenising it again")
    return _build(path, source, paths, say)


def _reopen(paths: tuple[Path, Path, Path]) -> CharCorpus:
    bin_path, describe_path, counts_path = paths
    description = json.loads(describe_path.read_text(encoding="utf-8"))
    counts = _numpy().load(counts_path, allow_pickle=False)
    return CharCorpus(open(bin_path, "rb"), description, counts, paths)


def _from_ids(ids: np.ndarray, description: dict[str, Any], block_counts: np.ndarray) -> CharCorpus:
    """A corpus in an unlinked temporary file holding ``ids`` (a pickled one without a cache)."""
    scratch = tempfile.TemporaryFile()
    scratch.write(ids.tobytes())
    scratch.flush()
    return CharCorpus(scratch, description, block_counts, None)


def _open_cached(paths: tuple[Path, Path, Path], source: dict[str, Any]) -> tuple[CharCorpus | None, str]:
    """The cached corpus, or None and why it cannot be used."""
    bin_path, describe_path, counts_path = paths
    try:
        description = json.loads(describe_path.read_text(encoding="utf-8"))
        if not isinstance(description, dict):
            return None, "damaged (its description is not an object)"
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if description.get("version") != CACHE_VERSION or description.get("tokenizer") != TOKENIZER:
        return None, "from another version of workbench"
    stored = description.get("source")
    if not isinstance(stored, dict) or any(stored.get(key) != source[key] for key in ("path", "size", "sampled")):
        return None, "out of date (the file changed)"
    try:
        problem = _check_files(paths, description)
        if problem:
            return None, problem
        if stored.get("mtime_ns") != source["mtime_ns"]:
            # touched or copied back: the same bytes keep the cache (a hash costs far less than tokenising)
            if stored.get("sha256") != sha256_file(Path(source["path"])):
                return None, "out of date (the file changed)"
            stored["mtime_ns"] = source["mtime_ns"]
            _atomic_json(describe_path, description, quiet=True)
        return _reopen(paths), ""
    except (OSError, KeyError, TypeError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__}: {exc})"


def _check_files(paths: tuple[Path, Path, Path], description: dict[str, Any]) -> str:
    """Why the cache's files do not match its description ("" when they do)."""
    np = _numpy()
    bin_path, _, counts_path = paths
    alphabet, dtype, length = description["alphabet"], description["dtype"], int(description["length"])
    valid = (isinstance(alphabet, list) and all(isinstance(c, str) and len(c) == 1 for c in alphabet)
             and len(set(alphabet)) == len(alphabet) and dtype == id_dtype(len(alphabet)) and length > 0)
    if not valid:
        return "damaged (its alphabet or id type is wrong)"
    size = bin_path.stat().st_size
    if size != length * np.dtype(dtype).itemsize:
        return f"truncated or damaged ({size:,} bytes for {length:,} ids of {dtype})"
    if _sampled_digest(bin_path) != description.get("sampled"):
        return "damaged (its contents do not match its description)"
    block = int(description["count_block"])
    counts = np.load(counts_path, mmap_mode="r", allow_pickle=False)  # reads the header only
    if block < 1 or counts.shape != (-(-length // block), len(alphabet)):
        return "damaged (its count table does not fit its ids)"
    return ""


def _build(path: Path, source: dict[str, Any], paths: tuple[Path, Path, Path], say: Status) -> CharCorpus:
    """Tokenises ``path`` into the cache (or, where the cache folder cannot be written, into an
    unlinked temporary file for this run)."""
    began = time.monotonic()
    say(f"tokenising {path.name} ({source['size']:,} bytes) once into the data cache")
    alphabet, length, sha256 = _scan_alphabet(path)
    if length == 0:
        raise DataError(f"{path} is empty")
    chars = [chr(int(p)) for p in alphabet]
    if all(c.isspace() for c in chars):
        raise DataError(f"{path} contains only whitespace")
    dtype = id_dtype(len(chars))
    description: dict[str, Any] = {
        "version": CACHE_VERSION, "tokenizer": TOKENIZER, "source": {**source, "sha256": sha256},
        "alphabet": chars, "dtype": dtype, "length": length, "count_block": count_block(length, len(chars)),
    }
    counter = _BlockCounter(description["count_block"], len(chars))
    bin_path, describe_path, counts_path = paths
    try:
        bin_path.parent.mkdir(parents=True, exist_ok=True)
        out = tempfile.NamedTemporaryFile(dir=bin_path.parent, prefix=bin_path.name + ".", suffix=".part",
                                          delete=False)
    except OSError as exc:
        say(f"cannot write the token cache in {bin_path.parent} ({exc.strerror or exc}); "
            "tokenised into a temporary file for this run")
        scratch = tempfile.TemporaryFile()  # unlinked: gone when the corpus is
        _fill(path, alphabet, dtype, length, scratch, counter)
        return CharCorpus(scratch, description, counter.table(), None)
    try:
        with out:
            _fill(path, alphabet, dtype, length, out, counter)
            description["sampled"] = _sampled_digest(None, out)
        _atomic_write(counts_path, lambda handle: _numpy().save(handle, counter.table(), allow_pickle=False))
        os.replace(out.name, bin_path)
        _atomic_json(describe_path, description)  # last: until it is there, the cache is not complete
    except OSError as exc:  # a full disk, a folder made read-only meanwhile
        raise DataError(f"cannot write the token cache in {bin_path.parent}: {exc.strerror or exc}; free some "
                        "space there or set WORKBENCH_CACHE_DIR to another folder") from None
    finally:
        Path(out.name).unlink(missing_ok=True)
    say(f"tokenised {length:,} characters ({len(chars)} distinct, {dtype}) in {time.monotonic() - began:.1f} s "
        f"into {bin_path}")
    return _reopen(paths)


def _fill(path: Path, alphabet: np.ndarray, dtype: str, length: int, out: IO[bytes], counter: _BlockCounter) -> None:
    written = _write_ids(path, alphabet, dtype, out, counter)
    out.flush()
    if written != length:
        raise DataError(f"{path} changed while it was being tokenised; try again when it is complete")


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Writes ``path`` through a temporary file, so a reader never sees half of it."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def _atomic_json(path: Path, value: dict[str, Any], quiet: bool = False) -> None:
    """The description, written atomically; ``quiet``: a cache folder that has become unwritable
    is not an error (the cache still reads)."""
    try:
        _atomic_write(path, lambda handle: handle.write(json.dumps(value).encode()))
    except OSError as exc:
        if not quiet:
            raise DataError(f"cannot write the token cache's description {path}: {exc.strerror or exc}") from None
