"""What the Runs screen's 2 s refresh costs with many runs: rows read cold, rows from the cache, and
the screen's whole refresh (list the folder, read or reuse rows, sort, filter, compare with what
is shown) in the real app.

It writes ``--runs`` run folders the way the engine leaves them (config, status, results, and an
``events.jsonl`` with a start event followed by ``--steps`` step lines, about 200 bytes each), then
times each part ``--reps`` times and prints the median and the range in milliseconds.

usage: python benchmarks/runs_table.py [--runs 200] [--steps 2000] [--reps 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.run_table import RowCache, read_row  # noqa: E402
from workbench.runs import Run, atomic_write_json, list_runs  # noqa: E402


def write_runs(root: Path, count: int, steps: int) -> None:
    for index in range(count):
        arch = ("gru", "lstm", "rnn")[index % 3]
        run = Run(root / f"20260101-{index // 60:02d}{index % 60:02d}00-names-{arch}")
        run.path.mkdir(parents=True)
        config = {"dataset": "names", "arch": arch, "device": "cpu", "data": {}, "model": {"hidden": 128},
                  "train": {"epochs": 10, "batch_size": 64, "lr": 0.003, "optimizer": "adam"}}
        atomic_write_json(run.config_path, config)
        atomic_write_json(run.status_path, {"state": "finished", "pid": None, "epoch": 10, "started": 1.0e9,
                                            "updated": 1.0e9 + 60 + index, "best": {"accuracy": 0.8, "epoch": 9}})
        atomic_write_json(run.results_path, {"state": "finished", "metrics": {"loss": 0.6, "accuracy": 0.78}})
        start = {"type": "start", "run": run.id, "config": config, "task": "classification",
                 "main_metric": "accuracy", "device": "cpu", "threads": 1, "precision": "fp32",
                 "parameters": 30_000 + index, "sizes": {"train": 16000}, "steps_per_epoch": 250,
                 "dataset_info": {}, "resumed_at_epoch": None, "workbench_version": "bench"}
        step = {"type": "step", "epoch": 1, "step": 1, "steps": 250, "global_step": 1, "loss": 1.2345,
                "grad_norm": 0.98, "lr": 0.003, "samples_per_s": 3000.0, "eta_s": 12.0,
                "metric_name": "accuracy", "metric": 0.5}
        with open(run.events_path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(start) + "\n")
            line = json.dumps(step) + "\n"
            handle.write(line * steps)


def timed(function, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return times


def report(name: str, times: list[float]) -> None:
    print(f"{name:<44} median {statistics.median(times):8.2f} ms   range {min(times):.2f} to {max(times):.2f} ms")


async def screen_refresh(root: Path, reps: int) -> tuple[list[float], list[float]]:
    """The Runs screen's refresh in the app (80x24): first fill, then refreshes with nothing changed."""
    from workbench.tui.app import WorkbenchApp

    app = WorkbenchApp(runs_root=root, keys_file=root.parent / "no-keys.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        await pilot.pause(0.5)
        screen = app.screen
        first = []
        for _ in range(reps):
            screen._shown = []  # noqa: SLF001 - force the redraw a change would cause
            screen.cache = RowCache()
            start = time.perf_counter()
            screen.refresh_runs()
            first.append((time.perf_counter() - start) * 1000)
        screen.refresh_runs()
        warm = timed(screen.refresh_runs, reps)
    return first, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "runs"
        write_runs(root, args.runs, args.steps)
        size = sum(run.events_path.stat().st_size for run in list_runs(root)) / args.runs / 1024
        print(f"{args.runs} runs, events.jsonl {size:.0f} KB each, {args.reps} repetitions")
        runs = list_runs(root)
        report("list the runs folder", timed(lambda: list_runs(root), args.reps))
        report("read every row (no cache)", timed(lambda: [read_row(run) for run in runs], args.reps))
        cache = RowCache()
        cache.rows(runs)
        report("rows from the cache (nothing changed)", timed(lambda: cache.rows(runs), args.reps))
        first, warm = asyncio.run(screen_refresh(root, args.reps))
        report("Runs screen refresh, cold cache and redraw", first)
        report("Runs screen refresh, nothing changed", warm)


if __name__ == "__main__":
    main()
