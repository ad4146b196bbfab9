"""Loaders for sentence pairs: Tatoeba English-French (fra.txt), your own parallel TSV, and the
synthetic copy / reverse task. No torch here.

The two file loaders read a line at a time and tokenise each pair once into the data cache
(``<cache>/texts``, see :func:`workbench.api.tokenized_texts`): pair ``p`` is record ``2p`` (the
first column) and ``2p + 1`` (the second), each with its own offsets. The length filter,
``max_pairs`` and the split by source then work over the cache's offsets and ids
(:class:`workbench.api.PairSplit`), never over lists of strings. The in-memory functions
(:func:`parse_pairs`, :func:`split_by_source`) stay for code that has its pairs in lists.
"""

from __future__ import annotations

import codecs
import random
import string
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from workbench.api import (
    DataError,
    LoadContext,
    PairSplit,
    Record,
    Seq2SeqData,
    fetch,
    get_normalizer,
    get_tokenizer,
    read_text,
    tokenized_texts,
)

FRA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip"
FRA_MEMBER = "fra-eng/fra.txt"
FRA_SHA256 = "0bb85dbaa1c896844649094d7eaf2e34bee34e84fe362b26ce7e8f2e12aae104"

#: The four sentences the Dive into Deep Learning course translates after training, with its references.
PROBES = [("go .", "va !"), ("i lost .", "j'ai perdu ."), ("he's calm .", "il est calme ."),
          ("i'm home .", "je suis chez moi .")]

#: The PyTorch tutorial's English prefixes, written after "nmt" normalisation ("i'm", not "i m").
TUTORIAL_PREFIXES = ("i am ", "i'm ", "he is", "he's ", "she is", "she's ", "you are", "you're ", "we are",
                     "we're ", "they are", "they're ")

Pair = tuple[str, str]


def parse_pairs(text: str, where: str, max_pairs: int = 0) -> list[Pair]:
    """``source<TAB>target`` lines; a third column (the newer files' attribution) and anything after it
    is ignored. Blank lines are skipped; a line without a tab or with an empty side is an error."""
    pairs: list[Pair] = []
    for pair in line_pairs(text.splitlines(), where):
        pairs.append(pair)
        if max_pairs and len(pairs) >= max_pairs:
            break
    return pairs


