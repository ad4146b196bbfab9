"""Bring-your-own text classification (folders, CSV/TSV) on real sentences, and the brackets generator."""

from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path

import pytest
from workbench_plugins import brackets_data, textfiles_data

from workbench.api import LoadContext, get_tokenizer
from workbench.cli import main
from workbench.errors import DataError

COMMON = {"path": "", "tokenizer": "word", "max_vocab": 0, "min_freq": 1, "max_length": 0, "truncate": "start", "test_fraction": 0.2,
          "valid_fraction": 0.25, "split_seed": 0, "encoding": "utf-8"}
FOLDER = {**COMMON, "extension": ".txt"}
CSV = {**COMMON, "text_column": "text", "label_column": "label", "delimiter": "auto"}


def ctx(path: Path | None) -> LoadContext:
    from workbench.settings import current

    return LoadContext(data_dir=path, cache_dir=current().cache_dir)  # the test's own (conftest)


def words(text: str) -> str:
    """A text as the token cache gives it back: its word tokens joined by spaces."""
    return " ".join(get_tokenizer("word")(text))


@pytest.fixture(scope="module")
def sentences(shared_data) -> dict[str, list[str]]:
    """20 real rt-polarity sentences per class (Latin-1 decoded)."""
    out = {}
    for label in ("pos", "neg"):
        raw = (shared_data / "rt-polarity" / f"rt-polarity.{label}").read_bytes().decode("latin-1")
        out[label] = [line.strip() for line in raw.split("\n") if line.strip()][:20]
    return out


