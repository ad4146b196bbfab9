"""The app keeps long-lived objects out of the garbage collector's full passes (issue 12)."""

from __future__ import annotations

import gc
import importlib
import sys
import time

import pytest

from workbench.devices import DeviceInfo
from workbench.registry import get_registry
from workbench.tui.app import WorkbenchApp
from workbench.tui.heap import HeapKeeper, freeze_long_lived, thaw


@pytest.fixture(autouse=True)
def thawed():
    thaw()
    yield
    thaw()


def test_freezing_takes_the_living_objects_out_of_the_collectors_walk():
    kept = [[i] for i in range(20_000)]  # tracked containers that live on
    walked_before = len(gc.get_objects())
    frozen = freeze_long_lived()
    assert frozen >= len(kept)
    assert len(gc.get_objects()) < walked_before - len(kept)
    thaw()
    assert gc.get_freeze_count() == 0
    assert len(gc.get_objects()) >= len(kept)


def test_the_keeper_freezes_again_only_after_new_imports(tmp_path, monkeypatch):
    keeper = HeapKeeper()
    assert keeper.settle()
    assert not keeper.settle()  # nothing imported since
    (tmp_path / "freshly_imported_module_for_heap_test.py").write_text("TABLE = [[i] for i in range(100)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("freshly_imported_module_for_heap_test")
        assert keeper.settle()
        assert not keeper.settle()
    finally:
        sys.modules.pop("freshly_imported_module_for_heap_test", None)


async def test_the_app_freezes_its_long_lived_objects_once_set_up_and_thaws_them_on_exit(tmp_path, monkeypatch):
    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: [DeviceInfo("cpu", "CPU (2 cores)", True)])
    app = WorkbenchApp(runs_root=tmp_path / "runs", keys_file=tmp_path / "no-keys.toml", registry=get_registry())
    async with app.run_test(size=(80, 24)) as pilot:
        deadline = time.monotonic() + 30
        while not gc.get_freeze_count() and time.monotonic() < deadline:
            await pilot.pause(0.05)
        frozen = gc.get_freeze_count()
        assert app.screen.query("#p-train-epochs")  # the form exists by then
        # what a full collection still walks is a small part of what the app holds
        assert len(gc.get_objects()) < frozen / 3
    assert gc.get_freeze_count() == 0
