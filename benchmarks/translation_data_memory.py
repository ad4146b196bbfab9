"""Resident memory of translation data inside one process, stage by stage, without a model.

    python benchmarks/translation_data_memory.py PAIRS.tsv
    PYTHONPATH=OLD_CODE_DIR python benchmarks/translation_data_memory.py PAIRS.tsv   # the code in OLD_CODE_DIR

Loads PAIRS.tsv (source<TAB>target) with the ``parallel-tsv`` loader and its defaults, builds the
seq2seq task's vocabularies, encodes the splits and reads 100 shuffled training batches of 64,
printing the process's resident memory (``VmRSS``, Linux) after each stage, so the data's share is
seen apart from the model's (benchmarks/classification_memory.py --formats tsv measures the whole
run, where the model grows with the vocabulary). The data cache is a temporary folder unless
``--cache`` names one (run twice with the same folder for a warm cache).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", help="a source<TAB>target file")
    parser.add_argument("--cache", default="", help="data cache folder (default: a new temporary one)")
    args = parser.parse_args()
    began = time.monotonic()

    def stage(name: str) -> None:
        print(f"{name:<28} {rss_mb():>8.0f} MB  {time.monotonic() - began:>7.2f} s", flush=True)

    import torch
    from workbench_plugins import translation_data

    from workbench.api import LoadContext
    from workbench.tasks.seq2seq import Seq2SeqTask

    stage("imported torch, workbench")
    params = {"path": "", "normalize": "nmt", "tokenizer": "whitespace", "swap": False, "max_length": 10,
              "max_pairs": 0, "valid_fraction": 0.05, "test_fraction": 0.05, "split_seed": 0, "min_freq": 1}
    cache = Path(args.cache or tempfile.mkdtemp(prefix="translation-memory-"))
    data = translation_data.load_parallel_tsv(LoadContext(Path(args.pairs), cache), params)
    stage(f"loaded ({len(data.train):,} train pairs)")
    task = Seq2SeqTask.from_data(data)
    stage(f"vocabularies ({len(task.source):,}/{len(task.target):,})")
    encoded = task.encode(data)
    stage("encoded")
    batches = task.batches(encoded["train"], 64, True, torch.Generator().manual_seed(0))
    next(batches)
    stage("first batch")
    for _ in itertools.islice(batches, 99):
        pass
    stage("100 batches")


if __name__ == "__main__":
    main()
