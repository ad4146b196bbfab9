"""The LSTM gate ablation: every combination of input, forget and output gates, measured.

Run (single-threaded, holding one CPU slot):
    python benchmarks/gate_ablation.py --data-dir ../shared/data [--dataset rt-polarity]
        [--seeds 0 1 2] [--peephole] [--set key=value ...]

Trains arch gated-lstm once per gate combination and seed (the seed changes initialisation and
shuffling; the data split stays fixed) and prints the mean test accuracy of each combination next to
the accuracies reported in the lecture (SST), then a JSON summary.

The table in docs/sentiment.md is now measured with `workbench sweep` over 5 seeds, with the same
settings as DEFAULTS below (the command is in docs/sentiment.md and docs/sweep.md); this script
stays as the in-process variant (no detached runs) and for the peephole rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from workbench.config import resolve_config
from workbench.engine import train
from workbench.registry import get_registry

#: (gates, name, lecture's SST accuracy) in the lecture's order.
COMBINATIONS = [
    ("none", "gateless", 80.6),
    ("o", "output", 81.9),
    ("i", "input", 84.4),
    ("io", "input + output", 84.6),
    ("f", "forget", 82.1),
    ("if", "input + forget", 84.1),
    ("fo", "forget + output", 82.6),
    ("ifo", "all three (LSTM)", 85.3),
]
DEFAULTS = ["threads=1", "epochs=6", "patience=2", "batch_size=64", "lr=0.002", "model.embedding_dim=64",
            "model.hidden_size=64", "model.bidirectional=false", "model.dropout=0.3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("WORKBENCH_DATA_DIR"))
    parser.add_argument("--dataset", default="rt-polarity")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--peephole", action="store_true", help="also run every combination with peepholes")
    parser.add_argument("--set", action="append", default=[], help="extra key=value for every run")
    args = parser.parse_args()
    os.environ.setdefault("WORKBENCH_RUNS_DIR", tempfile.mkdtemp(prefix="gate-ablation-"))
    registry = get_registry()
    variants = [(g, name, ref, False) for g, name, ref in COMBINATIONS]
    if args.peephole:
        variants += [(g, name + " + peepholes", None, True) for g, name, _ in COMBINATIONS if g != "none"]
    rows = []
    started = time.monotonic()
    for gates, name, reference, peephole in variants:
        accuracies = []
        for seed in args.seeds:
            settings = [*DEFAULTS, *args.set, f"model.gates={gates}", f"model.peephole={str(peephole).lower()}",
                        f"seed={seed}"]
            config = resolve_config(registry, args.dataset, "gated-lstm", "cpu", settings, data_dir=args.data_dir)
            result = train(config, registry=registry)
            accuracies.append(result.metrics["accuracy"])
        mean = statistics.mean(accuracies)
        spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
        rows.append({"gates": gates, "name": name, "peephole": peephole, "mean": mean, "stdev": spread,
                     "accuracies": accuracies, "lecture_sst": reference})
        ref = f"{reference:.1f}" if reference is not None else "  - "
        print(f"{name:<30} gates={gates:<4} test accuracy {100 * mean:5.1f} ± {100 * spread:3.1f}  "
              f"(seeds: {', '.join(f'{100 * a:.1f}' for a in accuracies)})   lecture SST: {ref}", flush=True)
    print(f"total {time.monotonic() - started:.0f} s")
    print(json.dumps({"dataset": args.dataset, "seeds": args.seeds, "settings": [*DEFAULTS, *args.set],
                      "rows": rows}))


if __name__ == "__main__":
    main()
