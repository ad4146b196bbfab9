"""Labelled texts tokenised once into the data cache (workbench.text_cache) and the classification
task reading them a batch at a time: the same vocabulary, examples, batches, training and metrics as
the in-memory lists, and a cache that is rebuilt whenever it should be and never trusted blindly."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from workbench_plugins import sentiment_data

from workbench.api import ClassificationData, LoadContext, Record, hold_out, tokenized_texts
from workbench.distributed import select
from workbench.errors import DataError
from workbench.tasks.classification import ClassificationTask
from workbench.tasks.token_examples import TokenExamples
from workbench.text_cache import TextSplit

RT_PARAMS = {"max_vocab": 0, "min_freq": 2, "test_fraction": 0.1, "valid_fraction": 0.1, "split_seed": 3}


def in_memory(streamed: ClassificationData, records: list[Record], params: dict) -> ClassificationData:
    """The dataset as the loaders built it before the cache: lists of (text, label), split alike."""
    examples = [(r.text, ["neg", "pos"].index(r.label)) for r in records]
    train, test = hold_out(examples, params["test_fraction"], params["split_seed"])
    train, valid = hold_out(train, params["valid_fraction"], params["split_seed"])
    fields = {k: getattr(streamed, k) for k in ("classes", "tokenizer", "normalize", "max_vocab", "min_freq",
                                                  "max_length", "truncate")}
    return ClassificationData(train=train, valid=valid, test=test, **fields)


@pytest.fixture()
def rt(shared_data, tmp_path):
    """rt-polarity streamed into a cache, and the same data as in-memory lists."""
    folder = shared_data / "rt-polarity"
    streamed = sentiment_data.load_rt(LoadContext(data_dir=folder, cache_dir=tmp_path / "cache"), RT_PARAMS)
    records = list(sentiment_data.read_rt(sentiment_data.read_rt_files(folder), str(folder)))
    return streamed, in_memory(streamed, records, RT_PARAMS)


def batches(task, examples, seed, batch_size=64):
    generator = torch.Generator().manual_seed(seed)
    return list(task.batches(examples, batch_size, True, generator))


def same_batches(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.inputs["tokens"], y.inputs["tokens"]) and torch.equal(x.inputs["lengths"], y.inputs["lengths"])
        assert torch.equal(x.targets, y.targets) and x.size == y.size


@pytest.mark.slow
@pytest.mark.parametrize("max_length,truncate,max_tokens", [(0, "start", 0), (12, "end", 9)])
def test_streamed_rt_polarity_trains_exactly_as_the_lists_did(rt, registry, max_length, truncate, max_tokens):
    streamed, listed = rt
    streamed.max_length = listed.max_length = max_length
    streamed.truncate = listed.truncate = truncate
    assert isinstance(streamed.train, TextSplit) and isinstance(listed.train, list)
    assert [y for _, y in streamed.test] == [y for _, y in listed.test]
    task_s, task_l = ClassificationTask.from_data(streamed), ClassificationTask.from_data(listed)
    assert task_s.vocab.itos == task_l.vocab.itos and len(task_s.vocab) > 1000
    enc_s, enc_l = task_s.encode(streamed), task_l.encode(listed)
    for split in ("train", "valid", "test"):
        assert isinstance(enc_s[split], TokenExamples)
        cut_s, n_s, long_s = task_s.cut_long(enc_s[split], max_tokens)
        cut_l, n_l, long_l = task_l.cut_long(enc_l[split], max_tokens)
        assert (n_s, long_s) == (n_l, long_l) and list(cut_s) == list(cut_l)
        enc_s[split], enc_l[split] = cut_s, cut_l
    same_batches(batches(task_s, enc_s["train"], 7), batches(task_l, enc_l["train"], 7))
    # a distributed run's shard and train.limit select the same examples
    indices = [5, 0, 17, 3, 99]
    assert list(select(enc_s["train"], indices)) == select(enc_l["train"], indices)
    assert list(enc_s["train"][:10]) == enc_l["train"][:10]
    for task, enc in ((task_s, enc_s), (task_l, enc_l)):
        task.prepare_training(enc["train"], {"class_weight": "balanced"})
    assert torch.equal(task_s.class_weights, task_l.class_weights)
    # the same model trained a few steps on each: identical weights, identical metrics
    from workbench.config import RunConfig
    from workbench.engine import build_model

    models = []
    for task, enc in ((task_s, enc_s), (task_l, enc_l)):
        torch.manual_seed(0)
        defaults = {param.name: param.default for param in registry.architecture("gru").params}
        config = RunConfig(dataset="rt-polarity", arch="gru",
                           model={**defaults, "embedding_dim": 8, "hidden_size": 8})
        model = build_model(config, task, registry)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for batch in batches(task, enc["train"], 1)[:3]:
            loss, _ = task.loss(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        models.append((task.evaluate(model, enc["test"][:300], 100, torch.device("cpu"), detailed=True), model))
    (metrics_s, model_s), (metrics_l, model_l) = models
    assert metrics_s == metrics_l and metrics_s["count"] == 300
    for p, q in zip(model_s.parameters(), model_l.parameters(), strict=True):
        assert torch.equal(p, q)


def write_texts(path: Path, n: int = 30) -> Path:
    path.write_text("".join(f"{'good' if i % 2 else 'bad'} film number {i} ,{'pos' if i % 2 else 'neg'}\n"
                            for i in range(n)), encoding="utf-8")
    return path


def reader(path: Path, calls: list[int]):
    def records():
        calls.append(1)
        for line in path.read_text(encoding="utf-8").splitlines():
            text, label = line.rsplit(",", 1)
            yield Record(text, label)
    return records


def test_the_cache_is_built_once_and_rebuilt_when_its_file_or_settings_change(tmp_path):
    source, cache, calls, said = write_texts(tmp_path / "t.txt"), tmp_path / "cache", [], []

    def load(tokenizer: str = "word"):
        return tokenized_texts("t", [source], reader(source, calls), cache, tokenizer=tokenizer, status=said.append)

    first = load()
    assert calls == [1] and len(first) == 30 and first.ids.dtype == np.uint8
    assert isinstance(first.ids, np.memmap) and first.tokens(3) == ["good", "film", "number", "3"]
    assert list(first.lengths[:2]) == [4, 4] and first.label_names == ["neg", "pos"]
    again = load()
    assert calls == [1], "a cache that matches is read, not built again"
    assert np.array_equal(np.asarray(again.ids), np.asarray(first.ids))
    assert load("char").lexicon != first.lexicon and calls == [1, 1], "another tokeniser, another cache"
    write_texts(source, 40)
    assert len(load()) == 40 and calls == [1, 1, 1], "a changed file rebuilds the cache"
    assert any("out of date" in line for line in said)
    files = sorted(p.name for p in (cache / "texts").iterdir())
    assert len(files) == 8 and not any(name.endswith(".part") or name.startswith(".") for name in files)


@pytest.mark.parametrize("damage", ["json", "ids", "offsets", "foreign", "lexicon"])
def test_a_damaged_or_foreign_cache_is_rebuilt_with_one_line(tmp_path, damage):
    source, cache, calls, said = write_texts(tmp_path / "t.txt"), tmp_path / "cache", [], []
    first = tokenized_texts("t", [source], reader(source, calls), cache, tokenizer="word")
    expected = [first.tokens(i) for i in range(len(first))]
    del first
    base = next((cache / "texts").glob("t-*.json")).with_suffix("")
    if damage == "json":
        base.with_suffix(".json").write_text("{not json")
    elif damage == "ids":
        ids = base.with_name(base.name + ".ids.bin")
        ids.write_bytes(ids.read_bytes()[:-3])
    elif damage == "offsets":
        base.with_name(base.name + ".offsets.npy").write_bytes(b"\x93NUMPY garbage")
    elif damage == "lexicon":
        description = json.loads(base.with_suffix(".json").read_text())
        base.with_suffix(".json").write_text(json.dumps({**description, "lexicon": list(range(len(description["lexicon"])))}))
    else:
        description = json.loads(base.with_suffix(".json").read_text())
        base.with_suffix(".json").write_text(json.dumps({**description, "version": 999}))
    again = tokenized_texts("t", [source], reader(source, calls), cache, tokenizer="word", status=said.append)
    assert calls == [1, 1] and [again.tokens(i) for i in range(len(again))] == expected
    notices = [line for line in said if "token cache of" in line]
    assert len(notices) == 1 and "tokenising it again" in notices[0] and "\n" not in notices[0]


def test_ids_beyond_the_lexicon_are_a_data_error(tmp_path):
    source = write_texts(tmp_path / "t.txt")
    texts = tokenized_texts("t", [source], reader(source, []), tmp_path / "cache", tokenizer="word")
    split = texts.split(np.arange(len(texts)), texts.label_table(["neg", "pos"])[texts.labels])
    examples = TokenExamples(split, np.arange(3))  # a table too short: as if the ids were damaged
    with pytest.raises(DataError, match="token cache .* is damaged"):
        examples.pad([0, 1])


def test_an_unwritable_cache_folder_still_trains(tmp_path):
    """A cache that cannot be made (here a file where the folder should be; a read-only folder as a
    user other than root) tokenises into a temporary folder for the run, saying so once."""
    source, cache = write_texts(tmp_path / "t.txt"), tmp_path / "cache"
    cache.write_text("a file, not a folder")
    said: list[str] = []
    scratch_before = set(Path(tempfile.gettempdir()).glob("workbench-texts-*"))
    texts = tokenized_texts("t", [source], reader(source, []), cache, tokenizer="word", status=said.append)
    assert set(Path(tempfile.gettempdir()).glob("workbench-texts-*")) <= scratch_before, "the scratch folder is removed"
    assert len(texts) == 30 and texts.tokens(1) == ["good", "film", "number", "1"] and texts.path is None
    assert "cannot write the token cache" in said[0] and len(said) == 3
    assert texts.counts(np.arange(30)).sum() == 120  # read through the map: its file is gone


def test_a_folder_source_is_rebuilt_when_a_file_is_added_or_changed(tmp_path):
    root, calls = tmp_path / "corpus", []
    for label in ("neg", "pos"):
        (root / label).mkdir(parents=True)
        (root / label / "1.txt").write_text(f"a {label} text")

    def records():
        calls.append(1)
        for file in sorted(root.glob("*/*.txt")):
            yield Record(file.read_text(), file.parent.name)

    def load():
        return tokenized_texts("c", [root], records, tmp_path / "cache", tokenizer="word")

    assert len(load()) == 2 and len(load()) == 2 and calls == [1]
    (root / "pos" / "2.txt").write_text("another")
    assert len(load()) == 3 and calls == [1, 1]
    (root / "pos" / "2.txt").write_text("another, longer")
    assert load().tokens(2) == ["another", ",", "longer"] and calls == [1, 1, 1]


@pytest.mark.slow
def test_a_second_run_reads_the_cache_without_tokenising(tmp_path, capsys):
    from workbench.cli import main

    path = tmp_path / "mine.csv"
    path.write_text("text,label\n" + "".join(f"{'fine' if i % 2 else 'awful'} film {i},{i % 2}\n"
                                               for i in range(60)), encoding="utf-8")
    command = ["train", "--dataset", "text-csv", "--data-dir", str(path), "--set", "epochs=1",
               "--set", "model.hidden_size=8", "--set", "model.embedding_dim=8"]
    assert main(command) == 0
    first = capsys.readouterr()
    assert main(command) == 0
    second = capsys.readouterr()
    assert "tokenising" in first.out + first.err and "tokenising" not in second.out + second.err


def test_records_that_fail_leave_no_cache(tmp_path):
    def broken():
        yield Record("fine", "a")
        raise DataError("t.txt:2: not UTF-8 text")

    with pytest.raises(DataError, match="not UTF-8"):
        tokenized_texts("t", [write_texts(tmp_path / "t.txt")], broken, tmp_path / "cache", tokenizer="word")
    assert not list((tmp_path / "cache" / "texts").iterdir())


def test_text_csv_with_its_own_test_file_encodes_as_the_lists(shared_data, tmp_path):
    """train.csv and test.csv are two caches with two lexicons: each maps to the one vocabulary."""
    from workbench_plugins import textfiles_data

    lines = {label: (shared_data / "rt-polarity" / f"rt-polarity.{label}").read_bytes().decode("latin-1").split("\n")
             for label in ("pos", "neg")}
    rows = [(text.strip(), label) for label in ("pos", "neg") for text in lines[label][:150] if text.strip()]
    for name, part in (("train", rows[30:270]), ("test", rows[:30] + rows[270:])):
        with open(tmp_path / f"{name}.csv", "w", encoding="utf-8", newline="") as handle:
            writer = __import__("csv").writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(part)
    params = {"path": "", "tokenizer": "word", "max_vocab": 0, "min_freq": 1, "max_length": 0, "truncate": "start",
              "test_fraction": 0.1, "valid_fraction": 0.2, "split_seed": 0, "encoding": "utf-8",
              "text_column": "text", "label_column": "label", "delimiter": "auto"}
    streamed = textfiles_data.load_csv(LoadContext(data_dir=tmp_path, cache_dir=tmp_path / "cache"), params)
    classes = streamed.classes
    listed_train = [(t, classes.index(y)) for t, y in textfiles_data.read_table(tmp_path / "train.csv", params)]
    train, valid = hold_out(listed_train, 0.2, 0)
    test = [(t, classes.index(y)) for t, y in textfiles_data.read_table(tmp_path / "test.csv", params)]
    listed = ClassificationData(classes=classes, train=train, valid=valid, test=test, tokenizer="word")
    task_s, task_l = ClassificationTask.from_data(streamed), ClassificationTask.from_data(listed)
    assert task_s.vocab.itos == task_l.vocab.itos
    enc_s, enc_l = task_s.encode(streamed), task_l.encode(listed)
    for split in ("train", "valid", "test"):
        assert list(enc_s[split]) == enc_l[split]


def test_streamed_conllu_tags_exactly_as_the_lists_did(shared_data, tmp_path):
    from workbench_plugins import ud_data

    from workbench.tasks.tagging import TaggingTask
    from workbench.text_cache import TaggedSplit

    folder = tmp_path / "treebank"
    folder.mkdir()
    for name, stop in (("train", 6000), ("dev", 900), ("test", 900)):
        with open(shared_data / "ud-english-ewt" / f"en_ewt-ud-{name}.conllu", encoding="utf-8") as handle:
            (folder / f"en_ewt-ud-{name}.conllu").write_text("".join(line for _, line in zip(range(stop), handle, strict=False)))
    params = {"column": "upos", "lowercase": True, "min_freq": 2, "max_train_sentences": 0, "path": "",
              "valid_fraction": 0.1, "test_fraction": 0.1, "split_seed": 0}
    streamed = ud_data.load_conllu(LoadContext(data_dir=folder, cache_dir=tmp_path / "cache"), params)
    assert isinstance(streamed.train, TaggedSplit) and len(streamed.train) > 200
    parsed = {split: ud_data.parse_conllu((folder / f"en_ewt-ud-{name}.conllu").read_text(encoding="utf-8"), name)
              for split, name in (("train", "train"), ("valid", "dev"), ("test", "test"))}
    listed = ud_data._data(parsed["train"], parsed["valid"], parsed["test"], params, dict(streamed.info), ud_data.UPOS)
    assert listed.info == streamed.info and listed.tags == streamed.tags
    assert list(streamed.valid) == listed.valid
    task_s, task_l = TaggingTask.from_data(streamed), TaggingTask.from_data(listed)
    assert task_s.words.itos == task_l.words.itos and task_s.chars.itos == task_l.chars.itos
    enc_s, enc_l = task_s.encode(streamed), task_l.encode(listed)
    for split in ("train", "valid", "test"):
        cut_s, n_s, long_s = task_s.cut_long(enc_s[split], 12)
        cut_l, n_l, long_l = task_l.cut_long(enc_l[split], 12)
        assert (n_s, long_s) == (n_l, long_l) and n_s > 0
        for (ids_s, chars_s, tags_s), (ids_l, chars_l, tags_l) in zip(cut_s, cut_l, strict=True):
            assert ids_s == ids_l and tags_s == tags_l and torch.equal(chars_s, chars_l)
        enc_s[split], enc_l[split] = cut_s, cut_l
    for a, b in zip(batches(task_s, enc_s["train"], 5, 32), batches(task_l, enc_l["train"], 5, 32), strict=True):
        assert all(torch.equal(a.inputs[k], b.inputs[k]) for k in ("tokens", "lengths", "chars"))
        assert torch.equal(a.targets, b.targets) and a.units == b.units
    assert list(select(enc_s["train"], [3, 1, 4])) != [] and len(select(enc_s["train"], [3, 1, 4])) == 3
