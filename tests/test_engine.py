"""Short real training runs on the names data, checkpoints, resume, and run control."""

from __future__ import annotations

import json
import pickle
import threading
import time

import pytest
import torch

from helpers import FAST
from workbench.config import resolve_config
from workbench.engine import Trainer, evaluate_checkpoint, load_trained, train
from workbench.errors import CheckpointError, DeviceError, WorkbenchError
from workbench.runs import EventFollower, Run, list_runs, load_checkpoint, save_checkpoint


def names_config(registry, shared_data, *extra, arch=None):
    return resolve_config(registry, "names", arch, "cpu", [*FAST, *extra], data_dir=str(shared_data))


@pytest.mark.slow
def test_short_training_run_learns_and_records_everything(registry, shared_data, isolated_dirs):
    events = []
    result = train(names_config(registry, shared_data, "epochs=2", "lr=0.01"), registry=registry,
                   on_event=events.append)
    assert result.state == "finished" and result.epochs_completed == 2
    metrics = result.metrics
    # majority class (Russian) is ~47%; a trained GRU is well above it after two short epochs
    assert metrics["accuracy"] > 0.6
    assert 0 < metrics["balanced_accuracy"] < metrics["accuracy"]
    assert metrics["top_k_accuracy"] >= metrics["accuracy"]
    assert len(metrics["confusion_matrix"]) == 18 and sum(map(sum, metrics["confusion_matrix"])) == metrics["count"]
    classes = metrics["classes"]
    assert sorted(classes) == sorted(path.stem for path in (shared_data / "names").glob("*.txt"))
    # each class's accuracy, weighted by its support, adds up to the overall count of correct answers
    per_class, support = metrics["per_class_accuracy"], metrics["support"]
    assert sum(per_class[c] * support[c] for c in classes if support[c]) == pytest.approx(
        metrics["accuracy"] * metrics["count"], rel=1e-4)
    run = result.run
    assert run.path.parent == isolated_dirs / "runs"
    for name in ("config.json", "events.jsonl", "status.json", "results.json", "best.pt", "last.pt"):
        assert (run.path / name).exists(), name
    assert run.status()["state"] == "finished"
    kinds = [e.kind for e in run.events()]
    assert kinds[0] == "status" and "start" in kinds and kinds.count("epoch") == 2 and kinds[-1] == "end"
    step = next(e for e in events if e.kind == "step")
    assert {"loss", "grad_norm", "samples_per_s", "eta_s", "lr"} <= set(step.to_json())
    assert [e.kind for e in events] == kinds


@pytest.mark.slow
def test_seeds_make_runs_reproducible(registry, shared_data):
    a = train(names_config(registry, shared_data, "seed=3"), registry=registry)
    b = train(names_config(registry, shared_data, "seed=3"), registry=registry)
    assert a.metrics["loss"] == pytest.approx(b.metrics["loss"], rel=1e-6)


@pytest.mark.slow
def test_balanced_class_weight_lifts_the_rare_classes(registry, shared_data):
    plain = train(names_config(registry, shared_data, "epochs=2", "lr=0.01"), registry=registry)
    weighted = train(names_config(registry, shared_data, "epochs=2", "lr=0.01", "class_weight=balanced"),
                     registry=registry)
    # the same seed and data; only the loss weights differ, and they favour the 17 minority classes
    assert weighted.metrics["balanced_accuracy"] > plain.metrics["balanced_accuracy"] + 0.05
    assert weighted.metrics["accuracy"] < plain.metrics["accuracy"]


def test_class_weights_follow_the_balanced_formula():
    from workbench.tasks.classification import ClassificationTask
    from workbench.text import Vocab

    task = ClassificationTask(Vocab(["<pad>", "<unk>", "a"]), ["x", "y", "z"], "char", "none", 0)
    examples = [([2], 0)] * 6 + [([2], 1)] * 2  # z never occurs
    task.prepare_training(examples, {"class_weight": "balanced"})
    assert task.class_weights.tolist() == pytest.approx([8 / (2 * 6), 8 / (2 * 2), 1.0])
    task.prepare_training(examples, {"class_weight": "none"})
    assert task.class_weights is None


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["elman", "rnn", "lstm"])
def test_every_classifier_trains(registry, shared_data, arch):
    extra = ["model.bidirectional=true", "model.num_layers=2", "model.dropout=0.1"]
    if arch == "elman":
        extra = ["model.bidirectional=true"]
    result = train(names_config(registry, shared_data, *extra, arch=arch), registry=registry)
    assert result.metrics["accuracy"] > 0.45


