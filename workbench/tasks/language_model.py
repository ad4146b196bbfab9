"""Next-character prediction over contiguous text, and generation from a trained model.

Model contract (see docs/language-models.md)::

    model(tokens=[B, T] long, lengths=[B] long on the CPU) -> logits [B, T, V]
    model(tokens, lengths, state=STATE, return_state=True) -> (logits [B, T, V], new STATE)

``STATE`` is whatever the model needs to continue (an LSTM's ``(h, c)``, a GRU's ``h``); ``None``
means "start fresh". The task never looks inside it: it only hands back what the model returned,
which is how generation carries the hidden state forward one character at a time.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.api import LanguageModelData, ModelContext
from workbench.corpus import CorpusText
from workbench.errors import DataError, WorkbenchError
from workbench.headlines import HEADLINE_METRICS
from workbench.tasks.base import Batch, Task
from workbench.text import Vocab, cut_note

IGNORE_INDEX = -100
SAMPLING_MODES = ("sample", "greedy", "top-k", "top-p")
#: Most characters one ``generate`` call produces.
MAX_GENERATE = 1_000_000
#: Largest accepted temperature; above this every sampler is practically uniform noise.
MAX_TEMPERATURE = 100.0
SUPPORTED_TOKENIZERS = ("char",)


class TextWindows(Sequence[tuple[list[int], list[int]]]):
    """One split's token ids cut into windows of ``seq_len`` inputs and their next-token targets.

    Window ``i`` reads ``ids[s : s + n]`` and predicts ``ids[s + 1 : s + n + 1]`` with ``s =
    starts[i]`` and ``n = lengths[i]`` (``seq_len`` except for a short last window). With
    ``cover_all`` (validation and test), windows do not overlap and a short last window scores
    the tail, so every character after the first is predicted exactly once.

    ``ids`` is a tensor of vocabulary ids, or a :class:`~workbench.corpus.CorpusText` whose
    alphabet ids (in the data cache) ``table`` turns into vocabulary ids: then only the windows of a
    batch are ever read, so memory does not grow with the corpus.
    """

    def __init__(self, ids: Tensor | CorpusText, seq_len: int, stride: int, cover_all: bool,
                 table: Tensor | None = None) -> None:
        if isinstance(ids, CorpusText) and table is None:
            raise WorkbenchError("windows over a tokenised corpus need the table from its alphabet to the vocabulary")
        self.ids = ids
        self.table = table
        self.seq_len = seq_len
        self.stride = stride or seq_len
        targets = max(len(ids) - 1, 0)
        self.targets = targets
        # window i starts at i * stride; with cover_all a last, shorter window scores the tail, and a
        # training split shorter than one window still trains on what it has. Kept as arithmetic, not
        # as lists, so the windows of a large corpus cost no memory.
        self._regular = (targets - seq_len) // self.stride + 1 if targets >= seq_len else 0
        self._tail_start: int | None = None
        if cover_all:
            covered = (self._regular - 1) * self.stride + seq_len if self._regular else 0
            if covered < targets:
                self._tail_start = covered
        elif not self._regular and targets > 0:
            self._tail_start = 0
        #: The windows this object holds, by number (a slice holds a part of them, a distributed
        #: run's shard a tensor of them).
        self._numbers: range | Tensor = range(self._regular + (self._tail_start is not None))
        #: Training windows may be shifted by up to stride-1 each epoch (see ``batch``).
        self.max_start = targets - seq_len

    def __len__(self) -> int:
        return len(self._numbers)

    def _starts(self, index: Tensor) -> Tensor:
        """Where the windows ``index`` (positions in this object) start in the text."""
        if isinstance(self._numbers, range):
            numbers = self._numbers.start + index.long() * self._numbers.step
        else:
            numbers = self._numbers[index.long()]
        starts = numbers * self.stride
        if self._tail_start is not None:
            starts = torch.where(numbers >= self._regular, self._tail_start, starts)
        return starts

    def _starts_numbers(self, index: list[int]) -> Tensor:
        """The window numbers at the positions ``index`` (a distributed run's shard), as a tensor."""
        if isinstance(self._numbers, range):
            numbers = self._numbers
            return torch.tensor([numbers[i] for i in index], dtype=torch.long)
        return self._numbers[torch.tensor(index, dtype=torch.long)]

    def _lengths(self, starts: Tensor) -> Tensor:
        return (self.targets - starts).clamp(max=self.seq_len)

    @property
    def starts(self) -> Tensor:
        """The start of every window (a tensor as long as the windows: for small splits and tests)."""
        return self._starts(torch.arange(len(self)))

    @property
    def lengths(self) -> Tensor:
        return self._lengths(self.starts)

    def __getitem__(self, index: int | slice) -> Any:  # type: ignore[override]
        """Window ``index`` as (inputs, targets) lists, or for a slice (or a list of indices) the
        windows it selects (``train.limit`` keeps the first windows: the beginning of the text; a
        process of a distributed run its shard)."""
        if isinstance(index, slice):
            subset = copy.copy(self)
            subset._numbers = self._numbers[index]
            return subset
        if isinstance(index, list):
            subset = copy.copy(self)
            subset._numbers = self._starts_numbers(index)
            return subset
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("window index out of range")
        start = int(self._starts(torch.tensor([index]))[0])
        length = min(self.targets - start, self.seq_len)
        ids = self._gather(torch.arange(start, start + length + 1)).tolist()
        return ids[:-1], ids[1:]

    def _gather(self, positions: Tensor) -> Tensor:
        """The vocabulary ids at ``positions`` (any shape, all inside the split)."""
        if isinstance(self.ids, Tensor):
            return self.ids[positions]
        assert self.table is not None
        raw = torch.from_numpy(self.ids.take(positions.numpy()).astype(np.int64))
        if raw.numel() and int(raw.max()) >= len(self.table):
            raise DataError(f"the token cache {self.ids.corpus.bin_path} is damaged (ids beyond its alphabet); "
                            "delete it and start again")
        return self.table[raw]

    @property
    def chars(self) -> int:
        """Characters scored (prediction targets) over all windows."""
        tail = self._tail_start if self._tail_start is not None and bool(self._regular in self._numbers) else None
        if tail is None:
            return len(self._numbers) * self.seq_len
        return (len(self._numbers) - 1) * self.seq_len + self.targets - tail

    def batch(self, index: Tensor, offset: int = 0) -> Batch:
        """The windows ``index`` as a padded batch; ``offset`` shifts full windows right (training)."""
        starts = self._starts(index)
        lengths = self._lengths(starts)
        if offset and self.max_start >= 0:
            starts = (starts + offset).clamp(max=self.max_start)
        width = int(lengths.max())
        positions = starts.unsqueeze(1) + torch.arange(width + 1).unsqueeze(0)
        # past the end only where a window is shorter than the widest: those places are padding below
        chunk = self._gather(positions.clamp_(max=len(self.ids) - 1))
        tokens, targets = chunk[:, :-1].clone(), chunk[:, 1:].clone()
        if int(lengths.min()) < width:
            padding = torch.arange(width).unsqueeze(0) >= lengths.unsqueeze(1)
            tokens[padding] = Vocab.pad_index
            targets[padding] = IGNORE_INDEX
        return Batch({"tokens": tokens, "lengths": lengths}, targets, len(index))


class LanguageModelTask(Task):
    kind = "language_model"
    main_metric = "loss"
    higher_is_better = False
    headline_metrics = HEADLINE_METRICS["language_model"]
    supports_generation = True

    def __init__(self, vocab: Vocab, tokenizer: str = "char", seq_len: int = 128, stride: int = 0) -> None:
        if tokenizer not in SUPPORTED_TOKENIZERS:
            raise WorkbenchError(
                f"language models support tokenizer {', '.join(SUPPORTED_TOKENIZERS)}, not {tokenizer!r}")
        self.vocab = vocab
        self.tokenizer_name = tokenizer
        self.seq_len = seq_len
        self.stride = stride
        #: Tokens the model must never emit: padding and the unknown marker.
        self.banned = [Vocab.pad_index, Vocab.unk_index]

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: LanguageModelData) -> LanguageModelTask:
        cls._check(data)
        return cls(Vocab.from_counts(_char_counts(data.train)), data.tokenizer, data.seq_len, data.stride)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LanguageModelTask:
        try:
            return cls(Vocab(state["vocab"]), state.get("tokenizer", "char"), int(state.get("seq_len", 128)),
                       int(state.get("stride", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"checkpoint's task description is incomplete ({exc})") from None

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab": self.vocab.itos, "tokenizer": self.tokenizer_name,
                "seq_len": self.seq_len, "stride": self.stride}

    def model_context(self) -> ModelContext:
        return ModelContext(task=self.kind, vocab_size=len(self.vocab), pad_index=Vocab.pad_index,
                            num_classes=len(self.vocab))

    @staticmethod
    def _check(data: Any) -> None:
        if not isinstance(data, LanguageModelData):
            raise DataError(f"a language-model dataset must return LanguageModelData, not {type(data).__name__}")
        if data.tokenizer not in SUPPORTED_TOKENIZERS:
            raise DataError(f"language models support tokenizer {', '.join(SUPPORTED_TOKENIZERS)}, "
                            f"not {data.tokenizer!r}")
        if len(data.train) < 2:
            raise DataError("the training text is empty (a language model needs at least two characters)")
        if not isinstance(data.seq_len, int) or data.seq_len < 1:
            raise DataError(f"seq_len must be a positive integer, not {data.seq_len!r}")
        if not isinstance(data.stride, int) or data.stride < 0:
            raise DataError(f"stride must be 0 (= seq_len) or a positive integer, not {data.stride!r}")

    def check_data(self, data: Any) -> None:
        self._check(data)
        unseen = sorted(set(_char_counts(data.train)) - set(self.vocab.stoi))
        if unseen:
            raise DataError(f"the training text has {len(unseen)} characters this model was not trained on "
                            f"(e.g. {_show_chars(unseen[:10])}); train a new model on it")

    @classmethod
    def synthetic_data(cls, seed: int = 0) -> LanguageModelData:
        """Short words from a tiny alphabet, each followed by a fixed partner word: a pattern any
        character model picks up in a few steps, generated in microseconds."""
        import random

        rng = random.Random(seed)
        pairs = [("ab", "cd"), ("ba", "dc"), ("aab", "ccd"), ("bba", "ddc")]
        text = " ".join(" ".join(rng.choice(pairs)) for _ in range(400)) + "\n"
        n = len(text)
        return LanguageModelData(train=text[: n * 8 // 10], valid=text[n * 8 // 10 : n * 9 // 10],
                                 test=text[n * 9 // 10 :], seq_len=16,
                                 info={"source": "generated by LanguageModelTask.synthetic_data"})

    logits_axes = "batch, time, vocab_size"

    def logits_shape(self, batch: Batch) -> tuple[int, ...]:
        return (*batch.inputs["tokens"].shape, len(self.vocab))

    def sample_inputs(self, data: Any, count: int = 3) -> list[str]:
        """Beginnings of the validation, test and training text (the first a usable prime), and
        one character: a one-character prime must work."""
        beginnings = (text[:40] for text in (data.valid, data.test, data.train))  # str, even from a corpus
        texts = [text for text in beginnings if text.strip()]
        chosen = [t for t in texts if set(t) <= set(self.vocab.stoi)][: max(count - 1, 1)]
        if data.train:
            chosen.append(data.train[0])
        return chosen

    def encode_text(self, text: str) -> Tensor:
        return torch.tensor(self.vocab.encode(text), dtype=torch.long)

    def encode(self, data: LanguageModelData) -> dict[str, Sequence[Any]]:
        return {
            "train": self._windows(data.train, data.seq_len, data.stride, cover_all=False),
            "valid": self._windows(data.valid, data.seq_len, data.seq_len, cover_all=True),
            "test": self._windows(data.test, data.seq_len, data.seq_len, cover_all=True),
            # length generalisation: the same test text in windows twice as long as in training
            **({"test_2x": self._windows(data.test, 2 * data.seq_len, 2 * data.seq_len, cover_all=True)}
               if getattr(data, "test_2x", False) and len(data.test) else {}),
        }

    def _windows(self, text: str | CorpusText, seq_len: int, stride: int, cover_all: bool) -> TextWindows:
        """Windows over ``text``; a tokenised corpus stays in the data cache, read through a table
        from its alphabet to this vocabulary (characters the vocabulary lacks read as unknown)."""
        if isinstance(text, CorpusText):
            table = torch.tensor([self.vocab.stoi.get(c, Vocab.unk_index) for c in text.alphabet], dtype=torch.long)
            return TextWindows(text, seq_len, stride, cover_all, table=table)
        return TextWindows(self.encode_text(text), seq_len, stride, cover_all)

    # -- training ----------------------------------------------------------------------------
    def batches(self, examples: Sequence[Any], batch_size: int, shuffle: bool,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        windows = _as_windows(examples)
        n = len(windows)
        if n == 0:
            return
        if shuffle:
            # int32 halves the order's memory and draws the same permutation as int64
            order = torch.randperm(n, generator=generator, dtype=torch.int32 if n < 2**31 else torch.int64)
            # a new phase each epoch, so windows do not always start at the same characters
            offset = int(torch.randint(windows.stride, (1,), generator=generator)) if windows.stride > 1 else 0
        else:
            order = torch.arange(n)
            offset = 0
        for begin in range(0, n, batch_size):
            yield windows.batch(order[begin : begin + batch_size], offset)

    def _logits(self, model: nn.Module, batch: Batch) -> Tensor:
        logits = model(**batch.inputs)
        expected = (*batch.targets.shape, len(self.vocab))
        if not isinstance(logits, Tensor) or tuple(logits.shape) != expected:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise WorkbenchError(f"a language model must return logits of shape [batch, time, vocab] = "
                                 f"{list(expected)}, got {shape}")
        return logits

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        logits = self._logits(model, batch)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), batch.targets.reshape(-1),
                               ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[Any], batch_size: int, device: torch.device,
                 detailed: bool = False, top_k: int = 3) -> dict[str, Any]:
        was_training = model.training
        model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        top_hits = torch.zeros((), dtype=torch.long, device=device)
        count = 0
        k = max(1, min(top_k, len(self.vocab)))
        try:
            for batch in self.batches(examples, batch_size, shuffle=False):
                batch = batch.to(device)
                logits = self._logits(model, batch).reshape(-1, len(self.vocab)).float()
                targets = batch.targets.reshape(-1)
                real = targets != IGNORE_INDEX
                loss_sum += F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum").double()
                top = logits.topk(k, dim=-1).indices
                correct += ((top[:, 0] == targets) & real).sum()
                top_hits += ((top == targets.unsqueeze(1)).any(dim=1) & real).sum()
                count += int(batch.inputs["lengths"].sum())
        finally:
            model.train(was_training)
        return lm_metrics(float(loss_sum), int(correct), int(top_hits), count, k, len(examples))

    # -- using a trained model ---------------------------------------------------------------
    def encode_prime(self, text: str) -> list[int]:
        """Token ids of ``text``; characters the model never saw are an error, not a silent <unk>."""
        unknown = sorted(set(text) - set(self.vocab.stoi))
        if unknown:
            raise WorkbenchError(
                f"{_show_chars(unknown[:10])} never occurred in this model's training text, so it cannot "
                f"read {'them' if len(unknown) > 1 else 'it'}; known characters: {self.known_characters()}")
        return self.vocab.encode(text)

    def known_characters(self) -> str:
        return _show_chars(self.vocab.itos[2:], limit=120)

    @torch.no_grad()
    def predict(self, model: nn.Module, text: str, device: torch.device, top_k: int = 3) -> dict[str, Any]:
        """The next-character distribution after ``text`` and how well the model predicts ``text`` itself."""
        if not text:
            raise WorkbenchError("nothing to read: the input is empty")
        ids = self.encode_prime(text)
        cut = None
        if self.max_tokens and len(ids) > self.max_tokens and not is_stateful(model):
            # a model that cannot carry its state reads the text nearest the next character
            cut = {"tokens": len(ids), "kept": self.max_tokens, "part": "last"}
            ids = ids[-self.max_tokens:]
        was_training = model.training
        model.eval()
        try:
            last, loss_sum, _ = self.read(model, ids, device)
        finally:
            model.train(was_training)
        result: dict[str, Any] = {"input": text, "chars": len(ids)}
        if cut is not None:
            result["cut"] = cut
        if len(ids) >= 2:
            loss = loss_sum / (len(ids) - 1)
            result.update({"loss": loss, "bits_per_char": loss / math.log(2), "perplexity": math.exp(loss)})
        last = last.clone()
        last[self.banned] = float("-inf")
        probs = torch.softmax(last, dim=-1).cpu()
        k = max(1, min(top_k, len(self.vocab) - len(self.banned)))
        values, indices = probs.topk(k)
        result["next"] = [{"char": self.vocab.itos[int(i)], "probability": round(float(p), 6)}
                          for p, i in zip(values, indices, strict=True)]
        return result

    @torch.no_grad()
    def read(self, model: nn.Module, ids: list[int], device: torch.device,
             keep_state: bool = False) -> tuple[Tensor, float, Any]:
        """Read ``ids`` and return the last position's logits, the summed loss of predicting each id
        from the ones before it, and the state after the last (when ``keep_state``, or read in pieces).

        A stateful model reads pieces of at most ``max_tokens`` ids, carrying its state from one to the
        next: the same answer as one pass, in memory that does not grow with the text (a 1 MB text read
        at once held its logits and hidden states for every character)."""
        piece = self.max_tokens if self.max_tokens and is_stateful(model) else len(ids)
        loss_sum, state, previous = 0.0, None, None
        for start in range(0, len(ids), piece):
            chunk = ids[start:start + piece]
            tokens = torch.tensor([chunk], dtype=torch.long, device=device)
            lengths = torch.tensor([len(chunk)])
            if keep_state or piece < len(ids):
                logits, state = model(tokens=tokens, lengths=lengths, state=state, return_state=True)
            else:
                logits = model(tokens=tokens, lengths=lengths)
            logits = logits[0].float()
            targets = torch.tensor(chunk, device=device)
            if previous is not None:  # the last character of the piece before predicts this one's first
                loss_sum += float(F.cross_entropy(previous[None], targets[:1], reduction="sum"))
            if len(chunk) >= 2:
                loss_sum += float(F.cross_entropy(logits[:-1], targets[1:], reduction="sum"))
            previous = logits[-1]
        assert previous is not None, "read() needs at least one id"
        return previous, loss_sum, state

    def render_prediction(self, prediction: dict[str, Any]) -> str:
        lines = [prediction["input"]]
        if "loss" in prediction:
            lines.append(f"  read at {prediction['loss']:.3f} nats/char, {prediction['bits_per_char']:.3f} bits/char, "
                         f"perplexity {prediction['perplexity']:.2f}")
        note = cut_note(prediction)
        if note:
            lines.append(f"  ({note})")
        lines.append("  next character:")
        for entry in prediction.get("next", []):
            bar = "█" * max(1, round(entry["probability"] * 30))
            lines.append(f"    {_show_char(entry['char']):<6} {entry['probability']:7.2%} {bar}")
        return "\n".join(lines)

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
        """Characters after ``prime``, one at a time. Everything is validated before this returns.

        The prime is read once; after that each step feeds only the newest character and the
        carried state. An empty prime starts the model as if at the beginning of a line (after a
        newline), or after the most frequent training character when the corpus has no newline.
        """
        if sampling not in SAMPLING_MODES:
            raise WorkbenchError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, not {sampling!r}")
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= MAX_GENERATE:
            raise WorkbenchError(f"length must be an integer from 0 to {MAX_GENERATE:,}, not {length!r}")
        if not isinstance(temperature, (int, float)) or not (0 < temperature <= MAX_TEMPERATURE):
            raise WorkbenchError(f"temperature must be above 0 and at most {MAX_TEMPERATURE:g}, not {temperature!r}"
                                 " (use --sampling greedy for the most likely character every time)")
        if sampling == "top-k" and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise WorkbenchError(f"top_k must be a positive integer, not {top_k!r}")
        if sampling == "top-p" and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
            raise WorkbenchError(f"top_p must be above 0 and at most 1, not {top_p!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
            raise WorkbenchError(f"seed must be an integer from 0 to 2**64 - 1, not {seed!r}")
        check_stateful(model)
        if prime:
            ids = self.encode_prime(prime)
        else:
            start = "\n" if "\n" in self.vocab.stoi else self.vocab.itos[min(2, len(self.vocab) - 1)]
            ids = [self.vocab.stoi[start]]
        generator = torch.Generator(device=device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        sampler = Sampler(sampling, float(temperature), int(top_k), float(top_p), self.banned, generator)
        return self._generate(model, ids, length, device, sampler)

    def _generate(self, model: nn.Module, ids: list[int], length: int, device: torch.device,
                  sampler: Sampler) -> Iterator[str]:
        if length == 0:
            return
        was_training = model.training
        model.eval()
        one = torch.ones(1, dtype=torch.long)
        try:
            with torch.no_grad():  # never held across a yield: grad mode is per thread, the caller's too
                last, _, state = self.read(model, ids, device, keep_state=True)  # a long prime in pieces
                next_id = sampler(last)
            for produced in range(1, length + 1):
                yield self.vocab.itos[next_id]
                if produced == length:
                    break
                with torch.no_grad():
                    token = torch.tensor([[next_id]], dtype=torch.long, device=device)
                    logits, state = model(tokens=token, lengths=one, state=state, return_state=True)
                    next_id = sampler(logits[0, -1])
        finally:
            model.train(was_training)


class Sampler:
    """Picks the next token from one step's logits: sample, greedy, top-k or top-p (nucleus)."""

    def __init__(self, mode: str, temperature: float, top_k: int, top_p: float, banned: Sequence[int],
                 generator: torch.Generator) -> None:
        self.mode = mode
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.banned = list(banned)
        self.generator = generator
        self._mask: Tensor | None = None

    def __call__(self, logits: Tensor) -> int:
        if self._mask is None or self._mask.shape != logits.shape or self._mask.device != logits.device:
            self._mask = torch.zeros(logits.shape, device=logits.device)
            self._mask[self.banned] = float("-inf")
        logits = logits.float() + self._mask  # a new tensor: the model's output is left alone
        if self.mode == "greedy":
            return int(logits.argmax())
        # shifted so the likeliest token is at 0 first: a tiny temperature then sends the others to -inf
        # (the greedy limit) instead of every logit to +-inf and the softmax to NaN; and never divided by
        # a temperature that float32 rounds to 0
        logits = (logits - logits.max()) / max(self.temperature, torch.finfo(logits.dtype).tiny)
        if self.mode == "top-k":
            allowed = logits.numel() - len(self.banned)
            values, indices = logits.topk(min(self.top_k, allowed))
            pick = torch.multinomial(torch.softmax(values, dim=-1), 1, generator=self.generator)
            return int(indices[pick])
        if self.mode == "top-p":
            ordered, indices = logits.sort(descending=True)
            probs = torch.softmax(ordered, dim=-1)
            # keep the smallest set of most likely tokens whose mass reaches top_p (always at least one)
            before = probs.cumsum(dim=-1) - probs
            keep = before < self.top_p
            keep[0] = True  # a top_p below float32's smallest number would otherwise keep nothing
            probs = torch.where(keep, probs, torch.zeros_like(probs))
            pick = torch.multinomial(probs, 1, generator=self.generator)
            return int(indices[pick])
        pick = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=self.generator)
        return int(pick)


def _missing_state_arguments(model: nn.Module) -> list[str]:
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return []
    return [name for name in ("state", "return_state") if name not in parameters]


def is_stateful(model: nn.Module) -> bool:
    """Whether ``model.forward`` takes ``state`` and ``return_state`` (it can carry its state)."""
    return not _missing_state_arguments(model)


def check_stateful(model: nn.Module) -> None:
    """Generation needs ``forward(tokens, lengths, state=..., return_state=...)``; say so clearly."""
    missing = _missing_state_arguments(model)
    if missing:
        raise WorkbenchError(
            f"{type(model).__name__} cannot generate: its forward() lacks {' and '.join(missing)} "
            "(see docs/language-models.md for the stateful model contract)")


def lm_metrics(loss_sum: float, correct: int, top_hits: int, count: int, k: int, windows: int) -> dict[str, Any]:
    if count == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "count": 0, "windows": windows}
    loss = loss_sum / count
    return {
        "loss": loss,
        "bits_per_char": loss / math.log(2),
        "perplexity": math.exp(min(loss, 700.0)),
        "accuracy": correct / count,
        "top_k_accuracy": top_hits / count,
        "top_k": k,
        "count": count,
        "windows": windows,
    }


def _char_counts(text: str | CorpusText) -> Mapping[str, int]:
    """Each character of ``text`` and how often it occurs (a tokenised corpus counts its ids)."""
    return text.char_counts() if isinstance(text, CorpusText) else Counter(text)


def _as_windows(examples: Sequence[Any]) -> TextWindows:
    if not isinstance(examples, TextWindows):
        raise WorkbenchError(f"language-model batches are cut from TextWindows, not {type(examples).__name__}")
    return examples


def _show_char(char: str) -> str:
    return repr(char) if not char.isprintable() or char == " " else char


def _show_chars(chars: Sequence[str], limit: int = 0) -> str:
    shown = " ".join(_show_char(c) for c in chars)
    return shown if not limit or len(shown) <= limit else shown[:limit] + " ..."
