"""The app's training process: detached, and blind to modules lying in the current folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from workbench.config import resolve_config
from workbench.tui.launch import start_training


def test_a_module_in_the_current_folder_is_not_run_by_the_trainer(tmp_path: Path, registry,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m` puts the current folder first on sys.path: a planted pluggy.py (the trainer
    imports pluggy) would run when the user presses t. The launcher must not let it."""
    cwd = tmp_path / "here"
    cwd.mkdir()
    marker = tmp_path / "planted-module-ran"
    for name in ("pluggy", "numpy", "workbench_plugins"):
        (cwd / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\nraise SystemExit(3)\n")
    monkeypatch.chdir(cwd)
    config = resolve_config(registry, "brackets", "gru", "cpu",
                            ["epochs=1", "limit=64", "batch_size=32", "threads=1", "data.train_size=64",
                             "data.test_size=32", "data.length=20", "model.hidden_size=8"])
    launched = start_training(config, tmp_path / "runs")
    try:
        code = launched.process.wait(timeout=240)
    except subprocess.TimeoutExpired:
        launched.process.kill()
        raise
    finally:
        launched.close()
    assert not marker.exists(), f"a module from the current folder ran in the trainer: {marker.read_text()}"
    assert code == 0, launched.output()
    assert launched.run.status()["state"] == "finished"
