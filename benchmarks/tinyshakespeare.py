"""Tiny Shakespeare: validation loss after the dataset's default training (5 minutes), then the speed
of character generation from the trained model.

    python benchmarks/tinyshakespeare.py --data-dir ../shared/data --set threads=1

Extra ``--set key=value`` arguments override the defaults as in ``workbench train``. Prints the
validation metrics of the best checkpoint and characters generated per second (stepwise, the way
``workbench generate`` streams them).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from workbench.config import resolve_config
from workbench.engine import load_trained, train
from workbench.registry import get_registry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=os.environ.get("WORKBENCH_DATA_DIR"))
    parser.add_argument("--arch", default=None)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--checkpoint", help="skip training; measure generation with this checkpoint")
    parser.add_argument("--length", type=int, default=5000, help="characters to generate for the speed figure")
    args = parser.parse_args()
    registry = get_registry()
    if args.checkpoint:
        checkpoint = args.checkpoint
    else:
        config = resolve_config(registry, "tinyshakespeare", args.arch, "cpu", args.set, data_dir=args.data_dir)
        print("config:", {"arch": config.arch, "train": config.train, "data": config.data, "model": config.model})
        result = train(config, registry=registry)
        for epoch in result.history:
            valid = epoch["valid"]
            print(f"epoch {epoch['epoch']}: train loss {epoch['train']['loss']:.4f}  valid loss {valid['loss']:.4f}"
                  f"  bpc {valid['bits_per_char']:.4f}  {epoch['seconds']:.1f}s  partial={epoch['partial']}")
        valid = result.valid_metrics
        print(f"result: {result.state} ({result.message}); best epoch {result.best_epoch}; "
              f"{result.seconds:.1f}s total; {result.samples_per_second:.1f} windows/s")
        print(f"valid loss {valid['loss']:.4f} nats/char  bpc {valid['bits_per_char']:.4f}  "
              f"perplexity {valid['perplexity']:.3f}  accuracy {valid['accuracy']:.4f}  ({valid['count']:,} chars)")
        checkpoint = result.checkpoint
    loaded = load_trained(checkpoint, registry, "cpu")
    torch.set_num_threads(1)
    model_config = loaded.config.model
    print(f"generation model: {loaded.config.arch} {model_config}, {torch.get_num_threads()} thread")
    for sampling in ("sample", "greedy", "top-k", "top-p"):
        start = time.perf_counter()
        text = "".join(loaded.task.generate(loaded.model, "ROMEO:", args.length, loaded.device,
                                            temperature=0.8, sampling=sampling, top_k=10, top_p=0.9, seed=0))
        seconds = time.perf_counter() - start
        print(f"generate {sampling:<6} {len(text):,} chars in {seconds:.2f}s: {len(text) / seconds:,.0f} chars/s")
    print("sample (temperature 0.8, seed 0):")
    print("ROMEO:" + "".join(loaded.task.generate(loaded.model, "ROMEO:", 400, loaded.device, temperature=0.8,
                                                  seed=0)))


if __name__ == "__main__":
    main()
