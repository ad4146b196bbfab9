"""Part-of-speech tagging: CoNLL-U and tagged-text loaders on real EWT slices, batching and masking,
metrics, a tiny training run and `workbench predict` end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from workbench_plugins import tagger_models, ud_data

from workbench.api import LoadContext, TaggingData
from workbench.config import resolve_config
from workbench.engine import load_trained, train
from workbench.errors import DataError
from workbench.tasks.tagging import IGNORE, TaggingTask, split_words

EWT = "ud-english-ewt"
COMMON = {"column": "upos", "lowercase": True, "min_freq": 1, "max_train_sentences": 0}
OWN = {**COMMON, "path": "", "valid_fraction": 0.1, "test_fraction": 0.1, "split_seed": 0}


def lines_of(shared_data: Path, name: str, first: int, last: int) -> list[str]:
    with open(shared_data / EWT / name, encoding="utf-8") as handle:
        return [line for number, line in enumerate(handle, start=1) if first <= number <= last]


@pytest.fixture()
def slices(shared_data, tmp_path) -> Path:
    """A small treebank folder cut from the real EWT files (train: its first 62 sentences, which hold
    multi-word tokens and an empty node; dev and test: their first sentences)."""
    folder = tmp_path / "treebank"
    folder.mkdir()
    (folder / "en_ewt-ud-train.conllu").write_text("".join(lines_of(shared_data, "en_ewt-ud-train.conllu", 1, 1752)))
    (folder / "en_ewt-ud-dev.conllu").write_text("".join(lines_of(shared_data, "en_ewt-ud-dev.conllu", 1, 400)))
    (folder / "en_ewt-ud-test.conllu").write_text("".join(lines_of(shared_data, "en_ewt-ud-test.conllu", 1, 400)))
    return folder


def test_ewt_loader_counts_and_tags(shared_data, tmp_path):
    data = ud_data.load_ewt(LoadContext(shared_data, tmp_path), COMMON)
    assert (len(data.train), len(data.valid), len(data.test)) == (12544, 2001, 2077)
    assert data.tags == ud_data.UPOS and len(data.tags) == 17
    assert data.train[0][0][:4] == ["Al", "-", "Zaman", ":"]
    assert all(len(words) == len(tags) for words, tags in data.train)
    # the folder itself or its parent both work
    again = ud_data.load_ewt(LoadContext(shared_data / EWT, tmp_path), {**COMMON, "max_train_sentences": 5})
    assert len(again.train) == 5


def test_conllu_skips_comments_multiword_ranges_and_empty_nodes(slices):
    text = (slices / "en_ewt-ud-train.conllu").read_text()
    sentences = ud_data.parse_conllu(text, "train.conllu")
    assert len(sentences) == text.count("# sent_id")
    words = [w for ws, _ in sentences for w in ws]
    assert "don't" not in words and "do" in words and "n't" in words  # line 205: 19-20 don't
    iraq = next(ws for ws, _ in sentences if ws[:3] == ["Over", "300", "Iraqis"])
    assert iraq.count("reported") == 1 and len(iraq) == 13  # the empty node 8.1 is not a word
    xpos = ud_data.parse_conllu(text, "train.conllu", "xpos")
    assert xpos[0][1][:2] == ["NNP", "HYPH"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("1\tHello\thello\tINTJ\tUH\t_\t0\troot\n", "expected 10 tab-separated CoNLL-U fields, found 8"),
        ("x\tHello\thello\tINTJ\tUH\t_\t0\troot\t0:root\t_\n", "word id 'x' is not a number"),
        ("1\tHello\thello\t_\tUH\t_\t0\troot\t0:root\t_\n", "no UPOS tag for 'Hello'"),
        ("5\tHello\thello\tINTJ\tUH\t_\t0\troot\t0:root\t_\n", "word id 5 out of order"),
    ],
)
def test_malformed_conllu_names_file_and_line(slices, bad, message):
    path = slices / "en_ewt-ud-train.conllu"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(1752, bad)  # after the last sentence's blank line: line 1753
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=rf"en_ewt-ud-train.conllu:1753: {message}"):
        ud_data.load_conllu(LoadContext(slices, slices), OWN)


def test_not_utf8_and_missing_files(slices, tmp_path):
    (slices / "en_ewt-ud-dev.conllu").write_bytes(b"# ok\n1\tcaf\xe9\n")
    with pytest.raises(DataError, match=r"en_ewt-ud-dev.conllu:2: not UTF-8"):
        ud_data.load_conllu(LoadContext(slices, tmp_path), OWN)
    with pytest.raises(DataError, match="no UD English EWT in"):
        ud_data.load_ewt(LoadContext(tmp_path, tmp_path), COMMON)
    with pytest.raises(DataError, match="no training file"):
        ud_data.load_conllu(LoadContext(tmp_path, tmp_path), OWN)


def test_own_conllu_folder_and_single_file(slices):
    n = (slices / "en_ewt-ud-train.conllu").read_text().count("# sent_id")
    data = ud_data.load_conllu(LoadContext(slices, slices), OWN)
    assert len(data.train) == n and data.valid and data.test and data.info["files"]["valid"] == "en_ewt-ud-dev.conllu"
    single = ud_data.load_conllu(LoadContext(slices / "en_ewt-ud-train.conllu", slices), OWN)
    sizes = (len(single.train), len(single.valid), len(single.test))
    assert sum(sizes) == n and sizes[1] == sizes[2] == round(n * 0.1)


def test_tagged_text_formats_from_real_sentences(slices, tmp_path):
    sentences = ud_data.parse_conllu((slices / "en_ewt-ud-train.conllu").read_text(), "x")
    slash = tmp_path / "slash.txt"
    slash.write_text("\n".join(" ".join(f"{w}/{t}" for w, t in zip(ws, ts, strict=True)) for ws, ts in sentences) + "\n")
    columns = tmp_path / "columns.tsv"
    columns.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(ws, ts, strict=True)) for ws, ts in sentences))
    assert ud_data.parse_tagged_text(slash.read_text(), "slash.txt") == sentences
    assert ud_data.parse_tagged_text(columns.read_text(), "columns.tsv") == sentences
    assert ud_data.parse_tagged_text("1/2/NUM cups/NOUN\n", "x") == [(["1/2", "cups"], ["NUM", "NOUN"])]
    data = ud_data.load_tagged_text(LoadContext(columns, tmp_path), {**OWN, "format": "auto"})
    assert len(data.train) + len(data.valid) + len(data.test) == len(sentences)
    with pytest.raises(DataError, match=r"bad.txt:2: 'cat' is not word/TAG"):
        ud_data.parse_tagged_text("The/DET dog/NOUN\nThe/DET cat\n", "bad.txt", "slash")
    with pytest.raises(DataError, match=r"bad.tsv:3: expected a word and a tag"):
        ud_data.parse_tagged_text("The\tDET\ndog\tNOUN\ncat\n", "bad.tsv", "columns")


def test_split_words_follows_ud_english():
    assert split_words("I don't like it's e-mail, Mr. Smith!") == [
        "I", "do", "n't", "like", "it", "'s", "e-mail", ",", "Mr", ".", "Smith", "!"]


def small_task() -> tuple[TaggingTask, TaggingData]:
    data = TaggingData(tags=["DET", "NOUN", "VERB"], train=[(["The", "dog", "barks"], ["DET", "NOUN", "VERB"]),
                                                          (["A", "cat"], ["DET", "NOUN"])], valid=[], test=[])
    return TaggingTask.from_data(data), data


def test_batching_pads_and_masks():
    task, data = small_task()
    encoded = task.encode(data)["train"]
    batch = task.make_batch(encoded)
    assert batch.inputs["tokens"].shape == (2, 3) and batch.inputs["chars"].shape == (2, 3, 5)
    assert batch.inputs["lengths"].tolist() == [3, 2]
    assert batch.targets[1].tolist() == [0, 1, IGNORE] and batch.units == 5
    assert batch.inputs["tokens"][1, 2] == 0 and batch.inputs["chars"][1, 2].abs().sum() == 0
    # words are lower-cased for the vocabulary, characters keep case
    assert task.words.encode(["the"]) == [int(batch.inputs["tokens"][0, 0])]
    assert task.chars.itos[int(batch.inputs["chars"][0, 0, 0])] == "T"
    unknown_ids, _ = task.encode_words(["zebra"])
    assert unknown_ids == [1]


@pytest.mark.parametrize("builder", ["build_lstm_tagger", "build_char_bilstm_tagger"])
def test_loss_ignores_padding(builder):
    torch.manual_seed(0)
    task, data = small_task()
    params = {"cell": "lstm", "embedding_dim": 8, "hidden_size": 8, "num_layers": 2, "dropout": 0.0,
              "word_dropout": 0.0, "sequence_mode": "padded", "char_encoder": "cnn", "char_dim": 4, "char_size": 6}
    model = getattr(tagger_models, builder)(task.model_context(), params).eval()
    encoded = task.encode(data)["train"]
    with torch.no_grad():
        together, correct = task.loss(model, task.make_batch(encoded))
        alone = [task.loss(model, task.make_batch([e]))[0] for e in encoded]
    expected = (alone[0] * 3 + alone[1] * 2) / 5  # a mean over the 5 real words
    assert float(together) == pytest.approx(float(expected), rel=1e-5)
    assert 0 <= int(correct) <= 5


def run_tiny(registry, slices, arch, *extra):
    config = resolve_config(registry, "conllu", arch, "cpu",
                            ["epochs=2", "batch_size=8", "lr=0.01", "threads=1", "model.hidden_size=16",
                             "model.embedding_dim=16", *extra], data_dir=str(slices))
    return train(config, registry=registry)


def test_tiny_training_metrics_and_checkpoint(registry, slices):
    result = run_tiny(registry, slices, "char-bilstm-tagger", "model.char_encoder=lstm", "model.char_size=8")
    metrics = result.metrics
    assert result.state == "finished" and metrics["count"] > 0
    assert {"accuracy", "oov_accuracy", "oov_count", "per_class_accuracy", "confusion_matrix", "support"} <= set(metrics)
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["count"]
    assert metrics["classes"] == ud_data.UPOS  # the tags of this small treebank are all UPOS
    assert 0 < metrics["oov_count"] < metrics["count"]
    history = result.history
    assert 0 <= history[-1]["train"]["accuracy"] <= 1  # per word, not per sentence
    loaded = load_trained(result.checkpoint, registry, "cpu")
    prediction = loaded.task.predict(loaded.model, "The dog barks.", loaded.device)
    assert prediction["words"] == ["The", "dog", "barks", "."] and len(prediction["tags"]) == 4
    assert all(t in ud_data.UPOS for t in prediction["tags"])


@pytest.mark.slow
def test_predict_cli_end_to_end(registry, slices):
    result = run_tiny(registry, slices, "lstm-tagger")
    env = os.environ.copy()
    run = subprocess.run([sys.executable, "-m", "workbench", "predict", str(result.checkpoint),
                          "The quick brown fox jumps."], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "The quick brown fox jumps."
    words, tags = lines[1], lines[2]
    assert words.split() == ["The", "quick", "brown", "fox", "jumps", "."]
    # each tag starts in the column of its word
    starts = [[m.start() for m in re.finditer(r"\S+", line)] for line in (words, tags)]
    assert starts[0] == starts[1] and len(starts[0]) == 6
    as_json = subprocess.run([sys.executable, "-m", "workbench", "predict", str(result.checkpoint), " ", "--json"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert as_json.returncode == 2 and "nothing to tag" in json.loads(as_json.stdout)["error"]


def test_ewt_download_through_a_mirror_checks_sha256(shared_data, tmp_path):
    mirror = tmp_path / "mirror"
    folder = mirror / "UniversalDependencies" / "UD_English-EWT" / "master"
    folder.mkdir(parents=True)
    for name in ud_data.EWT_FILES.values():
        (folder / name).symlink_to(shared_data / EWT / name)
    cache = tmp_path / "cache"
    data = ud_data.load_ewt(LoadContext(None, cache, mirror=str(mirror)), {**COMMON, "max_train_sentences": 3})
    assert len(data.train) == 3 and len(data.test) == 2077
    assert sorted(p.name for p in (cache / "ud-english-ewt").iterdir()) == sorted(ud_data.EWT_FILES.values())
    bad = tmp_path / "bad" / "UniversalDependencies" / "UD_English-EWT" / "master"
    bad.mkdir(parents=True)
    for name in ud_data.EWT_FILES.values():
        (bad / name).write_text("".join(lines_of(shared_data, name, 1, 30)))
    with pytest.raises(DataError, match="checksum mismatch"):
        ud_data.load_ewt(LoadContext(None, tmp_path / "cache2", mirror=str(tmp_path / "bad")), COMMON)
