"""Peak memory and time to the first training step for text classification and translation corpora
of 1, 10 and 100 MB.

    python benchmarks/classification_memory.py --data-dir ../shared/data
    python benchmarks/classification_memory.py --data-dir ../shared/data --sizes 1,10 --formats csv,folder
    python benchmarks/classification_memory.py --data-dir ../shared/data --before OLD_CODE_DIR
    python benchmarks/classification_memory.py --data-dir ../shared/data --formats tsv --before OLD_CODE_DIR

Each corpus is the labelled IMDB reviews of ``imdb/aclImdb_labeled.tar.gz`` (or aclImdb_v1.tar.gz)
repeated until it holds the size in MB (10^6 bytes of review text), written into a temporary folder
as a ``text-csv`` file (``text,label`` columns) and/or a ``text-folder`` tree (one file per review
under ``neg/`` and ``pos/``). For each size and format ``workbench train --arch gru`` runs in a
subprocess: ``cold`` with an empty data cache, then ``warm`` with the cache the cold run left.
Texts are cut to ``data.max_length=400`` tokens (IMDB's default) and the vocabulary to
``data.max_vocab=10000`` words, so the model and its first batches are the same for every size:
what changes with the size is the data's share of the memory.
``--formats tsv`` measures translation instead: ``fra-eng/fra.txt``'s English-French pairs repeated
until the file holds the size in MB, as a ``parallel-tsv`` file (source<TAB>target), trained with
``gru-attention`` and the dataset's defaults (pairs of at most 10 tokens a side, 5% + 5% of the
distinct sources held out); the vocabularies stop growing once the whole file is in (about 12 MB).
Measured from outside: the child's peak resident memory (``VmHWM`` from ``/proc/PID/status``, polled;
Linux only) at its first step event, and the seconds from starting the process to that event. The
child is then killed: only the way to the first step is measured.

``--after DIR`` runs the new code from DIR the same way (default: the installed workbench).
``--before DIR`` also runs each corpus with the code in DIR first on the child's ``PYTHONPATH``
(a folder holding ``workbench`` and ``workbench_plugins``, e.g. links into a checkout of an older
commit), labelled ``before``, so the old and the new path are measured on the same files.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.corpus_memory import train_to_first_step  # noqa: E402

_MEMBER = re.compile(r"aclImdb/(train|test)/(pos|neg)/\d+_\d+\.txt$")


def imdb_reviews(data_dir: Path) -> list[tuple[str, str]]:
    """(text, label) of every labelled review in the archive, negative and positive alternating."""
    archives = sorted((data_dir / "imdb").glob("aclImdb*.tar.gz"))
    if not archives:
        raise SystemExit(f"no imdb/aclImdb*.tar.gz in {data_dir}")
    by_label: dict[str, list[tuple[str, str]]] = {"neg": [], "pos": []}
    with tarfile.open(archives[0], "r|gz") as archive:
        for member in archive:
            match = _MEMBER.search(member.name)
            handle = archive.extractfile(member) if match and member.isfile() else None
            if match and handle is not None:
                text = handle.read().decode("utf-8").replace("\n", " ").strip()
                by_label[match.group(2)].append((text, match.group(2)))
    return [review for pair in zip(by_label["neg"], by_label["pos"], strict=False) for review in pair]


def repeated(reviews: list[tuple[str, str]], megabytes: float):
    """Reviews, cycling, until ``megabytes`` * 10^6 bytes of text have been given."""
    wanted, given, i = int(megabytes * 1_000_000), 0, 0
    while given < wanted:
        text, label = reviews[i % len(reviews)]
        given += len(text.encode("utf-8"))
        i += 1
        yield i, text, label


def make_csv(reviews: list[tuple[str, str]], folder: Path, megabytes: float) -> Path:
    path = folder / f"reviews-{megabytes:g}MB.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for _, text, label in repeated(reviews, megabytes):
            writer.writerow([text, label])
    return path


def make_folder(reviews: list[tuple[str, str]], folder: Path, megabytes: float) -> Path:
    root = folder / f"reviews-{megabytes:g}MB"
    for label in ("neg", "pos"):
        (root / label).mkdir(parents=True)
    for i, text, label in repeated(reviews, megabytes):
        (root / label / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def fra_pairs(data_dir: Path) -> list[str]:
    """``source<TAB>target`` lines of fra-eng/fra.txt (its attribution column dropped)."""
    path = data_dir / "fra-eng" / "fra.txt"
    if not path.is_file():
        raise SystemExit(f"no fra-eng/fra.txt in {data_dir}")
    with open(path, encoding="utf-8") as handle:
        return ["\t".join(line.rstrip("\n").split("\t")[:2]) + "\n" for line in handle if "\t" in line]


def make_tsv(lines: list[str], folder: Path, megabytes: float) -> Path:
    path = folder / f"pairs-{megabytes:g}MB.tsv"
    wanted, given, i = int(megabytes * 1_000_000), 0, 0
    with open(path, "w", encoding="utf-8") as handle:
        while given < wanted:
            line = lines[i % len(lines)]
            handle.write(line)
            given += len(line.encode("utf-8"))
            i += 1
    return path


def measure(dataset: str, path: Path, cache: Path, work: Path, code: str | None, extra: list[str],
            timeout: float, arch: str = "gru") -> dict[str, float | str]:
    """One training process up to its first step: peak RSS (MB) and seconds to that step."""
    return train_to_first_step(dataset, arch, path, cache, work, extra, timeout, code)


def cache_summary(cache: Path) -> str:
    """What the cold run left in the data cache: tokens, distinct tokens, id type, bytes on disk."""
    described = sorted((cache / "texts").glob("*.json"))
    if not described:
        return "no token cache"
    description = json.loads(described[0].read_text(encoding="utf-8"))
    size = sum(p.stat().st_size for p in (cache / "texts").iterdir() if p.is_file())
    return (f"{description['tokens']:,} tokens, {len(description['lexicon']):,} distinct, {description['dtype']}, "
            f"{size / 1e6:.1f} MB on disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data", help="folder holding imdb/aclImdb*.tar.gz")
    parser.add_argument("--sizes", default="1,10,100", help="corpus sizes in MB of review text, comma-separated")
    parser.add_argument("--formats", default="csv", help="csv (text-csv), folder (text-folder), tsv (parallel-tsv: "
                        "translation), comma-separated")
    parser.add_argument("--before", default="", help="a folder with the old workbench and workbench_plugins")
    parser.add_argument("--after", default="", help="likewise for the new code (default: the installed one)")
    parser.add_argument("--set", action="append", default=[],
                        help="extra key=value for workbench train (after data.max_length=400, data.max_vocab=10000)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one process may take to its first step")
    args = parser.parse_args()
    formats = args.formats.split(",")
    reviews = imdb_reviews(Path(args.data_dir)) if set(formats) - {"tsv"} else []
    pairs = fra_pairs(Path(args.data_dir)) if "tsv" in formats else []
    work = Path(tempfile.mkdtemp(prefix="classification-memory-"))
    code = str(Path(args.before).resolve()) if args.before else ""
    after = str(Path(args.after).resolve()) if args.after else None
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {len(reviews):,} IMDB reviews repeated "
          "(gru, data.max_length=400, data.max_vocab=10000); "
          f"{len(pairs):,} fra-eng pairs repeated (gru-attention, parallel-tsv defaults); threads=1")
    print(f"{'format':>7} {'corpus':>7} {'texts':>8} {'run':>7} {'peak RSS MB':>12} {'first step s':>13}")
    try:
        for fmt in formats:
            dataset, make, arch = {"csv": ("text-csv", make_csv, "gru"), "folder": ("text-folder", make_folder, "gru"),
                                   "tsv": ("parallel-tsv", make_tsv, "gru-attention")}[fmt]
            for size in (float(s) for s in args.sizes.split(",")):
                path = make(pairs if fmt == "tsv" else reviews, work, size)  # type: ignore[operator]
                extra = [*(["data.max_length=400", "data.max_vocab=10000"] if fmt != "tsv" else []), *args.set]
                if fmt == "tsv":
                    with open(path, "rb") as handle:
                        texts = sum(1 for _ in handle)
                else:
                    texts = sum(1 for _ in repeated(reviews, size))
                cache = work / f"cache-{fmt}-{size:g}"
                runs = ([("before", code)] if code else []) + [("cold", after), ("warm", after)]
                for label, with_code in runs:
                    result = measure(dataset, path, cache if label != "before" else work / "cache-before",
                                     work, with_code, extra, args.timeout, arch)
                    if "error" in result:
                        print(f"{fmt:>7} {size:>5g}MB {texts:>8,} {label:>7}  error: {result['error']}")
                    else:
                        print(f"{fmt:>7} {size:>5g}MB {texts:>8,} {label:>7} {result['peak_mb']:>12.0f} "
                              f"{result['first_step_s']:>13.2f}", flush=True)
                print(f"{'':>7} {'':>7} {'':>8} {'cache':>7}  {cache_summary(cache)}", flush=True)
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
