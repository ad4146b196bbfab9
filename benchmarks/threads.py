"""Intra-op threads on a small machine: GRU training throughput on names with 1 and 2 threads,
with the other core idle and with it busy (a spinning process standing in for the UI or a loader).

    python benchmarks/threads.py --data-dir ../shared/data

Run it holding both cores (e.g. nothing else running) for meaningful numbers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import torch


def spin(stop) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--arch", default="gru")
    args = parser.parse_args()
    from benchmarks.packing import measure
    from workbench.registry import get_registry

    registry = get_registry()
    print(f"{args.arch} padded, names, batch 64; samples/s of forward+backward+step")
    for busy in (False, True):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            stop = multiprocessing.Event()
            spinner = multiprocessing.Process(target=spin, args=(stop,)) if busy else None
            if spinner:
                spinner.start()
                time.sleep(0.5)
            try:
                rate = measure(registry, args.data_dir, args.arch, "padded", False, "cpu", args.seconds)
            finally:
                if spinner:
                    stop.set()
                    spinner.join()
            print(f"threads={threads} other core {'busy' if busy else 'idle'}: {rate:,.0f} samples/s", flush=True)


if __name__ == "__main__":
    main()
