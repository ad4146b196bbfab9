"""Predict reads no more of an input than training read of an example (`train.max_tokens`).

Before, a 1 MB name took 18 s and 4 GB in `workbench predict`; a pasted file could take all memory.
Classification reads the part training kept (and says so); a language model reads a long text in
pieces of that size, carrying its state (the same answer, bounded memory), or the last characters when
it cannot carry a state; a tagger or a translator refuses, since a cut input would give an answer for
another text.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_fuzz_models import write_checkpoint

from workbench.cli import main
from workbench.engine import load_trained
from workbench.errors import WorkbenchError
from workbench.registry import get_registry


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return {kind: load_trained(write_checkpoint(folder, kind), get_registry(), "cpu")
            for kind in ("classification", "language_model", "tagging", "seq2seq")}


def predict(model: Any, text: str, limit: int) -> dict[str, Any]:
    model.task.max_tokens = limit
    try:
        return model.task.predict(model.model, text, model.device, top_k=2)
    finally:
        model.task.max_tokens = 2000


def test_loading_a_checkpoint_sets_the_runs_max_tokens(loaded):
    assert all(model.task.max_tokens == model.config.train["max_tokens"] == 2000 for model in loaded.values())


def test_a_long_input_is_classified_from_the_part_training_kept_and_says_so(loaded):
    model = loaded["classification"]
    text = "((((((((()))))))))" * 2
    cut = predict(model, text, 6)
    assert cut["cut"] == {"tokens": len(text), "kept": 6, "part": "first"}
    assert cut["top"] == predict(model, text[:6], 6)["top"]
    assert "read only the first 6 of its 36 tokens: the run's train.max_tokens" in model.task.render_prediction(cut)
    assert "cut" not in predict(model, text, 0)  # 0: no limit


def test_a_language_model_reads_a_long_input_in_pieces_carrying_its_state(loaded):
    model = loaded["language_model"]
    text = "the cat sat on the mat. " * 4
    widths: list[int] = []
    hook = model.model.register_forward_hook(lambda module, args, kwargs, out: widths.append(kwargs["tokens"].shape[1]),
                                             with_kwargs=True)
    try:
        whole = predict(model, text, 0)
        assert widths == [96]
        widths.clear()
        pieces = predict(model, text, 10)
        assert widths == [10] * 9 + [6]  # never more than max_tokens at once
    finally:
        hook.remove()
    assert "cut" not in pieces and pieces["chars"] == len(text)
    assert pieces["loss"] == pytest.approx(whole["loss"], abs=1e-5)
    assert [n["char"] for n in pieces["next"]] == [n["char"] for n in whole["next"]]
    assert [n["probability"] for n in pieces["next"]] == pytest.approx([n["probability"] for n in whole["next"]], abs=1e-5)


class Stateless(torch.nn.Module):
    """A language model whose forward cannot carry a state (a plugin's may not)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, tokens, lengths):
        return self.inner(tokens=tokens, lengths=lengths)


def test_a_language_model_that_cannot_carry_its_state_reads_the_last_characters(loaded):
    model = loaded["language_model"]
    stateless = Stateless(model.model)
    text = "the cat sat on the mat. " * 4
    model.task.max_tokens = 10
    try:
        cut = model.task.predict(stateless, text, model.device, top_k=2)
        last = model.task.predict(stateless, text[-10:], model.device, top_k=2)
    finally:
        model.task.max_tokens = 2000
    assert cut["cut"] == {"tokens": len(text), "kept": 10, "part": "last"}
    assert cut["next"] == last["next"]
    assert "read only the last 10 of its 96 tokens" in model.task.render_prediction(cut)


def test_a_long_prime_is_read_in_pieces_and_generates_the_same_text(loaded):
    model = loaded["language_model"]
    prime = "the cat sat on the mat. " * 4

    def generated(limit: int) -> str:
        model.task.max_tokens = limit
        try:
            return "".join(model.task.generate(model.model, prime, 40, model.device, sampling="greedy"))
        finally:
            model.task.max_tokens = 2000

    assert generated(7) == generated(0)


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("tagging", "the dog runs", "the input has 3 words; this model tags at most 2 at once"),
    ("seq2seq", "a b c", "the input has 3 tokens; this model translates at most 2 at once"),
])
def test_a_tagger_or_translator_refuses_an_input_longer_than_it_reads(loaded, kind, text, message):
    with pytest.raises(WorkbenchError, match=message):
        predict(loaded[kind], text, 2)
    assert predict(loaded[kind], text, 3)  # at the limit: answered


def test_workbench_predict_reads_a_pasted_file_in_bounded_time(tmp_path, capsys, monkeypatch):
    checkpoint = write_checkpoint(tmp_path, "classification")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("(" * 300_000 + "\n"))
    torch.manual_seed(0)
    assert main(["predict", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "read only the first 2,000 of its 300,000 tokens: the run's train.max_tokens" in out


def test_the_app_shows_which_part_was_read(loaded):
    from workbench.tui.render import prediction_view

    model = loaded["classification"]
    view = prediction_view(predict(model, "(" * 50, 6), 80, model.task.render_prediction)
    assert "read only the first 6 of its 50 tokens" in str(view)
