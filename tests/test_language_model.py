"""Language modelling: windows and batches, loaders on real text, training, generation, the CLI."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.api import LanguageModelData, LoadContext
from workbench.config import resolve_config
from workbench.engine import build_model, load_dataset, load_trained, train
from workbench.errors import DataError, WorkbenchError
from workbench.tasks.language_model import IGNORE_INDEX, LanguageModelTask, Sampler, TextWindows

SHAKESPEARE_SHA = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_MODEL = ["model.hidden_size=32", "model.embedding_dim=16", "model.num_layers=1"]


def workbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)


@pytest.fixture(scope="module")
def shakespeare_text(shared_data) -> str:
    return (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")


@pytest.fixture()
def shakespeare_slice(shakespeare_text, tmp_path) -> Path:
    """The first 20,000 characters of the real file."""
    path = tmp_path / "slice.txt"
    path.write_text(shakespeare_text[:20_000], encoding="utf-8")
    return path


def context(data_dir: Path | None = None, cache: Path | None = None, mirror: str | None = None) -> LoadContext:
    return LoadContext(data_dir=data_dir, cache_dir=cache or Path("/nonexistent-cache"), mirror=mirror)


def load(registry, dataset: str, data_dir: Path | None = None, *assignments: str, **kwargs) -> LanguageModelData:
    config = resolve_config(registry, dataset, None, "cpu", assignments, data_dir=str(data_dir) if data_dir else None)
    spec = registry.dataset(dataset)
    from workbench.api import resolve_callable

    return resolve_callable(spec.load, "load")(context(data_dir, **kwargs), dict(config.data))


# -- windows and batches -----------------------------------------------------------------------
def test_training_windows_shift_targets_by_one():
    ids = torch.arange(2, 23)  # 21 tokens -> 20 targets
    windows = TextWindows(ids, seq_len=5, stride=5, cover_all=False)
    assert len(windows) == 4 and windows.starts.tolist() == [0, 5, 10, 15]
    inputs, targets = windows[1]
    assert inputs == [7, 8, 9, 10, 11] and targets == [8, 9, 10, 11, 12]
    batch = windows.batch(torch.tensor([0, 3]))
    assert batch.inputs["tokens"].shape == (2, 5) and batch.targets.shape == (2, 5) and batch.size == 2
    assert torch.equal(batch.inputs["tokens"][:, 1:], batch.targets[:, :-1])
    assert batch.inputs["lengths"].tolist() == [5, 5]
    # a per-epoch phase shifts windows but never past the end of the text
    shifted = windows.batch(torch.arange(4), offset=3)
    assert shifted.inputs["tokens"][:, 0].tolist() == [5, 10, 15, 17]
    assert int(shifted.targets.max()) == 22


def test_windows_slice_for_train_limit(registry):
    windows = TextWindows(torch.arange(2, 103), seq_len=10, stride=10, cover_all=False)
    first = windows[:3]
    assert isinstance(first, TextWindows) and len(first) == 3 and len(windows) == 10
    assert first[2] == windows[2] and first.batch(torch.arange(3)).inputs["tokens"].shape == (3, 10)
    config = resolve_config(registry, "synthetic-text", "char-gru", "cpu", ["chars=4000", "limit=5", "epochs=1",
                                                                          *TINY_MODEL])
    assert train(config, registry=registry).history[0]["partial"] is False


def test_overlapping_stride_gives_more_windows():
    ids = torch.arange(101)
    assert len(TextWindows(ids, 10, 10, cover_all=False)) == 10
    assert len(TextWindows(ids, 10, 5, cover_all=False)) == 19


def test_evaluation_windows_score_every_character_once():
    ids = torch.arange(2, 25)  # 22 targets, seq_len 5 -> four full windows and one of two
    windows = TextWindows(ids, seq_len=5, stride=5, cover_all=True)
    assert windows.lengths.tolist() == [5, 5, 5, 5, 2] and windows.chars == 22
    batch = windows.batch(torch.arange(len(windows)))
    assert batch.inputs["tokens"].shape == (5, 5)
    last_tokens, last_targets = batch.inputs["tokens"][-1], batch.targets[-1]
    assert last_tokens.tolist() == [22, 23, 0, 0, 0]
    assert last_targets.tolist() == [23, 24, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
    scored = batch.targets[batch.targets != IGNORE_INDEX]
    assert sorted(scored.tolist()) == list(range(3, 25))


def test_text_shorter_than_a_window_still_trains():
    windows = TextWindows(torch.arange(2, 6), seq_len=10, stride=10, cover_all=False)
    assert len(windows) == 1 and windows.lengths.tolist() == [3]
    assert len(TextWindows(torch.arange(2, 3), 10, 10, cover_all=True)) == 0


def test_task_batches_cover_the_split_and_shuffle_reproducibly():
    data = LanguageModelData("abcdefghij" * 30, "abcabc", "", seq_len=8)
    task = LanguageModelTask.from_data(data)
    encoded = task.encode(data)
    assert len(encoded["train"]) == 37 and len(encoded["test"]) == 0
    batches = list(task.batches(encoded["train"], 16, shuffle=False))
    assert [b.size for b in batches] == [16, 16, 5]
    first = [b.inputs["tokens"] for b in task.batches(encoded["train"], 16, True, torch.Generator().manual_seed(1))]
    again = [b.inputs["tokens"] for b in task.batches(encoded["train"], 16, True, torch.Generator().manual_seed(1))]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert "".join(task.vocab.decode(batches[0].inputs["tokens"][0].tolist())) == "abcdefgh"


def test_bad_data_containers_are_data_errors():
    with pytest.raises(DataError, match="LanguageModelData"):
        LanguageModelTask.from_data(["not", "data"])
    with pytest.raises(DataError, match="empty"):
        LanguageModelTask.from_data(LanguageModelData("a"))
    with pytest.raises(DataError, match="tokenizer"):
        LanguageModelTask.from_data(LanguageModelData("abc", tokenizer="word"))


# -- loaders -----------------------------------------------------------------------------------
def test_tinyshakespeare_from_shared_folder_and_from_a_file(registry, shared_data, shakespeare_text):
    data = load(registry, "tinyshakespeare", shared_data)
    assert data.info["canonical"] is True and data.info["characters"] == 1_115_394
    assert str(data.train) + str(data.valid) + str(data.test) == shakespeare_text
    assert len(data.valid) == round(1_115_394 * 0.1) and data.test == ""
    assert str(data.train).startswith("First Citizen:") and data.seq_len == 128
    direct = load(registry, "tinyshakespeare", shared_data / "tinyshakespeare" / "input.txt",
                  "seq_len=50", "stride=25", "test_fraction=0.05")
    assert direct.seq_len == 50 and direct.stride == 25 and len(direct.test) == round(1_115_394 * 0.05)


def test_tinyshakespeare_downloads_into_the_cache_and_verifies(registry, shared_data, tmp_path):
    mirror = tmp_path / "mirror"
    target = mirror / "karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    target.parent.mkdir(parents=True)
    shutil.copyfile(shared_data / "tinyshakespeare" / "input.txt", target)
    cache = tmp_path / "cache"
    data = load(registry, "tinyshakespeare", None, cache=cache, mirror=str(mirror))
    cached = cache / "tinyshakespeare" / "input.txt"
    assert cached.is_file() and data.info["file"] == str(cached) and data.info["canonical"]
    load(registry, "tinyshakespeare", None, cache=cache, mirror=str(tmp_path / "nowhere"))  # cache hit, no fetch

    cached.write_text("damaged")
    with pytest.raises(DataError, match="did not match its sha256") as info:
        load(registry, "tinyshakespeare", None, cache=cache, mirror=str(mirror))
    assert str(cached) in str(info.value) and not cached.exists()

    target.write_text(target.read_text()[:5000])  # a truncated copy on the mirror
    with pytest.raises(DataError, match="checksum mismatch"):
        load(registry, "tinyshakespeare", None, cache=cache, mirror=str(mirror))
    assert not cached.exists()


def test_tinyshakespeare_missing_data_is_one_clear_error(registry, tmp_path):
    with pytest.raises(DataError, match=f"no Tiny Shakespeare in {tmp_path}"):
        load(registry, "tinyshakespeare", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load(registry, "tinyshakespeare", tmp_path / "gone.txt")


def test_text_file_reads_a_real_slice(registry, shakespeare_slice):
    data = load(registry, "text-file", None, f"data.path={shakespeare_slice}", "valid_fraction=0.2",
                "test_fraction=0.1")
    assert len(data.train) == 14_000 and len(data.valid) == 4_000 and len(data.test) == 2_000
    by_dir = load(registry, "text-file", shakespeare_slice)
    assert by_dir.train == shakespeare_slice.read_text()[:18_000]


def test_text_file_malformed_inputs_name_the_file(registry, shared_data, tmp_path):
    def fails(path: Path, pattern: str) -> None:
        with pytest.raises(DataError, match=pattern) as info:
            load(registry, "text-file", None, f"data.path={path}")
        assert str(path) in str(info.value)

    fails(tmp_path / "missing.txt", "does not exist")
    fails(tmp_path, "is a folder")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    fails(empty, "is empty")
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\n  \n")
    fails(blank, "only whitespace")
    latin1 = tmp_path / "rt-polarity.neg"  # the real sentence-polarity file is Latin-1, not UTF-8
    latin1.write_bytes((shared_data / "rt-polarity" / "rt-polarity.neg").read_bytes()[:200_000])
    with pytest.raises(DataError, match=r":\d+: not UTF-8 text \(byte \d+") as info:
        load(registry, "text-file", None, f"data.path={latin1}")
    assert str(latin1) in str(info.value)
    truncated = tmp_path / "truncated.txt"
    truncated.write_bytes("First Citizen: café".encode()[:-1])
    fails(truncated, "truncated")
    binary = tmp_path / "model.pt"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    fails(binary, "binary")
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("a")
    fails(tiny, "too few")
    with pytest.raises(DataError, match="text-file needs a file"):
        load(registry, "text-file", None)


def test_text_file_normalises_newlines_and_bom(registry, tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n" * 20)
    data = load(registry, "text-file", None, f"data.path={path}", "valid_fraction=0")
    assert "\r" not in str(data.train) and str(data.train).startswith("line one\nline two\n")


def test_synthetic_text_is_reproducible_and_sized(registry):
    a = load(registry, "synthetic-text", None, "chars=5000", "variety=3", "text_seed=4")
    b = load(registry, "synthetic-text", None, "chars=5000", "variety=3", "text_seed=4")
    c = load(registry, "synthetic-text", None, "chars=5000", "variety=3", "text_seed=5")
    assert a.train == b.train != c.train
    assert len(a.train) + len(a.valid) + len(a.test) == 5000
    assert len(a.valid) == len(a.test) == 500
    assert a.info["distinct_characters"] < 40


# -- training ----------------------------------------------------------------------------------
def test_tiny_training_run_on_a_real_slice(registry, shakespeare_slice):
    config = resolve_config(registry, "text-file", "char-lstm", "cpu",
                            [f"data.path={shakespeare_slice}", "seq_len=32", "epochs=2", "batch_size=32",
                             "lr=0.01", "test_fraction=0.1", "max_minutes=0", *TINY_MODEL])
    result = train(config, registry=registry)
    assert result.state == "finished" and result.epochs_completed == 2
    valid, test = result.valid_metrics, result.metrics
    vocab_size = len(set(shakespeare_slice.read_text()[:16_000])) + 2
    assert valid["loss"] < math.log(vocab_size) - 0.7  # clearly better than guessing uniformly
    assert valid["bits_per_char"] == pytest.approx(valid["loss"] / math.log(2))
    assert valid["perplexity"] == pytest.approx(math.exp(valid["loss"]))
    assert 0.1 < valid["accuracy"] <= valid["top_k_accuracy"] <= 1
    assert valid["count"] == 2_000 - 1 and test["count"] == 2_000 - 1
    epochs = result.history
    assert epochs[1]["valid"]["loss"] < epochs[0]["valid"]["loss"]
    assert result.best_epoch == 2  # lower loss is better for language models
    # the checkpoint reloads, evaluates to the same numbers and reads text
    loaded = load_trained(result.checkpoint, registry, "cpu")
    again = loaded.task.evaluate(loaded.model, loaded.task.encode(load_dataset(loaded.config, registry))["test"],
                                 256, loaded.device)
    assert again["loss"] == pytest.approx(test["loss"], rel=1e-5)
    prediction = loaded.task.predict(loaded.model, "First Citizen", loaded.device, top_k=5)
    assert len(prediction["next"]) == 5 and prediction["loss"] > 0
    assert "next character" in loaded.task.render_prediction(prediction)


@pytest.mark.parametrize("arch", ["char-rnn", "char-gru", "char-gru-eq"])
def test_every_language_model_architecture_learns(registry, arch):
    config = resolve_config(registry, "synthetic-text", arch, "cpu",
                            ["chars=6000", "epochs=5", "batch_size=16", "lr=0.01", "seq_len=32", *TINY_MODEL])
    result = train(config, registry=registry)
    assert result.metrics["loss"] < 2.0  # uniform guessing over the ~30 characters is 3.4


# -- generation --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_lm(registry, tmp_path_factory):
    config = resolve_config(registry, "synthetic-text", "char-lstm", "cpu",
                            ["chars=8000", "epochs=3", "lr=0.01", "seq_len=32", *TINY_MODEL])
    result = train(config, registry=registry, runs_root=tmp_path_factory.mktemp("runs"))
    return load_trained(result.checkpoint, registry, "cpu")


def generate(loaded, prime: str = "the ", length: int = 60, **options) -> str:
    return "".join(loaded.task.generate(loaded.model, prime, length, loaded.device, **options))


@pytest.mark.parametrize("sampling", ["sample", "greedy", "top-k", "top-p"])
def test_each_sampling_mode_generates_known_characters(trained_lm, sampling):
    text = generate(trained_lm, sampling=sampling, top_k=3, top_p=0.8, seed=1)
    assert len(text) == 60 and set(text) <= set(trained_lm.task.vocab.itos[2:])


def test_greedy_is_deterministic_and_seeds_reproduce(trained_lm):
    assert generate(trained_lm, sampling="greedy") == generate(trained_lm, sampling="greedy", seed=7)
    assert generate(trained_lm, sampling="greedy", temperature=0.3) == generate(trained_lm, sampling="greedy")
    assert generate(trained_lm, seed=3, temperature=1.5) == generate(trained_lm, seed=3, temperature=1.5)
    samples = {generate(trained_lm, seed=s, temperature=1.5) for s in range(4)}
    assert len(samples) > 1
    # top-k with k=1 and top-p with a tiny p keep only the most likely character: greedy
    greedy = generate(trained_lm, sampling="greedy")
    assert generate(trained_lm, sampling="top-k", top_k=1, seed=5) == greedy
    assert generate(trained_lm, sampling="top-p", top_p=1e-6, seed=5) == greedy


def test_generation_carries_state_instead_of_rereading_the_prefix(trained_lm):
    model = trained_lm.model
    fed: list[int] = []
    original = model.forward

    def counting(*args, **kwargs):
        fed.append(kwargs["tokens"].shape[1])
        assert kwargs["return_state"] and (kwargs["state"] is not None) == (len(fed) > 1)
        return original(*args, **kwargs)

    model.forward = counting
    try:
        stream = trained_lm.task.generate(model, "the old dog", 25, trained_lm.device, seed=0)
        first = list(itertools.islice(stream, 3))  # streams: three characters cost three model calls
        assert len(first) == 3 and fed == [11, 1, 1]
        rest = list(stream)
    finally:
        del model.forward
    assert len(first) + len(rest) == 25 and fed == [11] + [1] * 24


def test_stepwise_generation_equals_rereading_everything(trained_lm):
    """Carrying the state gives the same greedy text as re-running the whole prefix every step."""
    task, model = trained_lm.task, trained_lm.model
    ids = task.encode_prime("a small")
    for _ in range(15):
        logits = model(tokens=torch.tensor([ids]), lengths=torch.tensor([len(ids)]))
        logits[0, -1, task.banned] = float("-inf")
        ids.append(int(logits[0, -1].argmax()))
    assert "".join(task.vocab.decode(ids)) == "a small" + generate(trained_lm, "a small", 15, sampling="greedy")


def test_empty_prime_and_zero_length(trained_lm):
    assert len(generate(trained_lm, "", 20, seed=0)) == 20
    assert generate(trained_lm, "the", 0) == ""


@pytest.mark.parametrize(("options", "pattern"), [
    ({"prime": "the €"}, "never occurred"),
    ({"temperature": 0}, "temperature must be above 0"),
    ({"temperature": -1.0}, "temperature"),
    ({"length": -1}, "length must be"),
    ({"length": 10**7}, "length must be"),
    ({"sampling": "beam"}, "sampling must be"),
    ({"sampling": "top-k", "top_k": 0}, "top_k"),
    ({"sampling": "top-p", "top_p": 1.5}, "top_p"),
    ({"seed": -3}, "seed"),
])
def test_bad_generation_requests_fail_before_any_output(trained_lm, options, pattern):
    args = {"prime": "the ", "length": 10, **options}
    with pytest.raises(WorkbenchError, match=pattern):
        trained_lm.task.generate(trained_lm.model, args.pop("prime"), args.pop("length"), trained_lm.device, **args)


def test_sampler_modes_respect_their_limits():
    logits = torch.tensor([5.0, 5.0, 3.0, 2.9, 1.0, 0.5, 0.0])  # 0 and 1 are <pad> and <unk>, never chosen
    generator = torch.Generator().manual_seed(0)

    def draws(mode: str, **kw) -> set[int]:
        sampler = Sampler(mode, kw.get("temperature", 1.0), kw.get("top_k", 2), kw.get("top_p", 0.9), [0, 1],
                          generator)
        return {sampler(logits) for _ in range(300)}

    assert draws("greedy") == {2}
    assert draws("top-k", top_k=2) == {2, 3}
    assert draws("top-p", top_p=0.5) == {2, 3}  # softmax over 2..6: 2 and 3 hold ~0.85 of the mass
    assert draws("top-p", top_p=0.3) == {2}
    assert draws("sample", temperature=5.0) == {2, 3, 4, 5, 6}


def test_a_model_without_state_cannot_generate(trained_lm):
    class Stateless(torch.nn.Module):
        def forward(self, tokens, lengths):
            return torch.zeros(*tokens.shape, len(trained_lm.task.vocab))

    with pytest.raises(WorkbenchError, match="lacks state and return_state"):
        trained_lm.task.generate(Stateless(), "the", 5, torch.device("cpu"))


def test_language_model_must_return_logits_per_position(registry):
    data = LanguageModelData("hello world " * 20, seq_len=8)
    task = LanguageModelTask.from_data(data)
    batch = next(task.batches(task.encode(data)["train"], 4, False))

    class Summary(torch.nn.Module):
        def forward(self, tokens, lengths):
            return torch.zeros(tokens.shape[0], len(task.vocab))

    with pytest.raises(WorkbenchError, match="shape"):
        task.loss(Summary(), batch)


# -- the command line --------------------------------------------------------------------------
@pytest.mark.slow
def test_train_then_generate_json_end_to_end():
    trained = workbench("train", "--dataset", "synthetic-text", "--device", "cpu", "--set", "chars=6000",
                        *[x for s in TINY_MODEL for x in ("--set", s)], "--json")
    assert trained.returncode == 0, trained.stderr
    run = json.loads(trained.stdout)
    assert run["metrics"]["bits_per_char"] > 0 and run["valid_metrics"]["perplexity"] > 1

    result = workbench("generate", run["run"], "--prime", "the old", "--length", "40", "--temperature", "0.8",
                       "--seed", "2", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["text"].startswith("the old") and len(out["text"]) == len("the old") + 40

    streamed = workbench("generate", "latest", "--prime", "a", "--length", "30", "--sampling", "greedy")
    assert streamed.returncode == 0 and streamed.stdout.startswith("a") and len(streamed.stdout) == 32

    bad = workbench("generate", "latest", "--prime", "Ω", "--length", "5")
    assert bad.returncode == 2 and bad.stdout == "" and "never occurred" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    bad = workbench("generate", "latest", "--temperature", "0", "--json")
    assert bad.returncode == 2 and "temperature" in json.loads(bad.stdout)["error"]



def test_build_model_for_language_model_context(registry):
    data = LanguageModelData("abcdef" * 10, seq_len=4)
    task = LanguageModelTask.from_data(data)
    config = resolve_config(registry, "synthetic-text", "char-lstm", "cpu", TINY_MODEL)
    model = build_model(config, task, registry)
    tokens = torch.tensor([[2, 3, 4], [4, 5, 0]])
    logits, state = model(tokens=tokens, lengths=torch.tensor([3, 2]), state=None, return_state=True)
    assert logits.shape == (2, 3, len(task.vocab)) and state[0].shape == (1, 2, 32)


@pytest.mark.parametrize("arch", ["char-rnn", "char-lstm", "char-gru"])
def test_one_step_fast_path_equals_the_full_recurrent_call(registry, arch):
    """Generation steps use the fused cell functions; they must compute what nn.RNN/LSTM/GRU does."""
    data = LanguageModelData("the quick brown fox jumps " * 4, seq_len=8)
    task = LanguageModelTask.from_data(data)
    config = resolve_config(registry, "synthetic-text", arch, "cpu", ["model.hidden_size=24", "model.num_layers=2"])
    model = build_model(config, task, registry).eval()
    tokens = torch.randint(2, len(task.vocab), (3, 9))
    lengths = torch.full((3,), 9)
    with torch.no_grad():
        full, full_state = model(tokens, lengths, state=None, return_state=True)
        state = None
        for t in range(9):
            logits, state = model(tokens[:, t : t + 1], torch.ones(3, dtype=torch.long), state=state,
                                  return_state=True)
            assert (logits[:, 0] - full[:, t]).abs().max() < 1e-5
    for ours, theirs in zip(state if isinstance(state, tuple) else (state,),
                            full_state if isinstance(full_state, tuple) else (full_state,), strict=True):
        assert (ours - theirs).abs().max() < 1e-5


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@pytest.mark.skipif(not _cpu_has_bf16(), reason="this CPU has no native bf16 (oneDNN has no bf16 LSTM kernel here)")
def test_bf16_training_option(registry):
    """precision=bf16 trains under autocast; weights, checkpoints and evaluation stay fp32."""
    events: list = []
    config = resolve_config(registry, "synthetic-text", "char-lstm", "cpu",
                            ["chars=4000", "epochs=3", "batch_size=16", "lr=0.01", "seq_len=32", "precision=bf16",
                             *TINY_MODEL])
    result = train(config, registry=registry, on_event=events.append)
    start = next(e for e in events if e.kind == "start")
    assert start.precision == "bf16"
    assert result.metrics["loss"] < 2.5 and math.isfinite(result.metrics["loss"])
    loaded = load_trained(result.checkpoint, registry, "cpu")
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    auto = resolve_config(registry, "tinyshakespeare", None, "cpu", [])
    assert auto.train["precision"] == "auto" and auto.train["batch_size"] == 32
    with pytest.raises(Exception, match="precision must be one of"):
        resolve_config(registry, "synthetic-text", None, "cpu", ["precision=fp8"])

