"""The app at 80x24: every screen and state legible, and what each says true.

Pilot tests for behaviour, snapshots (tests/__snapshots__/test_tui_legible/) for layout. The run
folders are written here with fixed ids, times and curves, so the pictures never change by
themselves.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_tui
from test_tui import make_app, plain, wait_for, write_run

from helpers import fixed_runs_root
from workbench.events import EpochEvent, StepEvent
from workbench.runs import EventWriter, Run, atomic_write_json
from workbench.tui.app import WorkbenchApp

# the fixtures of the app's tests: fixed devices (autouse) and a runs folder per test
fixed_devices = test_tui.fixed_devices
runs_root = test_tui.runs_root

NAMES = ["Arabic", "Chinese", "Czech", "Dutch", "English", "French", "German", "Greek", "Irish", "Italian",
         "Japanese", "Korean", "Polish", "Portuguese", "Russian", "Scottish", "Spanish", "Vietnamese"]


def stopped_mid_epoch(root: Path, run_id: str, state: str = "stopped", epochs: int = 12, done: int = 3,
                      step: int = 6, steps: int = 10) -> Run:
    """A run with ``done`` complete epochs and ``step`` steps of the next, as the engine leaves one
    stopped mid-epoch (or still training it, for ``state="running"``: this process is its trainer)."""
    run = write_run(root, run_id, epochs=done, state="finished", steps=steps)
    config = run.config()
    config["train"]["epochs"] = epochs
    atomic_write_json(run.config_path, config)
    lines = []
    for line in run.events_path.read_text().splitlines():  # as if set up for ``epochs`` from the start
        event = json.loads(line)
        if event["type"] == "end":
            continue
        if event["type"] == "start":
            event["config"]["train"]["epochs"] = epochs
        if event["type"] == "epoch":
            event["epochs"] = epochs
        lines.append(json.dumps(event))
    run.events_path.write_text("\n".join(lines) + "\n")
    writer = EventWriter(run.events_path)
    try:
        for at in range(1, step + 1):
            writer.write(StepEvent(epoch=done + 1, step=at, steps=steps, global_step=0, loss=0.3, grad_norm=1.1,
                                   lr=0.003, samples_per_s=3000.0, eta_s=95.0, metric_name="accuracy", metric=0.8))
        if state != "running":
            writer.write(EpochEvent(epoch=done + 1, epochs=epochs, train={"loss": 0.3, "accuracy": 0.8},
                                    valid={"loss": 0.4, "accuracy": 0.78}, lr=0.003, seconds=0.5,
                                    samples_per_s=3000.0, best=False, partial=True))
    finally:
        writer.close()
    atomic_write_json(run.status_path, {
        "state": state, "pid": os.getpid() if state == "running" else None, "epoch": done, "step": step,
        "steps": steps, "message": "stopped on request" if state == "stopped" else "", "started": 1764340000.0,
        "updated": 1764340100.0, "best": {"accuracy": 0.8301, "epoch": done}})
    return run


def evaluation(classes: list[str]) -> dict[str, Any]:
    """A stored test evaluation with wide counts (four digits on the diagonal)."""
    n = len(classes)
    matrix = [[(1234 + 97 * i) if i == j else (i * 7 + j * 3) % 13 for j in range(n)] for i in range(n)]
    support = {c: sum(row) for c, row in zip(classes, matrix, strict=True)}
    return {"loss": 0.61, "accuracy": 0.81, "balanced_accuracy": 0.66, "count": sum(support.values()),
            "classes": classes, "confusion_matrix": matrix, "support": support,
            "per_class_accuracy": {c: matrix[i][i] / support[c] for i, c in enumerate(classes)}}


def names_model(evaluation_payload: dict[str, Any] | None):
    import torch
    from test_tui import ToyTask

    from workbench.config import RunConfig
    from workbench.engine import LoadedModel

    payload = {"run_id": "20260101-000000-names-gru", "epoch": 4, "evaluation": evaluation_payload,
               "config": {"train": {"epochs": 4}}}
    return LoadedModel(torch.nn.Linear(4, 4), ToyTask(), RunConfig(dataset="names", arch="gru"), payload,
                       torch.device("cpu"), Path("/runs/20260101-000000-names-gru/best.pt"))


def broken_registry():
    from workbench.registry import Registry

    class Broken:
        __name__ = "broken_plugin"

        @staticmethod
        def workbench_datasets():
            raise RuntimeError("cannot read its index: /data/broken/index.json is not JSON (line 3, column 7)")

    registry = Registry().load_entry_points()
    registry.register_module(Broken())
    return registry


# -- what the screens say is true -------------------------------------------------------------
@pytest.mark.slow
async def test_a_run_stopped_mid_epoch_shows_the_same_position_on_train_and_runs(runs_root):
    run = stopped_mid_epoch(runs_root, "20260101-000000-names-gru")
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        table = app.screen.query_one("#runs")
        await wait_for(pilot, lambda: table.row_count == 1, timeout=10)
        assert app.screen.shown()[0]["epochs"] == "3.6/12"  # 3 complete epochs and 6 of 10 steps of the 4th
        app.watch_run(run, make_current=True)
        await pilot.press("f3")
        status = app.screen.query_one("#status")
        await wait_for(pilot, lambda: "STOPPED" in plain(status), timeout=10)
        text = plain(status)
        assert "3.6/12 epochs (epoch 4 step 6/10)" in text and "best accuracy 0.8301" in text
        assert "stopped on request" in text

        # overlays: only runs of the same task share the plots' axes
        other = write_run(runs_root, "20260101-000100-names-lstm", epochs=4)
        lm = write_run(runs_root, "20260101-000200-shakespeare-lstm", epochs=4)
        events = lm.events_path.read_text().replace('"task": "classification"', '"task": "language_model"')
        lm.events_path.write_text(events)
        for overlaid in (other, lm):
            app.watch_run(overlaid)
            app.compare.add(overlaid.id)
        app.screen.redraw(force=True)
        loss = app.screen.query_one("#loss")
        await wait_for(pilot, lambda: "000100 lstm" in str(loss.border_subtitle), timeout=10)
        legend = str(loss.border_subtitle)
        assert "000200" not in legend and "1 other-task run not shown" in legend


@pytest.mark.slow
async def test_problems_are_kept_for_the_problems_screen(runs_root):
    app = make_app(runs_root, registry=broken_registry())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: any("F9" in n.message for n in app._notifications), timeout=10)
        await pilot.press("f9")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ProblemsScreen", timeout=10)
        shown = " ".join(plain(s) for s in app.screen.query("Static"))
        assert "is not JSON (line 3, column 7)" in shown and "broken_plugin" in shown
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "SetupScreen", timeout=10)


@pytest.mark.slow
async def test_the_confusion_matrix_shows_every_class_and_scrolls_sideways(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        screen = app.screen
        screen.use_model(names_model({"test": evaluation(NAMES), "valid": {}}))
        box = screen.query_one("#matrix-box")
        await wait_for(pilot, lambda: box.display and box.max_scroll_x > 0, timeout=10)
        matrix = plain(screen.query_one("#matrix"))
        rows = [line for line in matrix.splitlines() if line.strip()]
        header = rows[1].split()
        assert header == [name[:3] for name in NAMES]  # all 18 columns, none left out
        assert "18 classes" in rows[0]
        body = rows[2:]
        assert len(body) == 18 and body[-1].split()[0] == "Vietnamese"
        assert "2883" in body[-1].split()  # the widest count stands apart from its neighbours
        box.focus()
        await pilot.press("right", "right", "right")
        await wait_for(pilot, lambda: box.scroll_x > 0, timeout=5)

        # a language model has no test split: its checkpoint says so (not "training did not finish")
        screen.use_model(names_model({"test": {}, "valid": {"loss": 1.2, "bits_per_char": 1.73, "count": 872}}))
        await wait_for(pilot, lambda: "no test split" in plain(screen.query_one("#evaluation")), timeout=10)
        assert "did not finish" not in plain(screen.query_one("#evaluation")) and not box.display


# -- snapshots at 80x24 ----------------------------------------------------------------------------
@pytest.fixture()
def snap_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runs folder at a fixed path, in UTC: the Runs screen shows the folder and start times."""
    yield from fixed_runs_root(monkeypatch, "workbench-snapshots")


