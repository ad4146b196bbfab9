"""The written format of run events: every kind round-trips, old and odd lines are read or skipped."""

from __future__ import annotations

import json
import math

import pytest

from workbench.events import (
    ACTIVE_STATES,
    EVENT_TYPES,
    EVENTS_VERSION,
    DownloadEvent,
    EndEvent,
    EpochEvent,
    EventReader,
    MemoryEvent,
    StartEvent,
    StateEvent,
    StatusEvent,
    StepEvent,
    SystemEvent,
    format_duration,
    format_epoch,
    parse_event,
)
from workbench.runs import EventFollower, EventWriter, Run

START = StartEvent(
    run="r1", config={"dataset": "names", "arch": "gru", "train": {"epochs": 3}}, task="classification",
    main_metric="accuracy", device="cpu", threads=1, precision="fp32", parameters=1234,
    sizes={"train": 10, "valid": 2, "test": 3}, steps_per_epoch=4, dataset_info={"classes": 18},
    resumed_at_epoch=None, workbench_version="0.1.0", headline_metrics=("accuracy", "balanced_accuracy"),
    time=1.5,
)
STEP = StepEvent(epoch=1, step=4, steps=4, global_step=4, loss=2.5, grad_norm=1.25, lr=0.001,
                 samples_per_s=900.0, eta_s=12.0, metric_name="accuracy", metric=0.25, time=2.0)
EPOCH = EpochEvent(epoch=1, epochs=3, train={"loss": 2.4, "accuracy": 0.3}, valid={"loss": 2.2, "accuracy": 0.35},
                   lr=0.001, seconds=1.5, samples_per_s=850.0, best=True, partial=False, time=3.0)
EVERY_KIND = [
    START,
    STEP,
    EPOCH,
    StatusEvent(phase="prepare", message="loading dataset names", time=1.0),
    StatusEvent(message="early stop: no validation improvement for 5 epochs"),
    StateEvent(state="paused", time=2.5),
    DownloadEvent(label="names.zip", done=10, total=None),
    DownloadEvent(label="names.zip", done=10, total=10),
    SystemEvent(cpu_percent=183.5, rss_bytes=512 * 2**20, peak_rss_bytes=600 * 2**20, cpus=2, time=2.2),
    SystemEvent(cpu_percent=99.0, rss_bytes=None, peak_rss_bytes=None, cpus=16,
                gpus=({"index": 0, "name": "H200", "allocated_bytes": 2**30, "utilization": 45.0},), time=2.4),
    MemoryEvent(epoch=2, global_step=8, lags=(0.5, 0.25, 1e-7), cell="lstm", examples=32, time=3.5),
    EndEvent(state="failed", message="boom", time=4.0),
    EndEvent(state="finished", message="", test={"loss": 2.0, "accuracy": 0.4}, valid={"loss": 2.1},
             best_epoch=None, checkpoint="/runs/r1/best.pt", time=4.0),
]


@pytest.mark.parametrize("event", EVERY_KIND, ids=lambda e: e.kind)
def test_every_kind_round_trips_through_a_json_line(event):
    line = json.dumps(event.to_json())
    assert parse_event(json.loads(line), main_metric="accuracy") == event


def test_every_kind_is_covered_and_written_with_its_type_first():
    assert {e.kind for e in EVERY_KIND} == set(EVENT_TYPES)
    for event in EVERY_KIND:
        keys = list(event.to_json())
        assert keys[0] == "type" and ("time" not in keys or keys[-1] == "time")


def test_a_memory_line_needs_its_lags_and_tolerates_the_rest():
    assert parse_event({"type": "memory", "epoch": 1}) is None  # no lags: nothing to draw, skipped
    odd = parse_event({"type": "memory", "epoch": 1, "lags": [1, 0.5], "cell": 7})
    assert isinstance(odd, MemoryEvent) and odd.lags == (1.0, 0.5) and odd.cell == "" and odd.examples == 0


def test_the_json_keeps_the_shape_other_readers_know():
    assert STEP.to_json()["accuracy"] == 0.25  # the main metric under its own name, as always
    assert "metric" not in STEP.to_json() and "metric_name" not in STEP.to_json()
    assert list(StatusEvent(message="hi").to_json()) == ["type", "message"]
    assert list(EndEvent(state="failed", message="x").to_json()) == ["type", "state", "message"]
    final = EndEvent(state="finished", message="", test={}, valid={}, best_epoch=None, checkpoint="None")
    assert list(final.to_json()) == ["type", "state", "message", "test", "valid", "best_epoch", "checkpoint"]
    start = START.to_json()
    assert start["events_version"] == EVENTS_VERSION and start["headline_metrics"] == ["accuracy", "balanced_accuracy"]


def test_a_start_line_from_before_the_format_was_written_reads_as_version_0():
    old = {k: v for k, v in START.to_json().items() if k not in ("events_version", "headline_metrics")}
    event = parse_event(old)
    assert isinstance(event, StartEvent)
    assert event.events_version == 0 and event.headline_metrics == () and event.main_metric == "accuracy"
    assert event.sizes == START.sizes


