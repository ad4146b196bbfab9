"""What the screens say must be true: one definition of how far a run got (Train screen, Runs screen,
``workbench runs``, the checkpoint), speed without the paused time, and language models' figures
named as what they are. Real short runs on the names data, stopped by their time limit or paused."""

from __future__ import annotations

import math
import threading
import time

import pytest

from helpers import FAST
from workbench import cli
from workbench.config import resolve_config
from workbench.engine import Trainer
from workbench.events import EpochEvent, StepEvent, format_epoch
from workbench.headlines import derived_metric, metric_label, plotted_metric, shown_value
from workbench.position import RunPosition
from workbench.runs import EventFollower, Run, load_checkpoint
from workbench.tui.logview import wrap_line
from workbench.tui.monitor import RunMonitor
from workbench.tui.render import checkpoint_position, stored_evaluation


# -- the definition --------------------------------------------------------------------------
def test_a_position_counts_complete_epochs_and_the_steps_of_the_next_rounded_down():
    stopped = RunPosition(epochs=12, epochs_done=3, step=260, steps=392)
    assert stopped.epoch == 4 and stopped.done == pytest.approx(3 + 260 / 392)
    assert stopped.short() == "3.6/12"  # 3.66 rounded down: never more than was trained
    assert stopped.long() == "3.6/12 epochs (epoch 4 step 260/392)"
    assert RunPosition(12, 12, 0, 392).long() == "12/12 epochs" and RunPosition(12, 12, 0, 392).fraction == 1.0
    almost = RunPosition(1, 0, 391, 392)
    assert almost.short() == "0.9/1" and almost.fraction < 1.0
    assert RunPosition(0, 0).short() == "0/?"


def step(epoch: int, at: int, steps: int = 10) -> StepEvent:
    return StepEvent(epoch=epoch, step=at, steps=steps, global_step=0, loss=1.0, grad_norm=1.0, lr=0.1,
                     samples_per_s=1.0, eta_s=1.0, metric_name="accuracy", metric=None)


def epoch_event(epoch: int, partial: bool) -> EpochEvent:
    return EpochEvent(epoch=epoch, epochs=4, train={"loss": 1.0}, valid={}, lr=0.1, seconds=1.0, samples_per_s=1.0,
                      best=False, partial=partial)


def test_events_and_status_give_the_same_position():
    # stopped in epoch 3 at step 6: two complete epochs, a partial third
    events = [epoch_event(1, False), epoch_event(2, False), epoch_event(3, True)]
    from_events = RunPosition.from_events(4, events, step(3, 6))
    assert from_events == RunPosition(4, 2, 6, 10)
    assert RunPosition.from_status({"epoch": 2, "step": 6, "steps": 10}, 4) == from_events
    # between epochs the last step event belongs to a complete epoch
    assert RunPosition.from_events(4, events[:2], step(2, 10)) == RunPosition(4, 2, 0, 10)
    # a status file written before steps were recorded still reads
    assert RunPosition.from_status({"epoch": 2}, 4).short() == "2/4"


# -- real runs ---------------------------------------------------------------------------------
def names_config(registry, shared_data, *extra):
    return resolve_config(registry, "names", None, "cpu", [*FAST, *extra], data_dir=str(shared_data))


