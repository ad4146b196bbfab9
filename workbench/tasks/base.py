"""The contract between the engine and a task kind."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from workbench.api import ModelContext
from workbench.errors import WorkbenchError


@dataclass
class Batch:
    """Tensors for one step. ``inputs`` go to the model as keyword arguments; ``targets`` to the loss."""

    inputs: dict[str, Tensor]
    targets: Tensor
    size: int
    #: How many predictions the loss is averaged over (tokens for tagging and seq2seq); 0 means
    #: ``size``. The engine weights the epoch's loss and the ``correct`` count by it.
    units: int = 0

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device``; itself where it already is (a CPU run copies nothing). To a CUDA
        device the tensors go through pinned (page-locked) memory with non-blocking copies, so the
        copy overlaps the work the GPU still has queued instead of stalling the host."""
        if device.type == "cpu" and self.targets.device.type == "cpu":
            return self
        cuda = device.type == "cuda"

        def move(tensor: Tensor) -> Tensor:
            if cuda and tensor.device.type == "cpu":
                tensor = tensor.pin_memory()
            return tensor.to(device, non_blocking=cuda)

        # lengths stay on the CPU: packing needs them there and indexing moves them itself
        inputs = {k: (v if k == "lengths" else move(v)) for k, v in self.inputs.items()}
        return Batch(inputs, move(self.targets), self.size, self.units)


