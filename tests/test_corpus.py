"""The token cache of character corpora (workbench.corpus): built once by streaming, reused, rebuilt
when damaged or out of date, read a batch at a time, and giving the same batches as text in memory."""

from __future__ import annotations

import json
import os
import pickle
import tracemalloc
from pathlib import Path

import pytest
import torch

from workbench import corpus as corpus_module
from workbench.api import LanguageModelData
from workbench.config import resolve_config
from workbench.corpus import CharCorpus, CorpusText, cache_paths, char_corpus
from workbench.data import read_text
from workbench.engine import load_dataset
from workbench.errors import DataError
from workbench.tasks.language_model import LanguageModelTask

MIXED = "First Citizen:\r\nBefore we proceed, café\r\nany further\rhear me: 𝄞 speak.\n" * 40


@pytest.fixture()
def shakespeare_200k(shared_data, tmp_path) -> Path:
    path = tmp_path / "shakespeare.txt"
    path.write_bytes((shared_data / "tinyshakespeare" / "input.txt").read_bytes()[:200_000])
    return path


def expected_text(path: Path) -> str:
    return read_text(path).replace("\r\n", "\n").replace("\r", "\n")


def collect() -> tuple[list[str], object]:
    lines: list[str] = []
    return lines, lines.append


def test_streamed_tokenising_matches_reading_whole(tmp_path, monkeypatch):
    """Chunks of 7 bytes split multi-byte characters and \\r\\n pairs: the text is still exact,
    with a BOM dropped; ids are one byte while the alphabet fits, two beyond 256 characters."""
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"\xef\xbb\xbf" + MIXED.encode())
    monkeypatch.setattr(corpus_module, "READ_BYTES", 7)
    corpus = char_corpus(path, tmp_path / "cache")
    assert str(corpus.text()) == expected_text(path) and "\r" not in str(corpus.text())
    assert corpus.dtype == "uint8" and corpus.alphabet == sorted(set(expected_text(path))) and "𝄞" in corpus.alphabet
    text = corpus.text(10, 60)
    assert len(text) == 50 and text[0] == expected_text(path)[10] and text[-1] == expected_text(path)[59]
    assert text[5:9] == expected_text(path)[15:19] and list(text) == list(expected_text(path)[10:60])
    wide = tmp_path / "wide.txt"
    wide.write_text("".join(chr(0x4E00 + i) for i in range(300)) * 3, encoding="utf-8")
    corpus = char_corpus(wide, tmp_path / "cache")
    assert corpus.dtype == "uint16" and len(corpus.alphabet) == 300 and str(corpus.text()) == wide.read_text()


def test_ascii_corpus_is_one_byte_per_character_and_reused(shakespeare_200k, tmp_path):
    lines, say = collect()
    first = char_corpus(shakespeare_200k, tmp_path / "cache", say)
    assert first.dtype == "uint8" and first.bin_path is not None
    assert first.bin_path.stat().st_size == len(expected_text(shakespeare_200k))
    assert [line.split()[0] for line in lines] == ["tokenising", "tokenised"]
    lines.clear()
    again = char_corpus(shakespeare_200k, tmp_path / "cache", say)
    assert lines == [] and again.alphabet == first.alphabet and str(again.text()) == str(first.text())
    os.utime(shakespeare_200k)  # touched, same bytes: still the cache
    char_corpus(shakespeare_200k, tmp_path / "cache", say)
    assert lines == []


@pytest.mark.parametrize("damage", ["truncated", "overwritten", "description", "count table", "other file",
                                    "source changed"])
