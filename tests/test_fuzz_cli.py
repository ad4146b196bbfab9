"""Fuzzing the command line: every command's arguments, ``--set`` values and TOML setup files.

The property everywhere: a documented one-line error (a WorkbenchError, or exit 2 with one
``workbench: error:`` line) or a correct answer, never a traceback. Called in-process, so hundreds of
examples take seconds; ``workbench train`` stops where training would begin (the Trainer is replaced),
so every fuzzed argument is checked exactly as far as a real run checks it before any work starts.
"""

from __future__ import annotations

import json
import math
import string
from typing import Any

import hypothesis
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import fuzz_examples
from workbench.cli import main
from workbench.config import TRAIN_PARAMS, plan_run, read_config_file
from workbench.errors import WorkbenchError

pytestmark = pytest.mark.fuzz

DATASETS = ["names", "imdb", "rt-polarity", "text-folder", "text-csv", "brackets", "text-file", "synthetic-text",
            "tinyshakespeare", "fra-eng", "parallel-tsv", "copy-reverse", "ud-ewt", "conllu", "tagged-text"]
ARCHS = ["lstm", "gru", "rnn", "elman", "lstm-attention", "gated-lstm", "char-lstm", "char-gru", "gru-seq2seq",
         "gru-attention", "lstm-tagger", "bilstm-tagger", "char-bilstm-tagger"]
#: Every parameter name a --set could name, qualified and bare, plus a few that exist nowhere.
KEYS = ([p.name for p in TRAIN_PARAMS] + [f"train.{p.name}" for p in TRAIN_PARAMS]
        + ["model.hidden_size", "model.embedding_dim", "model.num_layers", "model.dropout", "model.bidirectional",
           "data.max_length", "data.tokenizer", "data.valid_fraction", "data.test_fraction", "data.seq_len",
           "hidden_size", "dropout", "nope", "model.nope", "x.y", ".lr", "lr.", "train.", "a.b.c", ""])

#: Values that have broken parsers elsewhere: numbers at the edges, bool spellings, odd unicode.
EDGE_VALUES = ["", " ", "0", "-0", "1e309", "-1e309", "nan", "inf", "-inf", "1e-400", "0x10", "1_000", "٣",
               "１", "true", "True", "yes", "2**31", "9" * 400, "1e18", "-1", "0.5", "3.0", "1e2", "\x00",
               "é", "\u202e", "None", "[]", "{}", "'", '"', "\\", "=", "==", "lr=1"]

any_text = st.text(max_size=40)
values = st.one_of(st.sampled_from(EDGE_VALUES), any_text,
                   st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.integers(min_value=-(2**70), max_value=2**70).map(str))
assignments = st.one_of(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), values), any_text)


class ReachedTraining(Exception):
    """Raised in place of training: every check before the run starts has passed."""


@pytest.fixture()
def cli(monkeypatch, tmp_path, capsys):
    """``main(argv)`` in a scratch folder with training replaced; returns (exit code or 'trains', out, err)."""
    import workbench.engine

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise ReachedTraining

    monkeypatch.setattr(workbench.engine, "Trainer", no_training)
    monkeypatch.chdir(tmp_path)

    def run(argv: list[str]) -> tuple[int | str, str, str]:
        capsys.readouterr()
        try:
            code: int | str = main(argv)
        except SystemExit as exc:  # argparse: --help, --version and usage errors
            code = exc.code if isinstance(exc.code, int) else 2
        except ReachedTraining:
            code = "trains"
        out, err = capsys.readouterr()
        return code, out, err

    return run


def assert_documented(code: int | str, out: str, err: str, argv: list[str]) -> None:
    """Success, or exactly one ``workbench: error:`` line on stderr with exit status 2."""
    assert "Traceback" not in err, argv
    assert code in (0, 2, "trains"), (argv, code, err)
    if code == 2:
        # One message: control characters and line breaks the user typed may still be echoed inside it;
        # neutralising those is the terminal-escape work (see test_error_lines_carry_no_control_characters).
        assert err.startswith("workbench: error: ") and err.count("workbench: error: ") == 1, (argv, err)
        assert err.endswith("\n") and "Traceback" not in err, (argv, err)
        if "--json" in argv and out.strip():  # a command's own error, not argparse's: one JSON object
            assert set(json.loads(out)) == {"error"}, (argv, out)


# -- every command's arguments ---------------------------------------------------------------------
#: Names for files, folders and runs: with NUL, escapes, RTL marks and slashes (relative to a scratch folder;
#: never a leading slash, so a fuzzed `runs delete` can only ever reach runs of its own).
SAFE_NAME = st.text(alphabet=string.ascii_letters + string.digits + "-_.:~ é\u202e\x1b\x00/", max_size=20).filter(
    lambda s: not s.startswith("/"))