def test_lines_written_by_the_old_engine_are_read():
    """Lines exactly as the engine wrote them before this module (hand-made, from a run of that version)."""
    lines = [
        '{"type": "status", "phase": "prepare", "message": "loading dataset names", "time": 1.0}',
        '{"type": "start", "run": "r", "config": {"dataset": "names"}, "task": "classification", "main_metric": '
        '"accuracy", "device": "cpu", "threads": 1, "precision": "fp32", "parameters": 5, "sizes": {"train": 1, '
        '"valid": 1, "test": 1}, "steps_per_epoch": 1, "dataset_info": {}, "resumed_at_epoch": null, '
        '"workbench_version": "0.1.0", "time": 1.0}',
        '{"type": "step", "epoch": 1, "step": 1, "steps": 1, "global_step": 1, "loss": 1.0, "grad_norm": 0.5, '
        '"lr": 0.001, "samples_per_s": 10.0, "eta_s": NaN, "accuracy": 0.5, "time": 1.0}',
        '{"type": "end", "state": "failed", "message": "x", "time": 2.0}',
    ]
    reader = EventReader()
    events = [reader(json.loads(line)) for line in lines]
    assert [type(e) for e in events] == [StatusEvent, StartEvent, StepEvent, EndEvent]
    step = events[2]
    assert step.metric_name == "accuracy" and step.metric == 0.5 and math.isnan(step.eta_s)


@pytest.mark.parametrize("raw", [
    None, 3, "text", [], {}, {"type": "nonsense"}, {"type": 7},
    {"type": "step", "epoch": 1},  # a step without its position and loss cannot be drawn
    {"type": "step", "epoch": "one", "step": 1, "steps": 1, "loss": 1.0},
    {"type": "epoch"}, {"type": "state"}, {"type": "end", "state": None},
])
def test_garbage_is_skipped_not_raised(raw):
    assert parse_event(raw) is None


def test_wrong_typed_optional_fields_fall_back():
    step = parse_event({"type": "step", "epoch": 2, "step": 1, "steps": 4, "loss": 1, "grad_norm": "big",
                        "lr": True, "accuracy": "high"}, main_metric="accuracy")
    assert isinstance(step, StepEvent) and step.loss == 1.0 and isinstance(step.loss, float)
    assert math.isnan(step.grad_norm) and math.isnan(step.lr) and step.metric is None and step.global_step == 0
    start = parse_event({"type": "start", "sizes": {"train": "many"}, "headline_metrics": "accuracy",
                         "threads": 1.5, "config": []})
    assert isinstance(start, StartEvent)
    assert start.sizes == {} and start.headline_metrics == () and start.threads == 0 and start.config == {}
    epoch = parse_event({"type": "epoch", "epoch": 3, "valid": None})
    assert isinstance(epoch, EpochEvent) and epoch.valid == {} and epoch.train == {} and not epoch.best


def test_the_follower_parses_and_skips(tmp_path):
    run = Run(tmp_path / "r")
    writer = EventWriter(run.events_path)
    writer.write(START)
    writer.write(STEP)
    writer.close()
    with open(run.events_path, "a", encoding="utf-8") as handle:
        handle.write('not json\n{"type": "future-kind", "x": 1}\n[1, 2]\n')
        handle.write(json.dumps(EPOCH.to_json()) + "\n")
    assert run.events() == [START, STEP, EPOCH]
    follower = EventFollower(run.events_path)
    assert len(list(follower.read_new())) == 5  # the raw JSON objects stay available


def test_the_writer_stamps_a_time(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.write(StateEvent(state="running"))
    writer.close()
    line = json.loads(path.read_text())
    assert line["type"] == "state" and line["time"] > 0


def test_a_renamed_field_is_a_type_error():
    with pytest.raises(TypeError):
        StateEvent(status="paused")  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        START.main_metrics  # type: ignore[attr-defined]  # noqa: B018


def test_format_epoch_shows_the_headline_metrics():
    epoch = EpochEvent(epoch=2, epochs=4, train={"loss": 0.4, "accuracy": 0.8},
                       valid={"loss": 0.6, "accuracy": 0.7, "balanced_accuracy": 0.5, "count": 3}, lr=0.1,
                       seconds=1.25, samples_per_s=9000.0, best=True, partial=True)
    headline = ("accuracy", "balanced_accuracy", "top_k_accuracy")
    assert format_epoch(epoch, "accuracy", headline) == (
        "epoch 2/4  loss 0.4000  accuracy 0.8000  valid loss 0.6000  valid accuracy 0.7000  "
        "balanced 0.5000  9,000 samples/s  1.2s  (partial epoch)  *best")
    assert format_epoch(epoch, "accuracy", headline, compact=True).endswith("9,000/s  (partial epoch)  *best")
    lm = EpochEvent(epoch=1, epochs=1, train={"loss": 2.0}, valid={"loss": 1.9, "perplexity": 6.7}, lr=0.1,
                    seconds=1.0, samples_per_s=10.0, best=False, partial=False)
    # the language model's main metric is the loss: it is not repeated
    assert format_epoch(lm, "loss", ("perplexity", "bits_per_char")) == (
        "epoch 1/1  loss 2.0000  valid loss 1.9000  ppl 6.7000  10 samples/s  1.0s")


def test_format_duration_and_active_states():
    assert format_duration(75) == "1:15" and format_duration(3725) == "1:02:05"
    assert format_duration(None) == "?" and format_duration(math.nan) == "?" and format_duration(-3) == "0:00"
    assert ACTIVE_STATES == ("starting", "running", "paused")
