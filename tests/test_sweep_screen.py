"""The app's Sweep screen (F8): the configuration x seed matrix from the sweep folder, live, at 80x24;
stopping one run of a sweep; writing the table; switching sweeps."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from workbench import sweep as sw
from workbench.runs import Run, RunLock, atomic_write_json, new_run
from workbench.tui.app import WorkbenchApp


@pytest.fixture(autouse=True)
def no_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """The setup screen opens first; its device list must not import torch here."""
    from workbench.devices import DeviceInfo

    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: [DeviceInfo("cpu", "CPU", True)])


def make_sweep(registry: Any, root: Path, name: str, accuracies: dict[str, list[float | None]]) -> sw.Sweep:
    """A sweep over lr with finished runs holding ``accuracies``; None leaves a cell pending."""
    sweep = sw.plan_sweep(registry, name=name, runs_root=root, axes=sw.parse_grid(["lr=" + ",".join(accuracies)]),
                          seeds=[0, 1, 2], dataset="brackets", arch="gru", command=f"workbench sweep --name {name}")
    for cell in sweep.cells:
        accuracy = accuracies[sweep.configurations[cell.configuration]["lr"]][sweep.seeds.index(cell.seed)]
        if accuracy is None:
            continue
        run = new_run(root, "brackets", "gru")
        atomic_write_json(run.config_path, cell.config)
        atomic_write_json(run.status_path, {"state": "finished"})
        atomic_write_json(run.results_path, {"state": "finished", "metrics": {"accuracy": accuracy}})
        cell.run = run.id
    sweep.save()
    return sweep


def table_text(app: WorkbenchApp) -> list[list[str]]:
    table = app.screen.query_one("#sweep-matrix")
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def wait_for(pilot: Any, condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        await pilot.pause(0.1)


@pytest.mark.slow  # waits for the screen's 2-second timer
async def test_the_matrix_fills_in_and_a_run_can_be_stopped(registry, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    sweep = make_sweep(registry, root, "lrs", {"0.01": [0.80, 0.82, 0.84], "0.02": [0.70, 0.75, None]})
    app = WorkbenchApp(runs_root=root, keys_file=tmp_path / "no-keys.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f8")
        assert app.current_mode == "sweep"
        rows = table_text(app)
        assert rows[0][:4] == ["lr=0.01", "0.8000", "0.8200", "0.8400"] and rows[0][-2:] == ["0.8200±0.0200", "best"]
        assert rows[1][3] == "-" and rows[1][-1] == ""  # 0.07 below with sds 0.02 and 0.035: outside
        # the third seed of lr=0.02 starts (a live trainer holds its lock) and is seen without a key press
        cell = sweep.cells[5]
        run = new_run(root, "brackets", "gru")
        atomic_write_json(run.config_path, cell.config)
        lock = RunLock.acquire(run)
        run.write_status(state="running", epoch=2, epochs=6, pid=None)
        cell.run = run.id
        sweep.save()
        await wait_for(pilot, lambda: table_text(app)[1][3] == "run 2/6")
        await pilot.press("down", "right", "right", "right", "s", "y")
        assert Run(run.path).read_control() == "stop"
        # the run ends; its accuracy joins the row, which is now inside the spread of the best
        lock.release()
        atomic_write_json(run.status_path, {"state": "stopped"})
        atomic_write_json(run.results_path, {"state": "stopped", "metrics": {"accuracy": 0.84}})
        await pilot.press("r")
        await wait_for(pilot, lambda: table_text(app)[1][-1] == "≈")
        assert table_text(app)[1][3] == "0.8400 (stopped)"  # mean 0.7633, sd 0.0709: 0.0567 from the best
        await pilot.press("w")
        await pilot.pause()
        assert "| lr=0.02 | 3/3 |" in (sweep.folder / "sweep.md").read_text()
        assert (sweep.folder / "sweep.csv").exists()


async def test_no_sweep_says_how_to_start_one_and_sweeps_can_be_switched(registry, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    app = WorkbenchApp(runs_root=root, keys_file=tmp_path / "no-keys.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f8", "s", "w")  # nothing to stop or write: a warning each, no traceback
        assert "workbench sweep --dataset" in str(app.screen.query_one("#sweep-detail").render())
        make_sweep(registry, root, "first", {"0.01": [0.8, 0.8, 0.8]})
        make_sweep(registry, root, "second", {"0.03": [0.5, 0.6, 0.7]})
        await pilot.press("r")
        shown = app.screen.name_shown
        await pilot.press("right_square_bracket")
        assert app.screen.name_shown != shown and app.screen.name_shown in ("first", "second")
        await wait_for(pilot, lambda: bool(table_text(app)))
        assert table_text(app)[0][0] in ("lr=0.01", "lr=0.03")
