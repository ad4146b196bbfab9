"""The terminal app, driven with Textual's pilot: every screen and the main flows.

Training started from the app is a real detached ``workbench train`` process on the names data
with tiny settings; other tests use run folders written here (events, status) so they stay fast.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import FAST
from workbench.devices import DeviceInfo
from workbench.events import EndEvent, EpochEvent, Event, StartEvent, StatusEvent, StepEvent
from workbench.registry import get_registry
from workbench.runs import EventWriter, Run, atomic_write_json
from workbench.tui.app import WorkbenchApp
from workbench.tui.monitor import RunMonitor, downsample

FAKE_DEVICES = [
    DeviceInfo("cpu", "CPU (2 cores)", True),
    DeviceInfo("cuda", "NVIDIA GPU", False, reason="this torch build has no CUDA support"),
    DeviceInfo("mps", "Apple GPU (Metal)", False, reason="only on Apple silicon with macOS"),
]


@pytest.fixture(autouse=True)
def fixed_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device list does not depend on the machine the tests run on (and skips importing torch)."""
    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: list(FAKE_DEVICES))


@pytest.fixture()
def runs_root(isolated_dirs: Path) -> Path:
    root = isolated_dirs / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def make_app(runs_root: Path, keys_file: Path | None = None, **kwargs: Any) -> WorkbenchApp:
    kwargs.setdefault("registry", get_registry())  # loaded already: the app skips its after-paint load
    return WorkbenchApp(runs_root=runs_root, keys_file=keys_file or runs_root.parent / "no-keys.toml", **kwargs)


def plain(static: Any) -> str:
    """The text a Static shows, whatever it holds (markup, Rich renderables)."""
    import io

    from rich.console import Console

    content = static.content
    if isinstance(content, str):
        return str(static.render())
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(content)
    return console.export_text()


def chart_text(chart: Any) -> str:
    """What a plot shows (title, axes, legend) as plain text: the picture it paints next."""
    return str(chart.render())


def messages(app: WorkbenchApp) -> list[str]:
    return [n.message for n in app._notifications]


async def notified(pilot: Any, *texts: str, timeout: float = 5.0) -> None:
    """Wait until a notification containing all ``texts`` has been shown."""
    app = pilot.app
    await wait_for(pilot, lambda: any(all(t in m for t in texts) for m in messages(app)), timeout=timeout)


