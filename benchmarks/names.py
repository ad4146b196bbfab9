"""Train classifiers on names with the dataset's defaults and print test metrics, time and CPU time.

    python -m benchmarks.names --data-dir ../shared/data                    # the default model (GRU)
    python -m benchmarks.names --data-dir ../shared/data --archs elman,rnn,lstm,gru
    python -m benchmarks.names --data-dir ../shared/data --seeds 3 --baseline old
    python -m benchmarks.names --data-dir ../shared/data --set model.ngrams=0 --set logit_adjustment=0

``--baseline SETS`` also trains a baseline (``old``: the names defaults before issue 13, written out
below; or any space-separated ``key=value`` overrides) before each configuration, interleaved, and
prints the ratio of their seconds and CPU seconds, so a cost is compared on the same machine under
the same load. Issue 13's goal: at least 0.86 top-1 and 0.60 balanced accuracy on the held-out 20%
within 60 s of default training on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from workbench.config import param_groups, resolve_config
from workbench.engine import train
from workbench.registry import get_registry

#: The names defaults before issue 13's changes (GRU 128, embedding 64, Adam 0.003, batch 64, 12 epochs,
#: patience 4, constant lr, no dropout, no n-gram bag, plain cross-entropy), as overrides of the defaults.
OLD_DEFAULTS = ["epochs=12", "batch_size=64", "lr=0.003", "patience=4", "schedule=none", "logit_adjustment=0",
                "model.embedding_dim=64", "model.hidden_size=128", "model.dropout=0", "model.ngrams=0"]
GOAL = {"accuracy": 0.86, "balanced_accuracy": 0.60, "seconds": 60.0}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def for_arch(registry: Any, arch: str, overrides: list[str]) -> list[str]:
    """``overrides`` without the model parameters ``arch`` lacks (the Elman classifier has no n-gram bag)."""
    model = param_groups(registry, "names", arch)["model"]
    return [o for o in overrides if not o.startswith("model.") or model.get(o.split("=")[0][6:]) is not None]


def run_once(registry: Any, arch: str, overrides: list[str], data_dir: str, runs: Path) -> dict[str, float]:
    config = resolve_config(registry, "names", arch, "cpu", overrides, data_dir=data_dir)
    start, cpu = time.perf_counter(), cpu_seconds()
    result = train(config, registry=registry, runs_root=runs)
    m = result.metrics
    return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"], "top3": m["top_k_accuracy"],
            "epochs": result.epochs_completed, "best": result.best_epoch or 0,
            "seconds": time.perf_counter() - start, "cpu": cpu_seconds() - cpu}


def row(label: str, r: dict[str, float]) -> str:
    return (f"{label:<10} {r['accuracy']:>8.4f} {r['balanced_accuracy']:>8.4f} {r['top3']:>6.4f} "
            f"{r['epochs']:>6.0f} {r['best']:>4.0f} {r['seconds']:>7.1f} {r['cpu']:>7.1f}")


def mean_row(label: str, results: list[dict[str, float]]) -> str:
    mean = {key: statistics.fmean(r[key] for r in results) for key in results[0]}
    line = row(label, mean)
    if len(results) > 1:
        sd = {key: statistics.stdev(r[key] for r in results) for key in ("accuracy", "balanced_accuracy")}
        line += f"   sd {sd['accuracy']:.4f} {sd['balanced_accuracy']:.4f}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--archs", default="gru")
    parser.add_argument("--split", default="classic")
    parser.add_argument("--set", action="append", default=[], help="key=value over the defaults (repeatable)")
    parser.add_argument("--seeds", type=int, default=1, help="train.seed 0..N-1 for each configuration")
    parser.add_argument("--baseline", default="", help="'old' (the defaults before issue 13) or 'key=value ...'")
    args = parser.parse_args()
    registry = get_registry()
    baseline = OLD_DEFAULTS if args.baseline == "old" else args.baseline.split()
    print(f"names ({args.split} split), dataset defaults, overrides {args.set}, seeds {args.seeds}"
          + (f", baseline {'old defaults' if args.baseline == 'old' else baseline}" if args.baseline else ""))
    print(f"{'run':<10} {'test acc':>8} {'balanced':>8} {'top-3':>6} {'epochs':>6} {'best':>4} {'seconds':>7} "
          f"{'cpu s':>7}")
    with tempfile.TemporaryDirectory() as runs:
        for arch in args.archs.split(","):
            ours, theirs = [], []
            for seed in range(args.seeds):
                common = [f"data.split={args.split}", f"seed={seed}"]
                if args.baseline:
                    theirs.append(run_once(registry, arch, [*common, *for_arch(registry, arch, baseline)],
                                           args.data_dir, Path(runs)))
                    print(row(f"{arch} base", theirs[-1]) + f"   seed {seed}", flush=True)
                ours.append(run_once(registry, arch, [*common, *args.set], args.data_dir, Path(runs)))
                print(row(arch, ours[-1]) + (f"   seed {seed}" if args.seeds > 1 or args.baseline else ""),
                      flush=True)
            if args.seeds > 1:
                print(mean_row(f"{arch} mean", ours))
                if theirs:
                    print(mean_row("base mean", theirs))
            if theirs:
                wall = sum(r["seconds"] for r in ours) / sum(r["seconds"] for r in theirs)
                cpu = sum(r["cpu"] for r in ours) / sum(r["cpu"] for r in theirs)
                print(f"cost vs baseline: {wall:.2f}x seconds, {cpu:.2f}x CPU seconds")
            met = (statistics.fmean(r["accuracy"] for r in ours) >= GOAL["accuracy"]
                   and statistics.fmean(r["balanced_accuracy"] for r in ours) >= GOAL["balanced_accuracy"])
            print(f"issue 13 goal (top-1 >= {GOAL['accuracy']}, balanced >= {GOAL['balanced_accuracy']}): "
                  f"{'met' if met else 'not met'} by {arch}'s accuracy; the time goal is "
                  f"{GOAL['seconds']:.0f} s on a quiet 2-core CPU (see 'seconds')")


if __name__ == "__main__":
    main()
