"""The app keeps up with its user: paint first, echo at once, move through lists, keys typed ahead."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from textual import events

from workbench.devices import DeviceInfo
from workbench.registry import get_registry, reset_registry
from workbench.tui.app import WorkbenchApp

FAKE_DEVICES = [DeviceInfo("cpu", "CPU (2 cores)", True)]


@pytest.fixture(autouse=True)
def fixed_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: list(FAKE_DEVICES))


def make_app(tmp_path: Path, **kwargs: Any) -> WorkbenchApp:
    kwargs.setdefault("registry", get_registry())
    return WorkbenchApp(runs_root=tmp_path / "runs", keys_file=tmp_path / "no-keys.toml", **kwargs)


async def wait_for(pilot: Any, condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        await pilot.pause(0.05)


def burst(app: WorkbenchApp, *keys: str) -> None:
    """Keys as a slow link delivers them: all at once, none waiting for the one before."""
    for key in keys:
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        assert app._driver is not None
        app._driver.send_message(event)


def errors(app: WorkbenchApp) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


# -- first paint -------------------------------------------------------------------------------
async def test_the_screen_is_drawn_before_a_hung_plugin_is_given_up(tmp_path, monkeypatch):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "sleeper.py").write_text("import time\ntime.sleep(60)\n", encoding="utf-8")
    monkeypatch.setenv("WORKBENCH_PLUGINS_DIR", str(plugins))
    monkeypatch.setenv("WORKBENCH_PLUGIN_TIMEOUT", "1.5")
    reset_registry()
    try:
        started = time.monotonic()
        app = WorkbenchApp(runs_root=tmp_path / "runs", keys_file=tmp_path / "no-keys.toml")
        assert time.monotonic() - started < 1.0  # building the app does not wait for plugins
        async with app.run_test(size=(80, 24)) as pilot:
            datasets = app.screen.query_one("#datasets")
            assert "loading plugins" in str(datasets.get_option_at_index(0).prompt)  # drawn, plugins pending
            await wait_for(pilot, lambda: app.screen.dataset == "names", timeout=60)
            await wait_for(pilot, lambda: any("sleeper" in m for m in errors(app)), timeout=10)
            await wait_for(pilot, lambda: bool(app.screen.query("#p-train-epochs")), timeout=10)
    finally:
        reset_registry()


def test_what_the_first_frame_needs_imports_no_plugins_and_no_torch():
    """Plugins (pluggy, every plugin module) and torch load after the first paint, not before it."""
    import subprocess
    import sys

    code = ("import sys, workbench.cli, workbench.tui.app, workbench.tui.setup; "
            "print(sorted(m for m in ('torch', 'pluggy', 'workbench.registry', 'workbench_plugins') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


#: What the path to the first frame no longer imports (issue 12, fourth pass): each was measured on it.
NOT_BEFORE_THE_FIRST_FRAME = ("torch", "pluggy", "importlib.metadata", "workbench.registry", "workbench_plugins",
                              "argparse", "tomllib", "workbench.cli", "workbench.config", "workbench.params",
                              "workbench.runs", "workbench.events", "workbench.launch", "workbench.devices",
                              "workbench.tui.monitor")


def test_workbench_with_no_arguments_goes_straight_to_the_app():
    """`workbench` and `python -m workbench` with no arguments: no parser, no headless commands, no run
    machinery before the app runs; the setup screen and the app class are all it needs."""
    import subprocess
    import sys

    code = ("import sys, workbench.tui.app as app_module, workbench.__main__ as entry\n"
            "def run_app(args=None):\n"
            "    app = app_module.WorkbenchApp(); app.get_default_screen()\n"
            f"    print(sorted(m for m in {NOT_BEFORE_THE_FIRST_FRAME!r} if m in sys.modules))\n"
            "    return 7\n"
            "app_module.run_app = run_app\n"
            "sys.exit(entry.main([]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 7, result.stderr  # the app's status is the command's
    assert result.stdout.strip() == "[]"
    # anything else is the CLI, as before
    version = subprocess.run([sys.executable, "-m", "workbench", "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("workbench "), version.stderr


def test_the_first_screen_is_not_built_as_a_mode():
    """Textual builds a MODES screen with a full reparse of the stylesheet (~80 ms of CPU before the
    first frame on a busy 2-core box): the setup screen is the default screen, and F2 still finds it."""
    app = WorkbenchApp(runs_root=Path("/nonexistent/runs"), keys_file=Path("/nonexistent/keys.toml"))
    assert "setup" not in app.MODES and app.DEFAULT_MODE == "setup"
    assert type(app.get_default_screen()).__name__ == "SetupScreen"


async def test_f2_returns_to_the_same_setup_screen(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        first = app.screen
        await wait_for(pilot, lambda: bool(first.query("#p-train-epochs")))
        assert app.current_mode == "setup"
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.current_mode == "runs")
        await pilot.press("f2")
        await wait_for(pilot, lambda: app.current_mode == "setup")
        assert app.screen is first


@pytest.mark.slow
async def test_a_row_built_for_an_invalid_value_shows_it_invalid_at_once(tmp_path):
    """Rows start with the class their validation gives them (so Textual does not restyle them before
    they are mounted): a value typed for one dataset that does not fit comes back marked invalid."""
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.query("#p-data-length")) or screen.dataset != "brackets")
        screen._select_dataset("brackets")
        await wait_for(pilot, lambda: bool(screen.query("#p-data-length")))
        field = screen.query_one("#p-data-length")
        assert field.has_class("-valid") and not field.has_class("-invalid")
        field.value = "many"  # as typed before moving on
        screen._select_dataset("majority")  # no `length` there: the row goes
        await wait_for(pilot, lambda: not screen.query("#p-data-length"))
        screen._select_dataset("brackets")  # and is built again, for the typed value
        await wait_for(pilot, lambda: bool(screen.query("#p-data-length")))
        field = screen.query_one("#p-data-length")
        assert field.value == "many" and field.has_class("-invalid") and not field.has_class("-valid")
        other = screen.query_one("#p-data-pairs")
        assert other.has_class("-valid") and not other.has_class("-invalid")


# -- predict as you type -------------------------------------------------------------------------
class SlowTask:
    """A model that holds the interpreter lock for a while on every prediction (Python-heavy work)."""

    kind = "slow"
    supports_generation = False

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.asked: list[str] = []
        self.shown: list[str] = []
        self.running = 0
        self.most_at_once = 0

    def predict(self, model, text, device, top_k=3):
        self.asked.append(text)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:  # pure Python: keeps the interpreter lock most of the time
            pass
        self.running -= 1
        return {"input": text}

    def render_prediction(self, prediction):
        self.shown.append(prediction["input"])
        return f"answer for {prediction['input']}"


def slow_loaded(tmp_path: Path, task: SlowTask) -> Any:
    import torch

    from workbench.config import RunConfig
    from workbench.engine import LoadedModel

    return LoadedModel(torch.nn.Linear(2, 2), task, RunConfig(dataset="toy", arch="toy"), {"epoch": 1},
                       torch.device("cpu"), tmp_path / "slow.pt")


async def test_typing_is_echoed_and_only_the_latest_text_is_answered(tmp_path):
    app = make_app(tmp_path)
    task = SlowTask(0.3)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        screen = app.screen
        screen.use_model(slow_loaded(tmp_path, task))
        text_input = screen.query_one("#text")
        text_input.focus()
        await pilot.pause()
        for key in "Dostoevsky":  # typed faster than the model answers
            burst(app, key)
            await pilot.pause(0.1)
        await wait_for(pilot, lambda: text_input.value == "Dostoevsky", timeout=10)
        await wait_for(pilot, lambda: task.shown and task.shown[-1] == "Dostoevsky", timeout=30)
        await pilot.pause(0.5)
        # ten keys, a model that takes 0.3 s: the texts in between are skipped, not queued, and no
        # two predictions ever compete with each other (and the typing) for the interpreter
        assert len(task.asked) <= 6, task.asked
        assert task.most_at_once == 1
        assert task.asked[-1] == "Dostoevsky" and task.shown[-1] == "Dostoevsky"
        assert "answer for Dostoevsky" in str(screen.query_one("#answer").render())
        # one key at a time, slower than the model: every text is answered, in order, none late
        task.asked.clear()
        task.shown.clear()
        for key in "abc":
            await pilot.press(key)
            await wait_for(pilot, lambda k=key: task.shown and task.shown[-1].endswith(k), timeout=30)
        assert task.shown == ["Dostoevskya", "Dostoevskyab", "Dostoevskyabc"] and task.most_at_once == 1


# -- the dataset list ----------------------------------------------------------------------------
async def test_moving_through_datasets_waits_to_rebuild_the_form_and_raises_nothing(tmp_path, monkeypatch):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.query("#p-train-epochs")))
        rebuilt: list[str | None] = []
        original = screen._rebuild_form

        def counting() -> None:
            rebuilt.append(screen.dataset)
            original()

        monkeypatch.setattr(screen, "_rebuild_form", counting)
        monkeypatch.setattr("workbench.tui.setup.FORM_DELAY", 2.0)  # "rests" even on a crowded machine
        epochs_field = screen.query_one("#p-train-epochs")
        datasets = screen.query_one("#datasets")
        datasets.focus()
        await pilot.pause()
        start = datasets.highlighted
        burst(app, *["down"] * 6)
        wanted = datasets.get_option_at_index(start + 6).id
        await wait_for(pilot, lambda: screen.dataset == wanted, timeout=10)
        assert rebuilt == []  # the description follows each press; the form waits for the list to rest
        assert wanted in str(screen.query_one("#description").render())
        await wait_for(pilot, lambda: rebuilt == [wanted], timeout=10)
        await pilot.pause(0.5)
        assert rebuilt == [wanted] and errors(app) == []
        # the training section is the same for every dataset: updated in place, not rebuilt
        assert screen.query_one("#p-train-epochs") is epochs_field
        from workbench.config import resolve_config

        expected = resolve_config(get_registry(), wanted, screen.arch, "auto").train["epochs"]
        assert epochs_field.value == str(expected) and "train.epochs" not in screen.edited
        task = get_registry().dataset(wanted).task
        assert screen.arch in [a.name for a in get_registry().architectures_for(task)]
        await pilot.press("up", "up", "up")
        await pilot.pause(0.6)
        assert errors(app) == []



async def test_a_dataset_change_mounts_only_the_rows_whose_parameter_changed(tmp_path, monkeypatch):
    """Mounting is what a press landing during the form update waits for (about a second for a whole
    form on a busy machine): every other row keeps its widgets."""
    from workbench.tui import setup

    monkeypatch.setattr(setup, "FORM_DELAY", 0.1)
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.query("#p-train-epochs")))
        datasets = screen.query_one("#datasets")
        datasets.focus()
        await pilot.pause()
        ids = [datasets.get_option_at_index(i).id for i in range(datasets.option_count)]
        for _ in range(3):
            before_params = dict(screen.params)
            before_inputs = {f.id: f for f in screen.query("#form Input")}
            wanted = ids[datasets.highlighted + 1]
            await pilot.press("down")
            await wait_for(pilot, lambda w=wanted: screen.dataset == w and screen._form_timer is None, timeout=10)
            await pilot.pause(0.2)
            after_inputs = {f.id: f for f in screen.query("#form Input")}
            new = {key for key, field in after_inputs.items() if before_inputs.get(key) is not field}
            changed = {f"p-{key.replace('.', '-', 1)}" for key, param in screen.params.items()
                       if key not in before_params or not setup.same_but_default(before_params[key], param)}
            assert new == changed, (wanted, sorted(new ^ changed))
            assert not any(key.startswith("p-train-") for key in new), wanted


# -- keys typed ahead ----------------------------------------------------------------------------
async def test_keys_typed_ahead_land_in_the_field_they_were_meant_for(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.query("#p-train-epochs")))
        epochs = screen.query_one("#p-train-epochs")
        batch = screen.query_one("#p-train-batch_size")
        lr = screen.query_one("#p-train-lr")
        epochs.focus()
        await pilot.pause()
        # a field's text is selected when it gets focus, so what is typed replaces it
        burst(app, "5", "tab", "7", "tab", "8", "shift+tab", "shift+tab")
        await wait_for(pilot, lambda: app.focused is epochs and lr.value == "8", timeout=10)
        assert (epochs.value, batch.value, lr.value) == ("5", "7", "8")


@pytest.mark.slow
def test_devices_listed_by_a_child_process_match_this_process():
    from workbench.devices import list_devices, list_devices_in_child

    assert [d.to_dict() for d in list_devices_in_child()] == [d.to_dict() for d in list_devices()]


def test_devices_that_cannot_be_listed_are_one_clear_error(monkeypatch):
    from workbench import devices
    from workbench.errors import DeviceError

    monkeypatch.setattr(devices.sys, "executable", "/nonexistent/python")
    with pytest.raises(DeviceError, match="`workbench devices` did not run"):
        devices.list_devices_in_child()

@pytest.mark.parametrize("size", [(80, 24), (140, 40)])
async def test_the_description_takes_the_rows_its_text_needs_on_every_dataset(tmp_path, monkeypatch, size):
    """The description skips the screen's layout when the new text needs as many rows as the old;
    moving through every dataset, each shows whole (up to its cap), and the layout runs only on a change.
    At 80x24 every description fills the cap (no layout on any press); wider, their heights differ."""
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.query("#p-train-epochs")))
        description = screen.query_one("#description")
        layouts: list[bool] = []
        original = description.refresh

        def counting(*args: Any, layout: bool = False, **kwargs: Any) -> Any:
            layouts.append(layout)
            return original(*args, layout=layout, **kwargs)

        monkeypatch.setattr(description, "refresh", counting)
        datasets = screen.query_one("#datasets")
        datasets.focus()
        seen_rows = []
        for _ in range(datasets.option_count - 1):
            rows_before = description.size.height
            del layouts[:]
            await pilot.press("down")
            await pilot.pause(0.05)
            needed = screen._rows_for(description)
            assert description.size.height == needed, screen.dataset
            assert any(layouts) == (needed != rows_before), (screen.dataset, rows_before, needed)
            seen_rows.append(needed)
        if size[0] > 80:
            assert len(set(seen_rows)) > 1  # the datasets' descriptions do need different heights