async def wait_for(pilot: Any, condition: Any, timeout: float = 60.0, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        await pilot.pause(step)


def write_run(root: Path, run_id: str, epochs: int = 4, state: str = "finished", steps: int = 10,
              message: str = "") -> Run:
    """A run folder as the engine writes it, with smooth made-up curves (for fast, stable tests)."""
    run = Run(root / run_id)
    run.path.mkdir(parents=True)
    config = {"dataset": "names", "arch": "gru", "device": "cpu", "train": {"epochs": epochs, "batch_size": 64,
              "lr": 0.003, "optimizer": "adam"}, "data": {}, "model": {}, "data_dir": None}
    atomic_write_json(run.config_path, config)
    events: list[Event] = [
        StatusEvent(phase="prepare", message="loading dataset names"),
        StartEvent(run=run_id, config=config, task="classification", main_metric="accuracy", device="cpu",
                   threads=1, precision="fp32", parameters=12345, sizes={"train": 640, "valid": 64, "test": 64},
                   steps_per_epoch=steps, dataset_info={}, resumed_at_epoch=None, workbench_version="test",
                   headline_metrics=("accuracy", "balanced_accuracy")),
    ]
    done = epochs if state == "finished" else max(epochs - 2, 1)
    for epoch in range(1, done + 1):
        for step in range(1, steps + 1):
            t = (epoch - 1) + step / steps
            events.append(StepEvent(epoch=epoch, step=step, steps=steps, global_step=0,
                                    loss=2.5 * math.exp(-t) + 0.2, grad_norm=1.0 + 0.5 * math.sin(3 * t), lr=0.003,
                                    samples_per_s=3000.0, eta_s=10.0, metric_name="accuracy", metric=None))
        events.append(EpochEvent(epoch=epoch, epochs=epochs, seconds=1.0, samples_per_s=3000.0,
                                 train={"loss": 2.5 * math.exp(-epoch) + 0.2, "accuracy": 0.9 - 0.4 * math.exp(-epoch)},
                                 valid={"loss": 2.5 * math.exp(-epoch) + 0.35,
                                        "accuracy": 0.85 - 0.4 * math.exp(-epoch)},
                                 best=True, partial=False, lr=0.003))
    if state in ("finished", "failed"):
        events.append(EndEvent(state=state, message=message,
                               test={"loss": 0.6, "accuracy": 0.8} if state == "finished" else {}))
    writer = EventWriter(run.events_path)
    try:
        for event in events:
            writer.write(event)
    finally:
        writer.close()
    atomic_write_json(run.status_path, {"state": state, "pid": None, "epoch": done, "message": message,
                                        "started": 1764340000.0, "updated": 1764340100.0,
                                        "best": {"accuracy": 0.85 - 0.4 * math.exp(-done), "epoch": done}})
    return run


# -- the data model behind the plots ---------------------------------------------------------
def test_downsample_keeps_at_most_width_points_and_the_shape():
    xs = [float(i) for i in range(1000)]
    ys = [float(i) for i in range(1000)]
    dx, dy = downsample(xs, ys, 50)
    assert len(dx) == len(dy) == 50
    assert dy == sorted(dy) and dy[0] < 20 and dy[-1] > 980
    assert downsample(xs[:10], ys[:10], 50) == (xs[:10], ys[:10])


def test_monitor_buffers_stay_bounded_and_follow_a_growing_file(runs_root):
    run = write_run(runs_root, "r1", epochs=3, state="running", steps=10)
    monitor = RunMonitor(run, step_points=16)
    assert monitor.poll()
    assert monitor.main_metric == "accuracy" and monitor.state == "interrupted"  # no live pid
    assert len(monitor.step_x) < 16 and monitor.epochs
    with open(run.events_path, "a", encoding="utf-8") as handle:
        for i in range(200):
            handle.write(json.dumps({"type": "step", "epoch": 2, "step": i % 10, "steps": 10, "loss": 1.0,
                                     "grad_norm": 1.0, "samples_per_s": 1.0, "eta_s": 1.0}) + "\n")
        handle.write('{"type": "step", "epoch"')  # a line still being written is left for later
    version = monitor.version
    assert monitor.poll() and monitor.version > version
    assert len(monitor.step_x) < 16 and len(monitor.step_x) == len(monitor.step_loss) == len(monitor.step_grad)
    assert not monitor.poll()


# -- screens ---------------------------------------------------------------------------------
async def test_setup_offers_fitting_architectures_defaults_and_validates_as_you_type(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.query("#p-train-lr")))  # built just after the first frame
        assert screen.dataset == "names" and screen.arch == "gru"  # the dataset's default architecture
        archs = screen.query_one("#archs")
        from workbench.registry import get_registry

        offered = [archs.get_option_at_index(i).id for i in range(archs.option_count)]
        fitting = [a.name for a in get_registry().architectures_for("classification")]
        assert sorted(offered) == sorted(fitting) and {"elman", "rnn", "lstm", "gru"} <= set(offered)
        assert not set(offered) & {a.name for a in get_registry().architectures.values()
                                   if "classification" not in a.tasks}  # only architectures that fit
        lr = screen.query_one("#p-train-lr")
        assert lr.value == "0.003"  # the dataset's recommended default, as `workbench train` applies it
        await wait_for(pilot, lambda: screen.query_one("#devices").option_count == 4)
        cuda = screen.query_one("#devices").get_option_at_index(2)
        assert cuda.disabled and "unavailable" in str(cuda.prompt)
        # why is in the help line while the device list has focus (it never fits the list's 34 columns)
        screen.query_one("#devices").focus()
        await pilot.pause()
        assert "cuda unavailable: this torch build has no CUDA support" in plain(screen.query_one("#hint"))

        lr.focus()
        lr.value = ""
        await pilot.press(*"0")
        await pilot.pause()
        assert "lr must be a number from 1e-08 to 10 (got 0)" in str(screen.query_one("#hint").render())
        assert lr.has_class("-invalid")
        await pilot.press("ctrl+t")
        await pilot.pause()
        await notified(pilot, "lr must be")
        assert app.current_mode == "setup"

        # an edit survives switching architecture; architecture parameters follow the choice
        lr.value = "0.01"  # its Changed event may be handled after the switch: the value is kept all the same
        screen.query_one("#archs").highlighted = offered.index("elman")
        await pilot.pause()
        assert screen.arch == "elman" and screen.query_one("#p-train-lr").value == "0.01"
        assert screen.query_one("#p-model-input").value == "onehot"
        assert screen.build_config().model["nonlinearity"] == "tanh"


