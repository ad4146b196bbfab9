"""`workbench sweep`: planning and validation, the scheduler's limit, resuming a killed sweep,
statistics against hand-computed values, and the tables."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workbench import sweep as sw
from workbench.cli import main
from workbench.config import RunConfig
from workbench.runs import Run, atomic_write_json, new_run

TINY = ["--set", "epochs=1", "--set", "limit=64", "--set", "batch_size=32", "--set", "data.train_size=64",
        "--set", "data.test_size=32", "--set", "data.length=20", "--set", "model.hidden_size=8"]


def sweep_cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    return _run_main(["--runs-dir", str(tmp_path / "runs"), "sweep", *args])


def _run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


# -- validation ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [
    (["--grid", "nosuch=1,2"], "unknown parameter 'nosuch'"),
    (["--grid", "lr=0.01,banana"], "lr=banana"),
    (["--grid", "lr="], "--grid lr= has no values"),
    (["--grid", "lr=0.1,,0.2"], "empty value"),
    (["--grid", "lr=0.1,0.1"], "given twice"),
    (["--grid", "lr=0.1", "--grid", "lr=0.2"], "given twice"),
    (["--grid", "seed=1,2"], "--seeds"),
    (["--set", "seed=3"], "--seeds"),
    (["--grid", "arch=gru,nosucharch"], "nosucharch"),
    (["--seeds", "0"], "at least 1"),
    (["--seeds", "-2"], "at least 1"),
    (["--seeds", "1,x"], "--seeds"),
    (["--seeds", "1,1"], "given twice"),
    (["--grid", "lr=0.001,0.0010"], "same setup"),
    (["--grid", "lr=" + ",".join(f"0.{i:03d}1" for i in range(100)), "--seeds", "5"], "add --yes"),
    (["--parallel", "0"], "--parallel 0"),
    (["--name", "../escape"], "sweep name"),
])
def test_mistakes_are_one_line_and_start_nothing(tmp_path: Path, args: list[str], expected: str) -> None:
    code, out, err = sweep_cli(tmp_path, "--dataset", "brackets", "--arch", "gru", *TINY, *args)
    assert code == 2
    assert expected in err, err
    assert err.startswith("workbench: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_large_grid_is_planned_with_yes(registry, tmp_path: Path) -> None:
    axes = sw.parse_grid(["lr=" + ",".join(f"0.{i:03d}1" for i in range(101))])
    planned = sw.plan_sweep(registry, name=None, runs_root=tmp_path, axes=axes, seeds=[0], dataset="brackets",
                            arch="gru")
    with pytest.raises(sw.WorkbenchError, match="101 runs"):
        sw.check_size(planned, yes=False)
    sw.check_size(planned, yes=True)


def test_seeds_count_or_list() -> None:
    assert sw.parse_seeds("3") == [0, 1, 2]
    assert sw.parse_seeds("4,9,2") == [4, 9, 2]
    assert sw.parse_seeds("7,") == [7]
    assert sw.parse_seeds(None) == [0, 1, 2]


def test_the_same_name_with_another_plan_is_refused(registry, tmp_path: Path) -> None:
    def plan(values: str) -> sw.Sweep:
        return sw.plan_sweep(registry, name="s", runs_root=tmp_path, axes=sw.parse_grid([f"lr={values}"]),
                             seeds=[0, 1], dataset="brackets", arch="gru")

    first, resumed = sw.open_or_plan(plan("0.01,0.02"))
    assert not resumed
    first.save()
    again, resumed = sw.open_or_plan(plan("0.01,0.02"))
    assert resumed and again.to_dict()["cells"] == first.to_dict()["cells"]
    with pytest.raises(sw.WorkbenchError, match="already exists and its grid differs"):
        sw.open_or_plan(plan("0.01,0.03"))


# -- statistics and tables -----------------------------------------------------------------------
def finished_run(root: Path, config: dict, metrics: dict, state: str = "finished") -> str:
    run = new_run(root, config["dataset"], config["arch"])
    atomic_write_json(run.config_path, config)
    atomic_write_json(run.status_path, {"state": state})
    atomic_write_json(run.results_path, {"state": state, "metrics": metrics, "valid_metrics": {}})
    return run.id


def hand_sweep(registry, tmp_path: Path, accuracies: dict[str, list[float]]) -> sw.Sweep:
    """A planned sweep whose cells point at run folders holding the given test accuracies."""
    sweep = sw.plan_sweep(registry, name="hand", runs_root=tmp_path, axes=sw.parse_grid(["lr=" + ",".join(accuracies)]),
                          seeds=[0, 1, 2], dataset="brackets", arch="gru")
    for cell in sweep.cells:
        values = accuracies[sweep.configurations[cell.configuration]["lr"]]
        accuracy = values[sweep.seeds.index(cell.seed)]
        cell.run = finished_run(tmp_path, cell.config, {"accuracy": accuracy, "loss": 1 - accuracy})
    return sweep


def test_statistics_match_hand_computed_values(registry, tmp_path: Path) -> None:
    sweep = hand_sweep(registry, tmp_path, {"0.01": [0.80, 0.82, 0.84], "0.02": [0.70, 0.75, 0.80],
                                            "0.03": [0.80, 0.805, 0.81]})
    report = sw.summarize(sweep)
    assert report.main == "accuracy" and report.higher_is_better
    a, b, c = report.rows
    assert a.metrics["accuracy"].mean == pytest.approx(0.82)
    assert a.metrics["accuracy"].std == pytest.approx(0.02)  # sample sd: sqrt((0.02^2 + 0 + 0.02^2) / 2)
    assert (a.metrics["accuracy"].low, a.metrics["accuracy"].high) == (0.80, 0.84)
    assert b.metrics["accuracy"].mean == pytest.approx(0.75) and b.metrics["accuracy"].std == pytest.approx(0.05)
    assert c.metrics["accuracy"].std == pytest.approx(0.005)
    assert a.best and a.verdict == "best"
    assert b.delta == pytest.approx(-0.07) and b.verdict == "outside"  # 0.07 > max(0.02, 0.05)
    assert c.delta == pytest.approx(-0.015) and c.verdict == "inside"  # 0.015 <= max(0.02, 0.005)
    assert a.metrics["loss"].mean == pytest.approx(0.18)


def test_lower_is_better_and_one_seed_cannot_be_judged(registry, tmp_path: Path) -> None:
    rows = [sw.Row(0, "a", {}, 2, 2, {}, {"perplexity": sw.Spread.of([4.0, 6.0])}),  # type: ignore[dict-item]
            sw.Row(1, "b", {}, 2, 1, {}, {"perplexity": sw.Spread.of([3.0])})]  # type: ignore[dict-item]
    sw._compare(rows, "perplexity", higher=False)
    assert rows[1].best and rows[0].delta == pytest.approx(2.0) and rows[0].verdict == "n<2"


def test_tables_say_the_numbers_and_the_rule(registry, tmp_path: Path) -> None:
    sweep = hand_sweep(registry, tmp_path, {"0.01": [0.80, 0.82, 0.84], "0.02": [0.70, 0.75, 0.80],
                                            "0.03": [0.80, 0.805, 0.81]})
    report = sw.summarize(sweep)
    text = sw.render_text(report)
    assert "0.8200 ± 0.0200 [0.8000, 0.8400]" in text and "≈" in text and "larger of the two standard" in text
    paths = sw.write_tables(report)
    markdown = (sweep.folder / "sweep.md").read_text()
    assert "| lr=0.03 | 3/3 | 0.8050 ± 0.0050 [0.8000, 0.8100] | -0.0150 | ≈ |" in markdown
    rows = list(csv.DictReader(io.StringIO((sweep.folder / "sweep.csv").read_text())))
    assert [Path(p).name for p in paths] == ["sweep.md", "sweep.csv"]
    assert [r["lr"] for r in rows] == ["0.01", "0.02", "0.03"]
    assert float(rows[1]["accuracy_mean"]) == pytest.approx(0.75) and float(rows[1]["accuracy_std"]) == pytest.approx(0.05)
    assert [r["vs_best"] for r in rows] == ["best", "outside", "inside"]
    assert json.loads(json.dumps(report.to_dict()))["configurations"][2]["vs_best"] == "inside"


def test_report_of_a_sweep_from_the_cli(registry, tmp_path: Path) -> None:
    sweep = hand_sweep(registry, tmp_path / "runs", {"0.01": [0.80, 0.82, 0.84], "0.02": [0.70, 0.75, 0.80]})
    sweep.save()
    code, out, err = sweep_cli(tmp_path, "report", "hand", "--json")
    assert code == 0, err
    assert json.loads(out)["configurations"][1]["metrics"]["accuracy"]["mean"] == pytest.approx(0.75)
    code, out, err = sweep_cli(tmp_path, "status", "hand")
    assert code == 0 and "0.8400" in out and "seed 2" in out
    code, _, err = sweep_cli(tmp_path, "report", "nosuch")
    assert code == 2 and "no sweep 'nosuch'" in err


# -- scheduling ----------------------------------------------------------------------------------
@dataclass
class FakeHandle:
    """A 'training process' that ends after a few polls, writing what a finished run writes."""

    run: Run
    config: RunConfig
    launcher: FakeLauncher
    polls: int = 3

    def finished(self) -> int | None:
        self.polls -= 1
        if self.polls > 0:
            return None
        if self in self.launcher.live:
            self.launcher.live.remove(self)
            atomic_write_json(self.run.config_path, self.config.to_dict())
            atomic_write_json(self.run.status_path, {"state": "finished"})
            atomic_write_json(self.run.results_path, {"state": "finished", "metrics": {"accuracy": 0.5}})
        return 0

    def output(self, limit: int = 4000) -> str:
        return ""


@dataclass
class FakeLauncher:
    live: list[FakeHandle] = field(default_factory=list)
    started: list[RunConfig] = field(default_factory=list)
    peak: int = 0

    def start(self, config: RunConfig, runs_root: Path) -> FakeHandle:
        self.started.append(config)
        handle = FakeHandle(new_run(runs_root, config.dataset, config.arch), config, self)
        self.live.append(handle)
        self.peak = max(self.peak, len(self.live))
        return handle

    def resume(self, run: Run) -> FakeHandle:
        raise AssertionError("nothing to resume")


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_the_scheduler_never_runs_more_than_its_slots(registry, tmp_path: Path, slots: int) -> None:
    sweep = sw.plan_sweep(registry, name="s", runs_root=tmp_path, axes=sw.parse_grid(["lr=0.01,0.02,0.03,0.04"]),
                          seeds=[0, 1], dataset="brackets", arch="gru")
    launcher = FakeLauncher()
    scheduler = sw.Scheduler(sweep, launcher, sw.Slots(slots, threads=2), poll_seconds=0)
    scheduler.run()
    assert launcher.peak == slots
    assert len(launcher.started) == 8 and {c.train["threads"] for c in launcher.started} == {2}
    assert sorted((c.train["lr"], c.train["seed"]) for c in launcher.started) == sorted(
        (float(v), s) for v in ("0.01", "0.02", "0.03", "0.04") for s in (0, 1))
    assert all(cell.state == "finished" and cell.run for cell in sw.load_sweep("s", tmp_path).cells)
    again = FakeLauncher()
    sw.Scheduler(sweep, again, sw.Slots(slots, threads=2), poll_seconds=0).run()
    assert again.started == []  # a finished sweep starts nothing


def test_slots_one_per_free_core_or_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.2, 0.0, 0.0))
    slots = sw.machine_slots("cpu")
    assert (slots.count, slots.threads) == (5, 1)  # 8 cores, about 3 busy
    monkeypatch.setattr(os, "getloadavg", lambda: (12.0, 0.0, 0.0))
    assert sw.machine_slots("cpu").count == 1  # a saturated box still makes progress, one run at a time
    assert (sw.machine_slots("cpu", parallel=2).count, sw.machine_slots("cpu", parallel=2).threads) == (2, 4)
    gpu = sw.machine_slots("auto", cuda_devices=2)
    assert gpu.count == 2 and gpu.devices == ("cuda:0", "cuda:1") and gpu.threads == 4
    cell = sw.Cell(0, 0, {"dataset": "brackets", "arch": "gru", "device": "auto", "train": {"threads": 0}})
    assert sw.launch_config(cell, gpu, 1).device == "cuda:1"


# -- real runs -----------------------------------------------------------------------------------
def sweep_command(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "workbench", "--runs-dir", str(tmp_path / "runs"), "sweep", "--dataset", "brackets",
            "--arch", "gru", *TINY, *args]


def overlap(runs: list[Run]) -> int:
    """The most runs that trained at the same moment, from their own start and end events."""
    moments = []
    for run in runs:
        times = [json.loads(line)["time"] for line in run.events_path.read_text().splitlines()
                 if json.loads(line).get("type") in ("start", "end")]
        moments += [(min(times), 1), (max(times), -1)]
    live = peak = 0
    for _, change in sorted(moments, key=lambda m: (m[0], m[1])):
        live += change
        peak = max(peak, live)
    return peak


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_training_a_cell_twice(tmp_path: Path) -> None:
    """Kill the sweep and one of its runs (SIGKILL) once a cell has finished and a longer run has a
    checkpoint (paused there, so the moment is certain); the same command again keeps the finished
    cells, resumes the interrupted run from its checkpoint and starts or waits for the rest."""
    command = sweep_command(tmp_path, "--grid", "epochs=1,30", "--seeds", "1", "--parallel", "1", "--name", "k",
                            "--set", "patience=0")
    state = tmp_path / "runs" / "sweeps" / "k" / "sweep.json"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    cells: list[dict] = []
    victim: Run | None = None
    while time.monotonic() < deadline and victim is None:
        cells = json.loads(state.read_text())["cells"] if state.exists() else []
        if any(c["state"] == "finished" for c in cells):
            for cell in cells:
                run = Run(tmp_path / "runs" / cell["run"]) if cell["run"] else None
                if run and cell["config"]["train"]["epochs"] == 30 and run.checkpoint_path("last").exists():
                    run.request("pause")
                    victim, pid = run, cell["pid"]
                    break
        time.sleep(0.05)
    if victim is None:
        process.kill()
        pytest.fail(f"the sweep never reached a finished cell and a checkpointed long run: {cells}")
    while victim.status().get("state") != "paused" and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    os.kill(pid, signal.SIGKILL)  # the run dies too: interrupted, with last.pt
    while victim.status()["state"] != "interrupted" and time.monotonic() < deadline:
        time.sleep(0.05)
    before = {c["run"] for c in json.loads(state.read_text())["cells"] if c["run"]}

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed" in done.stdout
    final = json.loads(state.read_text())["cells"]
    assert all(c["state"] == "finished" for c in final), final
    assert before <= {c["run"] for c in final}  # finished, running and interrupted cells kept their runs
    runs = [Run(p) for p in (tmp_path / "runs").iterdir() if (p / "config.json").exists()]
    assert len(runs) == 2  # one run per cell: none trained twice
    starts = [e for e in map(json.loads, victim.events_path.read_text().splitlines()) if e.get("type") == "start"]
    assert [s.get("resumed_at_epoch") is not None for s in starts] == [False, True]
    assert overlap(runs) == 1
    markdown = (tmp_path / "runs" / "sweeps" / "k" / "sweep.md").read_text()
    assert "| epochs=1 | 1/1 |" in markdown and "| epochs=30 | 1/1 |" in markdown


def test_list_and_stop_from_the_cli(registry, tmp_path: Path) -> None:
    from workbench.runs import RunLock

    sweep = hand_sweep(registry, tmp_path / "runs", {"0.01": [0.80, 0.82, 0.84]})
    training = Run(tmp_path / "runs" / sweep.cells[2].run)
    lock = RunLock.acquire(training)  # a live trainer
    atomic_write_json(training.status_path, {"state": "running", "epoch": 1})
    sweep.save()
    try:
        code, out, _ = sweep_cli(tmp_path, "list", "--json")
        assert code == 0 and json.loads(out)["sweeps"][0]["name"] == "hand"
        code, out, err = sweep_cli(tmp_path, "stop", "hand")
        assert code == 0 and "asked 1 run(s)" in out, err
        assert training.read_control() == "stop" and Run(tmp_path / "runs" / sweep.cells[0].run).read_control() is None
    finally:
        lock.release()


def test_a_run_killed_while_the_sweep_runs_is_resumed_once(registry, tmp_path: Path) -> None:
    """A run whose process dies (out of memory, killed) with a checkpoint is resumed from it, once."""

    @dataclass
    class Dying(FakeLauncher):
        resumed: list[str] = field(default_factory=list)

        def start(self, config: RunConfig, runs_root: Path) -> FakeHandle:
            handle = super().start(config, runs_root)
            if len(self.started) == 1:  # the first run dies after its first checkpoint
                handle.finished = lambda: self._die(handle)  # type: ignore[method-assign]
            return handle

        def _die(self, handle: FakeHandle) -> int:
            self.live.remove(handle) if handle in self.live else None
            atomic_write_json(handle.run.config_path, handle.config.to_dict())
            atomic_write_json(handle.run.status_path, {"state": "running", "pid": 2**22 + 7})
            handle.run.checkpoint_path("last").write_bytes(b"checkpoint")
            return -9

        def resume(self, run: Run) -> FakeHandle:
            self.resumed.append(run.id)
            handle = FakeHandle(run, RunConfig.from_dict(run.config()), self)
            self.live.append(handle)
            return handle

    sweep = sw.plan_sweep(registry, name="s", runs_root=tmp_path, axes=sw.parse_grid(["lr=0.01,0.02"]),
                          seeds=[0], dataset="brackets", arch="gru")
    launcher = Dying()
    sw.Scheduler(sweep, launcher, sw.Slots(1, threads=1), poll_seconds=0).run()
    assert len(launcher.started) == 2 and launcher.resumed == [sweep.cells[0].run]
    assert [cell.state for cell in sweep.cells] == ["finished", "finished"]
