"""UD English EWT UPOS tagging: train for at most N minutes on one CPU thread, print test figures.

Run it through the shared CPU slot:
    python benchmarks/ewt_tagging.py --data-dir ../shared/data [--minutes 10]
Extra ``--set key=value`` options go to the run (e.g. --set model.num_layers=2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from workbench.config import resolve_config
from workbench.engine import train
from workbench.registry import get_registry


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--arch", default="char-bilstm-tagger")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    registry = get_registry()
    sets = ["threads=1", f"max_minutes={args.minutes}", "epochs=100", "patience=0", *args.set]
    config = resolve_config(registry, "ud-ewt", args.arch, "cpu", sets, data_dir=args.data_dir)
    started = time.time()
    result = train(config, registry=registry)
    test = result.metrics
    print(json.dumps({
        "command": " ".join(sys.argv),
        "arch": args.arch, "train": config.train, "model": config.model,
        "run": result.run.id, "state": result.state, "message": result.message,
        "epochs_completed": result.epochs_completed, "best_epoch": result.best_epoch,
        "train_seconds": round(result.seconds, 1), "wall_seconds": round(time.time() - started, 1),
        "test_accuracy": round(test["accuracy"], 4), "test_oov_accuracy": round(test["oov_accuracy"], 4),
        "test_oov_count": test["oov_count"], "test_tokens": test["count"],
        "valid_accuracy": round(result.valid_metrics["accuracy"], 4),
        "per_tag_accuracy": test["per_class_accuracy"],
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
