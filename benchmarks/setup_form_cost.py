"""What a dataset-list press and a form rebuild cost the setup screen's event loop, in CPU time.

The wall-clock figures of ``tui_latency.py --parts list`` (tmux, a real terminal) move with whatever
else the machine runs; this measures the UI thread's own CPU time (``time.thread_time``) in a headless
Textual pilot at 80x24 with the real registry, so two versions of the screen can be compared on a
busy machine:

- per press: a Down or Up press in the dataset list and the messages it causes (the description, the
  architecture list), the list resting after each press so the form is rebuilt in between;
- per rebuild: the form rebuilt for another dataset with that dataset's default architecture (the
  rows mounted, the values set in place, the marks of edited fields), and the messages that follow.

One field (train.lr) is edited first, so marking is part of what is measured. The model-size
estimate is switched off (it runs in a thread and would be counted in neither figure anyway).

usage: python benchmarks/setup_form_cost.py [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from textual.widgets import Input

from workbench.registry import get_registry
from workbench.tui import setup
from workbench.tui.app import WorkbenchApp

#: Datasets the form is rebuilt for, in turn: same and other tasks, edits on names.
REBUILDS = ["majority", "names", "brackets", "rt-polarity", "names", "tinyshakespeare", "names", "fra-eng"]


def summary(label: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return (f"{label}: median {statistics.median(ms):.1f} ms, mean {statistics.mean(ms):.1f}, "
            f"p90 {ms[int(0.9 * (len(ms) - 1))]:.1f}, max {ms[-1]:.1f} (n={len(ms)})")


async def measure(rounds: int) -> tuple[list[float], list[float]]:
    setup.list_devices = lambda: []  # type: ignore[assignment]  # no child process: not what is measured
    setup.SetupScreen._estimate_soon = lambda self: None  # type: ignore[method-assign]
    work = Path(tempfile.mkdtemp(prefix="setup-cost-"))
    app = WorkbenchApp(runs_root=work / "runs", keys_file=work / "no-keys.toml", registry=get_registry())
    presses: list[float] = []
    rebuilds: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        assert isinstance(screen, setup.SetupScreen)
        while not screen.query("#p-train-lr"):
            await pilot.pause(0.05)
        await pilot.pause(1.0)
        screen.query_one("#p-train-lr", Input).value = "0.01"
        await pilot.pause(0.3)
        screen.query_one("#datasets").focus()
        await pilot.pause(0.2)
        for _ in range(rounds):
            for key in ["down"] * 8 + ["up"] * 8:
                start = time.thread_time()
                await pilot.press(key)
                await pilot.pause()
                presses.append(time.thread_time() - start)
                await asyncio.sleep(setup.FORM_DELAY + 0.3)  # rests: the form is rebuilt meanwhile
        registry = get_registry()
        for _ in range(rounds):
            for name in REBUILDS:
                screen.dataset = None  # so the same dataset twice is rebuilt all the same
                start = time.thread_time()
                screen._select_dataset(name, arch=registry.dataset(name).default_arch, form="now")
                await pilot.pause(0.3)
                rebuilds.append(time.thread_time() - start)
    return presses, rebuilds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="16 presses and 8 rebuilds per round")
    args = parser.parse_args()
    presses, rebuilds = asyncio.run(measure(args.rounds))
    print(summary("dataset-list press, UI thread CPU", presses))
    print(summary("form rebuild, UI thread CPU", rebuilds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
