"""Peak memory and time to the first training step for text corpora of 1, 10 and 100 MB.

    python benchmarks/corpus_memory.py --data-dir ../shared/data
    python benchmarks/corpus_memory.py --data-dir ../shared/data --sizes 1,10 --phases

Each corpus is tiny Shakespeare repeated (and cut) to the size in MB (10^6 bytes), written into a
temporary folder. For each size ``workbench train --dataset text-file --arch char-lstm`` runs in a
subprocess, twice: ``cold`` with an empty data cache and ``warm`` with the cache the cold run left
(the two are alike when nothing is cached). Measured from outside: the child's peak resident memory
(``VmHWM`` from ``/proc/PID/status``, polled; Linux only) when its first step event appears in the
run's ``events.jsonl``, and the seconds from starting the process to that event's time. The child is
then killed: only the way to the first step is measured. ``--phases`` adds, per size, the seconds of
each data step (load, vocabulary, encode, first batch) measured inside this process, cold and warm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLL_SECONDS = 0.02


def make_corpus(source: Path, folder: Path, megabytes: float) -> Path:
    """``source`` repeated and cut to ``megabytes`` * 10^6 bytes (at a line end), streamed."""
    target = folder / f"corpus-{megabytes:g}MB.txt"
    wanted = int(megabytes * 1_000_000)
    text = source.read_bytes()
    with open(target, "wb") as out:
        written = 0
        while written < wanted:
            piece = text[: wanted - written]
            out.write(piece)
            written += len(piece)
    return target


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def first_step_time(runs: Path) -> float | None:
    """The wall-clock time of the first step event of the (only) run under ``runs``."""
    for events in runs.glob("*/events.jsonl"):
        with open(events, encoding="utf-8") as handle:
            for line in handle:
                if '"type": "step"' in line or '"type":"step"' in line:
                    try:
                        return float(json.loads(line)["time"])
                    except (ValueError, KeyError):
                        return None
    return None


def measure(corpus: Path, cache: Path, work: Path, extra: list[str], timeout: float) -> dict[str, float | str]:
    """One character-LSTM training process on ``corpus`` up to its first step."""
    return train_to_first_step("text-file", "char-lstm", corpus, cache, work, extra, timeout)


def train_to_first_step(dataset: str, arch: str, path: Path, cache: Path, work: Path, extra: list[str],
                        timeout: float, code: str | None = None) -> dict[str, float | str]:
    """One training process up to its first step: peak RSS (MB) and seconds to that step. ``code``:
    a folder put first on the child's PYTHONPATH (another checkout's workbench, for "before")."""
    runs = Path(tempfile.mkdtemp(prefix="runs-", dir=work))
    env = {**os.environ, "WORKBENCH_RUNS_DIR": str(runs), "WORKBENCH_CACHE_DIR": str(cache)}
    env.pop("WORKBENCH_DATA_DIR", None)
    if code:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (code, env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "workbench", "train", "--dataset", dataset, "--arch", arch,
               "--set", f"data.path={path}", "--set", "train.log_every=1", "--set", "train.threads=1",
               "--set", "train.epochs=1", "--quiet", *[arg for pair in extra for arg in ("--set", pair)]]
    started = time.time()
    child = subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak, step_at = 0.0, None
    try:
        while time.time() - started < timeout:
            peak = max(peak, peak_rss_mb(child.pid) or 0.0)
            step_at = first_step_time(runs)
            if step_at is not None or child.poll() is not None:
                break
            time.sleep(POLL_SECONDS)
        peak = max(peak, peak_rss_mb(child.pid) or 0.0)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
        shutil.rmtree(runs, ignore_errors=True)
    if step_at is None:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["timed out"]
        return {"error": tail[0]}
    return {"peak_mb": peak, "first_step_s": step_at - started}


def phases(corpus: Path, cache: Path) -> str:
    """Seconds of each data step before the first batch, in this process (``--phases``): loading the
    dataset, the vocabulary, encoding the splits, the first shuffled batch."""
    import torch

    from workbench.config import resolve_config
    from workbench.engine import load_dataset
    from workbench.registry import get_registry
    from workbench.tasks import task_class

    os.environ["WORKBENCH_CACHE_DIR"] = str(cache)
    registry = get_registry()
    config = resolve_config(registry, "text-file", "char-lstm", "cpu", [f"data.path={corpus}"])
    marks = [time.perf_counter()]
    data = load_dataset(config, registry)
    marks.append(time.perf_counter())
    task = task_class("language_model").from_data(data)
    marks.append(time.perf_counter())
    encoded = task.encode(data)
    marks.append(time.perf_counter())
    next(iter(task.batches(encoded["train"], 64, True, torch.Generator().manual_seed(0))))
    marks.append(time.perf_counter())
    names = ("load", "vocabulary", "encode", "first batch")
    return "  ".join(f"{name} {b - a:.2f}s" for name, a, b in zip(names, marks, marks[1:], strict=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data", help="folder holding tinyshakespeare/input.txt")
    parser.add_argument("--sizes", default="1,10,100", help="corpus sizes in MB, comma-separated")
    parser.add_argument("--set", action="append", default=[], help="extra key=value for workbench train")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one process may take to its first step")
    parser.add_argument("--keep-cache", action="store_true", help="print where the temporary folder is and keep it")
    parser.add_argument("--phases", action="store_true",
                        help="also time each data step to the first batch in this process (cold, then warm)")
    args = parser.parse_args()
    source = Path(args.data_dir) / "tinyshakespeare" / "input.txt"
    if not source.is_file():
        parser.error(f"no tinyshakespeare/input.txt in {args.data_dir}")
    work = Path(tempfile.mkdtemp(prefix="corpus-memory-"))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; text-file + char-lstm (defaults), threads=1")
    print(f"{'corpus':>10} {'chars':>12} {'run':>5} {'peak RSS MB':>12} {'first step s':>13}")
    try:
        for size in (float(s) for s in args.sizes.split(",")):
            corpus = make_corpus(source, work, size)
            cache = work / f"cache-{size:g}"
            chars = corpus.stat().st_size  # tiny Shakespeare is ASCII: one byte per character
            for label in ("cold", "warm"):
                result = measure(corpus, cache, work, args.set, args.timeout)
                if "error" in result:
                    print(f"{size:>8g}MB {chars:>12,} {label:>5} failed: {result['error']}")
                    continue
                print(f"{size:>8g}MB {chars:>12,} {label:>5} {result['peak_mb']:>12,.0f} "
                      f"{result['first_step_s']:>13.2f}", flush=True)
            if args.phases:
                for label in ("cold", "warm"):
                    print(f"{size:>8g}MB in-process {label}: {phases(corpus, work / f'phases-{size:g}')}", flush=True)
            corpus.unlink()
    finally:
        if args.keep_cache:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
