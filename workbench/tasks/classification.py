"""Sequence -> class: surnames to languages, reviews to sentiment, brackets to balanced or not."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.api import ClassificationData, ModelContext
from workbench.errors import DataError, WorkbenchError
from workbench.headlines import HEADLINE_METRICS
from workbench.tasks.base import Batch, Task, bucketed_order, pad_sequences
from workbench.tasks.token_examples import TokenExamples
from workbench.text import Vocab, cut_note, get_normalizer, get_tokenizer
from workbench.text_cache import TextSplit

Encoded = tuple[list[int], int]


class ClassificationTask(Task):
    kind = "classification"
    main_metric = "accuracy"
    higher_is_better = True
    headline_metrics = HEADLINE_METRICS["classification"]

    def __init__(self, vocab: Vocab, classes: list[str], tokenizer: str, normalize: str, max_length: int,
                 truncate: str = "start") -> None:
        if truncate not in ("start", "end"):
            raise DataError(f"truncate must be 'start' or 'end', not {truncate!r}")
        self.vocab = vocab
        self.truncate = truncate
        self.classes = classes
        self.tokenizer_name = tokenizer
        self.normalize_name = normalize
        self.max_length = max_length
        self._tokenize = get_tokenizer(tokenizer)
        self._normalize = get_normalizer(normalize)
        #: Per-class loss weights for ``class_weight=balanced`` (None = plain mean cross-entropy).
        self.class_weights: Tensor | None = None
        #: ``logit_adjustment`` x log(class prior), added to the logits in the training loss (None = off).
        self.logit_offsets: Tensor | None = None

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: ClassificationData) -> ClassificationTask:
        cls._check(data)
        if isinstance(data.train, TextSplit):  # tokenised in the data cache: count its ids, not its text
            vocab = Vocab.from_counts(data.train.token_counts(), max_size=data.max_vocab, min_freq=data.min_freq)
        else:
            tokenize = get_tokenizer(data.tokenizer)
            normalize = get_normalizer(data.normalize)
            vocab = Vocab.build((tokenize(normalize(text)) for text, _ in data.train),
                                max_size=data.max_vocab, min_freq=data.min_freq)
        return cls(vocab, list(data.classes), data.tokenizer, data.normalize, data.max_length, data.truncate)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ClassificationTask:
        try:
            return cls(Vocab(state["vocab"]), list(state["classes"]), state["tokenizer"], state["normalize"],
                       int(state.get("max_length", 0)), str(state.get("truncate", "start")))
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"checkpoint's task description is incomplete ({exc})") from None

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "vocab": self.vocab.itos,
            "classes": self.classes,
            "tokenizer": self.tokenizer_name,
            "normalize": self.normalize_name,
            "max_length": self.max_length,
            "truncate": self.truncate,
        }

    def model_context(self) -> ModelContext:
        return ModelContext(task=self.kind, vocab_size=len(self.vocab), pad_index=Vocab.pad_index,
                            num_classes=len(self.classes))

    @staticmethod
    def _check(data: Any) -> None:
        if not isinstance(data, ClassificationData):
            raise DataError(f"a classification dataset must return ClassificationData, not {type(data).__name__}")
        if len(data.classes) < 2:
            raise DataError("a classification dataset needs at least two classes")
        if not data.train:
            raise DataError("the training split is empty")
        for split_name in ("train", "valid", "test"):
            examples = getattr(data, split_name)
            if isinstance(examples, TextSplit):
                _check_cached(examples, split_name, data)
                continue
            for _text, label in examples:
                if not isinstance(label, int) or not 0 <= label < len(data.classes):
                    raise DataError(f"{split_name} split has label {label!r} outside 0..{len(data.classes) - 1}")

    def check_data(self, data: Any) -> None:
        self._check(data)
        if list(data.classes) != self.classes:
            raise DataError("the dataset's classes differ from the ones this model was trained on")

    def tokens(self, text: str) -> list[str]:
        tokens = self._tokenize(self._normalize(text))
        if not self.max_length or len(tokens) <= self.max_length:
            return tokens
        return tokens[-self.max_length :] if self.truncate == "end" else tokens[: self.max_length]

    def encode_text(self, text: str) -> list[int]:
        return self.vocab.encode(self.tokens(text))

    def encode(self, data: ClassificationData) -> dict[str, Sequence[Encoded]]:
        result: dict[str, Sequence[Encoded]] = {}
        splits = {name: getattr(data, name) for name in ("train", "valid", "test")}
        splits.update(getattr(data, "extra_tests", None) or {})
        tables: dict[int, np.ndarray] = {}  # per cache (a test.csv has its own): lexicon id -> vocabulary id
        for split_name, examples in splits.items():
            if isinstance(examples, TextSplit):
                if id(examples.texts) not in tables:
                    stoi, unk = self.vocab.stoi, Vocab.unk_index
                    tables[id(examples.texts)] = np.array([stoi.get(t, unk) for t in examples.texts.lexicon],
                                                          dtype=np.int64)
                result[split_name] = TokenExamples(examples, tables[id(examples.texts)], self.max_length,
                                                   self.truncate == "end")
                continue
            encoded = []
            for text, label in examples:
                ids = self.encode_text(text)
                if ids:  # an empty text has nothing to read; skip it rather than feed a zero-length sequence
                    encoded.append((ids, label))
            result[split_name] = encoded
        return result

    def cut_long(self, examples: Sequence[Encoded], max_tokens: int) -> tuple[Sequence[Encoded], int, int]:
        """Longer texts keep the part ``truncate`` names (their start or their end), as ``max_length`` does."""
        if isinstance(examples, TokenExamples):
            lengths = examples.lengths
            longest = int(lengths.max()) if len(lengths) else 0
            if not max_tokens or longest <= max_tokens:
                return examples, 0, longest
            return examples.capped(max_tokens), int((lengths > max_tokens).sum()), longest
        longest = max((len(ids) for ids, _ in examples), default=0)
        if not max_tokens or longest <= max_tokens:
            return examples, 0, longest
        keep_end = self.truncate == "end"
        cut = sum(1 for ids, _ in examples if len(ids) > max_tokens)
        return [((ids[-max_tokens:] if keep_end else ids[:max_tokens]) if len(ids) > max_tokens else ids, label)
                for ids, label in examples], cut, longest

    # -- training ----------------------------------------------------------------------------
    def batches(self, examples: Sequence[Encoded], batch_size: int, shuffle: bool,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        if isinstance(examples, TokenExamples):  # read from the cache a batch at a time
            for indices in bucketed_order(examples.lengths.tolist(), batch_size, shuffle, generator):
                tokens, lens = examples.pad(indices)
                yield Batch({"tokens": tokens, "lengths": lens}, examples.targets(indices), len(indices))
            return
        lengths = [len(ids) for ids, _ in examples]
        for indices in bucketed_order(lengths, batch_size, shuffle, generator):
            tokens, lens = pad_sequences([examples[i][0] for i in indices])
            targets = torch.tensor([examples[i][1] for i in indices], dtype=torch.long)
            yield Batch({"tokens": tokens, "lengths": lens}, targets, len(indices))

    def prepare_training(self, train_examples: Sequence[Encoded], options: dict[str, Any]) -> None:
        """``class_weight=balanced`` weighs each class by n / (classes x its count), as scikit-learn's
        "balanced" does, so rare classes (Vietnamese among the surnames) count as much as common ones;
        ``sqrt`` by the square root of that, a middle way that gives up less top-1 accuracy.
        ``logit_adjustment`` = tau trains on ``logits + tau x log(prior)`` (Menon et al., "Long-tail
        learning via logit adjustment", ICLR 2021): the model learns logits that already discount the
        class prior, so its plain argmax favours rare classes (tau = 1 aims at balanced error)."""
        self.class_weights = self.logit_offsets = None
        mode = options.get("class_weight", "none")
        tau = float(options.get("logit_adjustment", 0.0) or 0.0)
        if (mode not in ("balanced", "sqrt") and not tau) or not train_examples:
            return
        labels = (torch.from_numpy(train_examples.labels) if isinstance(train_examples, TokenExamples)
                  else torch.tensor([label for _, label in train_examples]))
        counts = torch.bincount(labels, minlength=len(self.classes))
        present = counts > 0
        if tau:
            # a class absent from training gets the smallest present share, not log(0)
            shares = counts.float().clamp(min=float(counts[present].min())) / counts.sum()
            self.logit_offsets = tau * shares.log()
        if mode in ("balanced", "sqrt"):
            weights = torch.ones(len(self.classes))
            weights[present] = len(train_examples) / (int(present.sum()) * counts[present].float())
            self.class_weights = weights.sqrt() if mode == "sqrt" else weights

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
        logits = model(**batch.inputs)
        correct = (logits.detach().argmax(dim=-1) == batch.targets).sum()
        weight = self.class_weights
        if weight is not None and weight.device != logits.device:
            weight = self.class_weights = weight.to(logits.device)
        offsets = self.logit_offsets
        if offsets is not None:
            if offsets.device != logits.device:
                offsets = self.logit_offsets = offsets.to(logits.device)
            logits = logits + offsets.to(logits.dtype)
        return F.cross_entropy(logits, batch.targets, weight=weight), correct

    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[Encoded], batch_size: int, device: torch.device,
                 detailed: bool = False, top_k: int = 3) -> dict[str, Any]:
        was_training = model.training
        model.eval()
        n_classes = len(self.classes)
        k = min(top_k, n_classes)
        confusion = torch.zeros(n_classes, n_classes, dtype=torch.long)
        loss_sum = 0.0
        top_k_hits = 0
        count = 0
        try:
            for batch in self.batches(examples, batch_size, shuffle=False):
                batch = batch.to(device)
                logits = model(**batch.inputs)
                loss_sum += float(F.cross_entropy(logits, batch.targets, reduction="sum"))
                top = logits.topk(k, dim=-1).indices
                top_k_hits += int((top == batch.targets.unsqueeze(1)).any(dim=1).sum())
                predicted = top[:, 0].cpu()
                targets = batch.targets.cpu()
                confusion += torch.bincount(targets * n_classes + predicted, minlength=n_classes**2).view(
                    n_classes, n_classes)
                count += batch.size
        finally:
            model.train(was_training)
        return classification_metrics(confusion, loss_sum, top_k_hits, count, k, self.classes, detailed)

    # -- using a trained model ---------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, text: str, device: torch.device, top_k: int = 3) -> dict[str, Any]:
        if not text.strip():
            raise WorkbenchError("nothing to classify: the input is empty")
        tokens = self.tokens(text)
        unknown = sorted(set(self.vocab.unknown(tokens)))
        ids = self.vocab.encode(tokens)
        if not ids:
            raise WorkbenchError(f"nothing to classify: {text!r} has no tokens after normalisation")
        cut = None
        if self.max_tokens and len(ids) > self.max_tokens:  # the part training kept of a long example
            keep = slice(-self.max_tokens, None) if self.truncate == "end" else slice(self.max_tokens)
            cut = {"tokens": len(ids), "kept": self.max_tokens, "part": "last" if self.truncate == "end" else "first"}
            ids, tokens = ids[keep], tokens[keep]
        was_training = model.training
        model.eval()
        attends = hasattr(model, "last_attention")
        try:
            if attends:
                # never report a previous call's weights (torch's stubs allow only Tensor | Module here)
                model.last_attention = None  # type: ignore[assignment]
            tokens_t, lengths = pad_sequences([ids])
            logits = model(tokens=tokens_t.to(device), lengths=lengths)
        finally:
            model.train(was_training)
        probs = torch.softmax(logits[0].float(), dim=-1).cpu()
        k = max(1, min(top_k, len(self.classes)))  # as the language model: at least the best class
        values, indices = probs.topk(k)
        result: dict[str, Any] = {
            "input": text,
            "label": self.classes[int(indices[0])],
            "top": [{"label": self.classes[int(i)], "probability": round(float(p), 6)} for p, i in zip(values, indices, strict=False)],
            "unknown_tokens": unknown,
        }
        if cut is not None:
            result["cut"] = cut
        weights = getattr(model, "last_attention", None) if attends else None
        if weights is not None:
            # Attention convention: a model that attends sets ``last_attention`` [batch, time] in forward.
            row = weights[0, : len(tokens)].float().cpu().tolist()
            result["attention"] = [{"token": t, "weight": round(w, 6)} for t, w in zip(tokens, row, strict=False)]
        return result


    def render_prediction(self, prediction: dict[str, Any]) -> str:
        lines = [prediction["input"]]
        for entry in prediction.get("top", []):
            bar = "█" * max(1, round(entry["probability"] * 30))
            lines.append(f"  {entry['label']:<16} {entry['probability']:7.2%} {bar}")
        if prediction.get("unknown_tokens"):
            lines.append(f"  (not in the vocabulary, read as <unk>: {' '.join(prediction['unknown_tokens'])})")
        note = cut_note(prediction)
        if note:
            lines.append(f"  ({note})")
        attention = prediction.get("attention")
        if attention:
            strongest = sorted(attention, key=lambda a: -a["weight"])[:10]
            top = max(a["weight"] for a in strongest) or 1.0
            lines.append(f"  attention (the tokens the model weighed most; spread evenly each would get "
                         f"{1 / len(attention):.1%}):")
            for entry in strongest:
                bar = "▇" * max(1, round(entry["weight"] / top * 20))
                lines.append(f"    {entry['token']:<16} {entry['weight']:6.1%} {bar}")
        return "\n".join(lines)


    # -- contract checks -----------------------------------------------------------------------
    @classmethod
    def synthetic_data(cls, seed: int = 0) -> ClassificationData:
        """Three classes of letter strings, each drawn mostly from its own letters: learnable by any
        sequence classifier in a few steps, generated in microseconds."""
        import random

        rng = random.Random(seed)
        alphabets = ["abcde", "fghij", "klmno"]

        def example(label: int) -> tuple[str, int]:
            own = alphabets[label]
            length = rng.randint(1, 12)
            text = "".join(rng.choice(own) if rng.random() < 0.8 else rng.choice("xyz") for _ in range(length))
            return text, label

        def split(n: int) -> list[tuple[str, int]]:
            return [example(i % len(alphabets)) for i in range(n)]

        return ClassificationData(classes=["first", "second", "third"], train=split(96), valid=split(30),
                                  test=split(30), info={"source": "generated by ClassificationTask.synthetic_data"})

    logits_axes = "batch, num_classes"

    def logits_shape(self, batch: Batch) -> tuple[int, ...]:
        return (batch.size, len(self.classes))

    def sample_inputs(self, data: Any, count: int = 3) -> list[str]:
        # lazily: a split streamed into the cache rebuilds each text it is asked for
        texts = list(islice((text for split in (data.test, data.valid, data.train) for text, _ in split
                             if text.strip()), max(count - 1, 1)))
        chosen = texts[: max(count - 1, 1)]
        if texts:
            chosen.append(texts[0].strip()[:1])  # a one-token input: models must handle length 1
        return chosen


def _check_cached(split: TextSplit, split_name: str, data: ClassificationData) -> None:
    """A split in the token cache: its labels in range and its tokenisation the dataset's."""
    texts = split.texts
    if (texts.tokenizer, texts.normalize) != (data.tokenizer, data.normalize):
        raise DataError(f"the {split_name} split was tokenised with {texts.tokenizer}/{texts.normalize}, but the "
                        f"dataset says {data.tokenizer}/{data.normalize}")
    if len(split.labels) and (int(split.labels.min()) < 0 or int(split.labels.max()) >= len(data.classes)):
        bad = split.labels[(split.labels < 0) | (split.labels >= len(data.classes))][0]
        raise DataError(f"{split_name} split has label {int(bad)!r} outside 0..{len(data.classes) - 1}")


def classification_metrics(confusion: Tensor, loss_sum: float, top_k_hits: int, count: int, k: int,
                           classes: list[str], detailed: bool) -> dict[str, Any]:
    if count == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "count": 0}
    correct = confusion.diag().double()
    support = confusion.sum(dim=1).double()
    present = support > 0
    per_class = torch.where(present, correct / support.clamp(min=1), torch.full_like(correct, float("nan")))
    metrics: dict[str, Any] = {
        "loss": loss_sum / count,
        "accuracy": float(correct.sum() / count),
        "top_k_accuracy": top_k_hits / count,
        "top_k": k,
        # mean recall over the classes that occur: majority-class guessing scores 1 / n_classes here
        "balanced_accuracy": float(per_class[present].mean()),
        "count": count,
    }
    if detailed:
        metrics["classes"] = list(classes)
        metrics["per_class_accuracy"] = {
            c: (None if not bool(present[i]) else round(float(per_class[i]), 6)) for i, c in enumerate(classes)
        }
        metrics["support"] = {c: int(support[i]) for i, c in enumerate(classes)}
        metrics["confusion_matrix"] = confusion.tolist()
    return metrics
