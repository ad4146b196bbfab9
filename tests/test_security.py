"""Hostile files: crafted checkpoints and run configs, and data that carries terminal escape sequences.

A real tiny model is trained on a real bring-your-own dataset whose class name is an escape
sequence (retitle the terminal, clear the screen); checkpoints are crafted from a real one by
``torch.load``, edit, ``torch.save``; the CLI is run as users run it.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workbench import cli
from workbench.terminal import printable

EVIL = "\x1b]0;pwned\x07\x1b[2J"
EVIL_CLASS = EVIL + "bad"
TINY = ["epochs=1", "model.hidden_size=8", "model.embedding_dim=4", "batch_size=8", "log_every=1"]


def _train(data: Path, run_dir: Path, dataset: str, extra: list[str]) -> Path:
    from workbench.config import plan_run
    from workbench.engine import Trainer
    from workbench.registry import get_registry

    registry = get_registry()
    plan = plan_run(registry, dataset=dataset, data_dir=str(data), assignments=[*TINY, *extra], run_dir=run_dir)
    result = Trainer(plan.config, registry=registry, run=plan.run).train()
    assert result.checkpoint is not None
    return result.checkpoint


@pytest.fixture(scope="module")
def evil_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a GRU trained on a text-folder dataset whose first class folder is named EVIL + "bad"."""
    root = tmp_path_factory.mktemp("evil-classes")
    for label, words in ((EVIL_CLASS, "awful terrible bad"), ("good", "great lovely fine")):
        folder = root / "data" / label
        folder.mkdir(parents=True)
        for i in range(10):
            (folder / f"{i}.txt").write_text(f"{words} {i}\n", encoding="utf-8")
    return _train(root / "data", root / "run", "text-folder", [])


@pytest.fixture(scope="module")
def evil_language_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a char LM trained on a text file full of escape sequences."""
    root = tmp_path_factory.mktemp("evil-text")
    text = root / "notes.txt"
    text.write_text(f"hello {EVIL} world\n" * 40, encoding="utf-8")
    return _train(text, root / "run", "text-file", ["data.seq_len=16"])


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def crafted(original: Path, tmp_path: Path, name: str, edit: Any) -> Path:
    """A copy of a real checkpoint with ``edit`` applied to its payload, saved as torch saves it."""
    import torch

    payload = torch.load(original, weights_only=True)
    edit(payload)
    path = tmp_path / f"{name}.pt"
    torch.save(payload, path)
    return path


# -- printable -----------------------------------------------------------------------------------
def test_printable_shows_control_characters_and_keeps_layout():
    assert printable(EVIL_CLASS) == "␛]0;pwned␇␛[2Jbad"
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("a\tb\nc", layout=False) == "a␉b␊c"
    assert printable("\x7f\x9b31m\r") == "␡\\x9b31m␍"
    assert printable("user\u202etxt.exe") == "user\\u202etxt.exe"  # a right-to-left override, shown
    assert printable("Ślusàrski → 日本") == "Ślusàrski → 日本"
    assert printable(3) == "3"


# -- terminal escapes: CLI ----------------------------------------------------------------------
@pytest.mark.slow
def test_predict_and_eval_show_an_escape_class_name_and_json_keeps_it_exact(evil_classifier, capsys):
    code, out, _ = run_cli(capsys, "predict", str(evil_classifier), "awful terrible")
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "␛]0;pwned␇␛[2Jbad" in out

    code, out, _ = run_cli(capsys, "predict", "--json", str(evil_classifier), "awful terrible")
    labels = {entry["label"] for entry in json.loads(out)["predictions"][0]["top"]}
    assert code == 0 and labels == {EVIL_CLASS, "good"}  # exact, escape and all

    code, out, _ = run_cli(capsys, "eval", str(evil_classifier))
    assert code == 0 and "\x1b" not in out and "per class" in out and "␛]0;pwned" in out
    code, out, _ = run_cli(capsys, "eval", "--json", str(evil_classifier))
    assert EVIL_CLASS in json.loads(out)["metrics"]["per_class_accuracy"]


@pytest.mark.slow
def test_generate_shows_escapes_in_generated_text_and_json_keeps_them(evil_language_model, capsys):
    args = ["generate", str(evil_language_model), "--prime", EVIL, "--length", "80", "--seed", "1"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and out.startswith("␛]0;pwned␇␛[2J")
    assert not set(out) & {"\x1b", "\x07"}
    code, out, _ = run_cli(capsys, *args, "--json")
    answer = json.loads(out)
    assert code == 0 and answer["prime"] == EVIL and answer["text"].startswith(EVIL)
    assert "\x1b" not in out  # json.dumps writes \u001b: the JSON line itself is safe on a terminal too


def test_runs_list_and_error_lines_show_escapes_in_names(tmp_path, capsys):
    root = tmp_path / "runs"
    evil_run = root / f"r{EVIL}"
    evil_run.mkdir(parents=True)
    (evil_run / "config.json").write_text(json.dumps({"dataset": "names", "arch": "gru"}), encoding="utf-8")
    (evil_run / "status.json").write_text(json.dumps({"state": "finished"}), encoding="utf-8")
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", str(root))
    assert code == 0 and "r␛]0;pwned␇␛[2J" in out and "\x1b" not in out
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", str(root), "--json")
    assert [r["id"] for r in json.loads(out)["runs"]] == [f"r{EVIL}"]

    code, _, err = run_cli(capsys, "predict", str(tmp_path / f"x{EVIL}\n.pt"), "text")
    assert code == 2 and "\x1b" not in err and "x␛]0;pwned" in err and err.count("\n") == 1


def test_console_progress_lines_show_escapes():
    from workbench.events import StatusEvent
    from workbench.progress import ConsoleProgress

    for live in (True, False):
        stream = io.StringIO()
        progress = ConsoleProgress(stream, live=live)
        progress(StatusEvent(phase="prepare", message=f"loading {EVIL}"))
        progress(StatusEvent(message=f"note {EVIL}"))
        written = stream.getvalue().replace("\r\x1b[K", "")  # its own line clearing is the only escape
        assert "\x1b" not in written and "\x07" not in written and "note ␛]0;pwned" in written


# -- terminal escapes: the app -------------------------------------------------------------------
def drawn(screen: Any) -> str:
    """The whole screen as composed for the terminal, after the app's line filters."""
    return "\n".join("".join(segment.text for segment in strip) for strip in
                     screen._compositor.render_full_update().strips)