def write_folders(root: Path, sentences: dict[str, list[str]]) -> Path:
    for label, texts in sentences.items():
        (root / label).mkdir(parents=True)
        for i, text in enumerate(texts):
            (root / label / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def test_folder_per_class(sentences, tmp_path):
    root = write_folders(tmp_path / "reviews", sentences)
    (root / "neg" / "notes.md").write_text("not a .txt, ignored")
    data = textfiles_data.load_folder(ctx(root), FOLDER)
    assert data.classes == ["neg", "pos"]
    assert (len(data.train), len(data.valid), len(data.test)) == (24, 8, 8)
    # data.path wins over --data-dir
    assert textfiles_data.load_folder(ctx(tmp_path / "elsewhere"), {**FOLDER, "path": str(root)}).test == data.test
    assert Counter(y for _, y in data.test) == {0: 4, 1: 4}
    everything = {t for split in (data.train, data.valid, data.test) for t, _ in split}
    assert everything == {words(t) for t in sentences["pos"] + sentences["neg"]}


def test_folder_with_its_own_splits_and_unknown_label(sentences, tmp_path):
    root = tmp_path / "splits"
    write_folders(root / "train", {k: v[:15] for k, v in sentences.items()})
    write_folders(root / "test", {k: v[15:] for k, v in sentences.items()})
    data = textfiles_data.load_folder(ctx(root), FOLDER)
    assert len(data.test) == 10 and len(data.train) + len(data.valid) == 30
    (root / "test" / "meh").mkdir()
    (root / "test" / "meh" / "x.txt").write_text("so so")
    with pytest.raises(DataError, match=r"splits/test: labels not in the training data: meh"):
        textfiles_data.load_folder(ctx(root), FOLDER)


def test_folder_problems(sentences, tmp_path):
    with pytest.raises(DataError, match="data.path=PATH or pass --data-dir"):
        textfiles_data.load_folder(ctx(None), FOLDER)
    with pytest.raises(DataError, match="missing-folder does not exist"):
        textfiles_data.load_folder(ctx(tmp_path / "missing-folder"), FOLDER)
    root = write_folders(tmp_path / "r", sentences)
    (root / "pos" / "3.txt").write_bytes("Ã©tÃ© caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match=r"pos/3.txt:1: not UTF-8 text.*encoding=latin-1"):
        textfiles_data.load_folder(ctx(root), FOLDER)
    assert textfiles_data.load_folder(ctx(root), {**FOLDER, "encoding": "latin-1"}).classes == ["neg", "pos"]
    (root / "pos" / "3.txt").write_text("   \n")
    with pytest.raises(DataError, match=r"pos/3.txt is empty"):
        textfiles_data.load_folder(ctx(root), FOLDER)
    (root / "pos" / "3.txt").write_text("fine")
    (root / "neutral").mkdir()
    with pytest.raises(DataError, match=r"class folder .*neutral holds no .txt files"):
        textfiles_data.load_folder(ctx(root), FOLDER)
    one = write_folders(tmp_path / "one", {"pos": sentences["pos"]})
    with pytest.raises(DataError, match="only the class 'pos'"):
        textfiles_data.load_folder(ctx(one), FOLDER)
    with pytest.raises(DataError, match="unknown text encoding"):
        textfiles_data.load_folder(ctx(root), {**FOLDER, "encoding": "klingon"})


def write_table(path: Path, rows: list[tuple[str, str]], delimiter: str, encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(["id", "text", "label"])
        for i, (text, label) in enumerate(rows):
            writer.writerow([i, text, label])
    return path


def rows(sentences) -> list[tuple[str, str]]:
    return [(t, "positive") for t in sentences["pos"]] + [(t, "negative") for t in sentences["neg"]]


@pytest.mark.parametrize("suffix,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_csv_and_tsv(sentences, tmp_path, suffix, delimiter):
    path = write_table(tmp_path / f"reviews{suffix}", rows(sentences), delimiter)
    data = textfiles_data.load_csv(ctx(path), CSV)
    assert data.classes == ["negative", "positive"]
    assert len(data.train) + len(data.valid) + len(data.test) == 40
    # quoting survives: sentences with commas come back whole
    texts = {t for split in (data.train, data.valid, data.test) for t, _ in split}
    assert any("," in t for t in texts) and texts == {words(t) for t in sentences["pos"] + sentences["neg"]}


def test_csv_folder_with_test_file_and_unknown_label(sentences, tmp_path):
    write_table(tmp_path / "train.csv", rows(sentences)[5:35], ",")
    write_table(tmp_path / "test.csv", rows(sentences)[:5] + [("hmm", "neutral")], ",")
    with pytest.raises(DataError, match=r"test.csv: labels not in the training data: neutral"):
        textfiles_data.load_csv(ctx(tmp_path), CSV)
    write_table(tmp_path / "test.csv", rows(sentences)[:5], ",")
    data = textfiles_data.load_csv(ctx(tmp_path), CSV)
    assert len(data.test) == 5


@pytest.mark.parametrize("suffix,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_a_dev_file_is_the_validation_split(sentences, tmp_path, suffix, delimiter):
    """Many corpora ship train/dev/test: dev is used as given, not ignored for a slice of train."""
    write_table(tmp_path / f"train{suffix}", rows(sentences)[10:], delimiter)
    write_table(tmp_path / f"dev{suffix}", rows(sentences)[5:10], delimiter)
    write_table(tmp_path / f"test{suffix}", rows(sentences)[:5], delimiter)
    data = textfiles_data.load_csv(ctx(tmp_path), CSV)
    assert (len(data.train), len(data.valid), len(data.test)) == (30, 5, 5)
    assert {t for t, _ in data.valid} == {words(t) for t, _ in rows(sentences)[5:10]}
    assert data.info["files"] == {"train": str(tmp_path / f"train{suffix}"), "valid": str(tmp_path / f"dev{suffix}"),
                                  "test": str(tmp_path / f"test{suffix}")}
    write_table(tmp_path / f"valid{suffix}", rows(sentences)[5:10], delimiter)
    with pytest.raises(DataError, match=rf"holds valid{suffix} and dev{suffix}: both would be the valid split"):
        textfiles_data.load_csv(ctx(tmp_path), CSV)


def test_a_dev_folder_is_the_validation_split(sentences, tmp_path):
    root = tmp_path / "corpus"
    write_folders(root / "train", {k: v[:14] for k, v in sentences.items()})
    write_folders(root / "dev", {k: v[14:17] for k, v in sentences.items()})
    write_folders(root / "test", {k: v[17:] for k, v in sentences.items()})
    data = textfiles_data.load_folder(ctx(root), FOLDER)
    assert (len(data.train), len(data.valid), len(data.test)) == (28, 6, 6)
    assert data.info["files"]["valid"] == str(root / "dev")
    held = textfiles_data.load_folder(ctx(root / "train"), FOLDER)
    assert held.info["files"] == {"train": str(root / "train"), "valid": "held out of train",
                                  "test": "held out of train"}


def test_csv_problems(sentences, tmp_path):
    path = write_table(tmp_path / "r.csv", rows(sentences), ",")
    with pytest.raises(DataError, match=r"r.csv: no column 'review' in the header \(found: id, text, label\)"):
        textfiles_data.load_csv(ctx(path), {**CSV, "text_column": "review"})
    with pytest.raises(DataError, match=r"no column 'text'"):
        textfiles_data.load_csv(ctx(path), {**CSV, "delimiter": "tab"})
    bad = rows(sentences)
    bad[7] = (bad[7][0], "")
    write_table(path, bad, ",")
    with pytest.raises(DataError, match=r"r.csv: line 9 has no label"):
        textfiles_data.load_csv(ctx(path), CSV)
    path.write_text("id,text,label\n1,fine,pos\n2,too,many,fields\n")
    with pytest.raises(DataError, match=r"r.csv: line 3 has 4 fields, the header has 3"):
        textfiles_data.load_csv(ctx(path), CSV)
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"r.csv is empty"):
        textfiles_data.load_csv(ctx(path), CSV)
    path.write_text("text,label\n")
    with pytest.raises(DataError, match=r"r.csv has a header but no rows"):
        textfiles_data.load_csv(ctx(path), CSV)
    write_table(path, [("café crème", "a"), ("thé", "b")] * 10, ",", encoding="latin-1")
    with pytest.raises(DataError, match=r"r.csv:2: not UTF-8 text"):
        textfiles_data.load_csv(ctx(path), CSV)
    assert len(textfiles_data.load_csv(ctx(path), {**CSV, "encoding": "latin-1"}).classes) == 2
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match="no train.csv or train.tsv"):
        textfiles_data.load_csv(ctx(tmp_path / "sub"), CSV)


def test_csv_from_the_command_line(sentences, tmp_path, capsys):
    path = write_table(tmp_path / "mine.csv", rows(sentences), ",")
    code = main(["train", "--dataset", "text-csv", "--data-dir", str(path), "--set", "epochs=1",
                 "--set", "model.hidden_size=8", "--quiet", "--json"])
    assert code == 0
    assert '"state": "finished"' in capsys.readouterr().out
    code = main(["train", "--dataset", "text-csv", "--data-dir", str(tmp_path / "nope.csv"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nope.csv does not exist" in err and "Traceback" not in err


@pytest.mark.parametrize("pairs", [1, 2, 3])
def test_brackets_generator_is_correct(pairs):
    rng = random.Random(pairs)
    examples = brackets_data.generate(400, 20, pairs, rng)
    assert sum(y for _, y in examples) == 200
    assert all(len(text) == 20 for text, _ in examples)
    assert all(brackets_data.is_balanced(text) == bool(label) for text, label in examples)
    used = set("".join(text for text, _ in examples))
    assert used == set("()[]{}"[: 2 * pairs])


def test_balanced_strings_are_uniform():
    # length 6 has 5 balanced strings; each should come up about 1/5 of the time
    rng = random.Random(0)
    counts = Counter(brackets_data.balanced_string(6, 1, rng) for _ in range(5000))
    assert set(counts) == {"((()))", "(()())", "(())()", "()(())", "()()()"}
    assert all(800 < c < 1200 for c in counts.values())


def test_is_balanced_reference():
    assert brackets_data.is_balanced("([]{})")
    assert not brackets_data.is_balanced("([)]")
    assert not brackets_data.is_balanced(")(")
    assert not brackets_data.is_balanced("((")


def test_brackets_dataset_is_seeded_and_validated():
    params = {"length": 12, "min_fraction": 0.0, "defects": "mixed", "pairs": 1, "train_size": 100, "test_size": 20, "valid_fraction": 0.1, "data_seed": 4}
    a = brackets_data.load(ctx(None), params)
    b = brackets_data.load(ctx(None), params)
    assert a.train == b.train and len(a.valid) == 10 and len(a.test) == 20 and a.tokenizer == "char"
    with pytest.raises(DataError, match="length must be even"):
        brackets_data.load(ctx(None), {**params, "length": 11})
    mixed = brackets_data.load(ctx(None), {**params, "min_fraction": 0.4, "train_size": 400})
    lengths = {len(text) for text, _ in mixed.train}
    assert lengths == {4, 6, 8, 10, 12}  # 0.4 x 12 = 4.8, rounded to the even 4
    assert mixed.info["train_lengths"] == "4-12"
    tiny = brackets_data.load(ctx(None), {**params, "length": 2, "min_fraction": 0.4})
    assert {len(text) for text, _ in tiny.train} == {2}
    assert {len(text) for text, _ in mixed.valid + mixed.test} == {12}
    assert all(brackets_data.is_balanced(text) == bool(label) for text, label in mixed.train)
    with pytest.raises(DataError, match="defects=kind needs pairs >= 2"):
        brackets_data.load(ctx(None), {**params, "defects": "kind"})


@pytest.mark.parametrize("defects", ["count", "order", "kind"])
def test_each_defect_kind(defects):
    rng = random.Random(7)
    for _ in range(200):
        bad = brackets_data.unbalanced_string(16, 2, rng, defects)
        assert not brackets_data.is_balanced(bad) and len(bad) == 16
        # like a balanced string it opens first and closes last: the ends give nothing away
        assert bad[0] in "([" and bad[-1] in ")]"
        opening = sum(c in "([" for c in bad)
        if defects == "count":
            assert opening in (7, 9)  # one bracket turned round
        else:
            assert opening == 8  # counts still match
            depth = [0]
            for c in bad:
                depth.append(depth[-1] + (1 if c in "([" else -1))
            assert (min(depth) == -1) == (defects == "order")


def test_a_defect_that_would_touch_the_ends_is_refused():
    rng = random.Random(0)
    # "(())" never returns to depth 0 before its end: its only order defect starts with ")"
    assert brackets_data.corrupt("(())", 1, rng, "order") is None
    assert brackets_data.corrupt("(())", 1, rng, "order", keep_ends=False) == ")(()"
    assert brackets_data.corrupt("()", 1, rng, "count") is None
    # in "()()" the only inner return to depth 0 is the last pair, whose swap would end with "("
    assert brackets_data.corrupt("()()", 1, rng, "order") is None
    assert brackets_data.corrupt("()(())", 1, rng, "order") == "())(()"
    assert brackets_data.corrupt("()()()", 1, rng, "order") == "())(()"
    # short lengths where no such string exists still produce an unbalanced one
    assert not brackets_data.is_balanced(brackets_data.unbalanced_string(2, 1, rng, "count"))
