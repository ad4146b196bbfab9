"""The shared recurrent encoder: padding never leaks, padded and packed agree."""

import pytest
import torch

from workbench.nn import SequenceEncoder, TokenInput, reverse_padded


def test_reverse_padded_reverses_within_length():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]).unsqueeze(-1)
    out = reverse_padded(x, torch.tensor([3, 2])).squeeze(-1)
    assert out.tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def _copy_packed_into_padded(packed: SequenceEncoder, padded: SequenceEncoder) -> None:
    """Give the per-layer, per-direction padded modules the packed module's weights."""
    for layer, directions in enumerate(padded.layers):
        for direction, module in enumerate(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(module.rnn, f"{name}_l0").data.copy_(getattr(packed.packed_rnn, name + suffix))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_padded_equals_packed(cell):
    torch.manual_seed(0)
    packed = SequenceEncoder(cell, 5, 7, num_layers=2, bidirectional=True, mode="packed")
    padded = SequenceEncoder(cell, 5, 7, num_layers=2, bidirectional=True, mode="padded")
    _copy_packed_into_padded(packed, padded)
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 6, 5)
    x[1, 2:] = 99.0  # garbage in padding must not matter
    x[2, 4:] = -99.0
    out_a, sum_a = packed(x, lengths)
    out_b, sum_b = padded(x, lengths)
    assert torch.allclose(sum_a, sum_b, atol=1e-5)
    mask = torch.arange(6)[None, :] < lengths[:, None]
    assert torch.allclose(out_a[mask], out_b[mask], atol=1e-5)


def test_elman_ignores_padding():
    torch.manual_seed(0)
    encoder = SequenceEncoder("elman", 4, 6, bidirectional=True)
    x = torch.randn(1, 3, 4)
    padded = torch.cat([x, torch.full((1, 2, 4), 50.0)], dim=1)
    _, short = encoder(x, torch.tensor([3]))
    _, long = encoder(padded, torch.tensor([3]))
    assert torch.allclose(short, long, atol=1e-6)


def test_one_hot_input_zeroes_padding():
    vectors = TokenInput(5, 0, one_hot=True)(torch.tensor([[2, 0]]))
    assert vectors[0, 0].tolist() == [0, 0, 1, 0, 0]
    assert vectors[0, 1].abs().sum() == 0