@pytest.mark.slow
async def test_app_predict_screen_shows_an_escape_class_name(evil_classifier, tmp_path):
    from test_tui import plain, wait_for

    from workbench.tui.app import WorkbenchApp

    path = crafted(evil_classifier, tmp_path, "run-id", lambda payload: payload.__setitem__("run_id", f"r{EVIL}"))
    app = WorkbenchApp(runs_root=tmp_path / "runs", keys_file=tmp_path / "keys.toml")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("f5")
        screen = app.screen
        screen.open_checkpoint(path)
        await wait_for(pilot, lambda: screen.loaded is not None, timeout=30)
        await pilot.press(*"awful")
        await wait_for(pilot, lambda: "␛]0;pwned" in plain(screen.query_one("#answer")), timeout=30)
        await pilot.pause()
        shown = drawn(screen)
        assert "awful → ␛]0;pwned␇␛[2Jbad" in shown  # the predict bars
        assert "␛]0;pwned␇␛[2Jb…" in shown and "␛]0 goo" in shown  # per-class bars, confusion matrix columns
        assert "r␛]0;pwned␇␛[2J run-id.pt: text-folder" in shown  # the run id in the model line
        assert not set(shown) & {"\x1b", "\x07", "\x9b"}

        # text that reaches a widget raw (no screen made it printable): the app's line filter removes them
        from rich.text import Text
        from textual.widgets import Static

        await screen.mount(Static(Text(f"raw {EVIL}\x9b31m end"), id="raw"), before=0)
        await pilot.pause()
        shown = drawn(screen)
        assert "raw ]0;pwned[2J31m end" in shown and not set(shown) & {"\x1b", "\x07", "\x9b"}


