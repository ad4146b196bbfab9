"""The GRU written out from its gate equations matches nn.GRU given the same weights."""

from __future__ import annotations

import pytest
import torch

from workbench.nn import EquationGRU


@pytest.mark.parametrize("layers", [1, 2])
def test_equation_gru_matches_nn_gru(layers):
    torch.manual_seed(0)
    reference = torch.nn.GRU(6, 9, num_layers=layers, batch_first=True)
    ours = EquationGRU(6, 9, num_layers=layers)
    ours.load_state_dict(reference.state_dict())  # same names and layout
    x = torch.randn(4, 13, 6)
    h0 = torch.randn(layers, 4, 9)
    for state in (None, h0):
        expected_out, expected_h = reference(x, state)
        out, h = ours(x, state)
        assert (out - expected_out).abs().max() < 1e-5
        assert (h - expected_h).abs().max() < 1e-5
    # and the gradients agree too
    reference(x, h0)[0].sum().backward()
    ours(x, h0)[0].sum().backward()
    for name, param in ours.named_parameters():
        assert (param.grad - getattr(reference, name).grad).abs().max() < 1e-4, name


def test_equation_gru_state_dict_loads_into_nn_gru():
    ours = EquationGRU(3, 5, num_layers=2)
    reference = torch.nn.GRU(3, 5, num_layers=2, batch_first=True)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 7, 3)
    assert (ours(x)[0] - reference(x)[0]).abs().max() < 1e-5


def test_padding_keeps_the_state_of_the_last_real_step():
    torch.manual_seed(1)
    reference = torch.nn.GRU(4, 8, batch_first=True)
    ours = EquationGRU(4, 8)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 4)
    x[1, 3:] = 55.0  # padding garbage must not reach the returned state
    _, h = ours(x, lengths=torch.tensor([6, 3]))
    _, expected_short = reference(x[1:, :3])
    assert (h[0, 1] - expected_short[0, 0]).abs().max() < 1e-5


def test_char_gru_and_char_gru_eq_agree_with_the_same_weights(registry):
    from workbench.api import LanguageModelData
    from workbench.config import resolve_config
    from workbench.engine import build_model
    from workbench.tasks.language_model import LanguageModelTask

    task = LanguageModelTask.from_data(LanguageModelData("the quick brown fox " * 5, seq_len=8))
    settings = ["model.hidden_size=16", "model.embedding_dim=8", "model.num_layers=2"]
    torch_gru = build_model(resolve_config(registry, "synthetic-text", "char-gru", "cpu", settings), task, registry)
    equations = build_model(resolve_config(registry, "synthetic-text", "char-gru-eq", "cpu", settings), task, registry)
    equations.load_state_dict(torch_gru.state_dict())
    tokens = torch.randint(2, len(task.vocab), (3, 10))
    lengths = torch.full((3,), 10)
    torch_gru.eval()
    equations.eval()
    assert (torch_gru(tokens, lengths) - equations(tokens, lengths)).abs().max() < 1e-5


@pytest.mark.slow
def test_gru_eq_classifier_trains_on_names(registry, shared_data):
    from helpers import FAST
    from workbench.config import resolve_config
    from workbench.engine import train

    config = resolve_config(registry, "names", "gru-eq", "cpu", [*FAST, "model.bidirectional=true", "lr=0.01"],
                            data_dir=str(shared_data))
    result = train(config, registry=registry)
    assert result.metrics["accuracy"] > 0.5  # the majority class alone is ~0.47


@pytest.mark.parametrize("layers", [1, 2])
def test_equation_lstm_matches_nn_lstm(layers):
    from workbench.nn import EquationLSTM

    torch.manual_seed(0)
    reference = torch.nn.LSTM(5, 7, num_layers=layers, batch_first=True)
    ours = EquationLSTM(5, 7, num_layers=layers)
    ours.load_state_dict(reference.state_dict())  # same names and layout
    x = torch.randn(3, 11, 5)
    state = (torch.randn(layers, 3, 7), torch.randn(layers, 3, 7))
    for initial in (None, state):
        expected_out, (expected_h, expected_c) = reference(x, initial)
        out, (h, c) = ours(x, initial)
        assert (out - expected_out).abs().max() < 1e-5
        assert (h - expected_h).abs().max() < 1e-5
        assert (c - expected_c).abs().max() < 1e-5