@pytest.mark.slow
def test_checkpoint_round_trip_predict_and_eval(registry, shared_data):
    result = train(names_config(registry, shared_data, "epochs=2", "lr=0.01"), registry=registry)
    loaded = load_trained(result.checkpoint, registry, "cpu")
    payload = loaded.payload
    assert payload["format"] == "workbench-checkpoint" and payload["config"]["dataset"] == "names"
    assert payload["optimizer_state"]["state"] and payload["task_state"]["vocab"][:2] == ["<pad>", "<unk>"]
    assert payload["evaluation"]["test"]["accuracy"] == pytest.approx(result.metrics["accuracy"])
    prediction = loaded.task.predict(loaded.model, "Dostoevsky", loaded.device, top_k=3)
    assert len(prediction["top"]) == 3
    assert sum(p["probability"] for p in prediction["top"]) <= 1.0 + 1e-6
    odd = loaded.task.predict(loaded.model, "Ünïcödé#9", loaded.device)
    assert odd["unknown_tokens"] == ["#", "9"]  # accents are stripped; '#' and '9' never occur in names
    assert odd["input"] == "Ünïcödé#9"
    with pytest.raises(WorkbenchError, match="empty"):
        loaded.task.predict(loaded.model, "  ", loaded.device)
    metrics = evaluate_checkpoint(loaded, registry, "test")
    assert metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(registry, shared_data):
    config = names_config(registry, shared_data, "epochs=1")
    first = train(config, registry=registry)
    config.train["epochs"] = 2
    resumed = Trainer(config, registry=registry, resume=first.run).train()
    assert resumed.run.path == first.run.path
    history = load_checkpoint(first.run.checkpoint_path("last"))["progress"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    starts = [e for e in first.run.events() if e.kind == "start"]
    assert starts[-1].resumed_at_epoch == 2


@pytest.mark.slow
def test_stop_and_pause_through_the_control_file(registry, shared_data):
    config = names_config(registry, shared_data, "epochs=50", "batch_size=16", "patience=0")
    trainer = Trainer(config, registry=registry)
    run = trainer.run
    states = []
    failures: list[BaseException] = []
    training_over = threading.Event()

    def control():
        follower = EventFollower(run.events_path)
        deadline = time.monotonic() + 60
        paused = False
        while time.monotonic() < deadline and not training_over.is_set():
            for event in follower.read_new():
                if event["type"] == "step" and not paused:
                    run.request("pause")
                    paused = True
                if event["type"] == "state":
                    states.append(event["state"])
                    if event["state"] == "paused":
                        assert run.status()["state"] == "paused"
                        run.request("resume")
                    else:
                        run.request("stop")
                        return
            time.sleep(0.05)

    def control_and_release():
        try:
            control()
        except BaseException as error:  # re-raised in the test below; a thread's failure is otherwise lost
            failures.append(error)
        finally:
            run.request("stop")  # whatever happened, the run must not stay paused: train() below has to return

    thread = threading.Thread(target=control_and_release, daemon=True)
    thread.start()
    try:
        result = trainer.train()
    finally:
        training_over.set()
        thread.join(timeout=30)
    if failures:
        raise failures[0]
    assert states == ["paused", "running"]
    assert result.state == "stopped" and result.epochs_completed == 0
    assert run.checkpoint_path("last").exists() and run.status()["state"] == "stopped"
    last = load_checkpoint(run.checkpoint_path("last"))
    assert last["epoch"] == 0 and last["progress"]["history"][0]["partial"]  # resume redoes epoch 1
    config.train["epochs"] = 1
    resumed = Trainer(config, registry=registry, resume=run).train()
    assert resumed.state == "finished" and resumed.epochs_completed == 1
    history = load_checkpoint(run.checkpoint_path("last"))["progress"]["history"]
    assert [(h["epoch"], h["partial"]) for h in history] == [(1, False)]


def test_bad_checkpoints_are_refused(tmp_path):
    missing = tmp_path / "missing.pt"
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable workbench checkpoint"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a workbench checkpoint"):
        load_checkpoint(foreign)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "workbench-checkpoint", "version": 1, "x": Evil()}, evil)
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    raw_pickle = tmp_path / "pickle.pt"
    raw_pickle.write_bytes(pickle.dumps({"format": "workbench-checkpoint"}))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw_pickle)


