"""IMDB sentiment without pretrained embeddings, trained from scratch on the CPU.

Run (holding one CPU slot; add a second `cpu-slot` and --set threads=2 to take both cores):
    python benchmarks/imdb.py --data-dir ../shared/data [--set key=value ...]

Uses the imdb dataset's defaults (lstm-attention, its max_minutes limit) plus --set, and prints the
training time, epochs and the test accuracy of the best-validation checkpoint, then a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from workbench.config import resolve_config
from workbench.engine import train
from workbench.registry import get_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("WORKBENCH_DATA_DIR"))
    parser.add_argument("--arch", default=None)
    parser.add_argument("--set", action="append", default=[], help="key=value overrides")
    args = parser.parse_args()
    os.environ.setdefault("WORKBENCH_RUNS_DIR", tempfile.mkdtemp(prefix="imdb-bench-"))
    registry = get_registry()
    settings = ["threads=1", *args.set]
    config = resolve_config(registry, "imdb", args.arch, "cpu", settings, data_dir=args.data_dir)
    result = train(config, registry=registry)
    train_seconds = sum(epoch["seconds"] for epoch in result.history)
    for epoch in result.history:
        print(f"epoch {epoch['epoch']}: train {epoch['seconds']:.0f} s, train accuracy "
              f"{epoch['train'].get('accuracy', float('nan')):.4f}, valid accuracy {epoch['valid']['accuracy']:.4f}")
    accuracy = result.metrics["accuracy"]
    print(f"imdb {config.arch}: test accuracy {accuracy:.4f} (25,000 reviews), best epoch {result.best_epoch}, "
          f"{train_seconds / 60:.1f} min of training steps, {result.seconds / 60:.1f} min with validation")
    print(json.dumps({"arch": config.arch, "model": config.model, "data": config.data, "train": config.train,
                      "test_accuracy": accuracy, "best_epoch": result.best_epoch,
                      "train_step_seconds": round(train_seconds, 1), "total_seconds": round(result.seconds, 1),
                      "message": result.message}))


if __name__ == "__main__":
    main()
