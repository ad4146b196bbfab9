"""Reusable recurrent building blocks for architecture plugins (the public torch half of the plugin
API; :mod:`workbench.api` is the torch-free half).

:class:`RecurrentStack` turns any one-direction layer into a multi-layer, optionally
bidirectional stack over padded batches. :class:`SequenceEncoder` is that stack for RNN/LSTM/GRU/
Elman cells: it returns every position's output plus a per-sequence summary (the last real step
forwards, the first step backwards). Two ways to skip padding are offered because their speed differs a lot by device:

- ``padded``: run over the padded tensor; the summary is gathered at each sequence's last real
  step, and the backward direction reads each sequence reversed *within its length*, so padding
  never leaks into a real position. Fast on CPU.
- ``packed``: ``pack_padded_sequence`` and cuDNN/CPU kernels for packed input. Usually the faster
  choice on GPU, several times slower for LSTMs on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "CELLS",
    "ElmanLayer",
    "EquationGRU",
    "EquationLSTM",
    "NgramBag",
    "RecurrentStack",
    "SEQUENCE_MODES",
    "SequenceEncoder",
    "TokenInput",
    "gru_equations",
    "last_step",
    "lengths_mask",
    "lstm_equations",
    "reverse_padded",
]

CELLS = ("elman", "rnn", "lstm", "gru")
SEQUENCE_MODES = ("padded", "packed")


def lengths_mask(lengths: Tensor, max_len: int) -> Tensor:
    """[B, T] bool, true at real (non-padding) positions."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of ``x`` [B, T, ...] within its own length; padding stays where it is."""
    batch, max_len = x.shape[:2]
    steps = torch.arange(max_len, device=x.device).unsqueeze(0).expand(batch, max_len)
    lens = lengths.to(x.device).unsqueeze(1)
    index = torch.where(steps < lens, lens - 1 - steps, steps)
    index = index.view(batch, max_len, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def last_step(outputs: Tensor, lengths: Tensor) -> Tensor:
    """The output at each sequence's last real position: [B, T, H] -> [B, H]."""
    index = (lengths.to(outputs.device) - 1).clamp(min=0)
    return outputs[torch.arange(outputs.size(0), device=outputs.device), index]


def gru_equations(from_input: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Tensor | None,
                  force: dict[str, float] | None = None) -> dict[str, Tensor]:
    """One GRU step from its equations, every intermediate named (what the inspector shows).

    ``from_input`` is ``W_i x + b_i`` for this step ([B, 3H], nn.GRU's r, z, n order), ``h`` the
    previous state. ``force`` fixes a gate to a value (``{"update": 0.0}``: the state is replaced by
    the candidate each step) for interventions. Returns reset, update, candidate and hidden."""
    i_r, i_z, i_n = from_input.chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
    reset = torch.sigmoid(i_r + h_r)
    update = torch.sigmoid(i_z + h_z)
    if force:
        reset = torch.full_like(reset, force["reset"]) if "reset" in force else reset
        update = torch.full_like(update, force["update"]) if "update" in force else update
    candidate = torch.tanh(i_n + reset * h_n)
    hidden = (1 - update) * candidate + update * h
    return {"reset": reset, "update": update, "candidate": candidate, "hidden": hidden}


def lstm_equations(from_input: Tensor, h: Tensor, c: Tensor, weight_hh: Tensor, bias_hh: Tensor | None,
                   force: dict[str, float] | None = None) -> dict[str, Tensor]:
    """One LSTM step from its equations, every intermediate named::

        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)    input gate
        f = sigmoid(W_if x + b_if + W_hf h + b_hf)    forget gate
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)       cell candidate
        o = sigmoid(W_io x + b_io + W_ho h + b_ho)    output gate
        c' = f * c + i * g,  h' = o * tanh(c')

    ``from_input`` is ``W_i x + b_i`` for this step ([B, 4H], nn.LSTM's i, f, g, o order). ``force``
    fixes gates (``{"forget": 1.0}``: the cell keeps everything). Returns input, forget, candidate,
    output, cell and hidden."""
    z = from_input + F.linear(h, weight_hh, bias_hh)
    i_z, f_z, g_z, o_z = z.chunk(4, dim=-1)
    gates = {"input": torch.sigmoid(i_z), "forget": torch.sigmoid(f_z), "output": torch.sigmoid(o_z)}
    for name, value in (force or {}).items():
        if name in gates:
            gates[name] = torch.full_like(gates[name], value)
    candidate = torch.tanh(g_z)
    cell = gates["forget"] * c + gates["input"] * candidate
    hidden = gates["output"] * torch.tanh(cell)
    return {"input": gates["input"], "forget": gates["forget"], "candidate": candidate, "output": gates["output"],
            "cell": cell, "hidden": hidden}


class ElmanLayer(nn.Module):
    """The textbook Elman cell built from a Linear layer: ``h_t = act(i2h([x_t; h_{t-1}]))``.

    The input half of ``i2h`` is applied to all steps at once; only the recurrent half runs in the
    Python loop. Padding positions keep the previous state.
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.act = {"tanh": torch.tanh, "relu": torch.relu}[nonlinearity]

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        batch, max_len, _ = x.shape
        weight_x = self.i2h.weight[:, : self.input_size]
        weight_h = self.i2h.weight[:, self.input_size :]
        projected = F.linear(x, weight_x, self.i2h.bias)
        mask = lengths_mask(lengths.to(x.device), max_len).unsqueeze(-1)
        h = x.new_zeros(batch, self.hidden_size)
        outputs = []
        for t in range(max_len):
            new_h = self.act(projected[:, t] + F.linear(h, weight_h))
            h = torch.where(mask[:, t], new_h, h)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class _EquationCells(nn.Module):
    """Weights of a stack of cells written out from their equations, named and laid out as torch's
    fused module's (``weight_ih_l0`` holds every gate's input weights stacked, and so on), so a state
    dict loads into either; uniform in +-1/sqrt(hidden_size), as torch initialises them."""

    def __init__(self, gates: int, input_size: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        bound = 1.0 / hidden_size**0.5
        for layer in range(num_layers):
            size_in = input_size if layer == 0 else hidden_size
            shapes = {"weight_ih": (gates * hidden_size, size_in), "weight_hh": (gates * hidden_size, hidden_size),
                      "bias_ih": (gates * hidden_size,), "bias_hh": (gates * hidden_size,)}
            for name, shape in shapes.items():
                self.register_parameter(f"{name}_l{layer}", nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))


class EquationGRU(_EquationCells):
    """A multi-layer GRU written out from its gate equations, for reading and for ablations.

    For each step, with ``x`` the layer input and ``h`` the previous state::

        r  = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      reset gate
        z  = sigmoid(W_iz x + b_iz + W_hz h + b_hz)      update gate
        n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))   candidate state
        h' = (1 - z) * n + z * h

    Parameters are named and laid out as in ``nn.GRU(batch_first=True)`` (``weight_ih_l0`` holds
    the r, z, n input weights stacked, and so on), so a state dict loads into either. The input
    projections of all steps are computed at once; only the recurrent half runs in a Python loop.
    With ``lengths``, padding positions keep the previous state, so the returned state is each
    sequence's state at its last real step.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__(3, input_size, hidden_size, num_layers, dropout)

    def forward(self, x: Tensor, state: Tensor | None = None,
                lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x`` [B, T, D], ``state`` [layers, B, H] or None -> (outputs [B, T, H], state [layers, B, H])."""
        batch, max_len, _ = x.shape
        if state is None:
            state = x.new_zeros(self.num_layers, batch, self.hidden_size)
        mask = None
        if lengths is not None:
            mask = lengths_mask(lengths.to(x.device), max_len).unsqueeze(-1)
        final_states = []
        layer_input = x
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
            w_ih = getattr(self, f"weight_ih_l{layer}")
            w_hh = getattr(self, f"weight_hh_l{layer}")
            b_ih = getattr(self, f"bias_ih_l{layer}")
            b_hh = getattr(self, f"bias_hh_l{layer}")
            from_input = F.linear(layer_input, w_ih, b_ih)  # [B, T, 3H] for every step at once
            h = state[layer]
            outputs = []
            for t in range(max_len):
                new_h = gru_equations(from_input[:, t], h, w_hh, b_hh)["hidden"]
                h = new_h if mask is None else torch.where(mask[:, t], new_h, h)
                outputs.append(h)
            layer_input = torch.stack(outputs, dim=1)
            final_states.append(h)
        return layer_input, torch.stack(final_states, dim=0)


class EquationLSTM(_EquationCells):
    """A multi-layer LSTM written out from its gate equations (:func:`lstm_equations`), the LSTM's
    counterpart of :class:`EquationGRU`: parameters named and laid out as in
    ``nn.LSTM(batch_first=True)``, so a state dict loads into either, and ``state`` is ``(h, c)``,
    each [layers, B, H]. The inspector runs trained LSTM weights through these equations; training
    keeps nn.LSTM's fused kernels."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__(4, input_size, hidden_size, num_layers, dropout)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x`` [B, T, D] -> (outputs [B, T, H], (h, c) each [layers, B, H])."""
        batch, max_len, _ = x.shape
        if state is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros)
        finals_h, finals_c = [], []
        layer_input = x
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
            from_input = F.linear(layer_input, getattr(self, f"weight_ih_l{layer}"), getattr(self, f"bias_ih_l{layer}"))
            w_hh, b_hh = getattr(self, f"weight_hh_l{layer}"), getattr(self, f"bias_hh_l{layer}")
            h, c = state[0][layer], state[1][layer]
            outputs = []
            for t in range(max_len):
                step = lstm_equations(from_input[:, t], h, c, w_hh, b_hh)
                h, c = step["hidden"], step["cell"]
                outputs.append(h)
            layer_input = torch.stack(outputs, dim=1)
            finals_h.append(h)
            finals_c.append(c)
        return layer_input, (torch.stack(finals_h), torch.stack(finals_c))


