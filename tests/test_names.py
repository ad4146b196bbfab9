"""The names loader on the real files, in every layout it accepts, and its failure modes."""

from __future__ import annotations

import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from workbench_plugins import names_data

from workbench.api import LoadContext
from workbench.errors import DataError

DEFAULTS = {"split": "classic", "test_fraction": 0.2, "valid_fraction": 0.1, "split_seed": 0, "ascii": True}


def load(data_dir: Path | None, cache: Path, mirror: str | None = None, progress=None, **params):
    context = LoadContext(data_dir=data_dir, cache_dir=cache, mirror=mirror, progress=progress)
    return names_data.load(context, {**DEFAULTS, **params})


def make_zip(names_dir: Path, destination: Path) -> Path:
    with zipfile.ZipFile(destination, "w") as archive:
        for file in sorted(names_dir.glob("*.txt")):
            archive.write(file, f"data/names/{file.name}")
        archive.writestr("data/eng-fra.txt", "go .\tva !\n")
    return destination


def test_real_files_counts_and_classic_split(shared_data, tmp_path):
    data = load(shared_data, tmp_path)
    assert len(data.classes) == 18 and data.classes[0] == "Arabic"
    total = len(data.train) + len(data.valid) + len(data.test)
    assert total == 20074
    assert len(data.test) == 4015  # ceil(0.2 * 20074)
    # stratified: every language keeps about the same share in train and test
    train_counts = Counter(y for _, y in data.train + data.valid)
    test_counts = Counter(y for _, y in data.test)
    for label in range(18):
        share = test_counts[label] / (train_counts[label] + test_counts[label])
        assert 0.15 < share < 0.3
    assert data.info["languages"] == 18
    # accents stripped as in the tutorial
    assert all(name.isascii() for name, _ in data.train)


def test_split_is_deterministic_and_seeded(shared_data, tmp_path):
    a = load(shared_data, tmp_path)
    b = load(shared_data, tmp_path)
    c = load(shared_data, tmp_path, split_seed=1)
    assert a.test == b.test
    assert a.test != c.test


def test_split_matches_scikit_learn(shared_data, tmp_path):
    sklearn = pytest.importorskip("sklearn.model_selection")
    languages, examples = names_data.read_names(names_data.read_files(names_data._find(shared_data)), True)
    labels = [y for _, y in examples]
    train, test = sklearn.train_test_split(list(range(len(examples))), test_size=0.2, stratify=labels, random_state=0)
    from workbench.data import stratified_split

    ours_train, ours_test = stratified_split(labels, 0.2, 0)
    assert ours_train == list(train) and ours_test == list(test)


def test_disjoint_split_removes_shared_names(shared_data, tmp_path):
    data = load(shared_data, tmp_path, split="disjoint")
    seen = {name for name, _ in data.train}
    assert not any(name in seen for name, _ in data.test + data.valid)
    assert data.info["dropped_overlapping"] > 0


@pytest.mark.parametrize("layout", ["zip-file", "zip-in-dir", "extracted", "flat"])
def test_accepted_layouts(shared_data, tmp_path, layout):
    names_dir = shared_data / "names"
    if layout == "zip-file":
        target = make_zip(names_dir, tmp_path / "data.zip")
    elif layout == "zip-in-dir":
        (tmp_path / "mirror").mkdir()
        make_zip(names_dir, tmp_path / "mirror" / "data.zip")
        target = tmp_path / "mirror"
    elif layout == "extracted":
        shutil.copytree(names_dir, tmp_path / "tutorial" / "data" / "names")
        target = tmp_path / "tutorial"
    else:
        target = shutil.copytree(names_dir, tmp_path / "flat")
    data = load(target, tmp_path / "cache")
    assert len(data.classes) == 18
    assert len(data.train) + len(data.valid) + len(data.test) == 20074


def test_missing_data_dir_says_what_is_expected(tmp_path):
    with pytest.raises(DataError, match="no names data in .*expected names/<Language>.txt"):
        load(tmp_path, tmp_path / "cache")


def test_not_utf8_names_the_file(shared_data, tmp_path):
    folder = shutil.copytree(shared_data / "names", tmp_path / "names")
    (folder / "Czech.txt").write_bytes(b"Novak\n\xff\xfeBroken\n")
    with pytest.raises(DataError, match=r"Czech.txt:2: not UTF-8 text"):
        load(tmp_path, tmp_path / "cache")


def test_empty_language_file_is_an_error(shared_data, tmp_path):
    folder = shutil.copytree(shared_data / "names", tmp_path / "names")
    (folder / "Korean.txt").write_text("\n\n")
    with pytest.raises(DataError, match="Korean.txt contains no names"):
        load(tmp_path, tmp_path / "cache")


def test_truncated_zip_is_an_error(shared_data, tmp_path):
    archive = make_zip(shared_data / "names", tmp_path / "data.zip")
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(DataError, match="not a readable zip archive"):
        load(archive, tmp_path / "cache")


def test_download_through_mirror_with_progress_and_checksums(shared_data, tmp_path, mirror):
    root, url = mirror
    (root / "tutorial").mkdir()
    make_zip(shared_data / "names", root / "tutorial" / "data.zip")
    seen = []
    data = load(None, tmp_path / "cache", mirror=url, progress=lambda done, total, label: seen.append((done, total)))
    assert len(data.classes) == 18
    assert (tmp_path / "cache" / "names" / "data.zip").is_file()
    assert seen and seen[-1][0] == seen[-1][1]  # progress reached the Content-Length
    # second load uses the cache, no server needed
    (root / "tutorial" / "data.zip").unlink()
    assert len(load(None, tmp_path / "cache", mirror=url).classes) == 18


def test_download_with_wrong_bytes_is_rejected_and_not_cached(shared_data, tmp_path, mirror):
    root, url = mirror
    (root / "tutorial").mkdir()
    folder = shutil.copytree(shared_data / "names", tmp_path / "tampered")
    (folder / "Greek.txt").write_text("Papadopoulos\n")
    make_zip(folder, root / "tutorial" / "data.zip")
    with pytest.raises(DataError, match="Greek.txt does not match its published sha256"):
        load(None, tmp_path / "cache", mirror=url)
    assert not (tmp_path / "cache" / "names" / "data.zip").exists()


def test_unreachable_download_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="could not download .*--data-dir"):
        load(None, tmp_path / "cache", mirror="http://127.0.0.1:9")