@pytest.mark.slow
async def test_setup_fields_with_fixed_values_step_with_up_and_down(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        optimizer = screen.query_one("#p-train-optimizer")
        optimizer.focus()
        await pilot.pause()
        assert optimizer.value == "adam" and "up/down steps" in str(screen.query_one("#hint").render())
        await pilot.press("down")
        assert optimizer.value == "adamw"
        await pilot.press("up", "up")
        assert optimizer.value == "adagrad"  # wraps round
        assert screen.edited["train.optimizer"] == "adagrad"
        assert screen.build_config().train["optimizer"] == "adagrad"
        bidirectional = screen.query_one("#p-model-bidirectional")
        bidirectional.focus()
        await pilot.press("down")
        assert bidirectional.value == "true" and screen.build_config().model["bidirectional"] is True
        bidirectional.value = "nonsense"
        await pilot.press("down")  # an unknown value steps to the first choice
        assert bidirectional.value == "true"
        lr = screen.query_one("#p-train-lr")
        lr.focus()
        await pilot.press("down")  # free-form fields are left alone
        assert lr.value == "0.003"


@pytest.mark.slow
async def test_setup_saves_and_loads_the_toml_that_workbench_train_reads(runs_root, tmp_path):
    from workbench.config import read_config_file

    app = make_app(runs_root)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        screen.query_one("#p-train-epochs").value = "2"
        await pilot.pause()
        archs = screen.query_one("#archs")
        archs.highlighted = [archs.get_option_at_index(i).id for i in range(archs.option_count)].index("lstm")
        await pilot.pause()
        screen.query_one("#p-model-bidirectional").value = "true"
        setup = tmp_path / "setup.toml"
        await pilot.press("ctrl+s")
        path_input = app.screen.query_one("#path")
        path_input.value = str(setup)
        await pilot.press("enter")
        await pilot.pause()
        raw = read_config_file(setup)
        assert raw["arch"] == "lstm" and raw["values"]["train"]["epochs"] == 2
        assert raw["values"]["model"]["bidirectional"] is True

        setup.write_text(setup.read_text().replace('arch = "lstm"', 'arch = "rnn"').replace("epochs = 2", "epochs = 7"))
        assert screen.load_file(setup)
        await pilot.pause()
        assert screen.arch == "rnn" and screen.query_one("#p-train-epochs").value == "7"
        assert screen.query_one("#p-model-bidirectional").value == "true"

        bad = tmp_path / "bad.toml"
        bad.write_text("[run]\ndataset = 'names'\n[train]\nlr = -1\n")
        assert not screen.load_file(bad)
        bad.write_text("this is not toml [")
        assert not screen.load_file(bad)
        await pilot.pause()
        await notified(pilot, "lr must be")
        await notified(pilot, "not valid TOML")
        assert screen.query_one("#p-train-epochs").value == "7"  # a bad file changes nothing


@pytest.mark.slow
async def test_train_from_the_app_then_predict_dostoevsky(runs_root, shared_data):
    """The main flow: t starts a detached run, the monitor follows it, p predicts with it."""
    app = make_app(runs_root)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        screen.query_one("#p-run-data_dir").value = str(shared_data)
        for assignment in FAST:
            key, value = assignment.split("=")
            namespace, _, name = key.rpartition(".")
            screen.query_one(f"#p-{namespace or 'train'}-{name}").value = value
        screen.query_one("#p-train-limit").value = "3000"  # a slice of the training names is enough here
        await pilot.press("t")
        await pilot.pause()
        assert app.current_mode == "monitor"
        monitor = app.current_monitor()
        launched = app.launched[monitor.id]
        assert launched.process.pid and (monitor.run.path / "train.log").exists()
        await wait_for(pilot, lambda: monitor.state == "finished", timeout=90)
        await wait_for(pilot, lambda: monitor.end is not None, timeout=10)  # the monitor reads events on its timer
        assert monitor.step_x and len(monitor.epochs) == 1 and monitor.test_metrics()["accuracy"] > 0.3
        # the status line repaints on the monitor's next refresh, which a loaded machine can delay
        await wait_for(pilot, lambda: "FINISHED" in str(app.screen.query_one("#status").render()), timeout=10)
        status = str(app.screen.query_one("#status").render())
        assert "FINISHED" in status and "1/1 epochs" in status
        await notified(pilot, "finished")

        await pilot.press("p")
        await wait_for(pilot, lambda: app.current_mode == "predict" and app.screen.loaded is not None)
        predict = app.screen
        await pilot.press(*"Dostoevsky")
        await wait_for(pilot, lambda: getattr(predict, "last_prediction", {}).get("input") == "Dostoevsky")
        top = predict.last_prediction["top"]
        assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"]
        shown = plain(predict.query_one("#answer"))
        assert "Dostoevsky" in shown and top[0]["label"] in shown
        evaluation = plain(predict.query_one("#evaluation"))
        assert "per-class accuracy" in evaluation
        assert "confusion matrix, 18 classes" in plain(predict.query_one("#matrix"))  # in its own sideways-scrolling box

        await pilot.press("ctrl+o")  # choose another checkpoint: this run is the only one
        choices = app.screen.query_one("#choices")
        assert choices.option_count == 1 and monitor.id in str(choices.get_option_at_index(0).prompt)
        await pilot.press("enter")
        assert app.screen is predict and predict.loaded.path == monitor.run.checkpoint_path("best")


@pytest.mark.slow
async def test_attach_to_a_run_started_on_the_command_line_pause_resume_stop(runs_root, shared_data):
    sets = [part for item in [*FAST, "epochs=200", "log_every=2"] for part in ("--set", item)]
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench", "train", "--dataset", "names", "--data-dir", str(shared_data), *sets,
         "--quiet"], env={**os.environ, "WORKBENCH_RUNS_DIR": str(runs_root)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        app = make_app(runs_root)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("f4")
            runs = app.screen
            await wait_for(pilot, lambda: (runs.refresh_runs() or runs.runs) and next(iter(runs.runs.values()))
                           .status().get("state") == "running", timeout=60)
            await pilot.press("enter")
            assert app.current_mode == "monitor"
            monitor = app.current_monitor()
            await wait_for(pilot, lambda: len(monitor.step_x) > 2)
            await pilot.press("space")
            await wait_for(pilot, lambda: monitor.state == "paused", timeout=20)
            await pilot.press("space")
            await wait_for(pilot, lambda: monitor.state == "running", timeout=20)
            await pilot.press("s")
            await pilot.press("y")
            await wait_for(pilot, lambda: monitor.state == "stopped", timeout=60)
            assert process.wait(timeout=60) == 0
            await notified(pilot, "stopped")
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
async def test_runs_browser_compare_delete_and_a_failed_run(runs_root):
    write_run(runs_root, "20260101-000000-names-gru", epochs=4)
    write_run(runs_root, "20260101-000100-names-gru", epochs=6)
    failed = write_run(runs_root, "20260101-000200-names-gru", state="failed", message="training diverged")
    (failed.path / "train.log").write_text("workbench: error: training diverged at epoch 2\n")
    app = make_app(runs_root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f4")
        runs = app.screen
        # oldest first, as `workbench runs`, with the cursor on the newest
        assert list(runs.runs) == ["20260101-000000-names-gru", "20260101-000100-names-gru", failed.id]
        assert runs.selected_id() == failed.id
        assert "training diverged" in str(runs.query_one("#detail").render())
        await pilot.press("enter")  # open the failed run: the error is shown, the app keeps going
        assert app.current_mode == "monitor"
        await notified(pilot, "training diverged")
        await pilot.press("f4", "up", "c", "up", "c")
        assert app.compare == {"20260101-000100-names-gru", "20260101-000000-names-gru"}
        await pilot.press("f3")
        loss = app.screen.query_one("#loss")
        # the overlay draws both compared runs (the legend names each by its time and architecture)
        await wait_for(pilot, lambda: "000100 gru" in str(loss.border_subtitle)
                       and "000000 gru" in str(loss.border_subtitle), timeout=10)
        await pilot.press("f4", "d", "n")
        assert (runs_root / "20260101-000000-names-gru").exists()
        await pilot.press("d", "y")
        await pilot.pause()
        assert not (runs_root / "20260101-000000-names-gru").exists()
        assert "20260101-000000-names-gru" not in app.compare


@pytest.mark.slow
async def test_a_run_that_cannot_start_reports_why(runs_root, tmp_path):
    from workbench.config import resolve_config

    empty = tmp_path / "empty"
    empty.mkdir()
    app = make_app(runs_root)
    async with app.run_test(size=(100, 30)) as pilot:
        config = resolve_config(app.registry, "names", None, "cpu", FAST, data_dir=str(empty))
        run = app.start_run(config)
        await wait_for(pilot, lambda: run.id not in app.launched, timeout=60)
        await notified(pilot, "could not run", "no names data")
        assert not run.path.exists()  # the engine removes a run that failed while preparing


@pytest.mark.slow
async def test_help_palette_and_remapped_keys(runs_root, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text('[keys]\n"monitor.view" = "w"\n"runs.delete" = "ctrl+enter"\n"nope.action" = "z"\n'
                    '"monitor.pause" = "p"\n')
    app = make_app(runs_root, keys_file=keys)
    async with app.run_test(size=(80, 24)) as pilot:
        await notified(pilot, "ctrl+enter cannot be used")
        await notified(pilot, "unknown action 'nope.action'")
        # a key already taken on the same screen is refused: p stays Predict, space stays Pause
        await notified(pilot, 'monitor.pause = "p": p is already the key of monitor.predict on the Train screen')
        await pilot.press("f1")
        help_text = plain(app.screen.query_one("#help-body Static"))
        assert "monitor.view" in help_text and "Pause/resume" in help_text and "Generate" in help_text
        await pilot.press("escape", "f3")
        assert app.screen.view == "all"
        await pilot.press("w")
        assert app.screen.view == "loss"
        await pilot.press("v")  # the old key no longer does it
        assert app.screen.view == "loss"
        await pilot.press("p")
        await wait_for(pilot, lambda: app.current_mode == "predict", timeout=10)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Setup: Train", "Setup: Save", "Train: Pause/resume", "Runs: Delete", "Predict: Open model",
                      "Generate: Generate", "Generate: Stop", "Help"):
            assert title in titles, title
        await pilot.press("ctrl+p")
        await pilot.press(*"Runs: Overlay")
        from textual.command import CommandList

        commands = app.screen.query_one(CommandList)
        await wait_for(pilot, lambda: commands.highlighted is not None and "Runs: Overlay" in str(
            commands.get_option_at_index(commands.highlighted).prompt), timeout=10)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "runs", timeout=10)
        await notified(pilot, "no run selected")


async def test_a_failed_plugin_is_shown_and_the_app_keeps_running(runs_root):
    from workbench.registry import Registry

    class Broken:
        __name__ = "broken_plugin"

        @staticmethod
        def workbench_datasets():
            raise RuntimeError("cannot read its index")

    registry = Registry().load_entry_points()
    registry.register_module(Broken())
    app = make_app(runs_root, registry=registry)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await notified(pilot, "cannot read its index")
        assert app.screen.dataset == "names"


# -- predict and generate with any task --------------------------------------------------------
class ToyTask:
    """A stand-in for a generating task (language models live on another branch)."""

    kind = "toy_language_model"
    supports_generation = True

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def predict(self, model, text, device, top_k=3):
        return {"input": text, "next_characters": list(text[::-1][:top_k])}

    def render_prediction(self, prediction):
        return f"continues with {''.join(prediction['next_characters'])}"

    def generate(self, model, prime, length, device, *, temperature=1.0, sampling="sample", top_k=10, top_p=0.9,
                 seed=None) -> Iterator[str]:
        import torch

        generator = torch.Generator().manual_seed(seed or 0)
        state = torch.zeros(1, 4)
        for _ in range(length):
            state = torch.tanh(model(state))
            index = int(torch.randint(0, 26, (1,), generator=generator)) if sampling != "greedy" else 0
            time.sleep(self.delay)
            yield "abcdefghijklmnopqrstuvwxyz"[index]


def toy_loaded(tmp_path: Path, delay: float = 0.0):
    import torch

    from workbench.config import RunConfig
    from workbench.engine import LoadedModel

    model = torch.nn.Linear(4, 4)
    config = RunConfig(dataset="toy", arch="toy")
    return LoadedModel(model, ToyTask(delay), config, {"epoch": 1}, torch.device("cpu"), tmp_path / "toy.pt")


@pytest.mark.slow
async def test_generate_streams_and_stops(runs_root, tmp_path):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        screen = app.screen
        screen.use_model(toy_loaded(tmp_path, delay=0.002))
        screen.query_one("#g-length").value = "40"
        screen.query_one("#g-seed").value = "3"
        screen.query_one("#prime").focus()
        await pilot.press(*"Hi", "enter")
        await wait_for(pilot, lambda: not screen.generating, timeout=20)
        assert len(screen.text) == 2 + 40 and screen.text.startswith("Hi")
        first = screen.text
        await pilot.press("enter")
        await wait_for(pilot, lambda: not screen.generating, timeout=20)
        assert screen.text == first  # the same seed gives the same text

        screen.query_one("#g-length").value = "100000"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(screen.text) > 10, timeout=20)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.generating, timeout=20)
        assert 10 < len(screen.text) < 100000 and "stopped" in str(screen.query_one("#gen-hint").render())

        screen.query_one("#g-temperature").value = "-1"
        await pilot.press("enter")
        await notified(pilot, "temperature must be")