class _TorchLayer(nn.Module):
    """One unidirectional single-layer nn.RNN/LSTM/GRU returning only its outputs."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, nonlinearity: str) -> None:
        super().__init__()
        if cell == "rnn":
            self.rnn: nn.RNNBase = nn.RNN(input_size, hidden_size, batch_first=True, nonlinearity=nonlinearity)
        elif cell == "lstm":
            self.rnn = nn.LSTM(input_size, hidden_size, batch_first=True)
        else:
            self.rnn = nn.GRU(input_size, hidden_size, batch_first=True)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.rnn(x)[0]


class RecurrentStack(nn.ModuleList):
    """Stacked recurrent layers, each reading forwards or, when bidirectional, both ways (the second
    direction reads every sequence reversed within its own length), with dropout between layers.

    ``make_direction(input_size)`` builds one direction of one layer: a module called as
    ``direction(x [B, T, D], lengths [B]) -> outputs [B, T, hidden_size]`` whose padding positions
    never change a real one. The stack is itself the ``ModuleList`` of layers (each a ``ModuleList``
    of directions), so parameters are named ``<layer>.<direction>.<name>`` whatever the cell, and a
    model that stores it as ``self.layers`` keeps the names its checkpoints already have.
    """

    def __init__(self, make_direction: Callable[[int], nn.Module], input_size: int, hidden_size: int,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0) -> None:
        directions = 2 if bidirectional else 1
        super().__init__(
            nn.ModuleList(make_direction(input_size if index == 0 else hidden_size * directions)
                          for _ in range(directions))
            for index in range(num_layers)
        )
        self.directions = directions
        self.dropout = dropout
        self.output_size = hidden_size * directions

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` [B, T, D] -> (outputs [B, T, H*dirs], summary [B, H*dirs]): the top layer's output at
        every position, and its last real step forwards with (bidirectional) its first step backwards."""
        outputs = x
        summary: list[Tensor] = []
        for index, layer in enumerate(self):
            directions = cast(nn.ModuleList, layer)  # built above: one or two directions per layer
            if index > 0:
                outputs = F.dropout(outputs, self.dropout, self.training)
            forward_out = directions[0](outputs, lengths)
            parts, summary = [forward_out], [last_step(forward_out, lengths)]
            if self.directions == 2:
                backward_reversed = directions[1](reverse_padded(outputs, lengths), lengths)
                parts.append(reverse_padded(backward_reversed, lengths))
                summary.append(last_step(backward_reversed, lengths))
            outputs = torch.cat(parts, dim=-1) if len(parts) > 1 else forward_out
        return outputs, torch.cat(summary, dim=-1) if len(summary) > 1 else summary[0]


