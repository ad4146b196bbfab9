"""Hostile and careless plugins: ``sys.exit()`` and other BaseExceptions, imports that hang, models
whose output breaks the task's contract. Each is a real loose plugin file in a real folder; each must
cost only that plugin (or that one run), in one line, never the program."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import FAST
from workbench.registry import Registry, reset_registry
from workbench.settings import DEFAULT_PLUGIN_TIMEOUT, Settings


def plant(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


def good_dataset(name: str) -> str:
    """A loose plugin with one tiny classification dataset called ``name``."""
    return f"""
    from workbench.api import ClassificationData, DatasetSpec, hookimpl

    def load(context, params):
        examples = [("ab", 0), ("ba", 1), ("aab", 0), ("bba", 1)] * 10
        return ClassificationData(classes=["a", "b"], train=examples, valid=examples[:8], test=examples[:8])

    @hookimpl
    def workbench_datasets():
        return [DatasetSpec(name="{name}", task="classification", description="tiny", load=load,
                            default_arch="rnn")]
    """


def exiting_plugins(prefix: str) -> dict[str, str]:
    """Plugins that end the program, or try to, in every place a plugin runs code at load time."""
    return {
        f"{prefix}_exits.py": "import sys\nsys.exit(3)\n",
        f"{prefix}_exits0.py": "import sys\nsys.exit()\n",
        f"{prefix}_hookexit.py": """
            from workbench.api import hookimpl

            @hookimpl
            def workbench_datasets():
                raise SystemExit("bye")
            """,
        f"{prefix}_base.py": """
            from workbench.api import hookimpl

            class Escape(BaseException):
                pass

            @hookimpl
            def workbench_architectures():
                raise Escape("not an Exception")
            """,
        f"{prefix}_interrupts.py": "raise KeyboardInterrupt  # not the user's Ctrl-C: the plugin's own\n",
        f"{prefix}_good.py": good_dataset(f"{prefix}-good"),
    }


@pytest.fixture()
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests that go through ``get_registry`` (or ``--plugins-dir``, which sets the variable for the
    processes it starts) must not leave their loose plugins to the next test."""
    monkeypatch.setenv("WORKBENCH_PLUGINS_DIR", "")  # restored (unset) after the test, whoever set it since
    reset_registry()
    yield
    reset_registry()


def errors_of(registry: Registry) -> dict[str, list[str]]:
    return {p.name: p.errors for p in registry.plugins if p.origin == "loose"}


# -- sys.exit() and other BaseExceptions -------------------------------------------------------
def test_sys_exit_and_other_base_exceptions_are_that_plugins_error(tmp_path: Path):
    folder = plant(tmp_path / "plugins", exiting_plugins("bx1"))
    registry = Registry().load_plugin_dirs([folder])
    errors = errors_of(registry)
    assert errors["bx1_exits"] == [f"failed to import {folder / 'bx1_exits.py'}: SystemExit: sys.exit(3) was "
                                   f"called (at {folder / 'bx1_exits.py'}:2)"]
    assert "SystemExit: sys.exit(None) was called" in errors["bx1_exits0"][0]
    assert errors["bx1_hookexit"][0].startswith("workbench_datasets() raised SystemExit: sys.exit('bye')")
    assert errors["bx1_base"][0].startswith("workbench_architectures() raised Escape: not an Exception")
    assert "KeyboardInterrupt" in errors["bx1_interrupts"][0]
    assert errors["bx1_good"] == [] and "bx1-good" in registry.datasets
    assert "rnn" in Registry().load_entry_points().architectures  # the built-ins are untouched
    from workbench.testing import check_plugin

    report = check_plugin("bx1_exits", check_import=False)  # by module name: its folder is on sys.path now
    assert not report.ok and "failed to import bx1_exits: SystemExit: 3" in report.render()


def test_a_plugin_that_exits_does_not_end_workbench_listing(tmp_path: Path):
    """`workbench plugins` and `--json` in a real process: before the fix both printed nothing, exit 0."""
    folder = plant(tmp_path / "plugins", exiting_plugins("bx2"))
    command = [sys.executable, "-m", "workbench", "--plugins-dir", str(folder), "plugins"]
    listed = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "bx2_exits (loose:" in listed.stdout and "SystemExit: sys.exit(3) was called" in listed.stdout
    assert "datasets: bx2-good (classification)" in listed.stdout
    assert "Traceback" not in listed.stdout + listed.stderr
    as_json = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    report = json.loads(as_json.stdout)
    failed = {e["plugin"] for e in report["errors"]}
    assert {"bx2_exits", "bx2_exits0", "bx2_hookexit", "bx2_base", "bx2_interrupts"} <= failed
    assert report["datasets"]["bx2-good"]["plugin"] == "bx2_good"