async def test_predict_renders_any_task_generically(runs_root, tmp_path):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        screen = app.screen
        assert "no trained model yet" in str(screen.query_one("#model").render())
        screen.use_model(toy_loaded(tmp_path))
        await pilot.press(*"abc")
        await wait_for(pilot, lambda: "continues with cba" in plain(screen.query_one("#answer")))
        assert "no evaluation is stored" in plain(screen.query_one("#evaluation"))


async def test_a_corrupt_checkpoint_is_a_message(runs_root, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 64)
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        app.screen.open_checkpoint(bad)
        await notified(pilot, "not a readable workbench checkpoint", timeout=30)
        assert app.current_mode == "predict"


# -- snapshots at fixed sizes --------------------------------------------------------------------
def _snap_app(runs_root: Path) -> WorkbenchApp:
    return make_app(runs_root)


async def _settle_setup(pilot) -> None:
    """The setup form with its device list and its model-size line (a worker's result) drawn."""
    # an auto pilot starts once the app is mounted, maybe before the setup screen has composed
    await wait_for(pilot, lambda: bool(pilot.app.screen.query("#devices")))
    await wait_for(pilot, lambda: pilot.app.screen.query_one("#devices").option_count == 4)
    await wait_for(pilot, lambda: pilot.app.screen.query_one("#estimate").display, timeout=60)


