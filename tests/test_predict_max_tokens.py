"""Predict reads no more of an input than training read of an example (`train.max_tokens`).

Before, a 1 MB name took 18 s and 4 GB in `workbench predict`; a pasted file could take all memory.
Classification reads the part training kept (and says so), a language model the last characters
before the one it predicts; a tagger or a translator refuses, since a cut input would give an answer
for another text.
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


def test_a_language_model_reads_the_last_characters_of_a_long_input(loaded):
    model = loaded["language_model"]
    text = "the cat sat on the mat. " * 4
    cut = predict(model, text, 10)
    assert cut["cut"] == {"tokens": len(text), "kept": 10, "part": "last"}
    assert cut["next"] == predict(model, text[-10:], 10)["next"]
    assert "read only the last 10 of its 96 tokens" in model.task.render_prediction(cut)


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