async def steady_cursors(pilot) -> None:
    """Text cursors that do not blink: a picture taken mid-blink would differ from run to run."""
    from textual.widgets import Input

    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause(0.3)


async def _on_train(pilot, run: Run) -> None:
    app: WorkbenchApp = pilot.app
    app.watch_run(run, make_current=True)
    await pilot.press("f3")
    charts = [app.screen.query_one(f"#{chart_id}") for chart_id in ("loss", "metric", "grad")]
    await wait_for(pilot, lambda: all(str(chart.border_subtitle) for chart in charts), timeout=10)
    await wait_for(pilot, lambda: "epoch" in plain(app.screen.query_one("#log").query_one("Static")), timeout=10)
    await pilot.pause(0.3)


@pytest.mark.slow
def test_snapshot_train_running_80x24(snap_compare, runs_root):
    run = stopped_mid_epoch(runs_root, "20260101-000000-names-gru", state="running")
    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=lambda pilot: _on_train(pilot, run))


@pytest.mark.slow
def test_snapshot_train_finished_80x24(snap_compare, runs_root):
    run = write_run(runs_root, "20260101-000000-names-gru", epochs=5)
    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=lambda pilot: _on_train(pilot, run))


@pytest.mark.slow
def test_snapshot_train_log_view_80x24(snap_compare, runs_root):
    run = write_run(runs_root, "20260101-000000-names-gru", epochs=5)

    async def log_view(pilot):
        await _on_train(pilot, run)
        for _ in range(5):  # all -> loss -> metric -> grad -> memory -> log
            await pilot.press("v")
        await wait_for(pilot, lambda: pilot.app.screen.view == "log", timeout=5)
        await pilot.pause(0.3)

    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=log_view)


