"""Event sinks (hook ``workbench_event_sinks``): a plugin's sink sees every event of a real run, a
broken one is dropped without costing the run, the built-in csv sink, and ``workbench runs export``."""

from __future__ import annotations

import csv
import subprocess
import sys
import types
from pathlib import Path

import pytest

from helpers import FAST
from workbench.api import EndEvent, EventSinkSpec, StartEvent, hookimpl
from workbench.config import resolve_config
from workbench.engine import Trainer
from workbench.errors import WorkbenchError
from workbench.registry import Registry
from workbench.sinks import check_sink_names, replay, sink_names

#: What the recording sink saw, by the run folder it was created for.
RECORDED: dict[Path, list] = {}
CLOSED: list[Path] = []


class Recorder:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        RECORDED[run_dir] = []

    def __call__(self, event) -> None:
        RECORDED[self.run_dir].append(event)

    def close(self) -> None:
        CLOSED.append(self.run_dir)


def explode_on_steps(run_dir: Path, options: dict):
    def sink(event) -> None:
        if event.kind == "step":
            raise RuntimeError("tracker unreachable")
    return sink


def sink_plugin() -> types.ModuleType:
    """A plugin module, as a test writes one: two sinks, one of which breaks on the first step."""
    module = types.ModuleType("recording_sinks")

    @hookimpl
    def workbench_event_sinks():
        return [EventSinkSpec("recorder", "keeps every event in memory", create=lambda d, o: Recorder(d)),
                EventSinkSpec("explodes", "raises on step events", create=explode_on_steps)]

    module.workbench_event_sinks = workbench_event_sinks  # type: ignore[attr-defined]
    return module


def plugin_registry() -> Registry:
    registry = Registry().load_entry_points()
    registry.register_module(sink_plugin())
    return registry


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sunk_run(shared_data, tmp_path_factory):
    """One real tiny run with the recorder, the exploding sink and the csv sink."""
    registry = plugin_registry()
    config = resolve_config(registry, "names", None, "cpu",
                            [*FAST, "epochs=2", "limit=400", "sinks=recorder, explodes, csv"],
                            data_dir=str(shared_data))
    result = Trainer(config, registry=registry, runs_root=tmp_path_factory.mktemp("runs")).train()
    return result


@pytest.mark.slow
def test_a_sink_plugin_receives_every_event_of_a_real_run_in_order(sunk_run):
    run = sunk_run.run
    seen = RECORDED[run.path]
    written = run.events()
    first_start = next(i for i, e in enumerate(written) if isinstance(e, StartEvent))
    assert [e.to_json() for e in seen] == [e.to_json() for e in written[first_start:]]
    assert isinstance(seen[0], StartEvent) and isinstance(seen[-1], EndEvent)
    assert [e.kind for e in seen].count("epoch") == 2 and "step" in [e.kind for e in seen]
    assert CLOSED.count(run.path) == 1


@pytest.mark.slow
def test_a_raising_sink_is_disabled_with_one_status_line_and_the_run_finishes(sunk_run):
    assert sunk_run.state == "finished" and sunk_run.epochs_completed == 2
    lines = [e.message for e in sunk_run.run.events() if e.kind == "status" and "explodes" in e.message]
    assert lines == ["event sink 'explodes' failed on a step event (RuntimeError: tracker unreachable) and is "
                     "disabled; the run goes on without it"]