OPTIONS: dict[str, list[tuple[str, Any]]] = {
    "train": [("--dataset", st.one_of(st.sampled_from(DATASETS), SAFE_NAME)),
              ("--arch", st.one_of(st.sampled_from(ARCHS), SAFE_NAME)),
              ("--device", st.one_of(st.sampled_from(["auto", "cpu", "cuda", "cuda:7", "mps", "cuda:-1", "tpu"]),
                                     SAFE_NAME)),
              ("--set", assignments), ("--data-dir", SAFE_NAME), ("--config", SAFE_NAME),
              ("--resume", SAFE_NAME), ("--run-dir", SAFE_NAME), ("--save-config", SAFE_NAME),
              ("--quiet", None), ("--json", None)],
    "eval": [("--split", st.sampled_from(["test", "valid", "train", "dev"])), ("--device", SAFE_NAME),
             ("--data-dir", SAFE_NAME), ("--json", None)],
    "predict": [("--top-k", values), ("--device", SAFE_NAME), ("--json", None)],
    "generate": [("--prime", any_text), ("--length", values), ("--temperature", values), ("--top-k", values),
                 ("--top-p", values), ("--seed", values), ("--sampling", SAFE_NAME), ("--json", None)],
    "runs": [("--json", None)],
    "plugins": [("--json", None), ("-v", None)],
    "devices": [("--json", None)],
}


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from([*OPTIONS, "bogus", "--version", "-h"]))
    argv = [command]
    if command in ("eval", "predict", "generate"):
        argv.append(draw(SAFE_NAME.filter(lambda s: not s.startswith("-"))))  # the checkpoint
    if command == "runs":
        argv += draw(st.lists(st.sampled_from(["list", "show", "delete", "stop", "pause", "continue", "latest",
                                               "nothing-here", "x"]), max_size=2))
    for _ in range(draw(st.integers(0, 5))):
        flag, strategy = draw(st.sampled_from(OPTIONS.get(command, [("--json", None)])))
        argv.append(flag)
        if strategy is not None:
            argv.append(draw(strategy))
    if draw(st.booleans()):
        argv.insert(draw(st.integers(0, len(argv))), draw(st.one_of(any_text, st.sampled_from(["--", "-", "--x"]))))
    return argv


@settings(max_examples=fuzz_examples(100))
@given(argv=command_lines())
@example(argv=["train", "--dataset", "names", "--set", "lr=nan"])
@example(argv=["runs", "show", "x", "--json"])
@example(argv=["generate", "nothing.pt", "--length", "-5"])
@example(argv=["train", "--dataset", "brackets", "--save-config", "no-such-folder/setup.toml"])
@example(argv=["train", "--dataset", "brackets", "--save-config", "."])
@example(argv=["train", "--dataset", "brackets", "--save-config", "a\x00b"])
@example(argv=["train", "--dataset", "brackets", "--run-dir", "a\x00b"])
@example(argv=["train", "--config", "a\x00b"])
@example(argv=["runs", "show", "a\x00b"])
def test_fuzzed_command_lines_end_in_one_line_or_success(cli, argv):
    code, out, err = cli(argv)
    hypothesis.event(f"exit {code}")
    assert_documented(code, out, err, argv)


CONTROL = "".join(map(chr, [*range(0, 32), 127, 0x85, 0x2028, 0x2029, 0x1B]))


@settings(max_examples=fuzz_examples(30))
@given(argv=command_lines(), control=st.sampled_from(CONTROL))
@example(argv=["train"], control="\x85")
def test_error_lines_carry_no_control_characters(cli, argv, control):
    code, _, err = cli([*argv, f"x{control}y"])
    if code == 2:
        assert err.endswith("\n") and not any(c in CONTROL for c in err[:-1]), (argv, err)


# -- --set values ------------------------------------------------------------------------------------
@settings(max_examples=fuzz_examples(200))
@given(dataset=st.sampled_from(["names", "brackets", "synthetic-text", "copy-reverse", "tagged-text"]),
       sets=st.lists(assignments, max_size=4))
@example(dataset="names", sets=["lr=1e309"])
@example(dataset="names", sets=["epochs=1e18"])
@example(dataset="names", sets=["seed=9" + "9" * 400])
def test_fuzzed_set_values_are_checked_or_refused(registry, dataset, sets):
    try:
        config = plan_run(registry, dataset=dataset, assignments=sets).config
    except WorkbenchError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for group in (config.train, config.data, config.model):  # what was accepted is a finite, typed value
        for value in group.values():
            assert not (isinstance(value, float) and not math.isfinite(value))