def test_a_bad_cache_is_rebuilt_with_one_status_line(shakespeare_200k, tmp_path, damage):
    cache = tmp_path / "cache"
    char_corpus(shakespeare_200k, cache)
    bin_path, describe_path, counts_path = cache_paths(shakespeare_200k, cache)
    if damage == "truncated":
        bin_path.write_bytes(bin_path.read_bytes()[:-1000])
    elif damage == "overwritten":
        bin_path.write_bytes(bytes(reversed(bin_path.read_bytes())))
    elif damage == "description":
        describe_path.write_text("{not json")
    elif damage == "count table":
        counts_path.write_bytes(b"garbage")
    elif damage == "other file":  # another corpus's cache copied over this one
        other = tmp_path / "other.txt"
        other.write_text("zyx wvu " * 30_000)
        char_corpus(other, cache)
        for mine, theirs in zip(cache_paths(shakespeare_200k, cache), cache_paths(other, cache), strict=True):
            mine.write_bytes(theirs.read_bytes())
    else:
        shakespeare_200k.write_bytes(shakespeare_200k.read_bytes().replace(b"Citizen", b"Citoyen"))
    lines, say = collect()
    rebuilt = char_corpus(shakespeare_200k, cache, say)
    assert len([line for line in lines if "tokenising it again" in line]) == 1, lines
    assert str(rebuilt.text()) == expected_text(shakespeare_200k)
    lines.clear()
    char_corpus(shakespeare_200k, cache, say)
    assert lines == []


def test_decode_errors_across_chunks_name_the_line_and_byte(tmp_path, monkeypatch):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"line one\nline two\nline three \xff\xfe here\n")
    with pytest.raises(DataError) as whole:
        read_text(path)
    monkeypatch.setattr(corpus_module, "READ_BYTES", 5)
    with pytest.raises(DataError) as streamed:
        char_corpus(path, tmp_path / "cache")
    assert str(streamed.value) == str(whole.value) and ":3: not UTF-8 text (byte 29" in str(streamed.value)


