"""Length generalisation on brackets: trained on strings up to L, also tested at 2L."""

from __future__ import annotations

import json

import pytest
from workbench_plugins.brackets_data import is_balanced, load

from workbench.cli import main
from workbench.config import resolve_config
from workbench.engine import train

PARAMS = {"length": 24, "min_fraction": 0.4, "defects": "mixed", "pairs": 1, "train_size": 200, "test_size": 40,
          "valid_fraction": 0.1, "data_seed": 0}


def test_brackets_has_a_test_split_twice_as_long_and_leaves_the_others_alone():
    with_long = load(None, {**PARAMS, "long_test_size": 30})  # type: ignore[arg-type]
    without = load(None, {**PARAMS, "long_test_size": 0})  # type: ignore[arg-type]
    long = with_long.extra_tests["test_2x"]
    assert len(long) == 30 and {len(text) for text, _ in long} == {48}
    assert max(len(text) for text, _ in with_long.train) == 24  # training never sees more than L
    assert all(is_balanced(text) == bool(label) for text, label in long)
    assert sum(label for _, label in long) == 15  # half balanced
    assert (with_long.train, with_long.valid, with_long.test) == (without.train, without.valid, without.test)
    assert without.extra_tests == {}


@pytest.mark.slow
def test_the_2x_accuracy_is_in_the_results_and_eval_shows_it(registry, capsys):
    config = resolve_config(registry, "brackets", "gru", "cpu", [
        "data.length=24", "data.train_size=300", "data.test_size=40", "data.long_test_size=40", "epochs=1",
        "model.hidden_size=8", "model.embedding_dim=4", "threads=1", "memory_every=0"])
    result = train(config, registry=registry)
    metrics = result.metrics
    assert 0.0 <= metrics["test_2x_accuracy"] <= 1.0 and "test_2x_balanced_accuracy" in metrics
    assert "accuracy" in metrics and "per_class_accuracy" in metrics  # the test split's own, as before
    assert json.loads(result.run.results_path.read_text())["metrics"]["test_2x_accuracy"] == metrics["test_2x_accuracy"]
    assert main(["eval", result.run.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["metrics"]
    assert shown["test_2x_accuracy"] == pytest.approx(metrics["test_2x_accuracy"])
    assert main(["eval", result.run.id]) == 0
    assert "test_2x_accuracy" in capsys.readouterr().out


# -- copy-reverse and synthetic-text: the same story on the other synthetic tasks ---------------------
COPY = {"mode": "reverse", "symbols": 6, "min_length": 3, "max_length": 6, "train_size": 200, "valid_size": 20,
        "test_size": 20, "sample_seed": 0}


def test_copy_reverse_has_a_test_split_twice_as_long_and_leaves_the_others_alone():
    from workbench_plugins.translation_data import load_copy_reverse

    from workbench.tasks.seq2seq import Seq2SeqTask

    with_long = load_copy_reverse(None, {**COPY, "long_test_size": 25})  # type: ignore[arg-type]
    without = load_copy_reverse(None, {**COPY, "long_test_size": 0})  # type: ignore[arg-type]
    long = with_long.extra_tests["test_2x"]
    assert len(long) == 25 and {len(source.split()) for source, _ in long} == {12}
    assert all(target.split() == source.split()[::-1] for source, target in long)
    assert max(len(source.split()) for source, _ in with_long.train) == 6  # training never sees more than L
    assert (with_long.train, with_long.valid, with_long.test) == (without.train, without.valid, without.test)
    assert without.extra_tests == {}
    task = Seq2SeqTask.from_data(with_long)
    assert task.max_output_length >= 12 and len(task.encode(with_long)["test_2x"]) == 25


def test_copy_reverse_and_synthetic_text_report_their_2x_metrics(registry, capsys):
    """A copy-reverse model's exact matches and BLEU at 2L, and a language model's bits per character
    on the test text read in windows of 2 x seq_len, next to the test metrics (and in eval)."""
    config = resolve_config(registry, "copy-reverse", "gru-attention", "cpu", [
        *(f"data.{k}={v}" for k, v in COPY.items()), "data.long_test_size=20", "epochs=1", "model.hidden_size=8",
        "model.embedding_dim=4", "model.attention_size=8", "threads=1", "memory_every=0"])
    metrics = train(config, registry=registry).metrics
    assert 0.0 <= metrics["test_2x_exact_match"] <= 1.0 and "test_2x_bleu" in metrics
    assert 0.0 <= metrics["exact_match"] <= 1.0 and metrics["test_2x_sentences"] == 20

    config = resolve_config(registry, "synthetic-text", "char-gru", "cpu", [
        "data.chars=3000", "data.seq_len=16", "epochs=1", "model.hidden_size=8", "model.embedding_dim=4",
        "threads=1", "memory_every=0"])
    result = train(config, registry=registry)
    assert result.metrics["test_2x_bits_per_char"] > 0 and "bits_per_char" in result.metrics
    # the same test characters, in half as many windows (the first character of each window is not scored)
    assert result.metrics["test_2x_windows"] == pytest.approx(result.metrics["windows"] / 2, abs=1)
    assert main(["eval", result.run.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["metrics"]
    assert shown["test_2x_bits_per_char"] == pytest.approx(result.metrics["test_2x_bits_per_char"], rel=1e-4)