@pytest.mark.slow
def test_snapshot_runs_80x24(snap_compare, snap_root):
    runs_root = snap_root
    write_run(runs_root, "20260101-000000-names-gru", epochs=5)
    stopped_mid_epoch(runs_root, "20260101-000100-names-lstm")
    write_run(runs_root, "20260101-000200-names-rnn", epochs=5, state="failed", message="training diverged")

    async def runs(pilot):
        await pilot.press("f4")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#runs").row_count == 3, timeout=10)
        await pilot.pause(0.3)

    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=runs)


@pytest.mark.slow
def test_snapshot_delete_dialog_80x24(snap_compare, snap_root):
    runs_root = snap_root
    write_run(runs_root, "20260101-000000-names-gru", epochs=5)

    async def ask(pilot):
        await pilot.press("f4")
        await wait_for(pilot, lambda: pilot.app.screen.query_one("#runs").row_count == 1, timeout=10)
        await pilot.press("d")
        await wait_for(pilot, lambda: pilot.app.screen.__class__.__name__ == "ConfirmScreen", timeout=10)
        await pilot.pause(0.3)

    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=ask)


def _predict_with(evaluation_payload: dict[str, Any] | None, scroll_to_matrix: bool = False):
    async def run_before(pilot):
        await pilot.press("f5")
        screen = pilot.app.screen
        screen.use_model(names_model(evaluation_payload))
        screen.query_one("#text").focus()
        await pilot.press(*"Dostoevsky")
        await wait_for(pilot, lambda: "continues with" in plain(screen.query_one("#answer")), timeout=10)
        if scroll_to_matrix:
            box = screen.query_one("#matrix-box")
            box.focus()
            screen.query_one("#eval-box").scroll_to_widget(box, animate=False)
            await pilot.press("right", "right", "right", "right")
        await steady_cursors(pilot)

    return run_before


@pytest.mark.slow
def test_snapshot_predict_80x24(snap_compare, runs_root):
    run_before = _predict_with({"test": evaluation(NAMES), "valid": {}})
    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.slow
def test_snapshot_confusion_matrix_80x24(snap_compare, runs_root):
    run_before = _predict_with({"test": evaluation(NAMES), "valid": {}}, scroll_to_matrix=True)
    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.slow
def test_snapshot_generate_with_its_values_80x24(snap_compare, runs_root):
    async def generate(pilot):
        from test_tui import toy_loaded

        await pilot.press("f6")
        screen = pilot.app.screen
        loaded = toy_loaded(Path("/runs/20260101-000000-shakespeare-lstm"))
        loaded.payload.update({"run_id": "20260101-000000-shakespeare-lstm", "config": {"train": {"epochs": 4}},
                               "epoch": 4})
        screen.use_model(loaded)
        screen.query_one("#g-seed").value = "7"
        screen.query_one("#prime").focus()
        await pilot.press(*"To be", "enter")
        await wait_for(pilot, lambda: not screen.generating and len(screen.text) > 100, timeout=20)
        await steady_cursors(pilot)

    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=generate)


@pytest.mark.slow
def test_snapshot_problems_80x24(snap_compare, runs_root):
    async def problems(pilot):
        await pilot.pause(0.3)
        # the messages a broken plugin and a bad keys file give, without this machine's paths
        pilot.app.problems[:] = [
            ("plugin failed", "plugin broken_plugin: workbench_datasets() raised RuntimeError: cannot read its "
                              "index: /data/broken/index.json is not JSON (line 3, column 7) (at broken.py:12)"),
            ("keys", "keys.toml: unknown action 'monitor.pasue'"),
        ]
        await pilot.press("f9")
        await wait_for(pilot, lambda: pilot.app.screen.__class__.__name__ == "ProblemsScreen", timeout=10)
        await pilot.pause(0.3)

    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=problems)