@pytest.mark.slow
def test_the_csv_sink_writes_one_row_per_epoch_and_export_writes_the_same(sunk_run, tmp_path):
    run = sunk_run.run
    epochs = [e for e in run.events() if e.kind == "epoch"]
    rows = csv_rows(run.path / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [e.epoch for e in epochs] == [1, 2]
    for row, event in zip(rows, epochs, strict=True):
        assert float(row["valid_loss"]) == event.valid["loss"]
        assert float(row["valid_accuracy"]) == event.valid["accuracy"]
        assert float(row["train_loss"]) == event.train["loss"] and float(row["lr"]) == event.lr
    steps = csv_rows(run.path / "steps.csv")
    assert len(steps) == sum(e.kind == "step" for e in run.events()) and "accuracy" in steps[0]

    out = subprocess.run([sys.executable, "-m", "workbench", "runs", "export", str(run.path), "--format", "csv",
                          "--output", str(tmp_path / "out")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "metrics.csv").read_text() == (run.path / "metrics.csv").read_text()
    assert (tmp_path / "out" / "steps.csv").read_text() == (run.path / "steps.csv").read_text()


def test_an_unknown_sink_is_one_line_before_the_run(shared_data, monkeypatch):
    with pytest.raises(WorkbenchError, match=r"^unknown event sink 'nope'; available: csv, explodes, .*recorder"):
        resolve_config(plugin_registry(), "names", None, "cpu", ["sinks=csv,nope"], data_dir=str(shared_data))
    monkeypatch.setenv("WORKBENCH_DISABLE_PLUGINS", "1")  # the built-in sinks only
    out = subprocess.run([sys.executable, "-m", "workbench", "train", "--dataset", "names", "--set", "sinks=nope"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "workbench: error: unknown event sink 'nope'; available: csv, tensorboard (see `workbench plugins`)"]


def test_sink_names_and_the_plugin_listing():
    assert sink_names(" csv, mine ,,csv") == ["csv", "mine"] and sink_names("") == []
    registry = plugin_registry()
    assert registry.sink_owner["csv"] == "sinks" and registry.sinks["recorder"].description
    out = subprocess.run([sys.executable, "-m", "workbench", "plugins"], capture_output=True, text=True, check=True)
    assert "  event sinks: csv, tensorboard" in out.stdout.splitlines()


def test_a_sink_spec_with_a_bad_create_is_reported_and_skipped():
    module = types.ModuleType("bad_sinks")
    module.workbench_event_sinks = lambda: [EventSinkSpec("bad", "x", create="no_such_module_xyz:make")]  # type: ignore[attr-defined]
    info = Registry().register_module(module)
    assert "bad" not in info.sinks
    assert info.errors == ["event sink 'bad': create='no_such_module_xyz:make' does not resolve: no module named "
                           "'no_such_module_xyz'"]


def test_export_of_a_run_without_events_is_one_line(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"dataset": "names", "arch": "gru"}')
    (run / "events.jsonl").write_text("")
    out = subprocess.run([sys.executable, "-m", "workbench", "runs", "export", str(run), "--format", "csv"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "workbench: error: the run has no start event in its events.jsonl: nothing to export"]


def test_the_contract_check_accepts_a_plugin_that_only_provides_sinks():
    out = subprocess.run([sys.executable, "-m", "workbench", "plugins", "--check", "sinks"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout
    assert "registers no" not in out.stdout


@pytest.mark.slow
def test_the_tensorboard_sink_writes_each_epochs_metrics(sunk_run, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard sink needs the optional tensorboard package")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = sunk_run.run
    assert replay(plugin_registry(), ["tensorboard"], run.events(), tmp_path) == []
    files = EventAccumulator(str(tmp_path / "tensorboard"))
    files.Reload()
    epochs = [e for e in run.events() if e.kind == "epoch"]
    scalars = files.Scalars("valid/loss")
    assert [s.step for s in scalars] == [1, 2]
    assert [s.value for s in scalars] == pytest.approx([e.valid["loss"] for e in epochs], rel=1e-6)
    steps = [e for e in run.events() if e.kind == "step"]
    assert [s.step for s in files.Scalars("step/loss")] == [e.global_step for e in steps]
    assert "test/accuracy" in files.Tags()["scalars"]


def test_a_sink_whose_package_is_missing_is_refused_before_the_run(monkeypatch):
    registry = plugin_registry()
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    with pytest.raises(WorkbenchError, match=r"^event sink 'tensorboard' needs tensorboard: pip install tensorboard$"):
        check_sink_names(registry, "csv,tensorboard")
    check_sink_names(registry, "csv")
