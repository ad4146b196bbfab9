"""Translation data through the token cache: the streamed loaders give exactly what the in-memory
path gives (pairs, vocabularies, batches, metrics after training), and the cache is rebuilt when
its file changes or is damaged."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from workbench_plugins import seq2seq_models, translation_data

from workbench.api import DataError, LoadContext, PairSplit, Seq2SeqData
from workbench.tasks.seq2seq import Seq2SeqTask
from workbench.tasks.token_examples import PairExamples
from workbench.text import get_normalizer, get_tokenizer

TSV = {"path": "", "normalize": "nmt", "tokenizer": "whitespace", "swap": False, "max_length": 8, "max_pairs": 0,
       "valid_fraction": 0.1, "test_fraction": 0.1, "split_seed": 3, "min_freq": 2}
FRA = {"direction": "fra-eng", "max_length": 10, "max_pairs": 1800, "prefixes": "", "valid_fraction": 0.1,
       "test_fraction": 0.1, "split_seed": 0, "min_freq": 1}
MODEL = {"embedding_dim": 16, "hidden_size": 24, "num_layers": 1, "dropout": 0.0, "teacher_forcing": 1.0,
         "attention_size": 16, "tie_embeddings": False, "bidirectional": False}


def sample(shared_data: Path) -> str:
    """Short pairs from the file's start (many sources with several translations) and longer ones
    from further on (some beyond max_length)."""
    with open(shared_data / "fra-eng" / "fra.txt", encoding="utf-8") as handle:
        lines = list(itertools.islice(handle, 60_000))
    return "".join(lines[:1500] + lines[20_000:60_000:80])


def in_memory(text: str, where: str, params: dict, probes: list, swap: bool, normalize: str = "nmt") -> Seq2SeqData:
    """What the loaders built before the token cache: lists of pairs, filtered and split in memory."""
    pairs = translation_data._filter(translation_data.parse_pairs(text, where), params, normalize, "whitespace")
    if swap:
        pairs, probes = [(t, s) for s, t in pairs], [(t, s) for s, t in probes]
    return translation_data._seq2seq(pairs, params, normalize, "whitespace", {"source": where}, probes)


def joined(pairs, normalize: str = "nmt") -> list[tuple[str, str]]:
    norm, tok = get_normalizer(normalize), get_tokenizer("whitespace")
    return [(" ".join(tok(norm(s))), " ".join(tok(norm(t)))) for s, t in pairs]


def trained_metrics(task: Seq2SeqTask, encoded: dict, steps: int) -> tuple[list[float], dict]:
    torch.manual_seed(0)
    model = seq2seq_models.build_attention(task.model_context(), MODEL)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(1)
    losses = []
    for batch in itertools.islice(task.batches(encoded["train"], 32, True, generator), steps):
        optimizer.zero_grad()
        loss = task.loss(model, batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, task.evaluate(model, encoded["valid"], 32, torch.device("cpu"), detailed=True)


@pytest.mark.parametrize("loader", ["parallel-tsv", "fra-eng"])
def test_streamed_translation_equals_in_memory(shared_data, tmp_path, loader):
    text = sample(shared_data)
    file = tmp_path / "fra.txt"
    file.write_text(text, encoding="utf-8")
    context = LoadContext(file, tmp_path / "cache")
    if loader == "parallel-tsv":
        streamed = translation_data.load_parallel_tsv(context, TSV)
        memory = in_memory(text, str(file), TSV, [], swap=False)
    else:
        streamed = translation_data.load_fra_eng(context, FRA)
        memory = in_memory(text, str(file), {**FRA, "prefixes": ""}, list(translation_data.PROBES), swap=True)
    for split in ("train", "valid", "test"):
        assert isinstance(getattr(streamed, split), PairSplit)
        assert list(getattr(streamed, split)) == joined(getattr(memory, split)), split
    assert streamed.probes == memory.probes and len(streamed.train) > 1000 and len(streamed.valid) > 50

    fast, slow = Seq2SeqTask.from_data(streamed), Seq2SeqTask.from_data(memory)
    assert fast.source.itos == slow.source.itos and fast.target.itos == slow.target.itos
    assert fast.max_output_length == slow.max_output_length
    fast_encoded, slow_encoded = fast.encode(streamed), slow.encode(memory)
    for split in ("train", "valid", "test"):
        assert isinstance(fast_encoded[split], PairExamples)
        assert list(fast_encoded[split]) == slow_encoded[split], split
    cut, slow_cut = fast.cut_long(fast_encoded["train"], 4), slow.cut_long(slow_encoded["train"], 4)
    assert cut[1:] == slow_cut[1:] and cut[1] > 0 and list(cut[0]) == slow_cut[0]
    shard = [5, 1, 7]
    assert list(fast_encoded["train"][shard]) == [slow_encoded["train"][i] for i in shard]

    batches = zip(fast.batches(fast_encoded["train"], 32, True, torch.Generator().manual_seed(4)),
                  slow.batches(slow_encoded["train"], 32, True, torch.Generator().manual_seed(4)), strict=True)
    for mine, theirs in batches:
        assert all(torch.equal(mine.inputs[k], theirs.inputs[k]) for k in theirs.inputs)
        assert torch.equal(mine.targets, theirs.targets) and mine.units == theirs.units

    fast_losses, fast_metrics = trained_metrics(fast, fast_encoded, 6)
    slow_losses, slow_metrics = trained_metrics(slow, slow_encoded, 6)
    assert fast_losses == slow_losses
    assert fast_metrics == slow_metrics and fast_metrics["sentences"] < fast_metrics["count"]


def test_a_changed_translation_file_rebuilds_its_cache(shared_data, tmp_path):
    file = tmp_path / "pairs.tsv"
    file.write_text("Go.\tVa !\nHi.\tSalut !\nRun!\tCours !\n" * 20, encoding="utf-8")
    said: list[str] = []
    context = LoadContext(file, tmp_path / "cache", status=said.append)
    params = {**TSV, "min_freq": 1, "valid_fraction": 0.0, "test_fraction": 0.0}
    first = translation_data.load_parallel_tsv(context, params)
    assert len(first.train) == 60 and first.train[1] == ("hi .", "salut !")
    assert any("tokenising" in line for line in said)
    said.clear()
    again = translation_data.load_parallel_tsv(context, params)
    assert again.train == first.train and not any("tokenising" in line for line in said), "read from the cache"
    file.write_text("Go.\tVa !\nHello.\tBonjour !\n" * 20, encoding="utf-8")
    changed = translation_data.load_parallel_tsv(context, params)
    assert len(changed.train) == 40 and changed.train[1] == ("hello .", "bonjour !")
    assert any("out of date" in line for line in said)
    task = Seq2SeqTask.from_data(changed)
    assert "bonjour" in task.target.stoi and "salut" not in task.target.stoi


@pytest.mark.parametrize("damage", ["ids", "offsets", "json"])
def test_a_damaged_translation_cache_is_rebuilt_with_one_line(shared_data, tmp_path, damage):
    file = tmp_path / "fra.txt"
    file.write_text(sample(shared_data)[:20_000], encoding="utf-8")
    said: list[str] = []
    context = LoadContext(file, tmp_path / "cache", status=said.append)
    expected = list(translation_data.load_fra_eng(context, FRA).train)
    base = next((tmp_path / "cache" / "texts").glob("fra-eng-*.json")).with_suffix("")
    if damage == "ids":
        ids = base.with_name(base.name + ".ids.bin")
        ids.write_bytes(ids.read_bytes()[:-5])
    elif damage == "offsets":
        base.with_name(base.name + ".offsets.npy").write_bytes(b"\x93NUMPY garbage")
    else:
        base.with_suffix(".json").write_text("{not json")
    said.clear()
    again = translation_data.load_fra_eng(context, FRA)
    assert list(again.train) == expected
    notices = [line for line in said if "token cache of" in line]
    assert len(notices) == 1 and "tokenising it again" in notices[0]


def test_split_by_source_over_the_cache_sorts_sources_as_text(tmp_path):
    """Sources that sort differently as token ranks and as text would split differently: a token
    that is a prefix of another ("a" / "a-b") and punctuation below letters."""
    lines = ["a b.\tx", "a-b.\ty", "a.\tz", "ab c\tw", "a b.\tv", "a!\tu", "b a\tt", "a\ts"] * 3
    file = tmp_path / "pairs.tsv"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    params = {**TSV, "max_length": 0, "valid_fraction": 0.25, "test_fraction": 0.25}
    for seed in range(6):
        params["split_seed"] = seed
        streamed = translation_data.load_parallel_tsv(LoadContext(file, tmp_path / "cache"), params)
        memory = in_memory(file.read_text(), str(file), params, [], swap=False)
        assert [list(getattr(streamed, s)) for s in ("train", "valid", "test")] == \
            [joined(getattr(memory, s)) for s in ("train", "valid", "test")]
    assert np.array_equal(streamed.train.pairs, np.sort(streamed.train.pairs))


@pytest.mark.parametrize("content", ["Go.\tVa !\nCaf\xe9.\tCaf\xe9 !\n".encode("latin-1"), b"Go.\tVa !\n\x00\x00\n"])
def test_a_file_that_is_not_utf8_is_one_clear_error_and_leaves_no_cache(tmp_path, content):
    file = tmp_path / "pairs.tsv"
    file.write_bytes(content)
    with pytest.raises(DataError, match=r"pairs.tsv(:2)?: not UTF-8 text"):
        translation_data.load_parallel_tsv(LoadContext(file, tmp_path / "cache"), TSV)
    assert not list((tmp_path / "cache" / "texts").glob("*.json"))
