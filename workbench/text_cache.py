"""Labelled texts tokenised once into the data cache: one flat array of token ids with offsets.

A classification loader used to read every text into a Python list of strings, and the task then
turned them into lists of token-id lists while the strings were still held: memory grew with the
corpus, and every run tokenised it again. Here a loader hands :func:`tokenized_texts` a function
that *yields* its records (text, label name, group, sort key) and the files they come from; the
records are tokenised once, streamed, into ``<cache>/texts/<name>-<key>``:

- ``.ids.bin``: every record's tokens, one after the other, as ids into the corpus's own *lexicon*
  (its distinct tokens in order of first appearance), one uint8, uint16 or uint32 each;
- ``.offsets.npy``: where each record's tokens start (int64, one more than there are records);
- ``.records.npy``: each record's label, group and sort key (int64, n x 3);
- ``.json``: the description (lexicon, label and group names, source identity), written last.

The arrays are opened as ``np.memmap``; training reads the ids of a batch's texts with ``os.pread``
(see :meth:`TokenizedTexts.read` for why not through the map). The lexicon is not a model's
vocabulary: the vocabulary is built from the *training split's* token counts (a bincount over its
records) and a table maps lexicon ids to vocabulary ids, so ``max_vocab``, ``min_freq`` and the
split settings change nothing on disk, and a checkpoint's vocabulary reads the same cache.

The cache key holds the source paths and the tokenisation (tokeniser, normaliser, the loader's own
reading settings); the description holds each source file's size and modification time, so a
changed file rebuilds the cache in place. A cache that does not match its description is rebuilt
with one status line, never trusted.

No torch here, and numpy is imported when used: ``workbench.api`` re-exports this module.
"""

from __future__ import annotations

import array
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, overload

from workbench.errors import DataError
from workbench.text import get_normalizer, get_tokenizer

if TYPE_CHECKING:
    import numpy as np

#: Bump when the files' layout or the description changes: older caches are then rebuilt.
CACHE_VERSION = 1
#: Token ids buffered in memory before they are appended to the file being built.
FLUSH_IDS = 1 << 20
#: Tokens counted at a time when a split's vocabulary is counted from the cache.
COUNT_TOKENS = 1 << 20

Status = Callable[[str], None]
#: The tokeniser name for records that bring their own words (``Record.words``).
GIVEN = "given"
_KEY_LIMIT = 2**63 - 1


class Record(NamedTuple):
    """One labelled text as a loader yields it."""

    text: str
    #: The class name (mapped to a class index by the loader after the cache is read).
    label: str
    #: Which part of the source it came from ("train", "test", ... or "" for one part).
    group: str = ""
    #: An integer the loader orders records by (IMDB's review id); 0 when source order is the order.
    key: int = 0
    #: Words already split (a treebank's): used as the tokens instead of tokenising ``text``.
    words: Sequence[str] | None = None
    #: One tag per word (part of speech), kept as a second id stream sharing the words' offsets.
    tags: Sequence[str] | None = None


def _numpy() -> Any:
    import numpy

    return numpy


def id_dtype(size: int) -> str:
    """The smallest unsigned integer type that holds ids below ``size``."""
    return "uint8" if size <= 1 << 8 else "uint16" if size <= 1 << 16 else "uint32"


