"""Balanced brackets: the Elman RNN against the LSTM and GRU on the same strings.

Run (single-threaded, holding one CPU slot):
    /work/notes/cpu-slot python benchmarks/brackets.py [--length 100] [--epochs 10] [--seed 0] [--set key=value ...]

Trains each architecture with the brackets dataset's defaults (plus --set) and prints one line per
architecture with its test accuracy and training time, then a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from workbench.config import resolve_config
from workbench.engine import train
from workbench.registry import get_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch", nargs="+", default=["rnn", "lstm", "gru"])
    parser.add_argument("--set", action="append", default=[], help="extra key=value for every run")
    args = parser.parse_args()
    os.environ.setdefault("WORKBENCH_RUNS_DIR", tempfile.mkdtemp(prefix="brackets-bench-"))
    registry = get_registry()
    extra = [f"data.length={args.length}", f"seed={args.seed}", "threads=1", *args.set]
    if args.epochs:
        extra.append(f"epochs={args.epochs}")
    summary = {}
    for arch in args.arch:
        config = resolve_config(registry, "brackets", arch, "cpu", extra)
        started = time.monotonic()
        result = train(config, registry=registry)
        seconds = time.monotonic() - started
        accuracy = result.metrics["accuracy"]
        summary[arch] = {"test_accuracy": round(accuracy, 4), "valid_accuracy": round(result.valid_metrics["accuracy"], 4),
                         "epochs": result.epochs_completed, "best_epoch": result.best_epoch,
                         "seconds": round(seconds, 1)}
        print(f"{arch:<6} length {args.length}: test accuracy {accuracy:.4f}  (best epoch {result.best_epoch} of "
              f"{result.epochs_completed}, {seconds:.0f} s)", flush=True)
    print(json.dumps({"length": args.length, "settings": extra, "results": summary}))


if __name__ == "__main__":
    main()
