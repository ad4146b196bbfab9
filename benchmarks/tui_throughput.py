"""Training throughput in the terminal app versus headless, and key-to-repaint latency while training.

The same setup (names, GRU, a few epochs, a fixed seed) is trained alternately

- headless: ``python -m workbench train --config setup.toml --run-dir DIR --quiet`` (the exact command
  the app runs), and
- from the app: the real ``workbench`` app in a tmux pane (100x30) loads the setup (ctrl+o, enter),
  starts it (t) and watches it with its live plots (no keys pressed while it trains).

Then one more run from the app measures key-to-repaint latency: this script presses ``v`` (cycle the
plot view: a new layout with every visible plot redrawn, the heaviest key of the train screen) once
a second and times each press until the pane's output shows the new view's name.

Throughput is read from each run's own ``events.jsonl`` (samples / seconds over the epoch events).
Latency is measured from just before ``tmux send-keys`` until the repainted text reaches the pane's
output stream (``tmux pipe-pane``), so it includes tmux delivering the key.

usage: python benchmarks/tui_throughput.py [--reps 3] [--epochs 8] [--data-dir DIR]
Run it holding both cores: python benchmarks/tui_throughput.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VIEWS = ("all", "loss", "metric", "grad", "log")
#: Seconds between timed key presses while the app trains (a brisk user; each press re-lays out the plots).
PRESS_EVERY = 1.0


def throughput(run_dir: Path) -> float:
    samples = seconds = 0.0
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("type") == "epoch":
            samples += event["samples_per_s"] * event["seconds"]
            seconds += event["seconds"]
    if not seconds:
        raise SystemExit(f"{run_dir} has no epoch events; see {run_dir / 'train.log'}")
    return samples / seconds


def state_of(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "status.json").read_text()).get("state", "")
    except (OSError, ValueError):
        return ""


def headless(work: Path, setup: Path, index: int) -> float:
    run_dir = work / "runs" / f"headless-{index}"
    with open(work / f"headless-{index}.log", "wb") as log:
        subprocess.run([sys.executable, "-m", "workbench", "train", "--config", str(setup), "--run-dir", str(run_dir),
                        "--quiet"], check=True, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    return throughput(run_dir)


class Pane:
    """The real app in a detached tmux session, its output mirrored to a file."""

    def __init__(self, work: Path, name: str) -> None:
        self.session = name
        self.stream = work / f"{name}.out"
        env = (f"env WORKBENCH_RUNS_DIR={work / 'runs'} WORKBENCH_KEYS={work / 'no-keys.toml'} "
               f"TERM=xterm-256color")
        command = f"cd {work} && {env} {sys.executable} -m workbench; sleep 600"
        subprocess.run(["tmux", "new", "-d", "-s", name, "-x", "100", "-y", "30", command], check=True)
        subprocess.run(["tmux", "pipe-pane", "-t", name, "-o", f"cat >> {self.stream}"], check=True)

    def capture(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.session], capture_output=True,
                              text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, *keys], check=True)

    def wait(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.capture():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {text!r}; the pane shows:\n{self.capture()}")
            time.sleep(0.1)

    def timed_key(self, key: str, marker: bytes, timeout: float = 2.0) -> float | None:
        """Seconds from sending ``key`` until ``marker`` appears in the pane's new output."""
        offset = self.stream.stat().st_size
        start = time.perf_counter()
        self.keys(key)
        deadline = start + timeout
        while time.perf_counter() < deadline:
            size = self.stream.stat().st_size
            if size > offset:
                with open(self.stream, "rb") as handle:
                    handle.seek(offset)
                    if marker in handle.read():
                        return time.perf_counter() - start
            time.sleep(0.002)
        return None

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)


def in_app(work: Path, index: int, latencies: dict[str, list[float]] | None = None, misses: list[str] | None = None
           ) -> float:
    runs = work / "runs"
    before = {p.name for p in runs.iterdir()} if runs.exists() else set()
    pane = Pane(work, f"wbbench{os.getpid()}-{index}")
    try:
        pane.wait("Dataset", 30)
        pane.keys("C-o")
        pane.wait("Load a setup", 10)
        pane.keys("Enter")  # the dialog offers ./workbench-setup.toml
        pane.wait("loaded", 10)
        pane.keys("t")
        deadline = time.monotonic() + 60
        while True:
            new = [p for p in runs.iterdir() if p.name not in before] if runs.exists() else []
            if new:
                run_dir = new[0]
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"no run started; the pane shows:\n{pane.capture()}")
            time.sleep(0.1)
        pane.wait("RUNNING", 60)
        view = 0
        while state_of(run_dir) in ("", "starting", "running", "paused"):
            time.sleep(PRESS_EVERY if latencies is not None else 0.5)
            if latencies is None or state_of(run_dir) != "running":
                continue
            view = (view + 1) % len(VIEWS)
            key, marker = "v", f"view: {VIEWS[view]}".encode()
            seconds = pane.timed_key(key, marker)
            if seconds is None:
                misses.append(key)
            else:
                latencies.setdefault(key, []).append(seconds)
        pane.keys("C-q")
    finally:
        time.sleep(0.5)
        pane.close()
    if state_of(run_dir) != "finished":
        raise SystemExit(f"the app's run ended {state_of(run_dir)}; see {run_dir / 'train.log'}")
    return throughput(run_dir)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--data-dir", default=os.environ.get("WORKBENCH_DATA_DIR") or str(REPO.parent / "shared" / "data"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder with the runs")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("this benchmark drives the app in tmux; install tmux")

    sys.path.insert(0, str(REPO))
    from workbench.config import resolve_config
    from workbench.registry import get_registry

    config = resolve_config(get_registry(), "names", None, "auto", [f"epochs={args.epochs}", "seed=1", "patience=0"],
                            data_dir=str(Path(args.data_dir).resolve()))
    work = Path(tempfile.mkdtemp(prefix="wb-tui-bench-"))
    setup = work / "workbench-setup.toml"
    setup.write_text(config.to_toml())
    print(f"setup: names / {config.arch}, epochs={args.epochs}, batch_size={config.train['batch_size']}, "
          f"threads=auto, {os.cpu_count()} cores; folder {work}")
    headless_rates: list[float] = []
    app_rates: list[float] = []
    latencies: dict[str, list[float]] = {}
    misses: list[str] = []
    try:
        for rep in range(args.reps):
            order = ("headless", "app") if rep % 2 == 0 else ("app", "headless")
            for kind in order:
                if kind == "headless":
                    rate = headless(work, setup, rep)
                    headless_rates.append(rate)
                else:
                    rate = in_app(work, rep)
                    app_rates.append(rate)
                print(f"rep {rep + 1} {kind:<8} {rate:8.0f} samples/s", flush=True)
        latency_rate = in_app(work, args.reps, latencies, misses)
        print(f"latency run (app, keys pressed once a second) {latency_rate:8.0f} samples/s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ratios = [a / h for a, h in zip(app_rates, headless_rates, strict=True)]
    print(f"headless mean {statistics.mean(headless_rates):.0f} samples/s, "
          f"app mean {statistics.mean(app_rates):.0f} samples/s")
    print(f"app / headless per rep: {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"ratio of means {statistics.mean(app_rates) / statistics.mean(headless_rates):.3f}")
    for key, times in latencies.items():
        print(f"key-to-repaint during training, {key}: {len(times)} presses, p50 {percentile(times, 0.5) * 1000:.1f} ms, "
              f"p95 {percentile(times, 0.95) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")
    print(f"presses not seen repainted within 2 s: {len(misses)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