def test_truncated_checkpoint_is_refused_and_atomic_save_keeps_the_old(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"config": {}, "task_state": {}, "model_state": {"w": torch.ones(3)}})
    good = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(truncated)

    with pytest.raises((TypeError, pickle.PicklingError)):
        save_checkpoint(path, {"config": {}, "task_state": {}, "model_state": {}, "bad": threading.Lock()})
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_device_fails_before_making_a_run(registry, shared_data, isolated_dirs):
    config = names_config(registry, shared_data)
    config.device = "cuda:7"
    with pytest.raises(DeviceError, match="cuda:7"):
        train(config, registry=registry)
    assert list_runs(isolated_dirs / "runs") == []


def test_event_follower_reads_only_complete_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    follower = EventFollower(path)
    assert list(follower.read_new()) == []
    with open(path, "w") as handle:
        handle.write(json.dumps({"type": "a"}) + "\n" + '{"type": "b"')
    assert [e["type"] for e in follower.read_new()] == ["a"]
    with open(path, "a") as handle:
        handle.write("}\n")
    assert [e["type"] for e in follower.read_new()] == ["b"]


def test_run_status_detects_dead_process(tmp_path):
    run = Run(tmp_path / "r")
    run.path.mkdir()
    run.write_status(state="running", pid=2**22 + 12345)
    assert run.status()["state"] == "interrupted"


@pytest.mark.parametrize(
    ("optimizer", "schedule", "expected_lr"),
    [("sgd", "step", 0.05 * 0.5**2), ("adagrad", "cosine", 0.0), ("adamw", "plateau", 0.05), ("adam", "none", 0.05)],
)
@pytest.mark.slow
def test_optimizers_and_schedules(registry, shared_data, optimizer, schedule, expected_lr):
    config = names_config(registry, shared_data, "epochs=2", f"optimizer={optimizer}", f"schedule={schedule}",
                          "lr=0.05", "step_size=1", "gamma=0.5", "patience=0", "limit=2000")
    result = train(config, registry=registry)
    payload = load_checkpoint(result.run.checkpoint_path("last"))
    assert payload["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(expected_lr, abs=1e-9)
    assert result.metrics["count"] == 4015  # evaluation always uses the whole test split
    start = next(e for e in result.run.events() if e.kind == "start")
    assert start.sizes["train"] == 2000


def test_the_engines_real_events_parse_and_keep_their_keys(registry, shared_data):
    """Every line a real run writes reads back as its event and writes out as the same JSON."""
    from workbench.events import EVENTS_VERSION, EventReader, StartEvent, StepEvent

    config = names_config(registry, shared_data, "epochs=2", "limit=600", "log_every=3")
    received = []
    result = train(config, registry=registry, on_event=received.append)
    raw = list(EventFollower(result.run.events_path).read_new())
    reader = EventReader()
    parsed = [reader(line) for line in raw]
    assert None not in parsed and parsed == received
    assert [event.to_json() for event in parsed] == raw
    start = next(e for e in parsed if isinstance(e, StartEvent))
    assert start.events_version == EVENTS_VERSION and start.headline_metrics[0] == "accuracy"
    steps = [e for e in parsed if isinstance(e, StepEvent)]
    assert steps and all(e.metric_name == "accuracy" and e.metric is not None for e in steps)


def test_a_checkpoint_from_before_the_early_stopping_state_still_resumes(registry, shared_data, tmp_path):
    """``progress`` written by workbench 0.1 has best_metric / best_epoch / bad_epochs and no
    ``early_stopping``; resuming it continues exactly as resuming a new checkpoint does."""
    import shutil

    config = names_config(registry, shared_data, "epochs=2", "limit=600", "patience=2", "lr=0.5",
                          "optimizer=sgd")
    first = train(config, registry=registry)
    last = load_checkpoint(first.run.checkpoint_path("last"))
    early = last["progress"]["early_stopping"]
    assert early["best_epoch"] == last["progress"]["best_epoch"] and early["reason"] is None
    legacy = Run(tmp_path / "legacy")
    shutil.copytree(first.run.path, legacy.path)
    del last["progress"]["early_stopping"]
    save_checkpoint(legacy.checkpoint_path("last"), {k: v for k, v in last.items() if k not in ("format", "version")})
    config.train["epochs"] = 4
    resumed = [Trainer(config, registry=registry, resume=run).train() for run in (first.run, legacy)]
    assert resumed[0].best_epoch == resumed[1].best_epoch
    assert resumed[0].epochs_completed == resumed[1].epochs_completed
    assert resumed[0].metrics["loss"] == pytest.approx(resumed[1].metrics["loss"], rel=1e-6)
    states = [load_checkpoint(r.run.checkpoint_path("last"))["progress"]["early_stopping"] for r in resumed]
    assert states[0] == states[1]
