"""The IMDB and rt-polarity loaders on the real files (and slices of them), and their failure modes."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest
from workbench_plugins import sentiment_data

from workbench.api import LoadContext
from workbench.errors import DataError

IMDB_PARAMS = {"max_vocab": 25_000, "min_freq": 2, "max_length": 400, "truncate": "start", "valid_fraction": 0.1, "split_seed": 0}
RT_PARAMS = {"max_vocab": 0, "min_freq": 1, "test_fraction": 0.1, "valid_fraction": 0.1, "split_seed": 0}


def context(data_dir: Path | None, cache: Path, mirror: str | None = None) -> LoadContext:
    return LoadContext(data_dir=data_dir, cache_dir=cache, mirror=mirror)


@pytest.fixture(scope="session")
def imdb_real(shared_data, tmp_path_factory):
    """The real archive, parsed once (about 5 s), and the cache folder it was parsed into."""
    cache = tmp_path_factory.mktemp("imdb-cache")
    data = sentiment_data.load_imdb(context(shared_data, cache), IMDB_PARAMS)
    return data, cache


def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def make_imdb_slice(imdb_real, destination: Path, per_class: int = 6) -> dict[str, list[tuple[str, int]]]:
    """A small aclImdb-shaped tar.gz holding real reviews; returns what it holds."""
    data, _ = imdb_real
    chosen: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    with tarfile.open(destination, "w:gz") as archive:
        _add(archive, "aclImdb/README", b"readme")
        _add(archive, "aclImdb/imdb.vocab", b"the\nand\n")
        for split, examples in (("train", data.train), ("test", data.test)):
            for label, name in enumerate(("neg", "pos")):
                texts = [t for t, y in examples if y == label][:per_class]
                for review_id, text in enumerate(texts):
                    _add(archive, f"aclImdb/{split}/{name}/{review_id}_{3 if label == 0 else 8}.txt",
                         text.encode("utf-8"))
                    chosen[split].append((text, label))
        _add(archive, "aclImdb/train/unsup/0_0.txt", b"unlabelled, ignored")
        _add(archive, "aclImdb/train/labeledBow.feat", b"0:1 1:2")
    return chosen


@pytest.mark.slow
def test_real_imdb_archive(imdb_real):
    data, cache = imdb_real
    assert data.classes == ["neg", "pos"]
    assert (len(data.train), len(data.valid), len(data.test)) == (22_500, 2_500, 25_000)
    assert sum(y for _, y in data.test) == 12_500
    assert sum(y for _, y in data.train + data.valid) == 12_500
    assert data.tokenizer == "word" and data.max_vocab == 25_000 and data.min_freq == 2 and data.max_length == 400
    assert not any("<br" in text for text, _ in data.train[:2000])  # HTML line breaks become spaces
    assert list(cache.glob("texts/imdb-*.ids.bin")), "the reviews are tokenised into the data cache"


@pytest.mark.slow
def test_truncation_keeps_the_start_or_the_end(imdb_real):
    from workbench.tasks.classification import ClassificationTask

    data, _ = imdb_real
    long_review = next(text for text, _ in data.test if len(text.split()) > 600)
    start = ClassificationTask.from_data(data)
    end = ClassificationTask.from_state({**start.state(), "truncate": "end"})
    words = start._tokenize(long_review)
    assert start.tokens(long_review) == words[:400] and end.tokens(long_review) == words[-400:]
    assert end.tokens("a short one .") == ["a", "short", "one", "."]
    assert ClassificationTask.from_state(end.state()).truncate == "end"
    old_state = {k: v for k, v in start.state().items() if k != "truncate"}  # checkpoints from before
    assert ClassificationTask.from_state(old_state).truncate == "start"
    with pytest.raises(DataError, match="truncate must be"):
        ClassificationTask.from_state({**start.state(), "truncate": "middle"})


@pytest.mark.slow
def test_imdb_archive_folder_and_cache_agree(imdb_real, tmp_path):
    chosen = make_imdb_slice(imdb_real, tmp_path / "aclImdb_v1.tar.gz")
    params = {**IMDB_PARAMS, "valid_fraction": 0.0}
    from_archive = sentiment_data.load_imdb(context(tmp_path, tmp_path / "cache"), params)
    assert sorted(from_archive.train) == sorted(chosen["train"]) and sorted(from_archive.test) == sorted(chosen["test"])
    cached = list((tmp_path / "cache" / "texts").glob("imdb-*.ids.bin"))
    assert len(cached) == 1
    again = sentiment_data.load_imdb(context(tmp_path / "aclImdb_v1.tar.gz", tmp_path / "cache"), params)
    assert again.train == from_archive.train and again.test == from_archive.test
    # a corrupt cache file is tokenised again, with one line saying so, not trusted (the splits read
    # so far map the file: they are read into lists before it is overwritten in place)
    expected_train, expected_test = list(from_archive.train), list(from_archive.test)
    cached[0].write_bytes(b"garbage")
    said: list[str] = []
    rebuilt = sentiment_data.load_imdb(LoadContext(data_dir=tmp_path, cache_dir=tmp_path / "cache",
                                                   status=said.append), params)
    assert rebuilt.test == expected_test
    assert any("token cache" in line and "damaged" in line for line in said), said
    # the extracted folder gives the same reviews
    with tarfile.open(tmp_path / "aclImdb_v1.tar.gz") as archive:
        archive.extractall(tmp_path / "extracted", filter="data")
    from_folder = sentiment_data.load_imdb(context(tmp_path / "extracted", tmp_path / "cache"), params)
    assert from_folder.train == expected_train and from_folder.test == expected_test


@pytest.mark.slow
def test_imdb_validation_split_is_stratified_and_seeded(imdb_real, tmp_path):
    make_imdb_slice(imdb_real, tmp_path / "aclImdb_v1.tar.gz", per_class=20)
    a = sentiment_data.load_imdb(context(tmp_path, tmp_path / "c"), {**IMDB_PARAMS, "valid_fraction": 0.25})
    b = sentiment_data.load_imdb(context(tmp_path, tmp_path / "c"), {**IMDB_PARAMS, "valid_fraction": 0.25,
                                                                       "split_seed": 1})
    assert len(a.valid) == 10 and sum(y for _, y in a.valid) == 5
    assert a.valid != b.valid


@pytest.mark.slow
def test_truncated_imdb_archive_names_the_file(imdb_real, tmp_path):
    archive = tmp_path / "aclImdb_v1.tar.gz"
    make_imdb_slice(imdb_real, archive)
    archive.write_bytes(archive.read_bytes()[:3000])
    with pytest.raises(DataError, match=r"aclImdb_v1.tar.gz is not a readable tar.gz archive.*truncated"):
        sentiment_data.load_imdb(context(archive, tmp_path / "cache"), IMDB_PARAMS)


@pytest.mark.slow
def test_imdb_problems_are_data_errors(imdb_real, tmp_path):
    make_imdb_slice(imdb_real, tmp_path / "a.tar.gz")
    with tarfile.open(tmp_path / "a.tar.gz") as archive:
        archive.extractall(tmp_path / "x", filter="data")
    bad = tmp_path / "x" / "aclImdb" / "test" / "pos" / "0_8.txt"
    bad.write_bytes(b"fine start \xff\xfe broken")
    with pytest.raises(DataError, match=r"0_8.txt:1: not UTF-8 text"):
        sentiment_data.load_imdb(context(tmp_path / "x", tmp_path / "cache"), IMDB_PARAMS)
    shutil.rmtree(tmp_path / "x" / "aclImdb" / "test" / "pos")
    with pytest.raises(DataError, match=r"test/pos is missing"):
        sentiment_data.load_imdb(context(tmp_path / "x", tmp_path / "cache"), IMDB_PARAMS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no IMDB data in .*aclImdb_v1.tar.gz"):
        sentiment_data.load_imdb(context(tmp_path / "empty", tmp_path / "cache"), IMDB_PARAMS)
    # an archive that is a tar.gz but not the reviews
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as archive:
        _add(archive, "aclImdb/train/pos/1_9.txt", b"only one class")
    with pytest.raises(DataError, match="other.tar.gz has no aclImdb/train/neg/"):
        sentiment_data.load_imdb(context(tmp_path / "other.tar.gz", tmp_path / "cache"), IMDB_PARAMS)


@pytest.mark.slow
def test_imdb_download_is_verified(imdb_real, tmp_path, mirror):
    root, url = mirror
    (root / "~amaas" / "data" / "sentiment").mkdir(parents=True)
    make_imdb_slice(imdb_real, root / "~amaas" / "data" / "sentiment" / "aclImdb_v1.tar.gz")
    with pytest.raises(DataError, match="checksum mismatch .*aclImdb_v1.tar.gz"):
        sentiment_data.load_imdb(context(None, tmp_path / "cache", url), IMDB_PARAMS)
    assert not (tmp_path / "cache" / "imdb" / "aclImdb_v1.tar.gz").exists()


def make_rt_archive(shared_data: Path, destination: Path) -> Path:
    with tarfile.open(destination, "w:gz") as archive:
        for name in ("rt-polarity.pos", "rt-polarity.neg"):
            archive.add(shared_data / "rt-polarity" / name, f"rt-polaritydata/{name}")
    return destination


def test_rt_polarity_real_files(shared_data, tmp_path):
    data = sentiment_data.load_rt(context(shared_data, tmp_path), RT_PARAMS)
    assert data.classes == ["neg", "pos"]
    assert len(data.train) + len(data.valid) + len(data.test) == 10_662
    assert len(data.test) == 1067  # ceil(0.1 * 10662)
    assert any("é" in text for text, _ in data.train)  # Latin-1 decoded, not mangled
    same = sentiment_data.load_rt(context(shared_data / "rt-polarity", tmp_path), RT_PARAMS)
    assert same.test == data.test
    archive = make_rt_archive(shared_data, tmp_path / "rt-polaritydata.tar.gz")
    assert sentiment_data.load_rt(context(archive, tmp_path), RT_PARAMS).test == data.test
    assert sentiment_data.load_rt(context(tmp_path, tmp_path / "c"), RT_PARAMS).test == data.test


def test_rt_polarity_download_checks_members(shared_data, tmp_path, mirror):
    root, url = mirror
    folder = root / "people" / "pabo" / "movie-review-data"
    folder.mkdir(parents=True)
    make_rt_archive(shared_data, folder / "rt-polaritydata.tar.gz")
    data = sentiment_data.load_rt(context(None, tmp_path / "cache", url), RT_PARAMS)
    assert len(data.train) + len(data.valid) + len(data.test) == 10_662
    # a tampered archive is rejected and not kept
    (tmp_path / "cache" / "rt-polarity" / "rt-polaritydata.tar.gz").unlink()
    fake = tmp_path / "fake"
    fake.mkdir()
    shutil.copy(shared_data / "rt-polarity" / "rt-polarity.neg", fake)
    (fake / "rt-polarity.pos").write_text("great .\n", encoding="latin-1")
    with tarfile.open(folder / "rt-polaritydata.tar.gz", "w:gz") as archive:
        for name in ("rt-polarity.pos", "rt-polarity.neg"):
            archive.add(fake / name, f"rt-polaritydata/{name}")
    with pytest.raises(DataError, match="rt-polarity.pos does not match its published sha256"):
        sentiment_data.load_rt(context(None, tmp_path / "cache", url), RT_PARAMS)
    assert not (tmp_path / "cache" / "rt-polarity" / "rt-polaritydata.tar.gz").exists()


def test_rt_polarity_malformed(shared_data, tmp_path):
    folder = tmp_path / "rt"
    folder.mkdir()
    shutil.copy(shared_data / "rt-polarity" / "rt-polarity.pos", folder)
    with pytest.raises(DataError, match="lacks rt-polarity.neg"):
        sentiment_data.load_rt(context(folder, tmp_path), RT_PARAMS)
    (folder / "rt-polarity.neg").write_text("\n  \n", encoding="latin-1")
    with pytest.raises(DataError, match="rt-polarity.neg contains no sentences"):
        sentiment_data.load_rt(context(folder, tmp_path), RT_PARAMS)
    (folder / "rt-polarity.neg").write_text("bad movie .\n", encoding="utf-16")
    with pytest.raises(DataError, match="rt-polarity.neg: not Latin-1 text"):
        sentiment_data.load_rt(context(folder, tmp_path), RT_PARAMS)
    archive = make_rt_archive(shared_data, tmp_path / "rt-polaritydata.tar.gz")
    archive.write_bytes(archive.read_bytes()[:20_000])
    with pytest.raises(DataError, match="rt-polaritydata.tar.gz is not a readable tar.gz archive"):
        sentiment_data.load_rt(context(archive, tmp_path), RT_PARAMS)
    with pytest.raises(DataError, match="no rt-polarity data in"):
        sentiment_data.load_rt(context(tmp_path / "nothing", tmp_path), RT_PARAMS)
