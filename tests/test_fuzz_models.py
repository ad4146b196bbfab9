"""Fuzzing what meets a trained model: predict and generate inputs, and a checkpoint's metadata.

The checkpoints are real ones, written by :func:`workbench.runs.save_checkpoint` from a real task
and model (untrained weights: what is fuzzed here is the handling of inputs, not the answers), one
per task kind. The property: a one-line WorkbenchError or a correct answer, never another exception.
"""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from helpers import fuzz_examples
from workbench.cli import main
from workbench.config import plan_run
from workbench.engine import build_model, evaluate_checkpoint, load_dataset, load_trained
from workbench.errors import WorkbenchError
from workbench.registry import get_registry
from workbench.runs import save_checkpoint
from workbench.tasks import task_class

pytestmark = pytest.mark.fuzz

TINY = ["model.hidden_size=8", "model.embedding_dim=4"]
KINDS = {
    "classification": ("brackets", ["data.train_size=40", "data.test_size=10", "data.length=8"]),
    "language_model": ("synthetic-text", ["data.chars=3000"]),
    "seq2seq": ("copy-reverse", ["data.train_size=40"]),
    "tagging": ("tagged-text", []),
}


def write_checkpoint(folder: Path, kind: str) -> Path:
    """A real checkpoint of ``kind``: the plan, data, task and model a run would build, saved as a run saves."""
    registry = get_registry()
    dataset, sets = KINDS[kind]
    data_dir = None
    if kind == "tagging":
        data_dir = folder / "tags.txt"
        data_dir.write_text("the/DT dog/NN runs/VB\na/DT cat/NN sleeps/VB\n" * 10, encoding="utf-8")
    config = plan_run(registry, dataset=dataset, assignments=[*sets, *TINY],
                      data_dir=str(data_dir) if data_dir else None).config
    data = load_dataset(config, registry)
    task = task_class(kind).from_data(data)
    torch.manual_seed(0)  # the same weights every run, so what an example finds, it finds again
    model = build_model(config, task, registry)
    path = folder / f"{kind}.pt"
    save_checkpoint(path, {"config": config.to_dict(), "task_state": task.state(), "model_state": model.state_dict()})
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return {kind: write_checkpoint(folder, kind) for kind in KINDS}


@pytest.fixture(scope="module")
def loaded(checkpoints) -> dict[str, Any]:
    return {kind: load_trained(path, get_registry(), "cpu") for kind, path in checkpoints.items()}


@pytest.fixture(scope="module")
def language_model(loaded) -> Any:
    return loaded["language_model"]


def refused(exc: WorkbenchError) -> None:
    assert str(exc).strip()
    event("refused")


# -- predict ---------------------------------------------------------------------------------------
#: Inputs with the awkward parts over-represented: empty, blank, control characters, RTL marks,
#: surrogates' neighbours, combining marks, emoji and a long run (a paste of a whole file).
texts = st.one_of(
    st.sampled_from(["", " ", "\n", "\x00", "\x1b[2J", "\u202e", "\ufeff", "e\u0301", "🙂", "\ud7ff", "<unk>", "<pad>",
                     "a" * 2000, "()" * 1000, "\t\r\n"]),
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="ascii"), max_size=20))


@settings(max_examples=fuzz_examples(30))
@given(kind=st.sampled_from(list(KINDS)), text=texts, top_k=st.integers(-3, 10**6))
@example(kind="classification", text="(())", top_k=0)
@example(kind="classification", text="(())", top_k=-1)
@example(kind="seq2seq", text="a b c d", top_k=10**6)
@example(kind="seq2seq", text="\u200b", top_k=0)  # untrained: runs to the length limit without <eos>
def test_fuzzed_predict_inputs(loaded, kind, text, top_k):
    model = loaded[kind]
    try:
        prediction = model.task.predict(model.model, text, model.device, top_k=top_k)
    except WorkbenchError as exc:
        refused(exc)
        return
    assert isinstance(model.task.render_prediction(prediction), str)
    alignment = prediction.get("alignment")
    if alignment:  # one row of weights per output word, one weight per input word
        assert len(alignment["weights"]) == len(alignment["target"])
        assert all(len(row) == len(alignment["source"]) for row in alignment["weights"])
    event("answered")


# -- generate --------------------------------------------------------------------------------------
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70),
                    st.sampled_from([0, 1, 0.5, 1e-300, 100.0, 100.5, -0.0]))


@settings(max_examples=fuzz_examples(60))
@given(prime=texts, length=st.one_of(st.integers(-2, 30), st.integers(-(2**70), 2**70)),
       temperature=numbers, sampling=st.sampled_from(["sample", "greedy", "top-k", "top-p", "beam"]),
       top_k=st.one_of(st.integers(-2, 10**7), numbers), top_p=numbers,
       seed=st.one_of(st.none(), st.integers(-(2**70), 2**70)))