def test_snapshot_setup_80x24(snap_compare, runs_root):
    assert snap_compare(_snap_app(runs_root), terminal_size=(80, 24), run_before=_settle_setup)


def test_snapshot_monitor_with_overlay_120x40(snap_compare, runs_root):
    current = write_run(runs_root, "20260101-000000-names-gru", epochs=5)
    other = write_run(runs_root, "20260101-000100-names-lstm", epochs=5)

    async def open_runs(pilot):
        app = pilot.app
        app.watch_run(other)
        app.compare.add(other.id)
        app.watch_run(current, make_current=True)
        await app.switch_mode("monitor")
        # every plot drawn with both runs (the overlaid one is labelled by its time and architecture,
        # in the legend under the plot)
        charts = [app.screen.query_one(f"#{chart_id}") for chart_id in ("loss", "metric", "grad")]
        await wait_for(pilot, lambda: all("000100 lstm" in str(chart.border_subtitle) for chart in charts), timeout=10)

    assert snap_compare(_snap_app(runs_root), terminal_size=(120, 40), run_before=open_runs)


def test_snapshot_help_80x24(snap_compare, runs_root):
    async def settle_then_help(pilot):
        await _settle_setup(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: pilot.app.screen.__class__.__name__ != "SetupScreen")

    assert snap_compare(_snap_app(runs_root), terminal_size=(80, 24), run_before=settle_then_help)