# -- the corpus ------------------------------------------------------------------------------------
class TokenizedTexts:
    """Every record of one source, tokenised: ids (memory-mapped), offsets, labels, groups, keys."""

    def __init__(self, description: dict[str, Any], ids: np.ndarray, offsets: np.ndarray,
                 records: np.ndarray, path: Path | None) -> None:
        self.description = description
        self.lexicon: list[str] = description["lexicon"]
        self.label_names: list[str] = description["labels"]
        self.group_names: list[str] = description["groups"]
        self.tokenizer: str = description["tokenizer"]
        self.normalize: str = description["normalize"]
        self.where: str = description["where"]
        #: Tag names and the tag of every token (None unless the records carried tags).
        self.tag_names: list[str] = description.get("tag_names", [])
        self.tags: np.ndarray | None = None
        self.tags_path: Path | None = None
        self.ids = ids
        self.offsets = offsets
        self.labels = records[:, 0]
        self.groups = records[:, 1]
        self.keys = records[:, 2]
        #: The ``.ids.bin`` file, or None when the cache could not be written (a temporary copy).
        self.path = path
        #: Open files of the id streams ("ids", "tags"), read with ``os.pread`` (see :meth:`read`).
        self.handles: dict[str, IO[bytes]] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def close(self) -> None:
        """Closes the files held for reading (the maps stay usable)."""
        handles = getattr(self, "handles", {})  # empty when __init__ failed on a damaged description
        for handle in handles.values():
            handle.close()
        handles.clear()

    def __del__(self) -> None:
        self.close()

    @property
    def lengths(self) -> np.ndarray:
        return _numpy().diff(self.offsets)

    def group(self, name: str) -> np.ndarray:
        """The record numbers of group ``name`` (empty when there is none)."""
        np = _numpy()
        if name not in self.group_names:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.groups == self.group_names.index(name))

    def label_table(self, classes: Sequence[str]) -> np.ndarray:
        """Class index of each label name (-1 for a name not among ``classes``)."""
        index = {name: i for i, name in enumerate(classes)}
        return _numpy().array([index.get(name, -1) for name in self.label_names], dtype=_numpy().int64)

    def tokens(self, record: int) -> list[str]:
        start, stop = int(self.offsets[record]), int(self.offsets[record + 1])
        return [self.lexicon[int(i)] for i in self.read(start, stop)]

    def counts(self, records: np.ndarray, tags: bool = False) -> np.ndarray:
        """How often each lexicon entry (with ``tags``: each tag) occurs in ``records`` (each counted
        once), read in chunks."""
        np = _numpy()
        size = len(self.tag_names) if tags else len(self.lexicon)
        member = np.zeros(len(self), dtype=bool)
        member[records] = True
        lengths = self.lengths
        total = np.zeros(size, dtype=np.int64)
        first = 0
        while first < len(self):
            # records [first, last) hold about COUNT_TOKENS tokens (at least one record)
            last = int(np.searchsorted(self.offsets, self.offsets[first] + COUNT_TOKENS, side="right"))
            last = min(max(last - 1, first + 1), len(self))
            keep = np.repeat(member[first:last], lengths[first:last])
            chunk = self.read(int(self.offsets[first]), int(self.offsets[last]), tags)
            total += np.bincount(chunk[keep], minlength=size)[:size]
            first = last
        return total

    def read(self, start: int, stop: int, tags: bool = False) -> np.ndarray:
        """Ids (or tags) ``start:stop``, read from the file with ``os.pread``, not through the map.
        Reading a few random texts through the map made the kernel map whole large page-cache folios
        (about 1 MB per text read on ext4 here, ``MADV_RANDOM`` or not), so a first batch of 64 texts
        put 64 to 75 MB of the file into the process's RSS and an epoch all of it; ``pread`` copies
        only the bytes asked for. The maps stay for code that wants arrays (and where there is no
        ``pread``)."""
        stream = self.tags if tags else self.ids
        if stream is None:
            raise ValueError("these texts carry no tags")
        handle = self.handles.get("tags" if tags else "ids")
        if handle is None or not hasattr(os, "pread") or stop <= start:
            return _numpy().asarray(stream[start:stop])
        size = stream.dtype.itemsize
        raw = os.pread(handle.fileno(), (stop - start) * size, start * size)
        if len(raw) != (stop - start) * size:
            raise DataError(f"the token cache {self.path or self.where} is truncated; delete it and start again")
        return _numpy().frombuffer(raw, dtype=stream.dtype)

    def split(self, records: np.ndarray, labels: np.ndarray) -> TextSplit:
        """The records ``records`` (in that order) with class indices ``labels``."""
        return TextSplit(self, records, labels)


