"""Runaway runs: data that would blow up memory, models too big for the machine, steps too slow to
stop, a loss that climbs, a precision the hardware cannot run. Each case provoked for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from helpers import FAST
from workbench import engine
from workbench.cli import main
from workbench.config import resolve_config
from workbench.engine import Trainer, train
from workbench.events import StartEvent, StatusEvent
from workbench.runs import Run, load_checkpoint
from workbench.training import LossWatch

SLOW_PLUGIN = '''
"""A dataset of eight strings and a model whose training steps become very slow after the first epoch."""
from workbench.api import ArchitectureSpec, ClassificationData, DatasetSpec, hookimpl


def load(context, params):
    examples = [("ab" * (i + 1), i % 2) for i in range(8)]
    return ClassificationData(classes=["even", "odd"], train=examples, valid=examples[:2], test=examples[:2])


@hookimpl
def workbench_datasets():
    return [DatasetSpec(name="slowset", task="classification", description="eight strings", load=load,
                        default_arch="slowpool")]


@hookimpl
def workbench_architectures():
    return [ArchitectureSpec(name="slowpool", tasks=("classification",), description="sleeps in forward",
                             build="_slow_models:build")]
'''

SLOW_MODELS = '''
import time

from torch import nn


class SlowPool(nn.Module):
    """From the third training step on, forward takes a minute, in many short pieces (like a long
    Python loop over time steps), so only an interrupt between them can end it early."""

    def __init__(self, context):
        super().__init__()
        self.embedding = nn.Embedding(context.vocab_size, context.num_classes, padding_idx=context.pad_index)
        self.training_calls = 0

    def forward(self, tokens, lengths):
        if self.training:
            self.training_calls += 1
            if self.training_calls > 2:
                for _ in range(1200):
                    time.sleep(0.05)
        return self.embedding(tokens).sum(dim=1)


def build(context, params):
    return SlowPool(context)
'''


@pytest.fixture()
def slow_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "slow-plugins"
    folder.mkdir()
    (folder / "slowset.py").write_text(textwrap.dedent(SLOW_PLUGIN))
    (folder / "_slow_models.py").write_text(textwrap.dedent(SLOW_MODELS))
    monkeypatch.setenv("WORKBENCH_PLUGINS_DIR", str(folder))
    return folder


def sets(*assignments: str) -> list[str]:
    return [arg for assignment in assignments for arg in ("--set", assignment)]


def names_folder(shared_data: Path, target: Path, long_line: int) -> Path:
    """A names-format folder of three real languages; one file gains a line of ``long_line`` letters."""
    target.mkdir()
    for language in ("Korean", "Vietnamese", "Irish"):
        (target / f"{language}.txt").write_bytes((shared_data / "names" / f"{language}.txt").read_bytes())
    with (target / "Irish.txt").open("a", encoding="utf-8") as handle:
        handle.write("\n" + "O" * long_line + "\n")
    return target


# -- length limits ---------------------------------------------------------------------------
def test_each_kind_cuts_long_examples_to_max_tokens():
    from workbench.tasks.classification import ClassificationTask
    from workbench.tasks.seq2seq import Seq2SeqTask
    from workbench.tasks.tagging import TaggingTask
    from workbench.text import Vocab

    start = ClassificationTask(Vocab(["<pad>", "<unk>", "a"]), ["x", "y"], "char", "none", 0, "start")
    examples = [([1, 2, 3, 4, 5], 0), ([2], 1)]
    assert start.cut_long(examples, 3) == ([([1, 2, 3], 0), ([2], 1)], 1, 5)
    end = ClassificationTask(Vocab(["<pad>", "<unk>", "a"]), ["x", "y"], "char", "none", 0, "end")
    assert end.cut_long(examples, 3)[0][0] == ([3, 4, 5], 0)
    assert start.cut_long(examples, 0) == (examples, 0, 5)  # 0 = no limit
    tagged = [([1, 2, 3], torch.zeros(3, 4), [0, 1, 0])]
    cut, count, longest = TaggingTask.cut_long(object.__new__(TaggingTask), tagged, 2)
    assert (count, longest, cut[0][0], cut[0][1].shape[0], cut[0][2]) == (1, 3, [1, 2], 2, [0, 1])
    pairs = [([1, 2, 3], [4, 5, 6, 7], ("a", "b", "c"), ("d", "e", "f", "g"))]
    cut, count, longest = Seq2SeqTask.cut_long(object.__new__(Seq2SeqTask), pairs, 2)
    assert (count, longest, cut[0]) == (1, 4, ([1, 2], [4, 5], ("a", "b"), ("d", "e")))


@pytest.mark.slow
def test_a_one_megabyte_name_is_cut_and_reported(shared_data, tmp_path, monkeypatch, capsys):
    """The issue's case: one 1 MB line in a names file drove training to 23.7 GB. Now it is cut to
    max_tokens (the widest batch the model sees is bounded) and the run says so."""
    import workbench.tasks.classification as classification

    folder = names_folder(shared_data, tmp_path / "names", long_line=1_048_576)
    widths: list[int] = []
    pad = classification.pad_sequences

    def spy(sequences, *args):
        tokens, lengths = pad(sequences, *args)
        widths.append(tokens.shape[1])
        return tokens, lengths

    monkeypatch.setattr(classification, "pad_sequences", spy)
    code = main(["train", "--dataset", "names", "--data-dir", str(folder), *sets(*FAST, "max_tokens=300")])
    err = capsys.readouterr().err
    assert code == 0
    assert "cut 1 example longer than max_tokens=300" in err and "1,048,576 tokens" in err
    assert "raise train.max_tokens" in err
    assert widths and max(widths) == 300


# -- memory estimate -------------------------------------------------------------------------
def test_a_run_too_big_for_memory_is_refused_unless_allowed(shared_data, monkeypatch, capsys, isolated_dirs):
    monkeypatch.setattr(engine, "device_memory_bytes", lambda device: 1_000_000)
    base = ["train", "--dataset", "names", "--data-dir", str(shared_data / "names"), *sets(*FAST, "limit=200")]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "workbench: error: this run needs about" in err
    assert "only 976.6 KB is free on CPU" in err and "train.allow_large=true" in err
    assert not (isolated_dirs / "runs").exists() or not any((isolated_dirs / "runs").iterdir())

    assert main([*base, "--set", "allow_large=true"]) == 0
    err = capsys.readouterr().err
    assert "parameters (~" in err and "per step)" in err


def test_the_estimate_counts_weights_gradients_optimizer_and_activations():
    from workbench.resources import available_memory_bytes, estimate_step_bytes

    weights_only = estimate_step_bytes(1000, "adam", 1, 1, {"hidden_size": 1})
    assert weights_only == 1000 * 4 * 4 + 12 * 4
    # the model: an LSTM at hidden_size=8192, 271 million parameters: over 4 GB before activations
    assert estimate_step_bytes(271_000_000, "adam", 64, 20, {"hidden_size": 8192}) > 4 * 2**30
    assert (available_memory_bytes() or 1) > 0


# -- stopping slow steps ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_stop_request_ends_a_slow_step_within_seconds(slow_plugin, registry, isolated_dirs):
    from workbench.registry import get_registry, reset_registry

    reset_registry()
    plugins = get_registry()
    config = resolve_config(plugins, "slowset", None, "cpu", ["epochs=5", "batch_size=4", "log_every=1"])
    trainer = Trainer(config, registry=plugins)
    trainer.stop_grace = 1.0

    def stop_once_epoch_one_is_saved(event):  # as the app's stop does: through the control file
        if event.kind == "epoch":
            trainer.run.request("stop")
            requested.append(time.monotonic())

    requested: list[float] = []
    trainer.on_event = stop_once_epoch_one_is_saved
    result = trainer.train()
    reset_registry()
    assert time.monotonic() - requested[0] < 5  # a step alone would take a minute
    assert result.state == "stopped" and "abandoned after 1 s" in result.message
    assert Run(trainer.run.path).status()["state"] == "stopped"
    assert load_checkpoint(trainer.run.checkpoint_path("last"))["epoch"] == 1


@pytest.mark.slow
def test_sigterm_ends_a_slow_training_process_within_seconds(slow_plugin, isolated_dirs):
    runs = isolated_dirs / "runs"
    process = subprocess.Popen([sys.executable, "-m", "workbench", "train", "--dataset", "slowset",
                                *sets("epochs=5", "batch_size=4")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "WORKBENCH_RUNS_DIR": str(runs)})
    try:
        deadline = time.monotonic() + 60
        while not list(runs.glob("*/last.pt")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(runs.glob("*/last.pt")), "the first epoch never finished"
        time.sleep(0.5)  # inside the slow step now
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert time.monotonic() - sent < 15
    finally:
        process.kill()
    run = Run(next(runs.iterdir()))
    assert run.status()["state"] == "stopped"
    assert load_checkpoint(run.checkpoint_path("last"))["epoch"] == 1
    assert "Traceback" not in err


# -- a climbing loss -------------------------------------------------------------------------
def test_loss_watch_warns_once_when_the_loss_climbs():
    watch = LossWatch()
    assert watch.update(2.9) is None and watch.update(20.0) is None
    warning = watch.update(117.0)
    assert warning == "the training loss rose to 40x its first value (2.9 -> 117): lower lr or set clip_grad_norm"
    assert watch.update(300.0) is None and watch.warning == warning
    small = LossWatch()
    small.update(0.01)
    assert small.update(0.5) is None  # 50x, but a rise of less than 1 is no divergence


@pytest.mark.slow
def test_a_learning_rate_of_ten_says_the_loss_climbed(registry, shared_data):
    events: list = []
    config = resolve_config(registry, "names", "gru", "cpu",
                            [*FAST, "lr=10", "clip_grad_norm=0", "limit=2000", "batch_size=32"],
                            data_dir=str(shared_data / "names"))
    result = train(config, registry=registry, on_event=events.append)
    assert result.state == "finished"
    warnings = [e.message for e in events if isinstance(e, StatusEvent) and "loss rose to" in e.message]
    assert len(warnings) == 1 and "lower lr or set clip_grad_norm" in warnings[0]
    assert "lower lr or set clip_grad_norm" in result.message


# -- precision the hardware cannot run ---------------------------------------------------------
def _broken_trial(*args, **kwargs):
    raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive")


def test_bf16_the_cpu_cannot_run_is_one_line_before_the_run(shared_data, monkeypatch, capsys, isolated_dirs):
    monkeypatch.setattr(engine, "trial_step", _broken_trial)
    code = main(["train", "--dataset", "names", "--data-dir", str(shared_data / "names"), *sets(*FAST, "limit=200", "precision=bf16")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == ("workbench: error: precision=bf16 is not supported on this CPU (could not create a primitive "
                   "descriptor for the LSTM forward propagation primitive); use precision=fp32\n")
    runs = isolated_dirs / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_precision_auto_falls_back_to_fp32_when_the_trial_fails(registry, shared_data, monkeypatch):
    monkeypatch.setattr(engine, "trial_step", _broken_trial)
    monkeypatch.setattr(engine, "resolve_precision", lambda precision, device: "bf16")
    events: list = []
    config = resolve_config(registry, "names", "gru", "cpu", [*FAST, "limit=200", "precision=auto"],
                            data_dir=str(shared_data / "names"))
    train(config, registry=registry, on_event=events.append)
    start = next(e for e in events if isinstance(e, StartEvent))
    assert start.precision == "fp32"
    assert any("training in fp32" in e.message for e in events if isinstance(e, StatusEvent))


def test_a_real_bf16_trial_step_leaves_no_gradients(registry, shared_data):
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no native bf16")
    config = resolve_config(registry, "names", "gru", "cpu", [*FAST, "limit=100", "precision=bf16"],
                            data_dir=str(shared_data / "names"))
    trainer = Trainer(config, registry=registry)
    try:
        prepared = trainer._prepare(trainer.options, torch.Generator(), None)
    finally:
        import shutil

        shutil.rmtree(trainer.run.path, ignore_errors=True)
    assert prepared.precision == "bf16"
    assert all(p.grad is None for p in prepared.model.parameters())



# -- the app: stopping... and a forced stop ----------------------------------------------------
@pytest.mark.slow
async def test_the_app_forces_a_stuck_run_to_stop_on_a_second_s(isolated_dirs, monkeypatch):
    """A run that was asked to stop and is still running (a single torch operation of minutes) can be
    forced: the app asks, kills the process, marks the run stopped and keeps its checkpoint."""
    from workbench.runs import atomic_write_json, save_checkpoint
    from workbench.tui.app import WorkbenchApp

    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: [])
    root = isolated_dirs / "runs"
    run = Run(root / "20260101-000000-names-gru")
    run.path.mkdir(parents=True)
    atomic_write_json(run.config_path, {"dataset": "names", "arch": "gru", "train": {}, "data": {}, "model": {}})
    save_checkpoint(run.checkpoint_path("last"), {"epoch": 1, "model_state": {"w": torch.ones(2)}})
    saved = run.checkpoint_path("last").read_bytes()
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        run.write_status(state="running", pid=stuck.pid, epoch=1)
        run.request("stop")
        app = WorkbenchApp(runs_root=root, keys_file=isolated_dirs / "no-keys.toml")
        async with app.run_test(size=(100, 30)) as pilot:
            app.stop_run(run)
            await pilot.pause(0.2)
            assert "Force it to stop now?" in app.screen.question
            await pilot.press("y")
            assert stuck.wait(timeout=10) != 0
            await pilot.pause(0.2)
            assert any("was forced to stop" in str(n.message) for n in app._notifications)
    finally:
        stuck.kill()
    status = run.status()
    assert status["state"] == "stopped" and "forced to stop from the app" in status["message"]
    assert run.checkpoint_path("last").read_bytes() == saved


@pytest.mark.slow
async def test_the_setup_form_shows_the_model_size_before_a_run(isolated_dirs, monkeypatch):
    """The issue's model size (hidden_size=8192): the form says how many parameters and how many GB per
    step before anything is started."""
    from workbench.registry import get_registry
    from workbench.tui.app import WorkbenchApp

    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: [])
    app = WorkbenchApp(runs_root=isolated_dirs / "runs", keys_file=isolated_dirs / "no-keys.toml",
                       registry=get_registry())  # loaded already: no after-paint load to wait for
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        estimate = screen.query_one("#estimate")
        hidden = screen.query_one("#p-model-hidden_size")
        hidden.value = "8192"
        deadline = time.monotonic() + 30
        while not estimate.display and time.monotonic() < deadline:
            await pilot.pause(0.1)
        text = str(estimate.render())
    count = int(text.split("model: ")[1].split(" parameters")[0].replace(",", ""))
    assert count > 200_000_000 and "GB/step" in text  # the default architecture, a GRU: 203 million
