"""Loaders for sentence pairs: Tatoeba English-French (fra.txt), your own parallel TSV, and the
synthetic copy / reverse task. No torch here."""

from __future__ import annotations

import random
import string
import zipfile
from pathlib import Path
from typing import Any

from workbench.api import (
    DataError,
    LoadContext,
    Seq2SeqData,
    decode_text,
    fetch,
    get_normalizer,
    get_tokenizer,
    read_text,
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
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{where}:{number}: expected source<TAB>target, found no tab in {line[:60]!r}")
        source, target = fields[0].strip(), fields[1].strip()
        if not source or not target:
            raise DataError(f"{where}:{number}: empty {'source' if not source else 'target'} sentence")
        pairs.append((source, target))
        if max_pairs and len(pairs) >= max_pairs:
            break
    return pairs


def _read_zip(path: Path) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if Path(n).name in ("fra.txt", "eng-fra.txt")
                     and not n.startswith("__MACOSX")]
            if not names:
                raise DataError(f"{path} holds no fra.txt")
            return f"{path}:{names[0]}", archive.read(names[0])
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a readable zip archive ({exc}); delete it or point --data-dir elsewhere") \
            from None


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


def load_fra_eng(context: LoadContext, params: dict[str, Any]) -> Seq2SeqData:
    # The zip's own checksum is not published; its fra.txt's is.
    path = fetch(context, FRA_URL, "fra-eng/fra-eng.zip", members={FRA_MEMBER: FRA_SHA256}, find=_locate_fra,
                 what="English-French pairs", expected="fra.txt, fra-eng/fra.txt, eng-fra.txt or fra-eng.zip")
    where, raw = _read_zip(path) if path.suffix == ".zip" else (str(path), path.read_bytes())
    pairs = parse_pairs(decode_text(raw, where), where)
    pairs = _filter(pairs, params, "nmt", "whitespace")
    probes = list(PROBES)
    if params["direction"] == "fra-eng":
        pairs = [(t, s) for s, t in pairs]
        probes = [(t, s) for s, t in probes]
    return _seq2seq(pairs, params, "nmt", "whitespace",
                    {"source": where, "direction": params["direction"], "prefixes": params["prefixes"],
                     "max_length": params["max_length"]}, probes)


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
    parsed = {}
    for split, file in files.items():
        pairs = parse_pairs(read_text(file), str(file))
        if params["swap"]:
            pairs = [(t, s) for s, t in pairs]
        limit = params["max_pairs"] if split == "train" else 0
        parsed[split] = _filter(pairs, {**params, "prefixes": "", "max_pairs": limit}, normalize, tokenizer)
    info = {"source": str(path), "files": {k: v.name for k, v in files.items()}}
    if len(parsed) == 1:
        return _seq2seq(parsed["train"], params, normalize, tokenizer, info, [])
    if not parsed["train"]:
        raise DataError(f"no sentence pairs in {files['train']} after filtering")
    info["pairs"] = {k: len(v) for k, v in parsed.items()}
    return Seq2SeqData(train=parsed["train"], valid=parsed.get("valid", []), test=parsed.get("test", []),
                       normalize=normalize, tokenizer=tokenizer, min_freq=params["min_freq"], info=info)


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
