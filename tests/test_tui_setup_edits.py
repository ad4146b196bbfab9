"""The setup form starts each dataset from its own defaults and marks what the user changed (issue 12).

Pilot tests on the real registry: the dataset list is moved with the keyboard, values are typed into
the fields, and what the form shows (values, marks, the help line, the count in its border) and what
it trains are checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_tui import wait_for

from workbench.config import RunConfig
from workbench.devices import DeviceInfo
from workbench.registry import get_registry
from workbench.tui.app import WorkbenchApp
from workbench.tui.form_edits import FormEdits

FAKE_DEVICES = [DeviceInfo("cpu", "CPU (2 cores)", True)]


@pytest.fixture(autouse=True)
def fixed_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: list(FAKE_DEVICES))


@pytest.fixture(autouse=True)
def short_form_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workbench.tui.setup.FORM_DELAY", 0.1)


def make_app(tmp_path: Path) -> WorkbenchApp:
    return WorkbenchApp(runs_root=tmp_path / "runs", keys_file=tmp_path / "no-keys.toml", registry=get_registry())


async def ready(pilot: Any) -> Any:
    screen = pilot.app.screen
    await wait_for(pilot, lambda: bool(screen.query("#p-train-lr")) and screen._form_for is not None)
    return screen


async def go_to(pilot: Any, dataset: str) -> None:
    """Move the dataset list to ``dataset`` with the arrow keys and wait until its form is shown."""
    screen = pilot.app.screen
    datasets = screen.query_one("#datasets")
    datasets.focus()
    await pilot.pause()
    ids = [datasets.get_option_at_index(i).id for i in range(datasets.option_count)]
    steps = ids.index(dataset) - (datasets.highlighted or 0)
    for _ in range(abs(steps)):
        await pilot.press("down" if steps > 0 else "up")
    await wait_for(pilot, lambda: screen.dataset == dataset and screen._form_timer is None
                   and screen._form_for == (dataset, screen.arch))
    await pilot.pause()


async def type_into(pilot: Any, field_id: str, text: str) -> None:
    """Focus a field, clear it and type ``text`` key by key, as a user does."""
    field = pilot.app.screen.query_one(f"#{field_id}")
    field.focus()
    field.value = ""
    await pilot.press(*text)
    await pilot.pause()


def label_of(screen: Any, field_id: str) -> Any:
    return screen.query_one(f"#{field_id}").parent.children[0]


def marked(screen: Any, field_id: str) -> bool:
    label = label_of(screen, field_id)
    text = str(label.render())
    assert label.has_class("-edited") == text.startswith("*"), text  # the mark is never colour alone
    return label.has_class("-edited")


def value(screen: Any, field_id: str) -> str:
    return str(screen.query_one(f"#{field_id}").value)


def defaults(dataset: str, arch: str) -> RunConfig:
    from workbench.config import resolve_config

    return resolve_config(get_registry(), dataset, arch, "auto")


def test_form_edits_keep_model_values_per_architecture_and_clear_one_dataset():
    edits = FormEdits()
    edits.put("names", "gru", "train.lr", "0.01")
    edits.put("names", "gru", "model.hidden_size", "32")
    edits.put("majority", "meanpool", "train.epochs", "3")
    assert edits.of("names", "gru") == {"train.lr": "0.01", "model.hidden_size": "32"}
    assert edits.of("names", "lstm") == {"train.lr": "0.01"}  # model values belong to an architecture
    edits.put("names", "gru", "train.lr", None)  # the default again
    assert edits.of("names", "gru") == {"model.hidden_size": "32"}
    edits.clear("names")
    assert edits.of("names", "gru") == {} and edits.of("majority", "meanpool") == {"train.epochs": "3"}
    edits.replace("names", "lstm", {"train.epochs": "2"})
    assert edits.arch_for("names") == "lstm" and edits.of("names", "lstm") == {"train.epochs": "2"}


@pytest.mark.slow
async def test_switching_dataset_takes_its_default_architecture_and_its_own_defaults(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        assert (screen.dataset, screen.arch) == ("names", "gru")
        await type_into(pilot, "p-train-lr", "0.01")
        await type_into(pilot, "p-model-hidden_size", "32")
        # majority (the dataset above names) fits gru too, but recommends meanpool
        await go_to(pilot, "majority")
        assert screen.arch == "meanpool" and screen.query_one("#archs").highlighted_option.id == "meanpool"
        own = defaults("majority", "meanpool")
        assert value(screen, "p-train-lr") == str(own.train["lr"]) == "0.005"  # not the 0.01 typed for names
        assert value(screen, "p-train-epochs") == str(own.train["epochs"])
        assert not marked(screen, "p-train-lr") and screen.edited == {}
        assert screen.query_one("#form").border_title is None
        # back on names: what was typed there, marked, with its architecture
        await go_to(pilot, "names")
        assert screen.arch == "gru"
        assert value(screen, "p-train-lr") == "0.01" and marked(screen, "p-train-lr")
        assert value(screen, "p-model-hidden_size") == "32" and marked(screen, "p-model-hidden_size")
        assert not marked(screen, "p-train-epochs")
        assert str(screen.query_one("#form").border_title) == "2 edited; ctrl+r resets"
        assert screen.edited == {"train.lr": "0.01", "model.hidden_size": "32"}


@pytest.mark.slow
async def test_the_architecture_picked_for_a_dataset_comes_back_with_it(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        archs = screen.query_one("#archs")
        names = [archs.get_option_at_index(i).id for i in range(archs.option_count)]
        archs.focus()
        await pilot.pause()
        for _ in range(names.index("gru") - names.index("lstm")):
            await pilot.press("up")
        await wait_for(pilot, lambda: screen._form_for == ("names", "lstm"))
        await type_into(pilot, "p-model-hidden_size", "48")  # for names with lstm
        await go_to(pilot, "majority")
        assert screen.arch == "meanpool"
        await go_to(pilot, "names")
        assert screen.arch == "lstm" and archs.highlighted_option.id == "lstm"
        assert value(screen, "p-model-hidden_size") == "48" and marked(screen, "p-model-hidden_size")
        # model values belong to the architecture they were typed for: gru shows its own default
        archs.focus()
        await pilot.pause()
        for _ in range(names.index("gru") - names.index("lstm")):
            await pilot.press("down")
        await wait_for(pilot, lambda: screen._form_for == ("names", "gru"))
        assert value(screen, "p-model-hidden_size") == str(defaults("names", "gru").model["hidden_size"])
        assert not marked(screen, "p-model-hidden_size")


@pytest.mark.slow
async def test_the_mark_goes_when_the_value_is_the_default_again(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        await type_into(pilot, "p-train-epochs", "3")
        assert marked(screen, "p-train-epochs") and str(label_of(screen, "p-train-epochs").render()) == "*epochs"
        assert str(screen.query_one("#form").border_title) == "1 edited; ctrl+r resets"
        await type_into(pilot, "p-train-epochs", "12")  # names' own default (not the global 10)
        assert not marked(screen, "p-train-epochs") and str(label_of(screen, "p-train-epochs").render()) == "epochs"
        assert screen.edited == {} and screen.query_one("#form").border_title is None
        await type_into(pilot, "p-train-lr", "0.0030")  # the same number as the default 0.003
        assert not marked(screen, "p-train-lr") and screen.edited == {}
        await type_into(pilot, "p-train-lr", "0.0031")
        assert marked(screen, "p-train-lr")


@pytest.mark.slow
async def test_ctrl_r_clears_only_the_edits_of_the_dataset_shown(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        screen.query_one("#p-run-data_dir").value = str(tmp_path)  # as pasted
        await type_into(pilot, "p-train-lr", "0.01")
        await go_to(pilot, "majority")
        await type_into(pilot, "p-train-epochs", "3")
        await type_into(pilot, "p-train-optimizer", "sgd")
        assert str(screen.query_one("#form").border_title) == "2 edited; ctrl+r resets"
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert value(screen, "p-train-epochs") == str(defaults("majority", "meanpool").train["epochs"])
        assert value(screen, "p-train-optimizer") == "adam"
        assert not marked(screen, "p-train-epochs") and screen.query_one("#form").border_title is None
        assert value(screen, "p-run-data_dir") == str(tmp_path)  # the data folder is the same for every dataset
        await go_to(pilot, "names")
        assert value(screen, "p-train-lr") == "0.01" and marked(screen, "p-train-lr")
        assert value(screen, "p-run-data_dir") == str(tmp_path)


async def test_the_help_line_gives_the_default_of_this_dataset(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        screen.query_one("#p-train-lr").focus()
        await pilot.pause()
        hint = str(screen.query_one("#hint").render())
        assert "default 0.003 for names; 0.001 otherwise" in hint
        screen.query_one("#p-train-optimizer").focus()  # names recommends no optimizer of its own
        await pilot.pause()
        hint = str(screen.query_one("#hint").render())
        assert "default adam" in hint and "otherwise" not in hint
        await go_to(pilot, "majority")
        screen.query_one("#p-train-lr").focus()
        await pilot.pause()
        assert "default 0.005 for majority; 0.001 otherwise" in str(screen.query_one("#hint").render())


@pytest.mark.slow
async def test_train_from_the_form_uses_the_values_it_shows(tmp_path, monkeypatch):
    app = make_app(tmp_path)
    started: list[RunConfig] = []
    monkeypatch.setattr(app, "start_run", lambda config, processes=1: started.append(config))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        await type_into(pilot, "p-train-epochs", "2")
        await go_to(pilot, "majority")
        screen.query_one("#datasets").focus()
        await pilot.press("t")
        await wait_for(pilot, lambda: len(started) == 1)
        config = started[0]
        own = defaults("majority", "meanpool")
        assert (config.dataset, config.arch) == ("majority", "meanpool")
        assert config.train == own.train and config.model == own.model  # nothing of names' came along
        await go_to(pilot, "names")
        await pilot.press("t")
        await wait_for(pilot, lambda: len(started) == 2)
        assert (started[1].dataset, started[1].arch) == ("names", "gru") and started[1].train["epochs"] == 2
        assert started[1].train["lr"] == 0.003


@pytest.mark.slow
async def test_a_loaded_setup_becomes_the_edits_of_its_dataset(tmp_path):
    setup = tmp_path / "setup.toml"
    config = defaults("majority", "meanpool")
    config.train["epochs"] = 4
    setup.write_text(config.to_toml(), encoding="utf-8")
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        await type_into(pilot, "p-train-lr", "0.01")  # for names: kept
        assert screen.load_file(setup)
        await pilot.pause()
        assert (screen.dataset, screen.arch) == ("majority", "meanpool")
        assert screen.edited == {"train.epochs": "4"}  # only what differs from majority's defaults
        assert marked(screen, "p-train-epochs") and not marked(screen, "p-train-lr")
        await go_to(pilot, "names")
        assert value(screen, "p-train-lr") == "0.01" and marked(screen, "p-train-lr")
        await go_to(pilot, "majority")
        assert value(screen, "p-train-epochs") == "4" and marked(screen, "p-train-epochs")


@pytest.mark.slow
async def test_marks_are_set_when_the_form_is_rebuilt_not_on_each_press(tmp_path, monkeypatch):
    """A press in the dataset list restyles no row: marks change once the list rests, on the rows
    whose mark changes only."""
    monkeypatch.setattr("workbench.tui.setup.FORM_DELAY", 2.0)  # "rests" even on a crowded machine
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        await type_into(pilot, "p-train-lr", "0.01")
        restyled: list[str] = []
        original = type(screen)._mark_row

        def counting(row: Any, name: str, edited: bool) -> None:
            label = row.children[0]
            if label.has_class("-edited") != edited:
                restyled.append(name)
            original(row, name, edited)

        monkeypatch.setattr(screen, "_mark_row", counting)
        datasets = screen.query_one("#datasets")
        datasets.focus()
        await pilot.pause()
        for _ in range(3):
            await pilot.press("up")
        await wait_for(pilot, lambda: screen.dataset == "fra-eng")
        assert restyled == [] and screen._form_for == ("names", "gru")  # the form waits for the list to rest
        await wait_for(pilot, lambda: screen._form_for == ("fra-eng", "gru-attention"), timeout=10)
        assert restyled == ["lr"]  # the one edited row kept (training rows are kept) lost its mark


async def _two_fields_edited(pilot: Any) -> None:
    """names at 80x24 with lr and epochs typed, lr focused: marks, the count in the border, the hint."""
    screen = await ready(pilot)
    await wait_for(pilot, lambda: screen.query_one("#devices").option_count == 2)
    await wait_for(pilot, lambda: screen.query_one("#estimate").display, timeout=60)
    await type_into(pilot, "p-train-epochs", "3")
    await type_into(pilot, "p-train-lr", "0.01")
    for field in screen.query("Input"):
        field.cursor_blink = False
    await pilot.pause(0.3)


@pytest.mark.slow
def test_snapshot_setup_with_edited_fields_80x24(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=_two_fields_edited)


@pytest.mark.slow
async def test_the_model_size_follows_a_change_made_while_another_field_was_invalid(tmp_path):
    """A model field changed while the form is invalid is estimated once the form is valid again,
    even when the field fixed is not a model field."""
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: bool(screen.query("#p-model-hidden_size")), timeout=30)
        estimate = screen.query_one("#estimate")
        await wait_for(pilot, lambda: "parameters" in str(estimate.render()), timeout=60)
        before = str(estimate.render())
        screen.query_one("#p-train-epochs").value = "zero"  # invalid
        await pilot.pause(0.1)
        screen.query_one("#p-model-hidden_size").value = "16"
        await pilot.pause(0.8)  # the estimate was due and found the form invalid
        assert str(estimate.render()) == before
        screen.query_one("#p-train-epochs").value = "3"  # valid again: not a model field
        await wait_for(pilot, lambda: str(estimate.render()) != before, timeout=30)
