"""Sequence to sequence: BLEU against hand-computed values, the fra-eng / TSV / copy-reverse loaders
on real file slices, batching and masking, greedy and beam decoding, a tiny training run and
`workbench predict` end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from workbench_plugins import seq2seq_models, translation_data

from workbench.api import LoadContext, Seq2SeqData
from workbench.bleu import corpus_bleu, d2l_bleu
from workbench.config import resolve_config
from workbench.engine import load_trained, train
from workbench.errors import DataError
from workbench.tasks.seq2seq import IGNORE, Seq2SeqTask
from workbench.text import normalize_nmt

FRA = {"direction": "eng-fra", "max_length": 10, "max_pairs": 0, "prefixes": "", "valid_fraction": 0.1,
       "test_fraction": 0.1, "split_seed": 0, "min_freq": 1}
TSV = {"path": "", "normalize": "nmt", "tokenizer": "whitespace", "swap": False, "max_length": 0, "max_pairs": 0,
       "valid_fraction": 0.1, "test_fraction": 0.1, "split_seed": 0, "min_freq": 1}
ATTRIBUTION = "\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)"


def head(shared_data: Path, lines: int) -> str:
    with open(shared_data / "fra-eng" / "fra.txt", encoding="utf-8") as handle:
        return "".join(next(handle) for _ in range(lines))


# -- BLEU ------------------------------------------------------------------------------------------
def test_d2l_sentence_bleu_matches_the_course():
    # the course's plain encoder-decoder outputs for its probes and the scores it prints
    assert d2l_bleu("va !".split(), "va !".split(), k=2) == pytest.approx(1.0)
    assert d2l_bleu("il est riche .".split(), "il est calme .".split(), k=2) == pytest.approx(
        (3 / 4) ** 0.5 * (1 / 3) ** 0.25)
    assert round(d2l_bleu("il est riche .".split(), "il est calme .".split(), k=2), 3) == 0.658
    assert round(d2l_bleu("je suis en retard ?".split(), "je suis chez moi .".split(), k=2), 3) == 0.447
    # too short: brevity penalty, and no bigram at all scores 0 (the course's code divides by zero)
    assert d2l_bleu(["va"], "va !".split(), k=1) == pytest.approx(math.exp(1 - 2))
    assert d2l_bleu(["va"], "va !".split(), k=2) == 0.0
    assert d2l_bleu([], ["va"]) == 0.0


def test_corpus_bleu_by_hand():
    hyp = "the cat sat on the mat".split()
    ref = "the cat is on the mat".split()
    result = corpus_bleu([hyp], [[ref]])
    # 1-grams 5/6, 2-grams (the cat, on the, the mat) 3/5, 3-grams (on the mat) 1/4, 4-grams 0/3
    assert (result["p1"], result["p2"], result["p3"], result["p4"]) == pytest.approx((5 / 6, 3 / 5, 1 / 4, 0.0))
    assert result["bleu"] == 0.0  # no smoothing
    two = corpus_bleu([hyp, "a b c d".split()], [[ref], ["a b c d".split()]])
    p = [(5 + 4) / 10, (3 + 3) / 8, (1 + 2) / 6, (0 + 1) / 4]
    assert two["bleu"] == pytest.approx(100 * math.exp(sum(math.log(x) for x in p) / 4))
    assert two["bp"] == 1.0
    # brevity penalty at corpus level, against the closest reference length
    short = corpus_bleu(["a b c d".split()], [["a b c d e f".split(), "a b c d e f g h".split()]])
    assert short["bp"] == pytest.approx(math.exp(1 - 6 / 4)) and short["ref_len"] == 6
    assert short["bleu"] == pytest.approx(100 * math.exp(1 - 6 / 4))
    # clipping: "the the the" matches "the" at most as often as the best reference has it
    clipped = corpus_bleu(["the the the the".split()], [["the cat".split(), "the the dog".split()]], max_n=1)
    assert clipped["p1"] == pytest.approx(2 / 4)
    assert corpus_bleu([ref], [[ref]])["bleu"] == pytest.approx(100.0)


# -- loaders ---------------------------------------------------------------------------------------
def test_normalisation_and_probes():
    assert normalize_nmt("I'm home.") == "i'm home ."
    assert normalize_nmt("J’ai perdu.") == "j'ai perdu ."
    assert normalize_nmt("Qui\u202f?  Va!") == "qui ? va !"
    assert [s for s, _ in translation_data.PROBES] == ["go .", "i lost .", "he's calm .", "i'm home ."]


def test_fra_txt_two_and_three_columns(shared_data, tmp_path):
    two = tmp_path / "fra.txt"
    two.write_text(head(shared_data, 2000))
    data = translation_data.load_fra_eng(LoadContext(tmp_path, tmp_path), FRA)
    total = len(data.train) + len(data.valid) + len(data.test)
    assert total == 2000 and data.train[0] == ("go .", "va !") and data.normalize == "nmt"  # cached: tokens joined
    newer = tmp_path / "new" / "fra.txt"
    newer.parent.mkdir()
    newer.write_text("".join(line.rstrip("\n") + ATTRIBUTION + "\n" for line in head(shared_data, 2000).splitlines()))
    again = translation_data.load_fra_eng(LoadContext(newer, tmp_path), FRA)
    assert again.train == data.train and again.test == data.test
    # held-out source sentences never occur in training; the probes always train
    train_sources = {normalize_nmt(s) for s, _ in data.train}
    assert not train_sources & {normalize_nmt(s) for s, _ in data.valid + data.test}
    assert {"go .", "i lost .", "i'm home ."} <= train_sources
    assert data.probes == translation_data.PROBES
    reverse = translation_data.load_fra_eng(LoadContext(two, tmp_path), {**FRA, "direction": "fra-eng"})
    assert reverse.train[0] == ("va !", "go .") and reverse.probes[0] == ("va !", "go .")


def test_fra_filters(shared_data, tmp_path):
    (tmp_path / "fra.txt").write_text(head(shared_data, 5000))
    short = translation_data.load_fra_eng(LoadContext(tmp_path, tmp_path), {**FRA, "max_length": 3})
    for source, target in short.train + short.valid + short.test:
        assert len(normalize_nmt(source).split()) <= 3 and len(normalize_nmt(target).split()) <= 3
    prefixed = translation_data.load_fra_eng(LoadContext(tmp_path, tmp_path), {**FRA, "prefixes": "tutorial"})
    assert prefixed.train and all(normalize_nmt(s).startswith(translation_data.TUTORIAL_PREFIXES)
                                  for s, _ in prefixed.train + prefixed.test)
    custom = translation_data.load_fra_eng(LoadContext(tmp_path, tmp_path), {**FRA, "prefixes": "i'm , he's "})
    assert all(normalize_nmt(s).startswith(("i'm ", "he's ")) for s, _ in custom.train)
    first = translation_data.load_fra_eng(LoadContext(tmp_path, tmp_path), {**FRA, "max_pairs": 600})
    assert len(first.train) + len(first.valid) + len(first.test) == 600


@pytest.mark.parametrize(
    ("line", "message"),
    [("Hello there.\n", r"fra.txt:3: expected source<TAB>target"), ("\tBonjour.\n", r"fra.txt:3: empty source"),
     ("Hello.\t \n", r"fra.txt:3: empty target")],
)
def test_malformed_pairs_name_file_and_line(shared_data, tmp_path, line, message):
    lines = head(shared_data, 10).splitlines(keepends=True)
    lines.insert(2, line)
    (tmp_path / "fra.txt").write_text("".join(lines))
    with pytest.raises(DataError, match=message):
        translation_data.load_fra_eng(LoadContext(tmp_path, tmp_path), FRA)


def test_zip_download_mirror_and_checksum(shared_data, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "fra-eng.zip", "w") as archive:
        archive.write(shared_data / "fra-eng" / "fra.txt", "fra-eng/fra.txt")
    data = translation_data.load_fra_eng(LoadContext(None, tmp_path / "cache", mirror=str(mirror)),
                                         {**FRA, "max_pairs": 100})
    assert len(data.train) + len(data.valid) + len(data.test) == 100
    assert (tmp_path / "cache" / "fra-eng" / "fra-eng.zip").is_file()
    local = translation_data.load_fra_eng(LoadContext(mirror / "fra-eng.zip", tmp_path), {**FRA, "max_pairs": 100})
    assert local.train == data.train
    bad = tmp_path / "bad"
    bad.mkdir()
    with zipfile.ZipFile(bad / "fra-eng.zip", "w") as archive:
        archive.writestr("fra-eng/fra.txt", head(shared_data, 50))
    with pytest.raises(DataError, match="does not match its published sha256"):
        translation_data.load_fra_eng(LoadContext(None, tmp_path / "cache2", mirror=str(bad)), FRA)
    with pytest.raises(DataError, match="no English-French pairs in"):
        translation_data.load_fra_eng(LoadContext(tmp_path / "mirror" / "..", tmp_path), FRA)


def test_parallel_tsv_file_and_folder(shared_data, tmp_path):
    text = head(shared_data, 3000).splitlines(keepends=True)
    single = tmp_path / "pairs.tsv"
    single.write_text("".join(text))
    data = translation_data.load_parallel_tsv(LoadContext(single, tmp_path), TSV)
    assert len(data.train) + len(data.valid) + len(data.test) == 3000 and data.probes == []
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.tsv").write_text("".join(text[:2000]))
    (folder / "dev.tsv").write_text("".join(text[2000:2500]))
    (folder / "test.tsv").write_text("".join(text[2500:]))
    split = translation_data.load_parallel_tsv(LoadContext(folder, tmp_path), {**TSV, "swap": True})
    assert (len(split.train), len(split.valid), len(split.test)) == (2000, 500, 500)
    assert split.train[0] == ("va !", "go .")  # cached: normalised tokens joined
    (folder / "dev.tsv").write_text("only one column\n")
    with pytest.raises(DataError, match=r"dev.tsv:1: expected source<TAB>target"):
        translation_data.load_parallel_tsv(LoadContext(folder, tmp_path), TSV)
    with pytest.raises(DataError, match="point --data-dir"):
        translation_data.load_parallel_tsv(LoadContext(None, tmp_path), TSV)


def test_copy_reverse_is_deterministic():
    params = {"mode": "reverse", "symbols": 5, "min_length": 2, "max_length": 4, "train_size": 50,
              "valid_size": 5, "test_size": 5, "sample_seed": 1}
    data = translation_data.load_copy_reverse(LoadContext(None, Path(".")), params)
    assert data == translation_data.load_copy_reverse(LoadContext(None, Path(".")), params)
    for source, target in data.train:
        assert target.split() == source.split()[::-1] and 2 <= len(source.split()) <= 4
        assert set(source.split()) <= set("abcde")
    with pytest.raises(DataError, match="min_length 5 is above max_length 4"):
        translation_data.load_copy_reverse(LoadContext(None, Path(".")), {**params, "min_length": 5})


# -- batching, masking, decoding -------------------------------------------------------------------
PAIRS = [("go .", "va !"), ("i lost .", "j'ai perdu ."), ("i'm home .", "je suis chez moi ."), ("hi .", "salut !")]
MODEL = {"embedding_dim": 8, "hidden_size": 12, "num_layers": 2, "dropout": 0.0, "teacher_forcing": 1.0,
         "attention_size": 6}


def small_task() -> tuple[Seq2SeqTask, list]:
    data = Seq2SeqData(train=PAIRS, valid=[], test=[], probes=translation_data.PROBES)
    task = Seq2SeqTask.from_data(data)
    return task, task.encode(data)["train"]


def test_batching_adds_bos_eos_and_masks_padding():
    task, encoded = small_task()
    batch = task.make_batch(encoded[:3])
    tokens, target_in, targets = batch.inputs["tokens"], batch.inputs["target_in"], batch.targets
    assert batch.inputs["lengths"].tolist() == [3, 4, 4]
    assert tokens[0].tolist()[2] == task.src_eos and tokens[0].tolist()[3] == 0
    assert target_in[:, 0].tolist() == [task.bos] * 3
    assert targets[0].tolist() == [*encoded[0][1], task.eos, IGNORE, IGNORE, IGNORE]
    assert targets[2].tolist()[-1] == task.eos and batch.units == 3 + 4 + 6
    assert task.target.decode(encoded[2][1]) == ["je", "suis", "chez", "moi", "."]


@pytest.mark.parametrize("builder", ["build_plain", "build_attention"])
def test_loss_ignores_padding_and_teacher_forcing(builder):
    torch.manual_seed(0)
    task, encoded = small_task()
    model = getattr(seq2seq_models, builder)(task.model_context(), MODEL).eval()
    with torch.no_grad():
        together = task.loss(model, task.make_batch(encoded))
        alone = [task.loss(model, task.make_batch([e])) for e in encoded]
    counts = [len(e[1]) + 1 for e in encoded]
    expected = sum(a * c for a, c in zip(alone, counts, strict=True)) / sum(counts)
    assert float(together) == pytest.approx(float(expected), rel=1e-5)
    # with teacher forcing below 1 the decoder feeds back its own guesses while training
    model.teacher_forcing = 0.0
    model.train()
    loss = task.loss(model, task.make_batch(encoded))
    loss.backward()
    assert torch.isfinite(loss) and model.embedding.weight.grad is not None


@pytest.mark.parametrize("builder", ["build_plain", "build_attention"])
def test_beam_width_one_equals_greedy(builder):
    task, encoded = small_task()
    for seed in range(3):
        torch.manual_seed(seed)
        model = getattr(seq2seq_models, builder)(task.model_context(), MODEL).eval()
        sources = [e[0] for e in encoded]
        greedy = task.greedy(model, sources, torch.device("cpu"), max_length=7)
        for source, expected in zip(sources, greedy, strict=True):
            assert task.greedy(model, [source], torch.device("cpu"), max_length=7)[0] == expected
            beam = task.beam_search(model, source, torch.device("cpu"), width=1, max_length=7)
            assert len(beam) == 1 and beam[0]["ids"] == expected
            assert task.eos not in expected and len(expected) <= 7
            wide = task.beam_search(model, source, torch.device("cpu"), width=4, max_length=7)
            scores = [b["score"] for b in wide]
            assert scores == sorted(scores, reverse=True) and scores[0] >= beam[0]["score"] - 1e-5
            if builder == "build_attention":
                attention = wide[0]["attention"]
                finished = len(wide[0]["ids"]) < 7
                assert len(attention) == len(wide[0]["ids"]) + (1 if finished else 0)
                assert all(len(row) == len(source) + 1 and abs(sum(row) - 1) < 1e-4 for row in attention)
            else:
                assert wide[0]["attention"] is None


# -- training and predict --------------------------------------------------------------------------
@pytest.mark.slow
def test_copy_reverse_trains_and_predicts(registry):
    config = resolve_config(registry, "copy-reverse", "gru-attention", "cpu",
                            ["epochs=2", "train_size=1500", "valid_size=100", "test_size=100", "threads=1",
                             "batch_size=32", "lr=0.01", "model.teacher_forcing=0.8"])
    result = train(config, registry=registry)
    history = result.history
    assert history[-1]["train"]["loss"] < history[0]["train"]["loss"]
    assert {"bleu", "bleu_bp", "bleu_p4", "loss", "examples"} <= set(result.metrics)
    loaded = load_trained(result.checkpoint, registry, "cpu")
    prediction = loaded.task.predict(loaded.model, "a b c d", loaded.device, top_k=3)
    assert prediction["beam_width"] == 3 and len(prediction["translations"]) == 3
    assert prediction["alignment"]["source"] == ["a", "b", "c", "d", "<eos>"]
    assert len(prediction["alignment"]["weights"]) == len(prediction["tokens"]) + 1


@pytest.mark.slow
def test_fra_eng_tiny_run_probes_and_predict_cli(registry, shared_data, tmp_path):
    (tmp_path / "fra.txt").write_text(head(shared_data, 600))
    config = resolve_config(registry, "fra-eng", "gru-seq2seq", "cpu",
                            ["epochs=1", "threads=1", "model.hidden_size=16", "model.embedding_dim=8",
                             "model.num_layers=1"], data_dir=str(tmp_path))
    result = train(config, registry=registry)
    probes = result.metrics["probes"]
    assert [p["source"] for p in probes] == ["go .", "i lost .", "he's calm .", "i'm home ."]
    assert all(0 <= p["bleu"] <= 1 for p in probes)
    assert 0 <= result.metrics["bleu"] <= 100
    env = os.environ.copy()
    run = subprocess.run([sys.executable, "-m", "workbench", "predict", str(result.checkpoint), "I'm home.",
                          "--top-k", "1"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "I'm home." and run.stdout.splitlines()[1].startswith("  -> ")
    as_json = subprocess.run([sys.executable, "-m", "workbench", "predict", str(result.checkpoint), "Go.", "--json"],
                             capture_output=True, text=True, env=env, timeout=120)
    prediction = json.loads(as_json.stdout)["predictions"][0]
    assert prediction["source_tokens"] == ["go", "."] and "alignment" not in prediction  # no attention here