def line_pairs(lines: Iterable[str], where: str) -> Iterator[Pair]:
    """:func:`parse_pairs` over lines (a file read a line at a time), a pair at a time."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{where}:{number}: expected source<TAB>target, found no tab in {line[:60]!r}")
        source, target = fields[0].strip(), fields[1].strip()
        if not source or not target:
            raise DataError(f"{where}:{number}: empty {'source' if not source else 'target'} sentence")
        yield source, target


def _locate_fra(data_dir: Path) -> Path | None:
    """A fra.txt / eng-fra.txt file or zip, or a folder holding one (also in fra-eng/ or data/)."""
    if data_dir.is_file():
        return data_dir
    for folder in (data_dir, data_dir / "fra-eng", data_dir / "data"):
        for name in ("fra.txt", "eng-fra.txt", "fra-eng.zip"):
            if (folder / name).is_file():
                return folder / name
    return None


def _filter(pairs: list[Pair], params: dict[str, Any], normalize: str, tokenizer: str) -> list[Pair]:
    """Pairs passing the prefix and length filters, at most ``max_pairs`` of them (0 = all)."""
    norm, tok = get_normalizer(normalize), get_tokenizer(tokenizer)
    prefixes: tuple[str, ...] = ()
    raw = params.get("prefixes", "").strip()
    if raw == "tutorial":
        prefixes = TUTORIAL_PREFIXES
    elif raw:
        prefixes = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    limit = params["max_length"]
    kept = []
    for source, target in pairs:
        if prefixes and not norm(source).startswith(prefixes):
            continue
        if limit and (len(tok(norm(source))) > limit or len(tok(norm(target))) > limit):
            continue
        kept.append((source, target))
        if params["max_pairs"] and len(kept) >= params["max_pairs"]:
            break
    return kept


def split_by_source(pairs: list[Pair], valid: float, test: float, seed: int, normalize: str,
                    keep_in_train: set[str] = frozenset()) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Hold out whole source sentences, so no held-out source was seen in training (with another
    translation); sources in ``keep_in_train`` (normalised) always stay in training."""
    norm = get_normalizer(normalize)
    groups: dict[str, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(norm(pair[0]), []).append(pair)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    movable = [k for k in keys if k not in keep_in_train]
    n_test, n_valid = round(len(keys) * test), round(len(keys) * valid)
    test_keys = set(movable[:n_test])
    valid_keys = set(movable[n_test : n_test + n_valid])
    train_part, valid_part, test_part = [], [], []
    for pair in pairs:
        key = norm(pair[0])
        (test_part if key in test_keys else valid_part if key in valid_keys else train_part).append(pair)
    return train_part, valid_part, test_part


def _seq2seq(pairs: list[Pair], params: dict[str, Any], normalize: str, tokenizer: str, info: dict[str, Any],
             probes: list[Pair]) -> Seq2SeqData:
    if not pairs:
        raise DataError(f"no sentence pairs left in {info.get('source')} after filtering "
                        "(loosen max_length or prefixes)")
    keep = {get_normalizer(normalize)(s) for s, _ in probes}
    train, valid, test = split_by_source(pairs, params["valid_fraction"], params["test_fraction"],
                                         params["split_seed"], normalize, keep)
    info = {**info, "pairs": {"train": len(train), "valid": len(valid), "test": len(test)}}
    return Seq2SeqData(train=train, valid=valid, test=test, normalize=normalize, tokenizer=tokenizer,
                       min_freq=params["min_freq"], probes=probes, info=info)


# -- streamed: a line at a time into the token cache ---------------------------------------------
def binary_lines(opener: Callable[[], IO[bytes]], where: str, path: Path | None = None) -> Iterator[str]:
    """The lines of UTF-8 bytes as ``decode_text(raw).splitlines()`` gives them, read a line at a time
    from ``opener()`` (a file or a zip member); bytes that are not UTF-8 text are one clear error
    (for a plain file ``path``, :func:`read_text`'s, naming the line and byte)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    first = True
    try:
        with opener() as handle:
            for raw in handle:
                if b"\x00" in raw:
                    raise UnicodeError("NUL")
                text = decoder.decode(raw)
                if first and text:
                    text, first = text.removeprefix("\ufeff"), False
                yield from text.splitlines()
            yield from decoder.decode(b"", final=True).splitlines()
    except (UnicodeError, ValueError):
        if path is not None:
            read_text(path)  # names the line and byte (reading the file whole, on this error only)
        raise DataError(f"{where}: not UTF-8 text (or it holds NUL bytes); convert it to UTF-8") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{where} cannot be read: {exc}") from None


def _cached_pairs(context: LoadContext, name: str, path: Path, lines: Callable[[], Iterable[str]], where: str,
                  normalize: str, tokenizer: str, keep: Callable[[str], bool] | None = None,
                  settings: dict[str, Any] | None = None) -> Any:
    """Every pair of ``lines()`` (those ``keep`` accepts by source) tokenised into the cache:
    record ``2p`` is pair ``p``'s first column, ``2p + 1`` its second."""

    def records() -> Iterator[Record]:
        for source, target in line_pairs(lines(), where):
            if keep is None or keep(source):
                yield Record(source, "")
                yield Record(target, "")

    return tokenized_texts(name, [path], records, context.cache_dir, tokenizer=tokenizer, normalize=normalize,
                           settings={"reader": "pairs-1", **(settings or {})}, where=where, status=context.status)


def _kept_pairs(texts: Any, limit: int, max_pairs: int) -> Any:
    """Pair numbers with at most ``limit`` tokens on each side (0: any), the first ``max_pairs`` (0: all)."""
    import numpy as np

    lengths = texts.lengths
    sources, targets = lengths[0::2], lengths[1::2]
    kept = np.flatnonzero((sources <= limit) & (targets <= limit)) if limit else np.arange(len(sources))
    return kept[:max_pairs] if max_pairs else kept


def split_cached_by_source(split: PairSplit, valid: float, test: float, seed: int,
                           keep_in_train: Iterable[list[str]] = ()) -> tuple[PairSplit, PairSplit, PairSplit]:
    """:func:`split_by_source` over a cached split: whole source sentences (token sequences) held out,
    drawn as that function draws them (distinct sources sorted, then shuffled with ``seed``). The
    sources are compared as rows of token ranks (a token's place in the sorted lexicon), which sort as
    the sentences' text sorts; memory holds one such row per pair (pairs x longest source)."""
    import numpy as np

    texts, records = split.texts, split.source_records
    lexicon = texts.lexicon
    rank = np.zeros(len(lexicon), dtype=np.int64)
    rank[sorted(range(len(lexicon)), key=lexicon.__getitem__)] = np.arange(1, len(lexicon) + 1)
    matrix = _rank_rows(texts, records, rank)
    distinct, inverse = np.unique(matrix, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    del matrix
    where = {row.tobytes(): i for i, row in enumerate(distinct)} if keep_in_train else {}
    kept = set()
    index = {token: i for i, token in enumerate(lexicon)} if keep_in_train else {}
    for tokens in keep_in_train:
        if len(tokens) <= distinct.shape[1] and all(t in index for t in tokens):
            row = np.zeros(distinct.shape[1], dtype=distinct.dtype)
            row[: len(tokens)] = rank[[index[t] for t in tokens]]
            if row.tobytes() in where:
                kept.add(where[row.tobytes()])
    keys = list(range(len(distinct)))
    random.Random(seed).shuffle(keys)
    movable = [k for k in keys if k not in kept]
    n_test, n_valid = round(len(keys) * test), round(len(keys) * valid)
    part = np.zeros(len(distinct), dtype=np.int8)
    part[movable[:n_test]] = 2
    part[movable[n_test : n_test + n_valid]] = 1
    of_pair = part[inverse]
    return (split.select(np.flatnonzero(of_pair == 0)), split.select(np.flatnonzero(of_pair == 1)),
            split.select(np.flatnonzero(of_pair == 2)))


def _rank_rows(texts: Any, records: Any, rank: Any) -> Any:
    """[records, longest] token ranks of ``records`` (ascending), 0 after a sentence's end; read in chunks."""
    import numpy as np

    lengths, starts = texts.lengths[records], texts.offsets[records]
    width = int(lengths.max()) if len(lengths) else 0
    matrix = np.zeros((len(records), width), dtype=np.uint16 if len(rank) < 1 << 16 else np.uint32)
    step = 1 << 16
    for first in range(0, len(records), step):
        length, start = lengths[first : first + step], starts[first : first + step]
        if not int(length.sum()):
            continue
        low = int(start[0])
        block = texts.read(low, int(start[-1] + length[-1])).astype(np.int64)
        row = np.repeat(np.arange(len(length)), length)
        column = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
        matrix[first + row, column] = rank[block[np.repeat(start - low, length) + column]]
    return matrix


def _streamed_data(split: PairSplit, params: dict[str, Any], normalize: str, tokenizer: str, info: dict[str, Any],
                   probes: list[Pair]) -> Seq2SeqData:
    if not len(split):
        raise DataError(f"no sentence pairs left in {info.get('source')} after filtering "
                        "(loosen max_length or prefixes)")
    norm, tok = get_normalizer(normalize), get_tokenizer(tokenizer)
    train, valid, test = split_cached_by_source(split, params["valid_fraction"], params["test_fraction"],
                                                params["split_seed"], [tok(norm(s)) for s, _ in probes])
    info = {**info, "pairs": {"train": len(train), "valid": len(valid), "test": len(test)}}
    return Seq2SeqData(train=train, valid=valid, test=test, normalize=normalize, tokenizer=tokenizer,  # type: ignore[arg-type]
                       min_freq=params["min_freq"], probes=probes, info=info)


def _prefix_filter(raw: str) -> Callable[[str], bool] | None:
    prefixes: tuple[str, ...] = ()
    if raw.strip() == "tutorial":
        prefixes = TUTORIAL_PREFIXES
    elif raw.strip():
        prefixes = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    if not prefixes:
        return None
    norm = get_normalizer("nmt")
    return lambda source: norm(source).startswith(prefixes)


def load_fra_eng(context: LoadContext, params: dict[str, Any]) -> Seq2SeqData:
    # The zip's own checksum is not published; its fra.txt's is.
    path = fetch(context, FRA_URL, "fra-eng/fra-eng.zip", members={FRA_MEMBER: FRA_SHA256}, find=_locate_fra,
                 what="English-French pairs", expected="fra.txt, fra-eng/fra.txt, eng-fra.txt or fra-eng.zip")
    if path.suffix == ".zip":
        where, _ = _zip_member(path)
        member = where.rpartition(":")[2]
        opener: Callable[[], IO[bytes]] = lambda: zipfile.ZipFile(path).open(member)  # noqa: E731
    else:
        where = str(path)
        opener = lambda: open(path, "rb")  # noqa: E731, SIM115
    prefixes = params.get("prefixes", "").strip()
    texts = _cached_pairs(context, "fra-eng", path,
                          lambda: binary_lines(opener, where, None if path.suffix == ".zip" else path), where, "nmt", "whitespace",
                          _prefix_filter(prefixes), {"prefixes": prefixes} if prefixes else {})
    swap = params["direction"] == "fra-eng"
    split = PairSplit(texts, _kept_pairs(texts, params["max_length"], params["max_pairs"]), swap)
    probes = [(t, s) for s, t in PROBES] if swap else list(PROBES)
    return _streamed_data(split, params, "nmt", "whitespace",
                          {"source": where, "direction": params["direction"], "prefixes": params["prefixes"],
                           "max_length": params["max_length"]}, probes)


def _zip_member(path: Path) -> tuple[str, str]:
    """(where, member name) of the fra.txt in a zip archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if Path(n).name in ("fra.txt", "eng-fra.txt")
                     and not n.startswith("__MACOSX")]
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a readable zip archive ({exc}); delete it or point --data-dir elsewhere") \
            from None
    if not names:
        raise DataError(f"{path} holds no fra.txt")
    return f"{path}:{names[0]}", names[0]


def _tsv_file(context: LoadContext, file: Path, params: dict[str, Any], max_pairs: int) -> PairSplit:
    read_text(file) if not file.is_file() else None  # a folder or a missing file: its one-line error
    texts = _cached_pairs(context, f"pairs-{file.stem}", file, lambda: binary_lines(lambda: open(file, "rb"), str(file), file),
                          str(file), params["normalize"], params["tokenizer"])
    return PairSplit(texts, _kept_pairs(texts, params["max_length"], max_pairs), bool(params["swap"]))


def load_parallel_tsv(context: LoadContext, params: dict[str, Any]) -> Seq2SeqData:
    path = Path(params["path"]).expanduser() if params.get("path") else context.data_dir
    if path is None:
        raise DataError("point --data-dir (or data.path) at a source<TAB>target file (or a folder with "
                        "train/dev/test .tsv files)")
    if not path.exists():
        raise DataError(f"{path} does not exist")
    normalize, tokenizer = params["normalize"], params["tokenizer"]
    files: dict[str, Path] = {}
    if path.is_dir():
        for split, names in (("train", ("train",)), ("valid", ("dev", "valid")), ("test", ("test",))):
            for name in names:
                for suffix in (".tsv", ".txt"):
                    if (path / f"{name}{suffix}").is_file():
                        files.setdefault(split, path / f"{name}{suffix}")
        if "train" not in files:
            raise DataError(f"no train.tsv (or train.txt) in {path}")
    else:
        files["train"] = path
    parsed = {split: _tsv_file(context, file, params, params["max_pairs"] if split == "train" else 0)
              for split, file in files.items()}
    info = {"source": str(path), "files": {k: v.name for k, v in files.items()}}
    if len(parsed) == 1:
        return _streamed_data(parsed["train"], params, normalize, tokenizer, info, [])
    if not len(parsed["train"]):
        raise DataError(f"no sentence pairs in {files['train']} after filtering")
    info["pairs"] = {k: len(v) for k, v in parsed.items()}
    empty = parsed["train"][0:0]
    return Seq2SeqData(train=parsed["train"], valid=parsed.get("valid", empty),  # type: ignore[arg-type]
                       test=parsed.get("test", empty), normalize=normalize, tokenizer=tokenizer,
                       min_freq=params["min_freq"], info=info)


SYMBOLS = string.ascii_lowercase + string.digits


def load_copy_reverse(context: LoadContext, params: dict[str, Any]) -> Seq2SeqData:
    """Random sequences of symbols and their copy or reversal: no download, learnt in a minute."""
    if params["min_length"] > params["max_length"]:
        raise DataError(f"min_length {params['min_length']} is above max_length {params['max_length']}")
    rng = random.Random(params["sample_seed"])
    symbols = SYMBOLS[: params["symbols"]]

    def make(count: int, shortest: int = params["min_length"], longest: int = params["max_length"]) -> list[Pair]:
        pairs = []
        for _ in range(count):
            seq = [rng.choice(symbols) for _ in range(rng.randint(shortest, longest))]
            out = seq if params["mode"] == "copy" else seq[::-1]
            pairs.append((" ".join(seq), " ".join(out)))
        return pairs

    train, valid, test = make(params["train_size"]), make(params["valid_size"]), make(params["test_size"])
    long_length = 2 * params["max_length"]  # drawn after the others: they stay as they were without it
    long_test = make(params.get("long_test_size", 0), long_length, long_length)
    return Seq2SeqData(train=train, valid=valid, test=test, normalize="none", tokenizer="whitespace",
                       info={"source": "synthetic", "mode": params["mode"], "symbols": symbols,
                             "train_lengths": f"{params['min_length']}-{params['max_length']}",
                             "test_2x_length": long_length if long_test else 0},
                       extra_tests={"test_2x": long_test} if long_test else {})
