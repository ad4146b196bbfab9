"""Time from typing ``workbench`` in a shell (inside tmux, 100x30) to the app's first paint.

The clock starts just before the command is sent to an idle shell and stops when the pane shows the
setup screen's "Dataset" label, so it covers Python start-up, imports, building the first screen and
drawing it (and tmux passing the text on). Repeated a few times; prints each and the median.

usage: python benchmarks/tui_first_paint.py [--reps 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def once(work: Path, index: int) -> float:
    session = f"wbpaint{os.getpid()}-{index}"
    subprocess.run(["tmux", "new", "-d", "-s", session, "-x", "100", "-y", "30",
                    f"cd {work} && exec bash --norc --noprofile"], check=True)
    try:
        time.sleep(1.0)  # let the shell settle
        command = (f"WORKBENCH_RUNS_DIR={work / 'runs'} WORKBENCH_KEYS={work / 'no-keys.toml'} "
                   f"{sys.executable} -m workbench")
        start = time.perf_counter()
        subprocess.run(["tmux", "send-keys", "-t", session, command, "Enter"], check=True)
        while "Dataset" not in capture(session):
            if time.perf_counter() - start > 30:
                raise SystemExit(f"no first paint after 30 s:\n{capture(session)}")
            time.sleep(0.01)
        return time.perf_counter() - start
    finally:
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], capture_output=True)
        time.sleep(0.5)
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wb-paint-"))
    times = [once(work, i) for i in range(args.reps)]
    print("first paint (s): " + ", ".join(f"{t:.2f}" for t in times))
    print(f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
          f"({args.reps} starts, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
