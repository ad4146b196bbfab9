"""Padded versus packed sequences: training throughput of each classifier on the names data.

Prints samples/s for forward + backward + optimizer step over the same batches. Usage:

    python benchmarks/packing.py --data-dir ../shared/data [--threads 1] [--device cpu] [--seconds 6]
"""

from __future__ import annotations

import argparse
import time

import torch

from workbench.config import resolve_config
from workbench.engine import build_model, configure_threads, load_dataset, make_optimizer
from workbench.registry import get_registry
from workbench.tasks import task_class
from workbench.training import TrainOptions


def measure(registry, data_dir: str, arch: str, mode: str, bidirectional: bool, device: str, seconds: float) -> float:
    sets = [f"model.sequence_mode={mode}", f"model.bidirectional={str(bidirectional).lower()}"]
    config = resolve_config(registry, "names", arch, device, sets, data_dir=data_dir)
    data = load_dataset(config, registry)
    task = task_class("classification").from_data(data)
    train = task.encode(data)["train"]
    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model(config, task, registry).to(dev)
    optimizer = make_optimizer(model, TrainOptions.from_config(config.train))
    generator = torch.Generator().manual_seed(0)
    batches = [b.to(dev) for b in task.batches(train, config.train["batch_size"], True, generator)]

    def step(batch) -> None:
        optimizer.zero_grad()
        loss, _ = task.loss(model, batch)
        loss.backward()
        optimizer.step()

    for batch in batches[:5]:  # warm-up
        step(batch)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    samples = 0
    start = time.perf_counter()
    index = 0
    while time.perf_counter() - start < seconds:
        batch = batches[index % len(batches)]
        step(batch)
        samples += batch.size
        index += 1
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    threads = configure_threads(args.threads)
    registry = get_registry()
    print(f"device {args.device}, {threads} intra-op thread(s), torch {torch.__version__}, "
          "names data, batch 64, hidden 128, embedding 64")
    print(f"{'arch':<6} {'bidir':<6} {'padded':>10} {'packed':>10}  packed/padded")
    for arch in ("rnn", "lstm", "gru"):
        for bidirectional in (False, True):
            padded = measure(registry, args.data_dir, arch, "padded", bidirectional, args.device, args.seconds)
            packed = measure(registry, args.data_dir, arch, "packed", bidirectional, args.device, args.seconds)
            print(f"{arch:<6} {str(bidirectional):<6} {padded:>10,.0f} {packed:>10,.0f}  {packed / padded:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