def test_log_of_a_finished_run_is_never_cut_mid_metric(runs_root):
    """The monitor's epoch lines, wrapped for the 80x24 log pane, keep every metric whole."""
    from workbench.tui.logview import wrap_line
    from workbench.tui.monitor import RunMonitor

    run = write_run(runs_root, "20260101-000000-names-gru", epochs=2)
    monitor = RunMonitor(run)
    monitor.poll()
    epoch_lines = [line for line in monitor.log if line.startswith("epoch")]
    assert epoch_lines
    for line in epoch_lines:
        rows = wrap_line(line, 36)
        assert all(len(row) <= 36 for row in rows)
        assert any("valid accuracy" in row and math.isfinite(float(row.split("valid accuracy ")[1].split()[0]))
                   for row in rows)


def test_generate_opens_the_newest_checkpoint_that_generates(runs_root):
    """Not the last watched classifier: the newest run whose model generates text."""
    from workbench.headlines import GENERATING_KINDS
    from workbench.tasks import _TASK_MODULES, task_class

    assert GENERATING_KINDS == {kind for kind in _TASK_MODULES if task_class(kind).supports_generation}
    older_lm = write_run(runs_root, "20260101-000000-shakespeare-lstm", epochs=2)
    config = older_lm.config()
    config["dataset"] = "tinyshakespeare"
    atomic_write_json(older_lm.config_path, config)
    newer_classifier = write_run(runs_root, "20260101-000100-names-gru", epochs=2)
    for run in (older_lm, newer_classifier):
        run.checkpoint_path("best").write_bytes(b"not read here")
    os.utime(older_lm.path, (1764340000, 1764340000))
    app = make_app(runs_root)
    app.watch_run(newer_classifier, make_current=True)
    assert app.default_checkpoint() == newer_classifier.checkpoint_path("best")
    assert app.default_checkpoint(generating=True) == older_lm.checkpoint_path("best")


def test_a_remapped_key_that_is_taken_is_a_conflict():
    from workbench.tui.keys import key_conflicts

    scopes = {"Everywhere": [("app.help", "f1"), ("app.runs", "f4")],
              "Train": [("monitor.pause", "space"), ("monitor.predict", "p")],
              "Runs": [("runs.predict", "p")]}
    conflicts = key_conflicts(scopes, {"monitor.pause": "p"})
    assert [binding_id for binding_id, _ in conflicts] == ["monitor.pause"]
    assert "already the key of monitor.predict on the Train screen" in conflicts[0][1]
    # a screen key onto an app-wide one, and an app-wide one onto a screen's
    assert key_conflicts(scopes, {"monitor.pause": "f4"})[0][1].startswith('monitor.pause = "f4"')
    assert [i for i, _ in key_conflicts(scopes, {"app.help": "p"})] == ["app.help"]
    assert key_conflicts(scopes, {"monitor.pause": "ctrl+p"}) == []


def test_generate_options_have_one_schema_for_the_cli_and_the_app(tmp_path, capsys):
    """The same ranges and messages in `workbench generate` and on the Generate screen."""
    from workbench import cli
    from workbench.generation import GENERATE_PARAMS
    from workbench.tui.setup import ParamValidator

    temperature = next(p for p in GENERATE_PARAMS if p.name == "temperature")
    app_says = ParamValidator(temperature).validate("200").failure_descriptions[0]
    assert cli.main(["generate", str(tmp_path / "none.pt"), "--temperature", "200"]) == 2
    assert app_says in capsys.readouterr().err
    assert ParamValidator(temperature).validate("50").is_valid  # what the model accepts, the form accepts


def test_predict_shows_each_tokens_attention_weight_on_the_input():
    """lstm-attention's promise: the weight of each input token, readable without colour."""
    from workbench.tui.render import prediction_view

    prediction = {"input": "the film was dreadful", "label": "neg",
                  "top": [{"label": "neg", "probability": 0.9}, {"label": "pos", "probability": 0.1}],
                  "attention": [{"token": "the", "weight": 0.05}, {"token": "film", "weight": 0.2},
                                {"token": "was", "weight": 0.1}, {"token": "dreadful", "weight": 0.65}]}
    shown = prediction_view(prediction, 76, lambda p: "").plain
    line = next(row for row in shown.splitlines() if row.startswith("attention:"))
    assert "dreadful█" in line and "film▃" in line and "the▂" in line and "(dreadful 65%)" in line
    narrow = [row for row in prediction_view(prediction, 24, lambda p: "").plain.splitlines()
              if "▁" in row or "█" in row or "▂" in row]
    attention_rows = [row for row in narrow if not row.startswith(("neg", "pos"))]
    assert len(attention_rows) > 1 and all(len(row) <= 24 for row in attention_rows)  # wraps between tokens