class SequenceEncoder(nn.Module):
    """A multi-layer, optionally bidirectional recurrent encoder over padded batches."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        mode: str = "padded",
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}")
        if mode not in SEQUENCE_MODES:
            raise ValueError(f"mode must be one of {SEQUENCE_MODES}")
        self.cell = cell
        self.mode = "padded" if cell == "elman" else mode  # the Elman loop masks padding itself
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.directions
        if self.mode == "packed":
            kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
            rnn_class = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
            self.packed_rnn = rnn_class(
                input_size, hidden_size, num_layers=num_layers, batch_first=True,
                bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0, **kwargs,
            )
        else:
            def make_direction(size_in: int) -> nn.Module:
                if cell == "elman":
                    return ElmanLayer(size_in, hidden_size, nonlinearity)
                return _TorchLayer(cell, size_in, hidden_size, nonlinearity)

            self.layers = RecurrentStack(make_direction, input_size, hidden_size, num_layers, bidirectional, dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` [B, T, D], ``lengths`` [B] -> (outputs [B, T, H*dirs], summary [B, H*dirs])."""
        if self.mode == "packed":
            return self._forward_packed(x, lengths)
        return self.layers(x, lengths)

    def _forward_packed(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.packed_rnn(packed)
        outputs, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        h = state[0] if isinstance(state, tuple) else state
        if self.directions == 2:
            summary = torch.cat([h[-2], h[-1]], dim=-1)
        else:
            summary = h[-1]
        return outputs, summary


class TokenInput(nn.Module):
    """Token ids -> vectors, either a learned embedding or a one-hot encoding (padding -> zeros)."""

    def __init__(self, vocab_size: int, embedding_dim: int, one_hot: bool, pad_index: int = 0) -> None:
        super().__init__()
        self.one_hot = one_hot
        self.vocab_size = vocab_size
        self.pad_index = pad_index
        if one_hot:
            self.output_size = vocab_size
            self.embedding = None
        else:
            self.output_size = embedding_dim
            self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_index)

    def forward(self, tokens: Tensor) -> Tensor:
        if self.embedding is not None:
            return self.embedding(tokens)
        vectors = F.one_hot(tokens, self.vocab_size).float()
        return vectors * (tokens != self.pad_index).unsqueeze(-1)


