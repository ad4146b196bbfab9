"""Attention over LSTM outputs, the LSTM with selectable gates, and both trained end to end."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from workbench_plugins.sentiment_models import (
    GATE_CHOICES,
    AttentionClassifier,
    GatedLSTMClassifier,
    GatedLSTMLayer,
)

from workbench.api import ModelContext
from workbench.cli import main
from workbench.config import resolve_config
from workbench.engine import load_trained, train
from workbench.tasks.base import pad_sequences

CONTEXT = ModelContext(task="classification", vocab_size=20, pad_index=0, num_classes=3)
ENCODER = {"input": "embedding", "embedding_dim": 8, "hidden_size": 6, "num_layers": 1, "bidirectional": False,
           "dropout": 0.0}


def attention_model(**overrides) -> AttentionClassifier:
    torch.manual_seed(0)
    return AttentionClassifier(CONTEXT, {**ENCODER, "cell": "lstm", "sequence_mode": "padded", **overrides}).eval()


@pytest.mark.parametrize("overrides", [{}, {"bidirectional": True, "num_layers": 2},
                                       {"cell": "gru", "sequence_mode": "packed", "bidirectional": True}])
def test_attention_weights_sum_to_one_over_real_tokens(overrides):
    model = attention_model(**overrides)
    tokens, lengths = pad_sequences([[3, 4, 5, 6, 7], [8, 9], [2, 3, 4]])
    logits = model(tokens, lengths)
    assert logits.shape == (3, 3)
    weights = model.last_attention
    assert weights.shape == (3, 5) and not weights.requires_grad
    assert torch.allclose(weights.sum(dim=1), torch.ones(3), atol=1e-6)
    assert torch.all(weights[1, 2:] == 0) and torch.all(weights[2, 3:] == 0)
    assert torch.all(weights[0] > 0)
    # padding does not change a sequence's logits or weights
    alone = model(*pad_sequences([[8, 9]]))
    assert torch.allclose(alone, logits[1:2], atol=1e-5)
    assert torch.allclose(model.last_attention[0], weights[1, :2], atol=1e-6)


def test_attention_gradients_flow_through_the_weights():
    model = attention_model().train()
    tokens, lengths = pad_sequences([[3, 4, 5], [6, 7]])
    model(tokens, lengths).sum().backward()
    assert model.score.weight.grad is not None and model.score.weight.grad.abs().sum() > 0


def copy_from_lstm(layer: GatedLSTMLayer, lstm: nn.LSTM) -> None:
    with torch.no_grad():
        layer.weight_ih.copy_(lstm.weight_ih_l0)
        layer.weight_hh.copy_(lstm.weight_hh_l0)
        layer.bias.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)


def test_gated_lstm_with_all_gates_is_an_lstm():
    torch.manual_seed(1)
    lstm = nn.LSTM(5, 7, batch_first=True)
    layer = GatedLSTMLayer(5, 7, "ifo", peephole=False)
    copy_from_lstm(layer, lstm)
    x = torch.randn(3, 9, 5)
    expected, _ = lstm(x)
    actual = layer(x, torch.tensor([9, 9, 9]))
    assert (actual - expected).abs().max() < 1e-5
    # shorter sequences: real steps match nn.LSTM on the unpadded sequence, padding repeats the last state
    short = layer(x, torch.tensor([9, 4, 1]))
    assert (short[1, :4] - lstm(x[1:2, :4])[0][0]).abs().max() < 1e-5
    assert torch.equal(short[1, 4:], short[1, 3:4].expand(5, 7))


def test_missing_gates_are_fixed_open():
    torch.manual_seed(2)
    x = torch.randn(2, 4, 3)
    lengths = torch.tensor([4, 4])
    gateless = GatedLSTMLayer(3, 5, "none")
    assert gateless.weight_ih.shape == (5, 3)  # only the candidate block
    # c_t = c_{t-1} + tanh(W x + U h + b), h = tanh(c)
    h = torch.zeros(2, 5)
    c = torch.zeros(2, 5)
    for t in range(4):
        c = c + torch.tanh(x[:, t] @ gateless.weight_ih.T + h @ gateless.weight_hh.T + gateless.bias)
        h = torch.tanh(c)
        assert torch.allclose(gateless(x, lengths)[:, t], h, atol=1e-6)
    # an LSTM whose input gate is pushed fully open equals the LSTM without an input gate
    with_input = GatedLSTMLayer(3, 5, "ifo")
    without = GatedLSTMLayer(3, 5, "fo")
    size = 5
    with torch.no_grad():
        keep = torch.cat([torch.arange(size, 4 * size)])  # f, g, o blocks
        without.weight_ih.copy_(with_input.weight_ih[keep])
        without.weight_hh.copy_(with_input.weight_hh[keep])
        without.bias.copy_(with_input.bias[keep])
        with_input.weight_ih[:size] = 0
        with_input.weight_hh[:size] = 0
        with_input.bias[:size] = 1e4  # sigmoid -> 1
    assert torch.allclose(with_input(x, lengths), without(x, lengths), atol=1e-6)


def test_every_gate_combination_and_peepholes_build_and_learn():
    tokens, lengths = pad_sequences([[3, 4, 5, 6], [7, 8]])
    targets = torch.tensor([0, 2])
    sizes = set()
    for gates in GATE_CHOICES:
        for peephole in (False, True):
            torch.manual_seed(0)
            model = GatedLSTMClassifier(CONTEXT, {**ENCODER, "bidirectional": True, "gates": gates,
                                                  "peephole": peephole})
            n_params = sum(p.numel() for p in model.parameters())
            sizes.add(n_params)
            optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
            first = None
            for _ in range(8):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(tokens, lengths), targets)
                first = first if first is not None else float(loss.detach())
                loss.backward()
                optimizer.step()
            assert float(loss.detach()) < first, (gates, peephole)
            has_peepholes = any("peephole" in name for name, _ in model.named_parameters())
            assert has_peepholes == (peephole and gates != "none")  # peepholes feed gates; none has no gate
    assert len(sizes) == 7  # 0-3 gates, each with or without peepholes (none has no peephole)


def test_attention_in_predict_json_and_text(registry, tmp_path, capsys):
    config = resolve_config(registry, "brackets", "lstm-attention", "cpu",
                            ["epochs=1", "data.length=8", "data.train_size=200", "data.test_size=20",
                             "model.hidden_size=8", "model.embedding_dim=4", "model.bidirectional=true"])
    result = train(config, registry=registry)
    loaded = load_trained(result.checkpoint, registry, "cpu")
    prediction = loaded.task.predict(loaded.model, "(()())", loaded.device)
    attention = prediction["attention"]
    assert [a["token"] for a in attention] == list("(()())")
    assert sum(a["weight"] for a in attention) == pytest.approx(1.0, abs=1e-4)
    rendered = loaded.task.render_prediction(prediction)
    assert "attention" in rendered
    assert main(["predict", str(result.checkpoint), "(()", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["predictions"][0]["attention"]) == 3
    # models without attention keep the old prediction shape
    plain = train(resolve_config(registry, "brackets", "gru", "cpu",
                                 ["epochs=1", "data.length=8", "data.train_size=100", "data.test_size=10",
                                  "model.hidden_size=8"]), registry=registry)
    loaded = load_trained(plain.checkpoint, registry, "cpu")
    assert "attention" not in loaded.task.predict(loaded.model, "()", loaded.device)


def test_gated_lstm_trains_through_the_engine(registry):
    config = resolve_config(registry, "brackets", "gated-lstm", "cpu",
                            ["epochs=1", "data.length=6", "data.train_size=100", "data.test_size=10",
                             "model.hidden_size=8", "model.gates=fo", "model.peephole=true"])
    result = train(config, registry=registry)
    assert result.state == "finished" and result.metrics["count"] == 10