class Task(ABC):
    """One task kind, bound to a vocabulary and label set built from the training data."""

    kind: ClassVar[str]
    #: The validation metric that picks the best checkpoint and drives early stopping.
    main_metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    #: The metrics (besides loss) that summaries show for this kind, most important first: the
    #: epoch line, ``workbench train``'s result and the app read them from here, never from a list
    #: of their own.
    headline_metrics: ClassVar[tuple[str, ...]]
    #: The longest input :meth:`predict` feeds the model, in tokens (0: no limit). Loading a
    #: checkpoint sets the run's ``train.max_tokens``, to which training cut its examples too: a
    #: pasted file must not take all memory (a 1 MB name took 18 s and 4 GB).
    max_tokens: int = 0

    # -- building ----------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def from_data(cls, data: Any) -> Task:
        """Build vocabularies from the dataset's training split."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any]) -> Task:
        """Rebuild from :meth:`state` (a checkpoint)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """JSON-able description (vocabulary, labels, tokeniser) stored in checkpoints."""

    @abstractmethod
    def model_context(self) -> ModelContext: ...

    @abstractmethod
    def check_data(self, data: Any) -> None:
        """Raise a DataError unless ``data`` is what this task expects."""

    @abstractmethod
    def encode(self, data: Any) -> dict[str, Sequence[Any]]:
        """Encode the dataset's splits: {"train": [...], "valid": [...], "test": [...]}."""

    def cut_long(self, examples: Sequence[Any], max_tokens: int) -> tuple[Sequence[Any], int, int]:
        """``examples`` with every sequence cut to ``max_tokens`` tokens, how many were cut, and the
        longest length before cutting, so memory is bounded by a setting rather than by the longest
        line in the data. Kinds whose examples are bounded by construction (language-model windows
        of ``seq_len``) return them as they are."""
        return examples, 0, 0

    # -- training ----------------------------------------------------------------------------
    @abstractmethod
    def batches(
        self, examples: Sequence[Any], batch_size: int, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[Batch]: ...

    def prepare_training(self, train_examples: Sequence[Any], options: dict[str, Any]) -> None:
        """Called once before training with the encoded training split and the run's ``train``
        options, for what a task derives from them (class weights); nothing by default."""
        return None

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> Tensor | tuple[Tensor, Tensor | None]:
        """The mean loss of a batch, optionally with the count of correct predictions (a tensor,
        so the engine can sum it without a device sync every step)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, examples: Sequence[Any], batch_size: int, device: torch.device,
                 detailed: bool = False, top_k: int = 3) -> dict[str, Any]:
        """Metrics over ``examples``; ``detailed`` adds per-class tables (not sent every epoch)."""

    # -- using a trained model ---------------------------------------------------------------
    @abstractmethod
    def predict(self, model: nn.Module, text: str, device: torch.device, top_k: int = 3) -> dict[str, Any]: ...

    def render_prediction(self, prediction: dict[str, Any]) -> str:
        """Plain-text form of :meth:`predict`'s result for ``workbench predict`` without ``--json``."""
        return "\n".join(f"{key}: {value}" for key, value in prediction.items())

    supports_generation: ClassVar[bool] = False

    def generate(
        self,
        model: nn.Module,
        prime: str,
        length: int,
        device: torch.device,
        *,
        temperature: float = 1.0,
        sampling: str = "sample",
        top_k: int = 10,
        top_p: float = 0.9,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield generated text piece by piece (a character or token at a time) after ``prime``.

        ``sampling`` is "sample" (full distribution), "greedy", "top-k" or "top-p"; the hidden state
        is carried forward step by step, so callers can stream and stop at any time.
        """
        raise WorkbenchError(f"a {self.kind} model does not generate text")


    # -- contract checks (workbench.testing) -------------------------------------------------
    @classmethod
    def synthetic_data(cls, seed: int = 0) -> Any | None:
        """A tiny generated dataset of this kind (the same type a dataset plugin returns), so that
        :mod:`workbench.testing` can check an architecture for a plugin that ships no dataset.
        None when the kind offers none."""
        return None

    #: The axes of the logits ``forward`` returns, in words, for :meth:`check_output`'s sentences.
    logits_axes: ClassVar[str] = ""

    def logits_shape(self, batch: Batch) -> tuple[int, ...] | None:
        """The shape of the logits ``model(**batch.inputs)`` must return for this kind; None (the
        default) leaves the output unchecked."""
        return None

    def check_output(self, output: Any, batch: Batch) -> list[str]:
        """What is wrong with a model's raw ``model(**batch.inputs)`` result for this kind (type,
        shape, dtype), one sentence per problem; empty when it fits. Used by :mod:`workbench.testing`."""
        expected = self.logits_shape(batch)
        if expected is None:
            return []
        call = "forward(" + ", ".join(f"{name} {list(value.shape)}" for name, value in batch.inputs.items()) + ")"
        if not isinstance(output, Tensor):
            return [f"{call} must return a logits tensor [{self.logits_axes}], not {type(output).__name__}"]
        problems = []
        if tuple(output.shape) != expected:
            problems.append(f"{call} returned shape {list(output.shape)}; expected logits {list(expected)} "
                            f"({self.logits_axes})")
        if not output.is_floating_point():
            problems.append(f"logits must be floating point, not {output.dtype}")
        return problems

    def sample_inputs(self, data: Any, count: int = 3) -> list[str]:
        """A few inputs taken from ``data`` that :meth:`predict` (and, as primes, :meth:`generate`)
        must accept; :mod:`workbench.testing` calls them on a trained checkpoint."""
        return []


def bucketed_order(lengths: Sequence[int], batch_size: int, shuffle: bool,
                   generator: torch.Generator | None) -> list[list[int]]:
    """Batches of indices with similar lengths (less padding), in random order when ``shuffle``."""
    n = len(lengths)
    if not shuffle:
        order = sorted(range(n), key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    perm = torch.randperm(n, generator=generator).tolist()
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, n, pool):
        chunk = sorted(perm[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def pad_sequences(sequences: Sequence[Sequence[int]], pad_index: int = 0) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    tokens = torch.full((len(sequences), int(lengths.max())), pad_index, dtype=torch.long)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return tokens, lengths


def too_long(what: str, count: int, limit: int, noun: str = "tokens") -> WorkbenchError:
    """The error for an input a task cannot cut without changing the answer's meaning."""
    return WorkbenchError(f"the input has {count:,} {noun}; this model {what} at most {limit:,} at once "
                          f"(the run's train.max_tokens): split it")