@example(prime="a", length=5, temperature=1.0, sampling="sample", top_k=10, top_p=0.9, seed=2**64)
@example(prime="a", length=5, temperature=1.0, sampling="top-k", top_k=10**7, top_p=0.9, seed=1)
@example(prime="a", length=5, temperature=1e-300, sampling="sample", top_k=10, top_p=0.9, seed=1)
@example(prime="a", length=5, temperature=1.0, sampling="top-p", top_k=10, top_p=1e-300, seed=1)
def test_fuzzed_generate_options(language_model, prime, length, temperature, sampling, top_k, top_p, seed):
    model = language_model
    try:
        stream = model.task.generate(model.model, prime, length, model.device, temperature=temperature,
                                     sampling=sampling, top_k=top_k, top_p=top_p, seed=seed)
        pieces = list(itertools.islice(stream, 25))
    except WorkbenchError as exc:
        refused(exc)
        return
    assert all(isinstance(piece, str) for piece in pieces) and len(pieces) == min(length, 25)
    event("answered")


@settings(max_examples=fuzz_examples(15))
@given(argv=st.lists(st.sampled_from(["--seed", "18446744073709551616", "--seed", "-1", "--length", "0",
                                      "--length", "3", "--top-k", "0", "--temperature", "nan", "--top-p", "inf",
                                      "--prime", "\x00", "--sampling", "top-k", "--json"]), max_size=6))
def test_fuzzed_generate_command_lines(checkpoints, capsys, argv):
    capsys.readouterr()
    try:
        code = main(["generate", str(checkpoints["language_model"]), "--length", "3", *argv])
    except SystemExit as exc:
        code = exc.code
    _, err = capsys.readouterr()
    assert code in (0, 2) and "Traceback" not in err
    if code == 2:
        assert err.startswith("workbench: error: ") and err.count("\n") == 1, err


# -- eval on the user's own files ----------------------------------------------------------------------
tagged_words = st.builds(lambda word, tag: f"{word}/{tag}", st.sampled_from(["the", "dog", "zebra", "é", "a/b"]),
                         st.sampled_from(["DT", "NN", "VB", "XX", "nn"]))


@settings(max_examples=fuzz_examples(15))
@given(lines=st.lists(st.lists(tagged_words, min_size=1, max_size=4).map(" ".join), max_size=12),
       split=st.sampled_from(["test", "valid", "train"]))
@example(lines=["the/DT dog/NN runs/VB"] * 10, split="test")
@example(lines=["zebra/XX"] * 10, split="test")
def test_fuzzed_eval_data(loaded, tmp_path, lines, split):
    """``workbench eval tagger.pt --data-dir FILE``: the tagger's own kind of file, with other words and tags."""
    path = tmp_path / "mine.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        metrics = evaluate_checkpoint(loaded["tagging"], get_registry(), split, str(path))
    except WorkbenchError as exc:
        refused(exc)
        return
    assert metrics["count"] > 0
    event("evaluated")


# -- checkpoint metadata ---------------------------------------------------------------------------
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
CONFIG_KEYS = ["dataset", "arch", "device", "train", "data", "model", "data_dir"]


@st.composite
def metadata_changes(draw: st.DrawFn) -> tuple[str, list[tuple[tuple[str, ...], Any]]]:
    """Which checkpoint, and a few (path into the payload, new value) changes to its metadata."""
    kind = draw(st.sampled_from(list(KINDS)))
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["format", "version", "config", "task_state"]))
        if where in ("format", "version"):
            changes.append(((where,), draw(st.one_of(json_like, st.sampled_from(["workbench-checkpoint", 1, 2, 1.0])))))
        elif where == "config":
            key = draw(st.sampled_from(CONFIG_KEYS))
            if key in ("train", "data", "model") and draw(st.booleans()):
                name = draw(st.sampled_from(["hidden_size", "embedding_dim", "num_layers", "dropout", "epochs", "lr",
                                             "tokenizer", "nope"]))
                changes.append(((where, key, name), draw(json_like)))
            else:
                changes.append(((where, key), draw(json_like)))
        else:
            key = draw(st.sampled_from(["kind", "vocab", "classes", "tags", "tokenizer", "normalize", "max_length",
                                        "truncate", "source_vocab", "target_vocab", "chars", "words", "nope"]))
            changes.append(((where, key), draw(json_like)))
    return kind, changes


def apply(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = payload
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


@settings(max_examples=fuzz_examples(60))
@given(case=metadata_changes())
@example(case=("classification", [(("config", "model", "hidden_size"), 40000)]))
@example(case=("classification", [(("config", "model"), [])]))
@example(case=("classification", [(("task_state", "vocab"), 5)]))
@example(case=("language_model", [(("config", "data_dir"), 5)]))
def test_fuzzed_checkpoint_metadata(checkpoints, tmp_path, case):
    kind, changes = case
    payload = torch.load(checkpoints[kind], weights_only=True)
    payload = {**payload, "config": copy.deepcopy(payload["config"]), "task_state": copy.deepcopy(payload["task_state"])}
    for path, value in changes:
        apply(payload, path, value)
    crafted = tmp_path / "crafted.pt"
    torch.save(payload, crafted)
    try:
        model = load_trained(crafted, get_registry(), "cpu")
    except WorkbenchError as exc:
        refused(exc)
        return
    hidden = model.config.model.get("hidden_size")
    assert hidden is None or (isinstance(hidden, int) and 1 <= hidden <= 8192)
    event("loaded")


def test_untouched_checkpoints_load(loaded):
    assert set(loaded) == set(KINDS) and all(math.isfinite(sum(p.sum().item() for p in m.model.parameters()))
                                              for m in loaded.values())
