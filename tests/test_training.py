"""The torch-free pieces of the training loop: typed options and early stopping."""

from __future__ import annotations

from dataclasses import fields

import pytest

from workbench.config import TRAIN_PARAMS
from workbench.training import EarlyStopping, TrainOptions


def test_train_options_follow_the_parameter_schema():
    assert [f.name for f in fields(TrainOptions)] == [p.name for p in TRAIN_PARAMS]
    defaults = TrainOptions.from_config({})
    assert all(getattr(defaults, p.name) == p.default for p in TRAIN_PARAMS)
    options = TrainOptions.from_config({"lr": 0.5, "epochs": 2, "retired_option": 1})
    assert options.lr == 0.5 and options.epochs == 2 and options.patience == defaults.patience
    with pytest.raises(AttributeError):
        options.learning_rate  # type: ignore[attr-defined]  # noqa: B018


def test_early_stopping_counts_epochs_without_improvement_and_says_why():
    stopper = EarlyStopping(patience=2, higher_is_better=True)
    assert stopper.update(0.5, 1) and stopper.best_epoch == 1 and not stopper.should_stop
    assert not stopper.update(0.4, 2) and stopper.wait_count == 1 and stopper.reason is None
    assert stopper.update(0.6, 3) and stopper.wait_count == 0 and stopper.best_score == 0.6
    assert not stopper.update(0.6, 4)  # equal is not better
    assert not stopper.update(0.1, 5)
    assert stopper.should_stop and stopper.reason == "early stop: no validation improvement for 2 epochs"
    assert stopper.best_epoch == 3


def test_lower_is_better_and_patience_zero_never_stops():
    stopper = EarlyStopping(patience=0, higher_is_better=False)
    assert stopper.update(2.0, 1) and stopper.update(1.5, 2)
    for epoch in range(3, 30):
        assert not stopper.update(1.7, epoch)
    assert not stopper.should_stop and stopper.best_score == 1.5 and stopper.wait_count == 27


def test_early_stopping_state_round_trips():
    stopper = EarlyStopping(patience=3, higher_is_better=True)
    for epoch, score in enumerate([0.1, 0.3, 0.2, 0.25], start=1):
        stopper.update(score, epoch)
    state = stopper.state_dict()
    assert state == {"best_score": 0.3, "best_epoch": 2, "wait_count": 2, "reason": None}
    resumed = EarlyStopping(patience=3, higher_is_better=True)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    # the resumed one goes on counting where the first left off
    assert not resumed.update(0.2, 5) and resumed.reason == "early stop: no validation improvement for 3 epochs"
    stopper.update(0.2, 5)
    assert stopper.state_dict() == resumed.state_dict()


def test_state_from_progress_reads_checkpoints_written_before_it():
    old = {"global_step": 40, "best_metric": 0.7, "best_epoch": 3, "bad_epochs": 1, "history": []}
    assert EarlyStopping.state_from_progress(old) == {"best_score": 0.7, "best_epoch": 3, "wait_count": 1,
                                                      "reason": None}
    assert EarlyStopping.state_from_progress({})["wait_count"] == 0
    new = {**old, "early_stopping": {"best_score": 0.8, "best_epoch": 4, "wait_count": 0, "reason": None}}
    assert EarlyStopping.state_from_progress(new)["best_score"] == 0.8