def test_opening_the_app_does_not_import_torch():
    """First paint stays fast: torch is imported only in worker threads and the training process."""
    code = ("import sys, workbench.tui.app, workbench.cli; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_opening_the_app_does_not_load_the_plugin_machinery():
    """What `workbench` does before the first frame (the parser, the app and setup modules) leaves the
    plugin registry, pluggy and importlib.metadata to the worker that runs after it (issue 12)."""
    code = ("import sys, workbench.cli, workbench.tui.app, workbench.tui.setup; workbench.cli.build_parser().parse_args([]); "
            "print(sorted(m for m in ('workbench.registry', 'pluggy', 'importlib.metadata') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


async def test_monitor_resizes_between_80x24_and_wide(runs_root):
    run = write_run(runs_root, "20260101-000000-names-gru", epochs=3)
    app = make_app(runs_root)
    async with app.run_test(size=(120, 40)) as pilot:
        app.watch_run(run, make_current=True)
        await pilot.press("f3")
        chart = app.screen.query_one("#loss")
        await wait_for(pilot, lambda: chart.size.width > 40, timeout=10)  # half of 120 columns, less borders
        wide = chart.size.width
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: chart.size.width < wide, timeout=10)
        assert chart.size.height >= 5
        await pilot.press("v")  # one plot at a time when the terminal is small
        await wait_for(pilot, lambda: app.screen.query_one("#metric").display is False, timeout=10)
        await wait_for(pilot, lambda: chart.size.width > 60, timeout=10)


@pytest.mark.slow
def test_workbench_train_run_dir_option(shared_data, tmp_path):
    """`workbench train --run-dir` (what the app starts) trains into the folder it names."""
    run_dir = tmp_path / "my-run"
    sets = [part for item in [*FAST, "limit=500"] for part in ("--set", item)]
    base = [sys.executable, "-m", "workbench", "train", "--dataset", "names", "--data-dir", str(shared_data), *sets]
    result = subprocess.run([*base, "--run-dir", str(run_dir), "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run_dir"] == str(run_dir)
    assert Run(run_dir).status()["state"] == "finished" and (run_dir / "best.pt").exists()
    again = subprocess.run([*base, "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    both = subprocess.run([*base, "--run-dir", str(tmp_path / "x"), "--resume", "latest"], capture_output=True,
                          text=True, timeout=300)
    assert both.returncode == 2 and "cannot be combined with --resume" in both.stderr