class TextSplit(Sequence[tuple[str, int]]):
    """One split of a :class:`TokenizedTexts`, by record number, with class indices: what a streamed
    loader puts in ``ClassificationData.train`` (``valid``, ``test``). Reading an item gives its
    tokens joined by spaces (the original text is not kept); the task reads the ids instead."""

    def __init__(self, texts: TokenizedTexts, records: np.ndarray, labels: np.ndarray) -> None:
        np = _numpy()
        self.texts = texts
        self.records = np.asarray(records, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.records) != len(self.labels):
            raise ValueError("a split needs one label per record")

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> tuple[str, int]: ...

    @overload
    def __getitem__(self, index: slice) -> TextSplit: ...

    def __getitem__(self, index: int | slice) -> tuple[str, int] | TextSplit:
        if isinstance(index, slice):
            return type(self)(self.texts, self.records[index], self.labels[index])
        return " ".join(self.texts.tokens(int(self.records[index]))), int(self.labels[index])

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for i in range(len(self)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        """Equal to a split or list holding the same (text, label) items, in the same order."""
        if not isinstance(other, (TextSplit, list, tuple)) or len(other) != len(self):
            return False
        return all(mine == theirs for mine, theirs in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        """A list of both splits' items, as ``list + list`` gives (code written for lists keeps working)."""
        return [*self, *other]

    def __radd__(self, other: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        return [*other, *self]

    def hold_out(self, fraction: float, seed: int) -> tuple[TextSplit, TextSplit]:
        """(kept, held out) as :func:`workbench.data.hold_out` splits the same examples in a list."""
        if fraction <= 0:
            return self, self[0:0]
        from workbench.data import stratified_split

        keep, held = stratified_split(self.labels, fraction, seed)
        return self.select(keep), self.select(held)

    def select(self, positions: Sequence[int] | np.ndarray) -> Any:
        """The items at ``positions`` (of this split), in that order, as a split of the same kind."""
        chosen = _numpy().asarray(positions, dtype=_numpy().int64)
        return type(self)(self.texts, self.records[chosen], self.labels[chosen])

    def token_counts(self) -> dict[str, int]:
        """Token -> count over this split (the vocabulary's input)."""
        counts = self.texts.counts(self.records)
        lexicon = self.texts.lexicon
        return {lexicon[int(i)]: int(counts[i]) for i in _numpy().flatnonzero(counts)}


class TaggedSplit(TextSplit):
    """A split of tagged sentences (records that carried ``words`` and ``tags``): what a streamed
    tagging loader puts in ``TaggingData.train`` (``valid``, ``test``). Items read as the former
    ``(words, tags)`` lists."""

    def __init__(self, texts: TokenizedTexts, records: np.ndarray, labels: np.ndarray | None = None) -> None:
        if texts.tags is None:
            if len(texts.ids):
                raise ValueError("a tagged split needs texts that carry tags")
            texts.tags = _numpy().zeros(0, dtype=_numpy().uint8)  # a file without sentences: nothing to tag
        super().__init__(texts, records, _numpy().zeros(len(records), dtype=_numpy().int64) if labels is None
                         else labels)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return type(self)(self.texts, self.records[index], self.labels[index])
        record = int(self.records[index])
        start, stop = int(self.texts.offsets[record]), int(self.texts.offsets[record + 1])
        names = self.texts.tag_names
        return self.texts.tokens(record), [names[int(t)] for t in self.texts.read(start, stop, tags=True)]

    def tag_counts(self) -> dict[str, int]:
        """Tag -> count over this split."""
        counts = self.texts.counts(self.records, tags=True)
        return {self.texts.tag_names[int(i)]: int(counts[i]) for i in _numpy().flatnonzero(counts)}

    @property
    def words(self) -> int:
        """Words (tokens) over the split."""
        return int(self.texts.lengths[self.records].sum())


class PairSplit(Sequence[tuple[str, str]]):
    """Sentence pairs in a token cache: what a streamed translation loader puts in
    ``Seq2SeqData.train`` (``valid``, ``test``). Pair ``p`` is records ``2p`` (the file's first
    column) and ``2p + 1`` (its second), each with its own offsets; with ``swap`` the second column
    is the source. Items read as ``(source, target)`` with each side's tokens joined by spaces (the
    original text is not kept); the task reads the ids instead."""

    def __init__(self, texts: TokenizedTexts, pairs: np.ndarray, swap: bool = False) -> None:
        self.texts = texts
        self.pairs = _numpy().asarray(pairs, dtype=_numpy().int64)
        self.swap = swap

    @property
    def source_records(self) -> np.ndarray:
        return 2 * self.pairs + (1 if self.swap else 0)

    @property
    def target_records(self) -> np.ndarray:
        return 2 * self.pairs + (0 if self.swap else 1)

    def __len__(self) -> int:
        return len(self.pairs)

    @overload
    def __getitem__(self, index: int) -> tuple[str, str]: ...

    @overload
    def __getitem__(self, index: slice) -> PairSplit: ...

    def __getitem__(self, index: int | slice) -> tuple[str, str] | PairSplit:
        if isinstance(index, slice):
            return PairSplit(self.texts, self.pairs[index], self.swap)
        pair = int(self.pairs[index])
        source, target = (2 * pair + 1, 2 * pair) if self.swap else (2 * pair, 2 * pair + 1)
        return " ".join(self.texts.tokens(source)), " ".join(self.texts.tokens(target))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for i in range(len(self)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        """Equal to a split or list holding the same (source, target) items, in the same order."""
        if not isinstance(other, (PairSplit, list, tuple)) or len(other) != len(self):
            return False
        return all(mine == theirs for mine, theirs in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """A list of both splits' items, as ``list + list`` gives (code written for lists keeps working)."""
        return [*self, *other]

    def __radd__(self, other: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*other, *self]

    def select(self, positions: Sequence[int] | np.ndarray) -> PairSplit:
        """The pairs at ``positions`` (of this split), in that order."""
        return PairSplit(self.texts, self.pairs[_numpy().asarray(positions, dtype=_numpy().int64)], self.swap)

    def token_counts(self, side: str) -> dict[str, int]:
        """Token -> count over this split's ``side`` ("source" or "target"): a vocabulary's input."""
        counts = self.texts.counts(self.source_records if side == "source" else self.target_records)
        lexicon = self.texts.lexicon
        return {lexicon[int(i)]: int(counts[i]) for i in _numpy().flatnonzero(counts)}

    def lengths(self, side: str) -> np.ndarray:
        """Tokens of each pair's ``side``, from the offsets."""
        return self.texts.lengths[self.source_records if side == "source" else self.target_records]


# -- where the cache lives and what it is of -------------------------------------------------------
def _identity(sources: Sequence[Path]) -> list[dict[str, Any]]:
    """Size and modification time of every source file (a folder: of every file under it)."""
    found = []
    for source in sources:
        if source.is_dir():
            digest = hashlib.sha256()
            files = size = 0
            for folder, dirs, names in os.walk(source):
                dirs.sort()
                for name in sorted(names):
                    try:
                        stat = os.stat(os.path.join(folder, name))
                    except OSError:  # removed meanwhile (or a dangling link): not part of the corpus
                        continue
                    digest.update(f"{os.path.relpath(os.path.join(folder, name), source)}\0{stat.st_size}\0"
                                  f"{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
                    files += 1
                    size += stat.st_size
            found.append({"path": str(source.resolve()), "files": files, "size": size, "digest": digest.hexdigest()})
        else:
            stat = source.stat()
            found.append({"path": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return found


def cache_base(name: str, sources: Sequence[Path], settings: dict[str, Any], cache_dir: Path) -> Path:
    """``<cache>/texts/<name>-<key>`` (add .ids.bin, .offsets.npy, .records.npy, .json)."""
    key = hashlib.sha256(json.dumps([[str(s.resolve()) for s in sources], settings, CACHE_VERSION],
                                    sort_keys=True).encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:40] or "texts"
    return cache_dir / "texts" / f"{stem}-{key}"


def _paths(base: Path) -> dict[str, Path]:
    return {part: base.with_name(base.name + suffix) for part, suffix in
            (("ids", ".ids.bin"), ("tags", ".tags.bin"), ("offsets", ".offsets.npy"), ("records", ".records.npy"),
             ("json", ".json"))}


def tokenized_texts(name: str, sources: Sequence[Path], records: Callable[[], Iterable[Record]], cache_dir: Path, *,
                    tokenizer: str, normalize: str = "none", settings: dict[str, Any] | None = None,
                    where: str = "", status: Status | None = None) -> TokenizedTexts:
    """The records ``records()`` yields, tokenised with ``tokenizer`` after ``normalize``, from the
    cache in ``cache_dir/texts`` when it matches ``sources`` (files or folders) and the settings, or
    tokenised into it now, streamed. ``settings`` names whatever else changes the records (an
    encoding, a column); ``where`` names the source in messages. A cache that does not match is
    rebuilt, saying so through ``status``."""
    say = status or (lambda message: None)
    if tokenizer != GIVEN:
        get_tokenizer(tokenizer)  # an unknown name fails before any work
    get_normalizer(normalize)
    where = where or ", ".join(str(s) for s in sources)
    key_settings = {"tokenizer": tokenizer, "normalize": normalize, **(settings or {})}
    base = cache_base(name, sources, key_settings, cache_dir)
    identity = _identity(sources)
    paths = _paths(base)
    if paths["json"].exists():
        texts, reason = _open_cached(paths, identity, key_settings)
        if texts is not None:
            return texts
        say(f"the token cache of {where} is {reason}: tokenising it again")
    description = {"version": CACHE_VERSION, "settings": key_settings, "source": identity, "where": where,
                   "tokenizer": tokenizer, "normalize": normalize}
    return _build(records, description, paths, say)


def _open_cached(paths: dict[str, Path], identity: list[dict[str, Any]], settings: dict[str, Any]
                 ) -> tuple[TokenizedTexts | None, str]:
    """The cached texts, or None and why they cannot be used."""
    try:
        description = json.loads(paths["json"].read_text(encoding="utf-8"))
        if not isinstance(description, dict):
            return None, "damaged (its description is not an object)"
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"
    if description.get("version") != CACHE_VERSION or description.get("settings") != settings:
        return None, "from another version of workbench"
    if description.get("source") != identity:
        return None, "out of date (its files changed)"
    try:
        return _open(paths, description), ""
    except (OSError, KeyError, TypeError, ValueError, IndexError, DataError) as exc:
        return None, f"damaged ({type(exc).__name__}: {exc})"


def _open(paths: dict[str, Path], description: dict[str, Any], keep: bool = True) -> TokenizedTexts:
    """The cache's arrays, checked against the description (a ValueError says what does not fit)."""
    np = _numpy()
    lexicon, labels, groups = description["lexicon"], description["labels"], description["groups"]
    dtype, length, count = description["dtype"], int(description["tokens"]), int(description["records"])
    names = (lexicon, labels, groups, description.get("tag_names", []))
    if not (all(isinstance(n, list) and all(isinstance(x, str) for x in n) for n in names)
            and dtype == id_dtype(len(lexicon)) and length >= 0 and count >= 0):
        raise ValueError("its lexicon, labels or id type are wrong")
    size = paths["ids"].stat().st_size
    if size != length * np.dtype(dtype).itemsize:
        raise ValueError(f"{size:,} bytes for {length:,} ids of {dtype}")
    ids = _mapped(paths["ids"], dtype, length)
    offsets = np.load(paths["offsets"], allow_pickle=False)
    records = np.load(paths["records"], allow_pickle=False)
    if (offsets.shape != (count + 1,) or offsets.dtype != np.int64 or int(offsets[0]) != 0
            or int(offsets[-1]) != length or bool((np.diff(offsets) < 0).any())):
        raise ValueError("its offsets do not fit its ids")
    if records.shape != (count, 3) or records.dtype != np.int64 or (count and (
            int(records[:, 0].min()) < 0 or int(records[:, 0].max()) >= len(labels)
            or int(records[:, 1].min()) < 0 or int(records[:, 1].max()) >= len(groups))):
        raise ValueError("its labels do not fit its description")
    texts = TokenizedTexts(description, ids, offsets, records, paths["ids"] if keep else None)
    if length:
        texts.handles["ids"] = open(paths["ids"], "rb")  # noqa: SIM115  # held for the run (a temporary file's data with it)
    if description.get("tagged"):
        tag_dtype = id_dtype(len(texts.tag_names))
        size = paths["tags"].stat().st_size
        if size != length * np.dtype(tag_dtype).itemsize:
            raise ValueError(f"{size:,} bytes for {length:,} tags of {tag_dtype}")
        texts.tags = _mapped(paths["tags"], tag_dtype, length)
        texts.tags_path = paths["tags"] if keep else None
        if length:
            texts.handles["tags"] = open(paths["tags"], "rb")  # noqa: SIM115
    return texts


def _mapped(path: Path, dtype: str, length: int) -> np.ndarray:
    """``path`` as a read-only ``np.memmap`` of ``length`` ids (an empty array for none)."""
    np = _numpy()
    if not length:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(length,))


class _Writer:
    """The records tokenised into a file of uint32 ids, with offsets and per-record numbers."""

    def __init__(self, out: IO[bytes], tags_out: IO[bytes], tokenizer: str, normalize: str) -> None:
        self.out = out
        self.tags_out = tags_out
        self.tokenize = get_tokenizer(tokenizer) if tokenizer != GIVEN else None
        self.normalize = get_normalizer(normalize)
        self.lexicon: dict[str, int] = {}
        self.labels: dict[str, int] = {}
        self.groups: dict[str, int] = {}
        self.offsets = array.array("q", [0])
        self.records = array.array("q")
        self.buffer = array.array("I")
        self.tag_names: dict[str, int] = {}
        self.tag_buffer = array.array("I")
        self.tagged = False
        self.tokens = 0

    def add(self, record: Record) -> None:
        lexicon = self.lexicon
        if record.words is not None or self.tokenize is None:
            tokens = list(record.words or ())
        else:
            tokens = self.tokenize(self.normalize(record.text))
        ids = [lexicon.setdefault(token, len(lexicon)) for token in tokens]
        if record.tags is not None:
            if len(record.tags) != len(ids):
                raise DataError(f"a record has {len(ids)} words but {len(record.tags)} tags")
            names = self.tag_names
            self.tag_buffer.extend([names.setdefault(tag, len(names)) for tag in record.tags])
            self.tagged = True
        elif self.tagged:
            raise DataError("a record without tags among tagged ones")
        self.buffer.extend(ids)
        self.tokens += len(ids)
        self.offsets.append(self.tokens)
        self.records.extend((self.labels.setdefault(record.label, len(self.labels)),
                             self.groups.setdefault(record.group, len(self.groups)),
                             min(max(int(record.key), -_KEY_LIMIT), _KEY_LIMIT)))  # int64, even for absurd ids
        if len(self.buffer) >= FLUSH_IDS:
            self.flush()

    def flush(self) -> None:
        self.buffer.tofile(self.out)  # type: ignore[arg-type]
        self.buffer = array.array("I")
        self.tag_buffer.tofile(self.tags_out)  # type: ignore[arg-type]
        self.tag_buffer = array.array("I")


def _build(records: Callable[[], Iterable[Record]], description: dict[str, Any], paths: dict[str, Path],
           say: Status) -> TokenizedTexts:
    """Tokenises the records into the cache (or, where the cache folder cannot be written, into a
    temporary folder removed once its files are open)."""
    folder = paths["ids"].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder, prefix=".building-"))
        keep = True
    except OSError as exc:
        say(f"cannot write the token cache in {folder} ({exc.strerror or exc}); tokenising into a temporary "
            "folder for this run")
        scratch = Path(tempfile.mkdtemp(prefix="workbench-texts-"))
        keep = False
    began = time.monotonic()
    say(f"tokenising {description['where']} once into the data cache")
    try:
        _write(records, description, scratch)
        targets = paths if keep else _paths(scratch / "texts")
        parts = ("ids", "tags", "offsets", "records", "json") if description["tagged"] else (
            "ids", "offsets", "records", "json")
        for part in parts:  # the description last: until then, no cache
            os.replace(scratch / f"new.{part}", targets[part])
        texts = _open(targets, description, keep)
    except OSError as exc:  # a full disk, a folder made read-only meanwhile
        raise DataError(f"cannot write the token cache in {folder}: {exc.strerror or exc}; free some space there "
                        "or set WORKBENCH_CACHE_DIR to another folder") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # open memory maps keep their data until closed
    say(f"tokenised {description['records']:,} texts ({description['tokens']:,} tokens, "
        f"{len(description['lexicon']):,} distinct, {description['dtype']}) in {time.monotonic() - began:.1f} s"
        + (f" into {paths['ids'].parent}" if keep else ""))
    return texts


def _write(records: Callable[[], Iterable[Record]], description: dict[str, Any], scratch: Path) -> None:
    """Fills ``scratch/new.{ids,offsets,records,json}`` and the description's counts."""
    np = _numpy()
    with open(scratch / "wide.ids", "wb") as wide, open(scratch / "wide.tags", "wb") as wide_tags:
        writer = _Writer(wide, wide_tags, description["tokenizer"], description["normalize"])
        for record in records():
            writer.add(record)
        writer.flush()
    dtype = id_dtype(len(writer.lexicon))
    _narrow(scratch / "wide.ids", scratch / "new.ids", dtype)
    if writer.tagged:
        _narrow(scratch / "wide.tags", scratch / "new.tags", id_dtype(len(writer.tag_names)))
    with open(scratch / "new.offsets", "wb") as handle:
        np.save(handle, np.frombuffer(writer.offsets, dtype=np.int64), allow_pickle=False)
    with open(scratch / "new.records", "wb") as handle:
        np.save(handle, np.frombuffer(writer.records, dtype=np.int64).reshape(-1, 3), allow_pickle=False)
    description.update(lexicon=list(writer.lexicon), labels=list(writer.labels), groups=list(writer.groups),
                       dtype=dtype, tokens=writer.tokens, records=len(writer.offsets) - 1, tagged=writer.tagged,
                       tag_names=list(writer.tag_names))
    (scratch / "new.json").write_text(json.dumps(description), encoding="utf-8")


def _narrow(wide: Path, narrow: Path, dtype: str) -> None:
    """The uint32 ids of ``wide`` rewritten as ``dtype`` into ``narrow``, a chunk at a time."""
    np = _numpy()
    with open(wide, "rb") as source, open(narrow, "wb") as out:
        while True:
            chunk = np.fromfile(source, dtype=np.uint32, count=FLUSH_IDS)
            if not len(chunk):
                break
            chunk.astype(dtype).tofile(out)
    wide.unlink()