# -- TOML setup files ----------------------------------------------------------------------------------
def toml_key(key: str) -> str:
    return key if key and all(c.isalnum() or c in "_-" for c in key) and key.isascii() else json.dumps(key)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(document: dict[str, Any]) -> str:
    """Tables as [sections], everything else as top-level keys (written first, as TOML requires)."""
    plain = [f"{toml_key(k)} = {toml_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    tables = [f"[{toml_key(k)}]\n" + "\n".join(f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items())
              for k, v in document.items() if isinstance(v, dict)]
    return "\n".join(plain + tables) + "\n"


scalars = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=12),
                    st.sampled_from([[], {}]))


def arrays_and_tables(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Non-empty arrays and inline tables of ``inner`` (empty ones are among the scalars: hypothesis wants
    an extension that makes nothing from nothing)."""
    return st.one_of(st.lists(inner, min_size=1, max_size=3),
                     st.dictionaries(st.text(max_size=6), inner, min_size=1, max_size=3))


toml_values = st.recursive(scalars, arrays_and_tables, max_leaves=6)
SECTION_KEYS = {"run": ["dataset", "arch", "device", "data_dir", "other"],
                "train": [p.name for p in TRAIN_PARAMS][:8] + ["nope"],
                "data": ["max_length", "tokenizer", "ascii_only", "valid_fraction", "nope"],
                "model": ["hidden_size", "embedding_dim", "num_layers", "dropout", "nope"]}


@st.composite
def setup_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly the right sections with right or wrong values; sometimes a wrong shape altogether."""
    document: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from([*SECTION_KEYS, "extra"]), unique=True, max_size=5)):
        if section == "extra" or draw(st.integers(0, 9)) == 0:
            document[section] = draw(toml_values)  # a section that is not a table, or an unknown one
            continue
        keys = SECTION_KEYS[section]
        table = {}
        for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=4)):
            if section == "run" and key == "dataset" and draw(st.booleans()):
                table[key] = draw(st.sampled_from(["names", "brackets", "copy-reverse", "nope"]))
            else:
                table[key] = draw(toml_values)
        document[section] = table
    return document


@settings(max_examples=fuzz_examples(100))
@given(document=setup_documents())
@example(document={"run": {"dataset": "brackets"}, "train": {"lr": float("nan")}})
@example(document={"run": {"dataset": "brackets"}, "model": {"hidden_size": [32]}})
@example(document={"run": {"dataset": "brackets"}, "train": {"epochs": 1e300}})
@example(document={"run": {"dataset": "brackets"}, "train": {"seed": 2**63 - 1}})
def test_fuzzed_setup_files_are_checked_or_refused(registry, tmp_path, document):
    path = tmp_path / "setup.toml"
    path.write_text(to_toml(document), encoding="utf-8")
    try:
        plan_run(registry, config_file=path)
    except WorkbenchError as exc:
        assert str(exc)
        return


@settings(max_examples=fuzz_examples(100))
@given(raw=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
@example(raw=b"\xff\xfe[run]")
@example(raw="[run]\ndataset = 'names'\n[run]\n")
@example(raw="run = 1")
def test_fuzzed_setup_file_bytes_are_read_or_refused(tmp_path, raw):
    path = tmp_path / "setup.toml"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
    try:
        fields = read_config_file(path)
    except WorkbenchError as exc:
        assert str(exc)
        return
    assert set(fields) == {"dataset", "arch", "device", "data_dir", "values"}


def test_setup_file_folder_is_one_line(cli, tmp_path):
    (tmp_path / "a-folder.toml").mkdir()
    code, _, err = cli(["train", "--config", "a-folder.toml"])
    assert code == 2 and err.startswith("workbench: error: config file") and err.count("\n") == 1


def test_run_dir_that_is_a_file_is_one_line(cli, tmp_path):
    """Found by fuzzing: ``--run-dir FILE`` got as far as the trainer's mkdir (FileExistsError); the file is kept."""
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = cli(["train", "--dataset", "brackets", "--run-dir", "notes.txt"])
    assert code == 2 and err == f"workbench: error: --run-dir {tmp_path / 'notes.txt'} is a file; choose a new or " \
        "empty folder\n"
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_setup_file_name_with_nul_is_one_line():
    """The app's setup form passes any text as the file name; the OS refuses NUL with a ValueError."""
    with pytest.raises(WorkbenchError, match="not a usable path"):
        read_config_file("setup\x00.toml")
