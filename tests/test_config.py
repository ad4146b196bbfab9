"""The run plan (workbench.config.plan_run): the one place that decides what a new, file-based or
resumed run is, for `workbench train` and the app. No training here: resumed runs are folders
written by hand, as the trainer leaves them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workbench.config import RunConfig, plan_run, resolve_config
from workbench.errors import ParamError, WorkbenchError
from workbench.runs import Run

KEEPS = "a resumed run keeps its data and model parameters; only train.* may change"


def stored_run(registry, folder: Path, *assignments: str) -> Run:
    """A run folder holding the config the trainer would have written for ``assignments``."""
    config = resolve_config(registry, "names", "gru", "cpu", assignments)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
    return Run(folder)


def test_a_new_run_layers_dataset_defaults_then_assignments(registry):
    plan = plan_run(registry, dataset="names", assignments=["lr=0.01", "model.hidden_size=64"])
    assert plan.resume is None and plan.run is None
    assert plan.config.arch == "gru"  # the dataset's recommendation
    assert plan.config.train["lr"] == 0.01 and plan.config.model["hidden_size"] == 64
    assert plan.config.train["epochs"] == resolve_config(registry, "names").train["epochs"]


def test_a_new_run_needs_a_dataset(registry, tmp_path):
    with pytest.raises(WorkbenchError, match="choose a dataset with --dataset"):
        plan_run(registry)
    setup = tmp_path / "setup.toml"
    setup.write_text("[train]\nepochs = 2\n")
    with pytest.raises(WorkbenchError, match=r"setup.toml names no dataset \(\[run\] dataset = \.\.\.\)"):
        plan_run(registry, config_file=setup)


def test_a_config_file_round_trips_and_arguments_win(registry, tmp_path):
    saved = resolve_config(registry, "names", "lstm", "cpu", ["epochs=3", "model.bidirectional=true"])
    setup = tmp_path / "setup.toml"
    setup.write_text(saved.to_toml(), encoding="utf-8")
    assert plan_run(registry, config_file=setup).config == saved
    overridden = plan_run(registry, config_file=setup, arch="rnn", assignments=["epochs=4"]).config
    assert overridden.arch == "rnn" and overridden.train["epochs"] == 4
    assert overridden.model["bidirectional"] is True  # the file's model values still apply


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run]\ndataset = 'names'\n[train]\nlr = 0\n", r"setup.toml: lr must be a number from 1e-08 to 10 \(got 0\)"),
        ("[run]\ndataset = 'names'\n[train]\nepochs = 'many'\n", "setup.toml: epochs must be an integer"),
        ("[run]\ndataset = 'names'\n[model]\nhidden_size = 0\n", "setup.toml: hidden_size must be"),
        ("[run]\ndataset = 'names'\n[model]\nwidth = 3\n", "setup.toml: unknown model parameter 'width'"),
        ("[run]\ndataset = 3\n", r"\[run\] dataset must be a string \(got 3\)"),
        ("[run]\ndataset = 'names'\nepochs = 3\n", r"unknown \[run\] keys \['epochs'\]"),
        ("[run]\ndataset = 'names'\ntrain = 3\n", r"unknown \[run\] keys \['train'\]"),
        ("run = 3\n", "run must be a \\[section\\]"),
        ("[run]\ndataset = 'names'\n[optim]\nlr = 1\n", "unknown sections"),
    ],
)
def test_config_file_values_are_validated_like_set(registry, tmp_path, text, message):
    setup = tmp_path / "setup.toml"
    setup.write_text(text)
    with pytest.raises(WorkbenchError, match=message):
        plan_run(registry, config_file=setup)


def test_a_bad_set_value_is_not_blamed_on_the_file(registry, tmp_path):
    setup = tmp_path / "setup.toml"
    setup.write_text("[run]\ndataset = 'names'\n[train]\nlr = 0.01\n")
    with pytest.raises(ParamError) as caught:
        plan_run(registry, config_file=setup, assignments=["lr=0"])
    assert str(caught.value).startswith("lr must be")


def test_resume_may_change_train_values(registry, tmp_path):
    run = stored_run(registry, tmp_path / "runs" / "r1", "epochs=2")
    plan = plan_run(registry, resume=str(run.path), assignments=["epochs=5", "lr=0.02"])
    assert plan.resume == run and plan.run is None
    assert plan.config.train["epochs"] == 5 and plan.config.train["lr"] == 0.02
    assert run.config()["train"]["epochs"] == 2  # planning writes nothing
    plan.begin()
    assert RunConfig.from_dict(run.config()) == plan.config


def test_resume_finds_a_run_by_id_under_the_runs_root(registry, tmp_path):
    run = stored_run(registry, tmp_path / "elsewhere" / "names-gru-1")
    assert plan_run(registry, resume="names-gru-1", runs_root=tmp_path / "elsewhere").resume == run


@pytest.mark.parametrize("assignment", ["model.hidden_size=99", "data.valid_fraction=0.3"])
def test_resume_refuses_data_and_model_changes(registry, tmp_path, assignment):
    run = stored_run(registry, tmp_path / "r1")
    with pytest.raises(WorkbenchError, match=re.escape(KEEPS)):
        plan_run(registry, resume=run, assignments=[assignment])


def test_resume_refuses_what_would_make_a_new_run(registry, tmp_path):
    run = stored_run(registry, tmp_path / "r1")
    with pytest.raises(WorkbenchError, match="--run-dir makes a new run; it cannot be combined with --resume"):
        plan_run(registry, resume=run, run_dir=tmp_path / "new")
    with pytest.raises(WorkbenchError, match="--config makes a new run"):
        plan_run(registry, resume=run, config_file=tmp_path / "setup.toml")
    with pytest.raises(WorkbenchError, match=r"keeps its architecture \(run r1 has 'gru', not 'lstm'\)"):
        plan_run(registry, resume=run, arch="lstm")
    assert plan_run(registry, resume=run, dataset="names", arch="gru").resume == run  # the same is fine


def test_a_stored_config_is_validated_and_named(registry, tmp_path):
    run = stored_run(registry, tmp_path / "r1")
    raw = run.config()
    raw["train"]["lr"] = 50
    run.config_path.write_text(json.dumps(raw))
    with pytest.raises(ParamError, match=r"run r1's config.json: lr must be a number from 1e-08 to 10 \(got 50\)"):
        plan_run(registry, resume=run)


def test_run_dir_must_not_hold_a_run(registry, tmp_path):
    plan = plan_run(registry, dataset="names", run_dir=tmp_path / "fresh")
    assert plan.run is not None and plan.run.path == (tmp_path / "fresh").resolve()
    stored_run(registry, tmp_path / "taken")
    with pytest.raises(WorkbenchError, match="already holds a run; choose an empty folder"):
        plan_run(registry, dataset="names", run_dir=tmp_path / "taken")


def test_values_from_a_form_are_strings_checked_like_set(registry):
    config = plan_run(registry, dataset="names", arch="lstm", values={"train": {"epochs": "3"},
                                                                      "model": {"bidirectional": "true"}}).config
    assert config.train["epochs"] == 3 and config.model["bidirectional"] is True
    with pytest.raises(ParamError, match="epochs must be"):
        plan_run(registry, dataset="names", values={"train": {"epochs": "0"}})
