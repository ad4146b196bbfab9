"""1 versus 2 processes: names GRU training samples/s of ``workbench train`` alone and under
``torchrun --nproc_per_node 2`` (gloo, one intra-op thread per process), interleaved, with the
test accuracy each run reached.

    python benchmarks/processes.py --data-dir ../shared/data

Each repetition runs, in turn: 1 process at batch 64 with 1 thread (the default on 2 cores); the
same with 2 threads (both cores for one process); 2 processes at batch 64 each, 1 thread each
(global batch 128: twice the examples per optimiser step); 1 process at batch 128 (the same global
batch as the 2-process run, so its accuracy is the one to compare). samples/s is the run's own training rate
(``results.json``'s ``samples_per_second``: examples trained over seconds spent in training steps,
summed over processes), so start-up and evaluation are left out; wall is the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(processes: int, batch_size: int, threads: int, epochs: int) -> list[str]:
    train = ["-m", "workbench", "train", "--dataset", "names", "--arch", "gru", "--device", "cpu", "--quiet",
             "--json", "--set", f"epochs={epochs}", "--set", f"batch_size={batch_size}", "--set", f"threads={threads}"]
    if processes == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *train]


Setup = tuple[int, int, int]  # processes, batch size per process, threads per process


def run_once(setup: Setup, epochs: int, data_dir: str) -> tuple[float, float, float]:
    """samples/s, test accuracy and wall seconds of one run."""
    processes, batch_size, threads = setup
    with tempfile.TemporaryDirectory() as runs:
        env = dict(os.environ, WORKBENCH_DATA_DIR=data_dir, WORKBENCH_RUNS_DIR=runs, OMP_NUM_THREADS=str(threads))
        started = time.perf_counter()
        done = subprocess.run(command(processes, batch_size, threads, epochs), env=env, capture_output=True,
                              text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"run failed ({processes} processes):\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout)
        return result["samples_per_second"], result["metrics"]["accuracy"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    setups: list[Setup] = [(1, 64, 1), (1, 64, 2), (2, 64, 1), (1, 128, 1)]
    measured: dict[Setup, list[tuple[float, float, float]]] = {setup: [] for setup in setups}
    print(f"names GRU (hidden 128), {args.epochs} epochs, {os.cpu_count()} cores, gloo; "
          f"{args.reps} interleaved repetitions", flush=True)
    for rep in range(args.reps):
        for setup in setups:
            rate, accuracy, wall = run_once(setup, args.epochs, str(Path(args.data_dir).resolve()))
            measured[setup].append((rate, accuracy, wall))
            print(f"  rep {rep + 1}: {setup[0]} process(es) x batch {setup[1]} x {setup[2]} thread(s): "
                  f"{rate:,.0f} samples/s, test accuracy {accuracy:.4f}, wall {wall:.1f} s", flush=True)
    print("processes  batch/process  threads/process  samples/s (median)  test accuracy (mean)  wall s (median)")
    for (processes, batch, threads), rows in measured.items():
        print(f"{processes:>9}  {batch:>13}  {threads:>15}  {statistics.median(r[0] for r in rows):>18,.0f}  "
              f"{statistics.mean(r[1] for r in rows):>20.4f}  {statistics.median(r[2] for r in rows):>15.1f}")
    rate = {setup: statistics.median(r[0] for r in rows) for setup, rows in measured.items()}
    print(f"2 processes / 1 process of 1 thread (batch 64 each): {rate[(2, 64, 1)] / rate[(1, 64, 1)]:.2f}x samples/s")
    print(f"2 processes / 1 process of 2 threads (batch 64 each): {rate[(2, 64, 1)] / rate[(1, 64, 2)]:.2f}x samples/s")


if __name__ == "__main__":
    main()