@pytest.mark.slow
def test_a_run_stopped_by_its_time_limit_shows_one_position_everywhere(registry, shared_data, capsys):
    # about 900 steps of 16 names; the limit (0.6 s) ends the only epoch long before its last step
    config = names_config(registry, shared_data, "batch_size=16", "max_minutes=0.01")
    trainer = Trainer(config, registry=registry)
    result = trainer.train()
    run = trainer.run
    assert result.state == "finished" and "time limit" in result.message

    monitor = RunMonitor(Run(run.path))
    monitor.poll()
    shown = monitor.position()
    assert shown.epochs_done == 0 and 0 < shown.step < shown.steps  # not "epoch 1/1 step 904/904"
    assert monitor.progress()["fraction"] < 1.0
    # the status file (Runs screen, `workbench runs`) and the checkpoint say the same
    assert RunPosition.from_status(run.status(), 1) == shown
    best = load_checkpoint(run.checkpoint_path("best"))
    assert best["epoch"] == 0 and checkpoint_position(best) == f"after {shown.long()}"
    # the last step event is the step where it stopped, not the last multiple of log_every
    assert shown.step == best["position"]["step"]

    assert cli.main(["runs", "--runs-dir", str(run.path.parent)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(run.id))
    assert f" {shown.short()} " in line and shown.short().startswith("0.")


@pytest.mark.slow
def test_samples_per_second_and_eta_leave_out_the_paused_time(registry, shared_data):
    config = names_config(registry, shared_data, "epochs=3", "batch_size=16", "log_every=10")
    trainer = Trainer(config, registry=registry)
    run = trainer.run
    steps: list[dict] = []
    failures: list[BaseException] = []
    over = threading.Event()

    def control() -> None:
        follower = EventFollower(run.events_path)
        deadline = time.monotonic() + 60
        phase = "before"
        while time.monotonic() < deadline and not over.is_set():
            for event in follower.read_new():
                if event["type"] == "step":
                    steps.append({**event, "phase": phase})
                    if phase == "before" and len(steps) >= 6:
                        run.request("pause")
                        phase = "requested"
                    elif phase == "after" and sum(s["phase"] == "after" for s in steps) >= 3:
                        run.request("stop")
                        return
                if event["type"] == "state" and event["state"] == "paused":
                    time.sleep(2.0)  # paused for 2 s: ~100 times as long as a window of 10 steps takes
                    phase = "after"
                    run.request("resume")
            time.sleep(0.02)

    def guarded() -> None:
        try:
            control()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            failures.append(error)
        finally:
            run.request("stop")

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    try:
        trainer.train()
    finally:
        over.set()
        thread.join(timeout=30)
    if failures:
        raise failures[0]
    before = [s["samples_per_s"] for s in steps if s["phase"] == "before"]
    after = [s for s in steps if s["phase"] == "after"]
    assert before and after
    typical = sorted(before)[len(before) // 2]
    # the window that spans the pause: with the pause counted it would read ~1/100 of the usual speed
    assert after[0]["samples_per_s"] > typical / 5, (after[0]["samples_per_s"], typical)
    remaining = (after[0]["steps"] - after[0]["step"]) * 16 + (3 - after[0]["epoch"]) * 14453
    assert after[0]["eta_s"] == pytest.approx(remaining / after[0]["samples_per_s"], rel=0.01)
    # the epoch summary's speed leaves the pause out too
    epochs = [e for e in run.events() if isinstance(e, EpochEvent)]
    assert epochs and epochs[-1].samples_per_s > typical / 5


# -- language models: their loss is shown as bits per character ----------------------------
def test_a_language_models_loss_is_shown_as_bits_per_character_not_loss():
    event = EpochEvent(epoch=2, epochs=5, train={"loss": math.log(2) * 2.0},
                       valid={"loss": math.log(2) * 1.5, "bits_per_char": 1.5, "perplexity": 2 ** 1.5,
                              "accuracy": 0.4},
                       lr=0.1, seconds=1.0, samples_per_s=100.0, best=True, partial=False)
    line = format_epoch(event, "loss", ("perplexity", "bits_per_char", "accuracy"), compact=True,
                        kind="language_model")
    assert "loss" not in line
    assert "bpc 2.0000" in line and "valid bpc 1.5000" in line and line.count("bpc") == 2
    assert "ppl 2.8284" in line and "accuracy 0.4000" in line
    # a classifier's line is unchanged
    assert "loss" in format_epoch(event, "loss", (), kind="classification")
    assert metric_label("loss", "language_model") == "bits/char"
    assert shown_value("loss", "language_model", math.log(2)) == "1.0000"
    # the second plot of a language model is its perplexity, not the loss again
    assert plotted_metric("loss", "language_model", ("perplexity", "bits_per_char")) == "perplexity"
    assert derived_metric("perplexity", {"loss": math.log(3)}) == pytest.approx(3.0)
    assert plotted_metric("accuracy", "classification") == "accuracy"


def test_a_checkpoint_without_a_test_split_says_so():
    heading, metrics = stored_evaluation({"test": {}, "valid": {"loss": 1.0, "count": 100}})
    assert "no test split" in heading and metrics == {"loss": 1.0, "count": 100}
    heading, metrics = stored_evaluation(None)
    assert "did not finish" in heading and metrics is None
    assert stored_evaluation({"test": {"accuracy": 0.5}, "valid": {}}) == ("test set", {"accuracy": 0.5})


# -- the log pane wraps between metrics ---------------------------------------------------------
def test_log_lines_wrap_between_metrics_never_inside_one():
    line = ("epoch 1/1  loss 1.4475  accuracy 0.5725  valid loss 1.0758  valid accuracy 0.6600  balanced 0.2190"
            "  top-k 0.8655  3,187/s  *best")
    rows = wrap_line(line, 36)
    assert all(len(row) <= 36 for row in rows)
    pairs = [part for part in line.split("  ")]
    joined = [part.strip() for row in rows for part in row.split("  ") if part.strip()]
    assert joined == pairs  # every "name value" pair whole, in order
    assert wrap_line("short", 36) == ["short"]
    long = wrap_line("start: " + "word " * 30, 20)
    assert all(len(row) <= 20 for row in long)