# -- crafted checkpoints -------------------------------------------------------------------------
def _set(section: str, key: str, value: Any) -> Any:
    return lambda payload: payload["config"][section].__setitem__(key, value)


CRAFTED = [
    ("too-many-layers", _set("model", "num_layers", 17), "model.num_layers must be an integer from 1 to 16 (got 17)"),
    ("wrong-type", _set("model", "hidden_size", "huge"), "model.hidden_size must be an integer"),
    ("huge-lr", _set("train", "lr", 1e9), "train.lr must be a number from"),
    ("unknown-key", _set("model", "backdoor", 1), "unknown parameter model.backdoor"),
    ("unknown-top-key", lambda p: p["config"].__setitem__("evil", 1), "unknown run configuration keys ['evil']"),
    ("arch-not-a-name", lambda p: p["config"].__setitem__("arch", ["gru"]), "arch must be a name"),
    ("classes-not-text", lambda p: p["task_state"].__setitem__("classes", [1, 2]),
     "task_state 'classes' must be a list of strings"),
    ("tensor-in-task-state", lambda p: p["task_state"].__setitem__("max_length", p["model_state"]["input.embedding.weight"]),
     "task_state 'max_length' holds a Tensor"),
    ("vocab-larger-than-weights",
     lambda p: p["task_state"].__setitem__("vocab", p["task_state"]["vocab"] + [f"w{i}" for i in range(50_000)]),
     "describe a model of"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "edit", "message"), CRAFTED, ids=[c[0] for c in CRAFTED])
def test_a_crafted_checkpoint_is_one_line_naming_file_and_parameter(evil_classifier, tmp_path, capsys, name, edit,
                                                                    message):
    path = crafted(evil_classifier, tmp_path, name, edit)
    before = path.read_bytes()
    for command in (["predict", str(path), "text"], ["eval", str(path)]):
        code, out, err = run_cli(capsys, *command)
        assert code == 2 and out == ""
        assert err.startswith("workbench: error: ") and err.count("\n") == 1
        assert message in err and str(path) in err
    assert path.read_bytes() == before
    code, _, _ = run_cli(capsys, "predict", str(evil_classifier), "text")  # the real one still works
    assert code == 0


@pytest.mark.slow
def test_load_trained_refuses_a_crafted_config_before_building(evil_classifier, tmp_path, monkeypatch):
    from workbench import engine
    from workbench.errors import WorkbenchError

    built: list[Any] = []
    real_build = engine.build_model
    monkeypatch.setattr(engine, "build_model", lambda *a, **k: built.append(a) or real_build(*a, **k))
    path = crafted(evil_classifier, tmp_path, "layers", _set("model", "num_layers", 99))
    with pytest.raises(WorkbenchError, match=r"layers\.pt: model\.num_layers must be an integer from 1 to 16"):
        engine.load_trained(path, device="cpu")
    assert built == []
    assert engine.load_trained(evil_classifier, device="cpu").config.model["num_layers"] >= 1


def _limited_memory() -> None:
    limit = 3 * 2**30  # far more than workbench needs here, far less than the crafted models would take
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="address-space limits (RLIMIT_AS) are enforced on Linux")
@pytest.mark.parametrize(("hidden", "message"), [
    (40000, "model.hidden_size must be an integer from 1 to 8192 (got 40000)"),  # ~19 GB, outside the schema
    (8192, "describe a model of"),  # inside the schema, but not the model whose weights the file holds
])
def test_a_checkpoint_sized_past_memory_fails_before_allocating(evil_classifier, tmp_path, hidden, message):
    path = crafted(evil_classifier, tmp_path, f"h{hidden}", _set("model", "hidden_size", hidden))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "workbench", "predict", str(path), "awful"], capture_output=True,
                          text=True, timeout=120, env=env, preexec_fn=_limited_memory)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr and "allocate" not in done.stderr


# -- crafted run configs -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_crafted_config_json_is_refused_on_resume_before_anything_is_written(evil_classifier, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(evil_classifier.parent, run)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    config["model"]["hidden_size"] = 40000
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--quiet")
    assert code == 2 and "config.json" in err and "hidden_size must be an integer from 1 to 8192 (got 40000)" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
