"""Fuzzing the files of a run folder: ``status.json``, ``config.json``, ``results.json`` and ``events.jsonl``.

One run folder gets fuzzed content (valid JSON of the wrong shape, broken JSON, bytes), next to a
healthy run. The property: ``workbench runs`` (text and ``--json``) still lists both, ``runs show``
answers or gives one line, and reading the events skips what it cannot read; never a traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import fuzz_examples
from workbench.cli import main
from workbench.runs import Run

pytestmark = pytest.mark.fuzz

GOOD_CONFIG = {"dataset": "names", "arch": "lstm", "device": "auto", "train": {"epochs": 3}, "data": {}, "model": {},
               "data_dir": None}
GOOD_STATUS = {"state": "finished", "pid": None, "epoch": 3, "best": {"accuracy": 0.5}, "started": 1.0, "updated": 2.0}

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def shaped_like(good: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The right keys with any values (``"best": "x"``, ``"pid": "abc"``), some keys dropped."""
    return st.fixed_dictionaries({}, optional={key: json_values for key in good})


def file_contents(good: dict[str, Any]) -> st.SearchStrategy[bytes]:
    documents = st.one_of(json_values, shaped_like(good), st.just(good))
    return st.one_of(documents.map(lambda v: json.dumps(v).encode()), st.binary(max_size=40),
                     st.sampled_from([b"", b"{", b"NaN", b"[]", b'{"state": NaN}', b"\xff\xfe{}", b"1e999"]))


def event_lines() -> st.SearchStrategy[bytes]:
    kinds = st.sampled_from(["start", "epoch", "step", "end", "status", "log", "nope"])
    event = st.one_of(json_values, st.builds(lambda kind, rest: {**rest, "event": kind}, kinds,
                                             st.dictionaries(st.sampled_from(
                                                 ["epoch", "train", "valid", "loss", "main_metric", "state", "step",
                                                  "time", "config", "lr", "sizes", "message"]), json_values, max_size=5)))
    line = st.one_of(event.map(lambda v: json.dumps(v).encode()), st.binary(max_size=30))
    return st.lists(line, max_size=6).map(b"\n".join)


def plant_runs(root: Path, files: dict[str, bytes]) -> tuple[Run, Run]:
    if root.exists():
        shutil.rmtree(root)
    good, odd = Run(root / "20260101-000000-good"), Run(root / "20260101-000001-odd")
    for run in (good, odd):
        run.path.mkdir(parents=True)
        run.config_path.write_text(json.dumps(GOOD_CONFIG))
        run.status_path.write_text(json.dumps(GOOD_STATUS))
    for name, content in files.items():
        (odd.path / name).write_bytes(content)
    return good, odd


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def check_listing_and_show(capsys, root: Path) -> None:
    code, out, err = run_cli(capsys, ["runs", "--runs-dir", str(root), "--json"])
    assert code == 0, err
    assert {r["id"] for r in json.loads(out)["runs"]} >= {"20260101-000000-good"}
    code, out, err = run_cli(capsys, ["runs", "--runs-dir", str(root)])
    assert code == 0 and "20260101-000000-good" in out, err
    for argv in (["runs", "show", "odd"], ["runs", "show", "odd", "--json"], ["runs", "stop", "odd"]):
        code, out, err = run_cli(capsys, [*argv, "--runs-dir", str(root)])
        assert code in (0, 2), err
        if code == 2:
            assert err.startswith("workbench: error: ") and err.count("\n") == 1, err



@settings(max_examples=fuzz_examples(25))
@given(status=file_contents(GOOD_STATUS))
@example(status=b"[]")
@example(status=b'{"state": "finished", "best": "x"}')
@example(status=b'{"state": "running", "pid": "abc"}')
@example(status=b'{"state": "running", "pid": 99999999999999999999}')
def test_fuzzed_status_files(tmp_path, capsys, status):
    plant_runs(tmp_path / "runs", {"status.json": status})
    check_listing_and_show(capsys, tmp_path / "runs")


@settings(max_examples=fuzz_examples(25))
@given(config=file_contents(GOOD_CONFIG))
@example(config=b"[]")
@example(config=b'{"dataset": "names", "train": []}')
def test_fuzzed_config_files(tmp_path, capsys, config):
    plant_runs(tmp_path / "runs", {"config.json": config})
    check_listing_and_show(capsys, tmp_path / "runs")


@settings(max_examples=fuzz_examples(25))
@given(results=file_contents({"state": "finished", "metrics": {}, "history": []}))
def test_fuzzed_results_files(tmp_path, capsys, results):
    plant_runs(tmp_path / "runs", {"results.json": results})
    check_listing_and_show(capsys, tmp_path / "runs")


@settings(max_examples=fuzz_examples(40))
@given(events=event_lines())
@example(events=b'{"event": "start", "main_metric": 5}\n{"event": "epoch", "epoch": "x", "valid": []}\n')
def test_fuzzed_event_streams(tmp_path, events):
    _, odd = plant_runs(tmp_path / "runs", {"events.jsonl": events + b"\n"})
    assert isinstance(odd.events(), list)