@pytest.mark.slow
def test_training_goes_on_beside_a_plugin_that_exits(tmp_path: Path, capsys, fresh_registry):
    from workbench.cli import main

    folder = plant(tmp_path / "plugins", exiting_plugins("bx3"))
    code = main(["--plugins-dir", str(folder), "train", "--dataset", "bx3-good", *sum((["--set", s] for s in FAST), [])])
    out = capsys.readouterr().out
    assert code == 0 and "finished" in out
    assert len(list((tmp_path / "runs").glob("*/best.pt"))) == 1
    assert main(["--plugins-dir", str(folder), "train", "--dataset", "bx3-missing"]) == 2
    err = capsys.readouterr().err
    assert ("; plugins that failed to load: bx3_base, bx3_exits, bx3_exits0, bx3_hookexit, bx3_interrupts "
            "(see `workbench plugins`)") in err and err.count("\n") == 1


def test_ctrl_c_while_a_plugin_imports_still_stops_workbench(tmp_path: Path):
    """A real SIGINT while the main thread waits for a plugin's import: the user's Ctrl-C wins."""
    marker = tmp_path / "importing"
    folder = plant(tmp_path / "plugins", {"slowpoke.py": f"""
        import pathlib, time
        pathlib.Path({str(marker)!r}).write_text("now")
        time.sleep(3600)
        """})
    env = {**os.environ, "WORKBENCH_PLUGIN_TIMEOUT": "120"}
    process = subprocess.Popen([sys.executable, "-m", "workbench", "--plugins-dir", str(folder), "plugins"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the plugin never started importing"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 130 and "workbench: interrupted" in err


# -- imports that hang -------------------------------------------------------------------------
HELPER = "VALUE = 42\n"


def test_a_plugin_that_hangs_importing_is_skipped_after_the_time_limit(tmp_path: Path):
    """`time.sleep(3600)` at import, a 1 s limit: listing ends within seconds, reports that plugin,
    and loads the plugins before and after it, one of which imports a module the stuck one imported."""
    folder = plant(tmp_path / "plugins", {
        "_hang_shared.py": HELPER,
        "hang_a.py": good_dataset("hang-a"),
        "hang_stuck.py": "import time\nimport _hang_shared\ntime.sleep(3600)\n",
        "hang_z.py": "import _hang_shared\n" + textwrap.dedent(good_dataset("hang-z")),
    })
    env = {**os.environ, "WORKBENCH_PLUGIN_TIMEOUT": "1"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "workbench", "--plugins-dir", str(folder), "plugins", "--json"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 20, f"listing took {elapsed:.1f} s"  # exits at once, leaving the stuck thread behind
    report = json.loads(done.stdout)
    errors = {p["name"]: p["errors"] for p in report["plugins"]}
    assert errors["hang_stuck"] == [f"{folder / 'hang_stuck.py'} did not finish importing within 1 s; skipped "
                                    "(it keeps running in the background until workbench exits; if it is only "
                                    "slow, raise WORKBENCH_PLUGIN_TIMEOUT)"]
    assert errors["hang_a"] == errors["hang_z"] == []
    assert {"hang-a", "hang-z"} <= set(report["datasets"])


def test_a_module_left_half_imported_does_not_block_later_loads(tmp_path: Path, monkeypatch):
    """In this process: the stuck import keeps its thread and its half-made module in sys.modules;
    later plugins import (the stuck one holds only its own module's lock), a second load skips it at
    once, one that imports the stuck module waits out its own limit, and once it finishes it loads."""
    release = tmp_path / "release"
    folder = plant(tmp_path / "plugins", {
        "half_a.py": good_dataset("half-a"),
        "half_stuck.py": f"import pathlib, time\nwhile not pathlib.Path({str(release)!r}).exists(): time.sleep(0.02)\n"
                         + textwrap.dedent(good_dataset("half-stuck")),
        "half_z.py": good_dataset("half-z"),
    })
    monkeypatch.setenv("WORKBENCH_PLUGIN_TIMEOUT", "0.3")
    try:
        first = Registry().load_plugin_dirs([folder])
        assert "did not finish importing within 0.3 s" in errors_of(first)["half_stuck"][0]
        assert {"half-a", "half-z"} <= set(first.datasets) and "half_stuck" in sys.modules
        started = time.monotonic()
        second = Registry().load_plugin_dirs([folder])
        assert time.monotonic() - started < 0.3
        assert "still importing since an earlier attempt" in errors_of(second)["half_stuck"][0]
        assert {"half-a", "half-z"} <= set(second.datasets)
        dependent = plant(tmp_path / "more", {"half_dependent.py": "import half_stuck\n"})
        third = Registry().load_plugin_dirs([dependent])
        assert "half_dependent.py did not finish importing within 0.3 s" in errors_of(third)["half_dependent"][0]
    finally:
        release.write_text("go")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "half-stuck" not in Registry().load_plugin_dirs([folder]).datasets:
        time.sleep(0.05)
    assert "half-stuck" in Registry().load_plugin_dirs([folder]).datasets


def test_a_hook_that_hangs_is_skipped_after_the_time_limit(tmp_path: Path, monkeypatch):
    release = tmp_path / "release"
    folder = plant(tmp_path / "plugins", {"slowhook.py": f"""
        import pathlib, time
        from workbench.api import hookimpl

        @hookimpl
        def workbench_datasets():
            while not pathlib.Path({str(release)!r}).exists():
                time.sleep(0.02)
            return []
        """, "slowhook_next.py": good_dataset("slowhook-next")})
    monkeypatch.setenv("WORKBENCH_PLUGIN_TIMEOUT", "0.3")
    try:
        registry = Registry().load_plugin_dirs([folder])
    finally:
        release.write_text("go")
    assert errors_of(registry)["slowhook"] == [
        "workbench_datasets() did not finish within 0.3 s; skipped (it keeps running in the background until "
        "workbench exits; if it is only slow, raise WORKBENCH_PLUGIN_TIMEOUT)"]
    assert "slowhook-next" in registry.datasets


@pytest.mark.parametrize(("value", "seconds"), [("", DEFAULT_PLUGIN_TIMEOUT), ("2.5", 2.5), ("0", 0.0),
                                                ("-1", DEFAULT_PLUGIN_TIMEOUT), ("ten", DEFAULT_PLUGIN_TIMEOUT),
                                                ("nan", DEFAULT_PLUGIN_TIMEOUT), ("inf", DEFAULT_PLUGIN_TIMEOUT)])
def test_the_time_limit_is_read_from_the_environment(value: str, seconds: float):
    assert Settings.from_env({"WORKBENCH_PLUGIN_TIMEOUT": value}).plugin_timeout == seconds


@pytest.mark.slow
async def test_the_app_starts_beside_plugins_that_exit_or_hang(tmp_path: Path, monkeypatch, fresh_registry):
    from workbench.tui.app import WorkbenchApp

    release = tmp_path / "release"
    folder = plant(tmp_path / "plugins", {
        **exiting_plugins("bx4"),
        "bx4_stuck.py": f"import pathlib, time\nwhile not pathlib.Path({str(release)!r}).exists(): time.sleep(0.02)\n",
    })
    monkeypatch.setenv("WORKBENCH_PLUGINS_DIR", str(folder))
    monkeypatch.setenv("WORKBENCH_PLUGIN_TIMEOUT", "0.3")
    app = WorkbenchApp(runs_root=tmp_path / "runs", keys_file=tmp_path / "no-keys.toml")
    try:
        async with app.run_test(size=(100, 30)) as pilot:  # plugins load after the first paint
            deadline = time.monotonic() + 30
            while app.screen.dataset != "names" and time.monotonic() < deadline:
                await pilot.pause(0.05)
            await pilot.pause()
            shown = [n.message for n in app._notifications]
            assert any("bx4_exits" in m and "sys.exit(3)" in m for m in shown), shown
            assert any("bx4_stuck" in m and "did not finish importing within 0.3 s" in m for m in shown), shown
            assert app.screen.dataset == "names"
            assert "bx4-good" in app.registry.datasets
    finally:
        release.write_text("go")


# -- lazy imports in the engine, and models that break the task's contract ----------------------
def bad_models(prefix: str) -> dict[str, str]:
    return {
        f"{prefix}_models.py": f"""
            from workbench.api import ArchitectureSpec, DatasetSpec, hookimpl

            def arch(name, build):
                return ArchitectureSpec(name=name, tasks=("classification",), description=name, build=build)

            def load_and_exit(context, params):
                raise SystemExit(4)

            @hookimpl
            def workbench_architectures():
                return [arch("tuple-net", "_{prefix}_nets:build_tuple"), arch("wide-net", "_{prefix}_nets:build_wide"),
                        arch("flat-net", "_{prefix}_nets:build_flat"), arch("exit-import", "_{prefix}_exit:build"),
                        arch("exit-build", "_{prefix}_nets:build_and_exit")]

            @hookimpl
            def workbench_datasets():
                return [DatasetSpec(name="{prefix}-exit-data", task="classification", description="exits",
                                    load=load_and_exit)]
            """,
        f"_{prefix}_nets.py": """
            import sys

            from torch import nn

            class Net(nn.Module):
                def __init__(self, context, outputs, shape):
                    super().__init__()
                    self.embedding = nn.Embedding(context.vocab_size, outputs)
                    self.shape = shape

                def forward(self, tokens, lengths):
                    logits = self.embedding(tokens).sum(dim=1)
                    if self.shape == "tuple":
                        return logits, lengths, logits
                    return logits.flatten() if self.shape == "flat" else logits

            def build_tuple(context, params):
                return Net(context, context.num_classes, "tuple")

            def build_wide(context, params):   # one output too many: trained to "finished" before
                return Net(context, context.num_classes + 1, "plain")

            def build_flat(context, params):
                return Net(context, context.num_classes, "flat")

            def build_and_exit(context, params):
                sys.exit("no model today")
            """,
        f"_{prefix}_exit.py": "import sys\nsys.exit(5)\n",
        f"{prefix}_good.py": good_dataset(f"{prefix}-good"),
    }


BROKEN = [
    ("good", "tuple-net", "architecture 'tuple-net' (plugin 'bm_models'): its model's output does not fit the "
                          "classification task: forward(tokens [4, 2], lengths [4]) must return a logits tensor "
                          "[batch, num_classes], not tuple"),
    ("good", "wide-net", "architecture 'wide-net' (plugin 'bm_models'): its model's output does not fit the "
                         "classification task: forward(tokens [4, 2], lengths [4]) returned shape [4, 3]; "
                         "expected logits [4, 2] (batch, num_classes)"),
    ("good", "flat-net", "returned shape [8]; expected logits [4, 2]"),
    ("good", "exit-import", "architecture 'exit-import' (plugin 'bm_models'): its plugin could not load its "
                            "model (SystemExit: sys.exit(5) was called"),
    ("good", "exit-build", "architecture 'exit-build' (plugin 'bm_models') while building the model: "
                           "SystemExit: sys.exit('no model today') was called"),
    ("exit-data", "rnn", "dataset 'bm-exit-data' (plugin 'bm_models') while loading: SystemExit: sys.exit(4)"),
]


def test_a_broken_plugin_model_or_loader_is_one_line_before_training(tmp_path: Path, capsys, fresh_registry):
    """Through `workbench train`: one line naming architecture and plugin, exit 2, no run left behind,
    and the run trained before is untouched. (Before: tuple-net and flat-net ended in an engine
    traceback, wide-net trained to "finished", the sys.exit() ones ended workbench silently.)"""
    from workbench.cli import main

    folder = plant(tmp_path / "plugins", bad_models("bm"))
    fast = sum((["--set", s] for s in FAST), [])
    assert main(["--plugins-dir", str(folder), "train", "--dataset", "bm-good", *fast]) == 0
    runs = tmp_path / "runs"
    (earlier,) = runs.iterdir()
    saved = {p.name: p.read_bytes() for p in earlier.iterdir() if p.is_file()}
    for dataset, arch, expected in BROKEN:
        capsys.readouterr()
        code = main(["--plugins-dir", str(folder), "train", "--dataset", f"bm-{dataset}", "--arch", arch,
                     "--set", "epochs=1"])
        err = capsys.readouterr().err
        assert code == 2, (arch, err)
        assert err.startswith("workbench: error: ") and err.count("\n") == 1 and expected in err, err
        assert list(runs.iterdir()) == [earlier]
    assert {p.name: p.read_bytes() for p in earlier.iterdir() if p.is_file()} == saved
