"""The headless CLI end to end, as a script or CI job would use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import FAST


def workbench(*args: str, input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          input=input, env=os.environ.copy(), timeout=300, cwd=cwd)


def fast_sets(*extra: str) -> list[str]:
    return [part for item in [*FAST, *extra] for part in ("--set", item)]


@pytest.fixture()
def trained(shared_data):
    result = workbench("train", "--dataset", "names", "--data-dir", str(shared_data), "--device", "cpu",
                       *fast_sets("epochs=2", "lr=0.01"), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_train_json_eval_predict_runs(trained, shared_data):
    assert trained["state"] == "finished"
    metrics = trained["metrics"]
    assert {"accuracy", "balanced_accuracy", "top_k_accuracy", "loss", "confusion_matrix"} <= set(metrics)
    checkpoint = trained["checkpoint"]
    assert Path(checkpoint).is_file()

    result = workbench("eval", checkpoint, "--data-dir", str(shared_data), "--json")
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    assert evaluated["metrics"]["accuracy"] == pytest.approx(metrics["accuracy"])
    assert evaluated["checkpoint"] == checkpoint

    result = workbench("predict", trained["run"], "Dostoevsky", "Nakamura", "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    assert [p["input"] for p in predictions] == ["Dostoevsky", "Nakamura"]
    assert len(predictions[0]["top"]) == 3

    text = workbench("predict", "latest", "--top-k", "2", input="Smith\n\nRossi\n")
    assert text.returncode == 0 and "Smith" in text.stdout and "Rossi" in text.stdout

    listing = json.loads(workbench("runs", "--json").stdout)
    assert [r["id"] for r in listing["runs"]] == [trained["run"]]
    assert listing["runs"][0]["state"] == "finished"
    shown = json.loads(workbench("runs", "show", trained["run"], "--json").stdout)
    assert shown["config"]["dataset"] == "names" and shown["results"]["metrics"]["accuracy"] > 0


@pytest.mark.slow
def test_progress_output_and_resume(shared_data):
    result = workbench("train", "--dataset", "names", "--data-dir", str(shared_data), *fast_sets())
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stderr and "samples/s" in result.stderr
    assert "checkpoint:" in result.stdout
    run_id = result.stdout.split()[1]
    refused = workbench("train", "--resume", run_id, "--set", "model.hidden_size=48")
    assert refused.returncode == 2
    assert "a resumed run keeps its data and model parameters; only train.* may change" in refused.stderr
    resumed = workbench("train", "--resume", run_id, "--set", "epochs=2", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs_completed"] == 2


@pytest.mark.slow
def test_config_file_round_trip(shared_data, tmp_path):
    setup = tmp_path / "setup.toml"
    result = workbench("train", "--dataset", "names", "--arch", "lstm", "--data-dir", str(shared_data),
                       *fast_sets("model.bidirectional=true"), "--save-config", str(setup), "--json")
    assert result.returncode == 0, result.stderr
    text = setup.read_text()
    assert 'arch = "lstm"' in text and "bidirectional = true" in text
    again = workbench("train", "--config", str(setup), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["metrics"]["accuracy"] == pytest.approx(
        json.loads(result.stdout)["metrics"]["accuracy"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "names", "--set", "lr=0"], "lr must be a number from 1e-08 to 10 (got 0)"),
        (["train", "--dataset", "names", "--set", "batch_size=lots"], "batch_size must be an integer"),
        (["train", "--dataset", "names", "--set", "optimizer=rmsprop"], "optimizer must be one of adam, adamw"),
        (["train", "--dataset", "names", "--set", "hidden"], "--set expects key=value"),
        (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["train", "--dataset", "names", "--arch", "transformer"], "unknown architecture 'transformer'"),
        (["train", "--dataset", "names", "--device", "tpu"], "unknown device 'tpu'"),
        (["train", "--dataset", "names", "--device", "cuda:1"], "is not available"),
        (["train", "--dataset", "names", "--data-dir", "/nonexistent/folder"], "no names data in /nonexistent/folder"),
        (["train"], "choose a dataset with --dataset"),
        (["train", "--config", "/nonexistent.toml"], "config file /nonexistent.toml does not exist"),
        (["predict", "/nonexistent.pt", "x"], "checkpoint /nonexistent.pt does not exist"),
        (["eval", "no-such-run"], "no run 'no-such-run'"),
        (["runs", "delete"], "needs a run id"),
    ],
)
@pytest.mark.slow
def test_user_mistakes_are_one_line_and_exit_2(args, message):
    result = workbench(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error:"), result.stderr
    assert message in lines[0]


@pytest.mark.slow
def test_corrupt_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    result = workbench("predict", str(bad), "x", "--json")
    assert result.returncode == 2 and "not a readable workbench checkpoint" in result.stderr
    assert "error" in json.loads(result.stdout)


@pytest.mark.slow
def test_generate_refuses_a_classifier(trained):
    result = workbench("generate", trained["checkpoint"], "--prime", "a")
    assert result.returncode == 2 and "only language models generate text" in result.stderr


def test_plugins_and_devices_json():
    plugins = json.loads(workbench("plugins", "--json").stdout)
    assert plugins["datasets"]["names"]["default_arch"] == "gru"
    assert any(p["name"] == "lr" for p in plugins["datasets"]["names"]["params"]) is False
    assert {"elman", "rnn", "lstm", "gru"} <= set(plugins["architectures"])
    devices = json.loads(workbench("devices", "--json").stdout)["devices"]
    assert devices[0]["name"] == "cpu" and devices[0]["available"]


@pytest.mark.parametrize(
    ("kind", "result", "line"),
    [
        ("classification", {"metrics": {"loss": 1.0, "accuracy": 0.5, "balanced_accuracy": 0.25, "top_k_accuracy": 0.75,
                                        "count": 10, "confusion_matrix": [[1]]}},
         "test: loss 1.0000  accuracy 0.5000  balanced_accuracy 0.2500  top_k_accuracy 0.7500  (best epoch 2)"),
        ("tagging", {"metrics": {"loss": 0.5, "accuracy": 0.875, "oov_accuracy": 0.5, "top_k": 3}},
         "test: loss 0.5000  accuracy 0.8750  oov_accuracy 0.5000  (best epoch 2)"),
        ("language_model", {"metrics": {}, "valid_metrics": {"loss": 1.5, "perplexity": 4.5, "bits_per_char": 2.0}},
         "valid (no test split): loss 1.5000  perplexity 4.5000  bits_per_char 2.0000  (best epoch 2)"),
        ("a_future_kind", {"metrics": {"loss": 1.0, "f1": 0.5, "note": "x"}}, "test: loss 1.0000  f1 0.5000  (best epoch 2)"),
    ],
)
def test_train_summary_shows_the_task_kinds_headline_metrics(capsys, kind, result, line):
    from workbench.cli import _print_train_summary

    _print_train_summary({"run": "r1", "state": "finished", "message": "", "best_epoch": 2,
                          "checkpoint": "r1/best.pt", "valid_metrics": {}, **result}, kind)
    assert capsys.readouterr().out.splitlines() == ["run r1 finished", line, "checkpoint: r1/best.pt"]


def test_headline_metrics_are_one_table_readable_without_torch():
    code = ("import sys, workbench.cli, workbench.config, workbench.headlines; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    from workbench.headlines import HEADLINE_METRICS
    from workbench.tasks import task_class

    for kind, names in HEADLINE_METRICS.items():
        assert task_class(kind).headline_metrics is names


def test_help_lists_every_environment_variable():
    from workbench.settings import VARIABLES

    shown = workbench("--help").stdout
    assert "environment:" in shown and all(name in shown for name in VARIABLES)


def test_default_folders_come_from_the_settings(monkeypatch, tmp_path):
    from workbench.data import default_cache_dir, default_data_dir
    from workbench.runs import default_runs_dir
    from workbench.tui.keys import keymap_path

    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("WORKBENCH_KEYS", str(tmp_path / "k.toml"))
    assert (default_runs_dir(), default_cache_dir(), default_data_dir(), keymap_path()) == (
        tmp_path / "r", tmp_path / "c", tmp_path / "d", tmp_path / "k.toml")
    monkeypatch.delenv("WORKBENCH_DATA_DIR")
    assert default_data_dir() is None
