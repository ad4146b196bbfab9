"""Memory across time: the unrolled probe matches the fused layers, the map, the engine's events,
`workbench runs show --memory` and the Train screen."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.cli import main
from workbench.config import resolve_config
from workbench.engine import build_model, load_dataset, train
from workbench.events import MemoryEvent
from workbench.memory import MemoryProbe, recurrent_direction, unrolled
from workbench.memory_view import LEVELS, memory_map, reach
from workbench.tasks import task_class

BRACKETS = ["data.train_size=200", "data.test_size=20", "data.length=24", "model.hidden_size=12",
            "model.embedding_dim=4", "threads=1"]


def brackets_model(registry, arch: str, *extra: str):
    config = resolve_config(registry, "brackets", arch, "cpu", [*BRACKETS, *extra])
    data = load_dataset(config, registry)
    task = task_class("classification").from_data(data)
    return task, task.encode(data), build_model(config, task, registry)


@pytest.mark.parametrize("arch, extra", [("elman", ()), ("rnn", ()), ("lstm", ()), ("gru", ()),
                                         ("lstm", ("model.num_layers=2", "model.bidirectional=true"))])
def test_the_unrolled_top_layer_computes_what_the_fused_one_does(registry, arch, extra):
    task, encoded, model = brackets_model(registry, arch, *extra)
    model.eval()
    probe = MemoryProbe(task, encoded["valid"], size=8)
    assert probe.batch is not None and probe.examples == 8
    inputs = probe.batch.inputs
    direction, cell = recurrent_direction(model)
    states: list[torch.Tensor] = []
    with torch.no_grad():
        fused = model(**inputs)
        with unrolled(direction, cell, states):
            stepped = model(**inputs)
    assert len(states) == inputs["tokens"].shape[1]
    assert torch.allclose(fused, stepped, atol=1e-5)
    assert "forward" not in vars(direction)  # the fused forward is back

    rng = torch.get_rng_state()
    model.train()
    lags = probe.measure(model, torch.device("cpu"))
    assert model.training and torch.equal(rng, torch.get_rng_state())
    assert all(p.grad is None for p in model.parameters())  # nothing leaks into training
    assert len(lags) == int(inputs["lengths"].max()) and all(math.isfinite(x) and x >= 0 for x in lags)
    assert lags[-1] < lags[0]  # an untrained network forgets


@pytest.mark.parametrize("arch, extra", [("rnn", ()), ("gru", ()), ("lstm", ("model.num_layers=2", "model.bidirectional=true"))])
def test_a_packed_encoder_is_unrolled_over_the_padded_batch_and_probed(registry, arch, extra):
    """sequence_mode=packed: the packed nn.RNN/GRU/LSTM (multi-layer, bidirectional) runs step by step
    with padding masked, with the packed pass's outputs and summary; the probe uses each example's length."""
    from workbench.memory import unrolled_packed

    task, encoded, model = brackets_model(registry, arch, "model.sequence_mode=packed", *extra)
    model.eval()
    encoder, cell = recurrent_direction(model)
    assert encoder is model.encoder and cell == arch
    probe = MemoryProbe(task, encoded["train"][:8], size=8)  # training strings: of different lengths
    inputs = probe.batch.inputs
    assert len(set(inputs["lengths"].tolist())) > 1  # padding is really there
    states: list[torch.Tensor] = []
    lengths: list[torch.Tensor] = []
    vectors = model.input(inputs["tokens"])
    with torch.no_grad():
        fused = model.encoder(vectors, inputs["lengths"])
        with unrolled_packed(encoder, states, lengths):
            stepped = model.encoder(vectors, inputs["lengths"])
    assert torch.allclose(fused[0], stepped[0], atol=1e-5) and torch.allclose(fused[1], stepped[1], atol=1e-5)
    assert len(states) == inputs["tokens"].shape[1] and "_forward_packed" not in vars(encoder)
    lags = probe.measure(model, torch.device("cpu"))
    assert len(lags) == int(inputs["lengths"].max()) and lags[-1] < lags[0]
    assert all(p.grad is None for p in model.parameters())


def test_models_without_a_recurrent_encoder_are_not_probed(registry):
    from workbench.tasks.seq2seq import Seq2SeqTask

    task = Seq2SeqTask.from_data(Seq2SeqTask.synthetic_data())
    config = resolve_config(registry, "copy-reverse", "gru-attention", "cpu", ["model.hidden_size=8"])
    model = build_model(config, task, registry)
    assert recurrent_direction(model) is None and recurrent_direction(model, "seq2seq") is None


def test_the_map_shades_each_lag_against_lag_0_and_fits_its_width():
    events = [MemoryEvent(epoch=e, global_step=10 * e, lags=tuple(10.0 ** -(k / (e + 1)) for k in range(40)),
                          cell="rnn", examples=32) for e in range(30)]
    lines = memory_map(events, width=30, height=8)
    assert all(len(line) <= 30 for line in lines)
    assert lines[0].startswith("ep  lag 0") and "39" in lines[0] and "(2/col)" in lines[0]
    rows = lines[1:-1]
    assert len(rows) == 6 and rows[0].split()[0] == "0" and rows[-1].split()[0] == "29"  # first and latest
    assert rows[0][4] == "█" and rows[0][5] == "▒"  # lags 0-1, then 2-3 (geometric mean 10^-2.5 of lag 0)
    assert rows[0].rstrip()[-1] in "·░" and len(rows[0].rstrip()) < len(rows[-1].rstrip())  # it remembers more later
    assert {mark for _, mark in LEVELS} >= set("".join(r[4:] for r in rows).replace(" ", ""))
    assert reach(events[0]) == 3 and reach(events[-1]) == 39
    assert memory_map([], 30, 8) == []


@pytest.mark.slow
def test_training_probes_memory_every_n_epochs_and_runs_show_prints_the_map(registry, capsys):
    config = resolve_config(registry, "brackets", "elman", "cpu", [*BRACKETS, "epochs=3", "memory_every=2"])
    run = train(config, registry=registry).run
    probes = [e for e in run.events() if isinstance(e, MemoryEvent)]
    assert [p.epoch for p in probes] == [0, 2] and probes[0].global_step == 0 < probes[1].global_step
    assert all((p.cell, p.examples, len(p.lags)) == ("elman", 20, 24) for p in probes), probes
    assert main(["runs", "show", run.id, "--memory"]) == 0
    out = capsys.readouterr().out
    assert "memory across time" in out and "\n  0 " in out and "\n  2 " in out and "reach" in out
    assert main(["runs", "show", run.id, "--memory", "--json"]) == 0
    import json

    shown = json.loads(capsys.readouterr().out)["memory"]
    assert [p["epoch"] for p in shown] == [0, 2] and shown[0]["lags"] == list(probes[0].lags)


@pytest.mark.slow
async def test_the_train_screen_draws_the_map_next_to_the_gradient_norm_and_overlays_runs(isolated_dirs,
                                                                                          monkeypatch):
    from workbench.events import EndEvent, StartEvent
    from workbench.runs import EventWriter, Run, atomic_write_json
    from workbench.tui.app import WorkbenchApp

    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: [])
    root = isolated_dirs / "runs"

    def write(run_id: str, cell: str, decay: float) -> Run:
        run = Run(root / run_id)
        run.path.mkdir(parents=True)
        config = {"dataset": "brackets", "arch": cell, "device": "cpu", "train": {"epochs": 3}, "data": {},
                  "model": {}, "data_dir": None}
        atomic_write_json(run.config_path, config)
        writer = EventWriter(run.events_path)
        writer.write(StartEvent(run=run_id, config=config, task="classification", main_metric="accuracy",
                                device="cpu", threads=1, precision="fp32", parameters=10, sizes={}, steps_per_epoch=1,
                                dataset_info={}, resumed_at_epoch=None, workbench_version="test"))
        for epoch in range(4):
            writer.write(MemoryEvent(epoch=epoch, global_step=epoch, cell=cell, examples=32,
                                     lags=tuple(decay ** k for k in range(100))))
        writer.write(EndEvent(state="finished", message=""))
        writer.close()
        atomic_write_json(run.status_path, {"state": "finished", "pid": None, "epoch": 3})
        return run

    write("20260101-000000-brackets-elman", "elman", 0.6)
    write("20260101-000100-brackets-lstm", "lstm", 0.99)
    app = WorkbenchApp(runs_root=root, keys_file=isolated_dirs / "no-keys.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4", "c", "up", "enter")  # compare the LSTM (newest, where the cursor starts), watch the Elman RNN
        await pilot.pause(1.0)
        screen = app.screen
        memory = screen.query_one("#memory")
        assert not memory.has_class("-hidden") and not screen.query_one("#grad").has_class("-hidden")
        shown = str(memory.content).splitlines()
        assert shown[0].startswith("ep  lag 0") and len(shown) <= memory.size.height
        assert all(len(line) <= memory.size.width for line in shown)
        assert shown[1].startswith("  0 █") and shown[1].endswith(" ")  # the Elman map fades out within the row
        assert "lstm" not in str(memory.content)  # only the watched run next to its gradient norm
        for _ in range(4):  # all -> loss -> metric -> grad -> memory
            await pilot.press("v")
        await pilot.pause(1.0)
        assert screen.view == "memory" and screen.query_one("#grad").has_class("-hidden")
        both = str(memory.content)
        assert "000000 elman (elman)" in both and "000100 lstm (lstm)" in both  # the overlay: one map per run
        lstm_rows = [line for line in both.split("000100 lstm")[1].splitlines() if line.startswith("  3 ")]
        assert lstm_rows and lstm_rows[0].rstrip().endswith("█")  # 0.99^99 = 0.37 of lag 0: still there


@pytest.mark.slow
def test_a_probe_that_fails_is_one_status_line_and_the_run_goes_on(registry, monkeypatch):
    def broken(self, model, device):
        raise RuntimeError("no such kernel")

    monkeypatch.setattr("workbench.memory.MemoryProbe.measure", broken)
    config = resolve_config(registry, "brackets", "gru", "cpu", [*BRACKETS, "epochs=2"])
    result = train(config, registry=registry)
    assert result.state == "finished" and result.metrics
    messages = [e.message for e in result.run.events() if e.kind == "status" and "memory probe" in e.message]
    assert messages == ["memory probe failed (RuntimeError: no such kernel); probing is off"]


# -- language models: the recurrence itself -------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "gru-eq"])
def test_a_language_models_stack_is_unrolled_and_probed_at_its_last_position(registry, cell):
    """A character model's multi-layer nn.RNN/LSTM/GRU (or equation GRU) runs step by step with the
    same outputs and final state as the fused module; the probe measures the last position's loss
    against the top layer's state at each lag, and it vanishes with the lag in an untrained model."""
    from workbench.api import LanguageModelData
    from workbench.memory import unrolled_stack
    from workbench.tasks.language_model import LanguageModelTask

    data = LanguageModelData("the quick brown fox jumps over the lazy dog " * 30, seq_len=24)
    task = LanguageModelTask.from_data(data)
    config = resolve_config(registry, "synthetic-text", f"char-{cell}", "cpu",
                            ["model.hidden_size=16", "model.embedding_dim=8", "model.num_layers=2"])
    torch.manual_seed(0)
    model = build_model(config, task, registry).eval()
    probe = MemoryProbe(task, task.encode(data)["train"], size=8)
    assert probe.examples == 8 and recurrent_direction(model) is None  # not without the task's kind
    module, found_cell = recurrent_direction(model, "language_model")
    assert module is model.rnn and found_cell == cell.removesuffix("-eq")
    inputs = {**probe.batch.inputs, "return_state": True}
    states: list[torch.Tensor] = []
    with torch.no_grad():
        fused, fused_state = model(**inputs)
        with unrolled_stack(module, found_cell, states):
            stepped, stepped_state = model(**inputs)
    assert len(states) == 24 and torch.allclose(fused, stepped, atol=1e-5)
    for ours, theirs in zip(torch.utils._pytree.tree_leaves(stepped_state),
                            torch.utils._pytree.tree_leaves(fused_state), strict=True):
        assert torch.allclose(ours, theirs, atol=1e-5)
    assert "forward" not in vars(module)

    rng = torch.get_rng_state()
    lags = probe.measure(model, torch.device("cpu"))
    assert torch.equal(rng, torch.get_rng_state()) and all(p.grad is None for p in model.parameters())
    assert len(lags) == 24 and all(math.isfinite(x) and x >= 0 for x in lags)
    assert lags[-1] < 1e-3 * lags[0]  # one position's loss: it vanishes back through the window


def test_training_a_language_model_probes_its_memory(registry):
    config = resolve_config(registry, "synthetic-text", "char-gru", "cpu",
                            ["chars=3000", "epochs=1", "seq_len=16", "model.hidden_size=12", "model.embedding_dim=4",
                             "threads=1"])
    run = train(config, registry=registry).run
    probes = [e for e in run.events() if isinstance(e, MemoryEvent)]
    assert [p.epoch for p in probes] == [0, 1] and all(p.cell == "gru" and len(p.lags) == 16 for p in probes)
