"""Balanced brackets: the Elman RNNs against the LSTM and GRU on the same strings.

Run (single-threaded; on the shared machine hold one CPU slot per process):
    python benchmarks/brackets.py [--arch rnn elman lstm gru] [--seeds 0 1 2] [--length 100] [--set key=value ...]

Trains each architecture with the `brackets` dataset's defaults (plus --set) for each seed, then
scores the best-validation checkpoint on the test split and on fresh probe strings of each kind:
balanced, `count` defects (one bracket turned round: only an exact count over the whole string
tells) and `order` defects (the depth dips below zero once while the counts match). Prints one line
per run, a mean per architecture, and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time

from workbench_plugins.brackets_data import balanced_string, unbalanced_string

from workbench.config import resolve_config
from workbench.engine import load_trained, train
from workbench.registry import get_registry

PROBE_KINDS = ("balanced", "count", "order")


def probe_sets(length: int, pairs: int, count: int, seed: int) -> dict[str, list[tuple[str, int]]]:
    """Fresh strings of each kind, from a generator seed the training data never uses."""
    rng = random.Random(10_000 + seed)
    sets: dict[str, list[tuple[str, int]]] = {kind: [] for kind in PROBE_KINDS}
    for _ in range(count):
        sets["balanced"].append((balanced_string(length, pairs, rng), 1))
        sets["count"].append((unbalanced_string(length, pairs, rng, "count"), 0))
        sets["order"].append((unbalanced_string(length, pairs, rng, "order"), 0))
    return sets


def probe_accuracy(checkpoint, registry, probes: dict[str, list[tuple[str, int]]]) -> dict[str, float]:
    loaded = load_trained(checkpoint, registry, "cpu")
    scores = {}
    for kind, examples in probes.items():
        encoded = [(loaded.task.encode_text(text), label) for text, label in examples]
        metrics = loaded.task.evaluate(loaded.model, encoded, 256, loaded.device)
        scores[kind] = round(metrics["accuracy"], 4)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--arch", nargs="+", default=["rnn", "elman", "lstm", "gru"])
    parser.add_argument("--probes", type=int, default=500, help="fresh strings of each kind")
    parser.add_argument("--set", action="append", default=[], help="extra key=value for every run")
    args = parser.parse_args()
    os.environ.setdefault("WORKBENCH_RUNS_DIR", tempfile.mkdtemp(prefix="brackets-bench-"))
    registry = get_registry()
    base = [f"data.length={args.length}", "threads=1", *args.set]
    if args.epochs:
        base.append(f"epochs={args.epochs}")
    runs: dict[str, list[dict]] = {arch: [] for arch in args.arch}
    for seed in args.seeds:
        for arch in args.arch:
            config = resolve_config(registry, "brackets", arch, "cpu", [*base, f"seed={seed}"])
            probes = probe_sets(args.length, int(config.data["pairs"]), args.probes, seed)
            started = time.monotonic()
            result = train(config, registry=registry)
            seconds = time.monotonic() - started
            scores = probe_accuracy(result.checkpoint, registry, probes)
            record = {"seed": seed, "test_accuracy": round(result.metrics["accuracy"], 4),
                      "valid_accuracy": round(result.valid_metrics["accuracy"], 4), **scores,
                      "best_epoch": result.best_epoch, "epochs": result.epochs_completed, "seconds": round(seconds, 1)}
            runs[arch].append(record)
            probe_text = "  ".join(f"{kind} {scores[kind]:.3f}" for kind in PROBE_KINDS)
            print(f"{arch:<6} seed {seed}: test accuracy {record['test_accuracy']:.4f}  probes: {probe_text}  "
                  f"(best epoch {result.best_epoch} of {result.epochs_completed}, {seconds:.0f} s)", flush=True)
    means = {}
    for arch, records in runs.items():
        means[arch] = {key: round(statistics.fmean(r[key] for r in records), 4)
                       for key in ("test_accuracy", *PROBE_KINDS)}
        row = "  ".join(f"{kind} {means[arch][kind]:.3f}" for kind in PROBE_KINDS)
        print(f"{arch:<6} mean over {len(records)} seed(s), length {args.length}: test accuracy "
              f"{means[arch]['test_accuracy']:.4f}  probes: {row}")
    print(json.dumps({"length": args.length, "settings": base, "means": means, "runs": runs}))


if __name__ == "__main__":
    main()
