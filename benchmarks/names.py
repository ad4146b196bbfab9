"""Train every classifier on names with the dataset's defaults and print test metrics.

    python benchmarks/names.py --data-dir ../shared/data [--archs elman,rnn,lstm,gru] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from workbench.config import resolve_config
from workbench.engine import train
from workbench.registry import get_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--archs", default="elman,rnn,lstm,gru")
    parser.add_argument("--split", default="classic")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    registry = get_registry()
    print(f"names ({args.split} split), dataset defaults, overrides {args.set}, threads auto")
    print(f"{'arch':<6} {'test acc':>8} {'balanced':>8} {'top-3':>6} {'epochs':>6} {'best':>4} {'seconds':>7}")
    with tempfile.TemporaryDirectory() as runs:
        for arch in args.archs.split(","):
            config = resolve_config(registry, "names", arch, "cpu", [f"data.split={args.split}", *args.set],
                                    data_dir=args.data_dir)
            start = time.perf_counter()
            result = train(config, registry=registry, runs_root=Path(runs))
            m = result.metrics
            print(f"{arch:<6} {m['accuracy']:>8.4f} {m['balanced_accuracy']:>8.4f} {m['top_k_accuracy']:>6.4f} "
                  f"{result.epochs_completed:>6} {result.best_epoch:>4} {time.perf_counter() - start:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