class NgramBag(nn.Module):
    """The mean of learned vectors of every token n-gram of 1..``max_n`` tokens (fastText's bag of
    character n-grams, Joulin et al. 2017; Bojanowski et al. 2017), each n-gram hashed into one of
    ``buckets`` rows.

    A recurrent summary reads a sequence in order and forgets; the bag sees every short stretch
    ("ski", "ov>", "<Mc") at once, which is much of what tells a surname's language. Each sequence is
    framed by a start and an end marker, so n-grams at its edges differ from the same letters
    inside it; padding never enters the bag. Hashing (a polynomial over token ids modulo a prime)
    needs no n-gram vocabulary, so it works for any token vocabulary (characters or words) and
    the checkpoint stays ``buckets x dim`` whatever the data.
    """

    #: The prime modulus of the rolling hash: codes stay below 2**31, so a code times a token id
    #: (the vocabulary is far smaller than 2**31) never overflows int64.
    PRIME = 2_147_483_647
    MIX = 48_271

    def __init__(self, vocab_size: int, max_n: int, buckets: int, dim: int) -> None:
        super().__init__()
        if max_n < 1 or buckets < 1:
            raise ValueError("NgramBag needs max_n >= 1 and buckets >= 1")
        self.max_n = max_n
        self.buckets = buckets
        self.start_id, self.end_id = vocab_size, vocab_size + 1
        self.base = vocab_size + 2
        self.output_size = dim
        self.bag = nn.EmbeddingBag(buckets, dim, mode="sum")

    def ngram_ids(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``tokens`` [B, T], ``lengths`` [B] -> (bucket ids [B, G], valid [B, G] bool): every n-gram
        of every length 1..max_n over the framed sequence; ``valid`` is false where one reaches
        into padding."""
        batch, max_len = tokens.shape
        lengths = lengths.to(tokens.device)
        framed = torch.cat([tokens.new_full((batch, 1), self.start_id), tokens, tokens.new_zeros(batch, 1)], dim=1)
        positions = torch.arange(max_len + 2, device=tokens.device).unsqueeze(0)
        framed = torch.where(positions == (lengths + 1).unsqueeze(1), torch.full_like(framed, self.end_id), framed)
        ids, valid = [], []
        for n in range(1, self.max_n + 1):
            count = max_len + 3 - n
            if count <= 0:
                break
            code = torch.full((batch, count), n, dtype=torch.long, device=tokens.device)
            for k in range(n):
                code = (code * self.base + framed[:, k : k + count]) % self.PRIME
            ids.append(code * self.MIX % self.PRIME % self.buckets)
            valid.append(positions[:, :count] + n - 1 <= (lengths + 1).unsqueeze(1))
        return torch.cat(ids, dim=1), torch.cat(valid, dim=1)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """``tokens`` [B, T], ``lengths`` [B] -> the mean n-gram vector of each sequence [B, dim]."""
        ids, valid = self.ngram_ids(tokens, lengths)
        weights = valid.float()
        weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
        return self.bag(ids, per_sample_weights=weights)