def test_unwritable_cache_folder_tokenises_into_a_temporary_file(shakespeare_200k, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    lines, say = collect()
    corpus = char_corpus(shakespeare_200k, blocker, say)
    assert corpus.bin_path is None and any("temporary file" in line for line in lines)
    assert str(corpus.text()) == expected_text(shakespeare_200k)


def test_batches_equal_those_of_the_text_in_memory(shakespeare_200k, tmp_path):
    """Same vocabulary, same windows, same shuffled batches: training on the cache gives the
    losses it gave on text."""
    corpus = char_corpus(shakespeare_200k, tmp_path / "cache")
    train, valid, test = corpus.split(0.1, 0.05, "here")
    text = expected_text(shakespeare_200k)
    in_memory = LanguageModelData(train=str(train), valid=str(valid), test=str(test), seq_len=50, stride=20)
    cached = LanguageModelData(train=train, valid=valid, test=test, seq_len=50, stride=20)
    assert str(train) + str(valid) + str(test) == text
    task_a, task_b = LanguageModelTask.from_data(in_memory), LanguageModelTask.from_data(cached)
    assert task_a.vocab.itos == task_b.vocab.itos
    encoded_a, encoded_b = task_a.encode(in_memory), task_b.encode(cached)
    for split in ("train", "valid", "test"):
        a, b = encoded_a[split], encoded_b[split]
        assert len(a) == len(b) and a.chars == b.chars and a[len(a) - 1] == b[len(b) - 1]
        generator_a, generator_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        shuffle = split == "train"
        for batch_a, batch_b in zip(task_a.batches(a, 32, shuffle, generator_a),
                                    task_b.batches(b, 32, shuffle, generator_b), strict=True):
            assert torch.equal(batch_a.inputs["tokens"], batch_b.inputs["tokens"])
            assert torch.equal(batch_a.targets, batch_b.targets)
    windows = encoded_b["train"]
    copy = pickle.loads(pickle.dumps(windows[:5]))  # worker processes reopen the cache, not a copy of it
    assert len(pickle.dumps(windows)) < 20_000 and copy[4] == windows[4]


def test_a_checkpoint_vocabulary_reads_the_cache_through_its_own_ids(shakespeare_200k, tmp_path):
    corpus = char_corpus(shakespeare_200k, tmp_path / "cache")
    train, valid, _ = corpus.split(0.1, 0.0, "here")
    data = LanguageModelData(train=train, valid=valid, seq_len=16)
    own = LanguageModelTask.from_data(data)
    wider = LanguageModelTask.from_data(LanguageModelData(train=str(train) + "Ω", seq_len=16))
    wider.check_data(data)
    inputs, targets = wider.encode(data)["valid"][0]
    assert wider.vocab.decode(inputs) == list(str(valid)[:16]) and targets[:-1] == inputs[1:]
    narrow = LanguageModelTask.from_data(LanguageModelData(train="abc def", seq_len=16))
    with pytest.raises(DataError, match="not trained on"):
        narrow.check_data(data)
    assert own.encode(data)["valid"][0] != inputs or own.vocab.itos == wider.vocab.itos


def test_damaged_ids_are_an_error_not_a_crash(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("abcabcabc\n" * 50)
    corpus = char_corpus(path, tmp_path / "cache")
    assert corpus.bin_path is not None
    broken = CharCorpus(open(corpus.bin_path, "rb"), corpus.description, corpus.block_counts, corpus.paths)
    data = LanguageModelData(train=broken.text(), seq_len=8)
    task = LanguageModelTask.from_data(data)
    with open(corpus.bin_path, "r+b") as handle:
        handle.seek(100)
        handle.write(bytes([200]))  # an id no alphabet of 4 characters has
    with pytest.raises(DataError, match="damaged"):
        list(task.batches(task.encode(data)["train"], 64, shuffle=False))


def test_the_text_file_dataset_reports_its_cache_through_the_run_status(registry, shakespeare_200k):
    config = resolve_config(registry, "text-file", "char-lstm", "cpu", [f"data.path={shakespeare_200k}"])
    lines, say = collect()
    data = load_dataset(config, registry, status=say)
    assert isinstance(data.train, CorpusText) and len(lines) == 2 and data.info["token_cache"].endswith(".bin")
    lines.clear()
    again = load_dataset(config, registry, status=say)
    assert lines == [] and again.info["characters"] == data.info["characters"] == 200_000


def first_batch_peak(path: Path, cache: Path) -> int:
    """The peak of Python-side allocations (numpy's included) from the file to the first batch."""
    tracemalloc.start()
    try:
        corpus = char_corpus(path, cache)
        train, valid, test = corpus.split(0.1, 0.0, str(path))
        data = LanguageModelData(train=train, valid=valid, test=test)
        task = LanguageModelTask.from_data(data)
        next(iter(task.batches(task.encode(data)["train"], 64, True, torch.Generator().manual_seed(0))))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_corpus(shared_data, tmp_path):
    """Four times the text costs (almost) no more memory to the first batch, the first time (building
    the cache) and the next (reading it); reading the text whole cost about 16 bytes a character."""
    source = (shared_data / "tinyshakespeare" / "input.txt").read_bytes()
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_bytes(source)
    big.write_bytes(source * 4)
    extra = big.stat().st_size - small.stat().st_size
    del source
    for attempt in ("cold", "warm"):
        grown = first_batch_peak(big, tmp_path / "cache") - first_batch_peak(small, tmp_path / "cache")
        assert grown < extra / 8, (attempt, grown, extra)
    assert json.loads(cache_paths(big, tmp_path / "cache")[1].read_text())["length"] == 4 * 1_115_394


def test_a_full_disk_while_writing_the_cache_is_one_clear_error(shakespeare_200k, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(corpus_module, "_fill", full)
    with pytest.raises(DataError, match="No space left on device; free some space there or set WORKBENCH_CACHE_DIR"):
        char_corpus(shakespeare_200k, tmp_path / "cache")
    assert list((tmp_path / "cache" / "tokens").iterdir()) == []  # no half-written file left behind
