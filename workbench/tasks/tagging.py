"""Sequence -> one tag per word: part-of-speech tagging.

A model gets ``tokens`` [B, T] (word ids), ``lengths`` [B] and ``chars`` [B, T, W] (character ids of
each word, for character features) and returns logits [B, T, tags]. The loss is cross-entropy over
real words only (padding is ignored); metrics count words, not sentences.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.api import ModelContext, TaggingData
from workbench.errors import DataError, WorkbenchError
from workbench.headlines import HEADLINE_METRICS
from workbench.tasks.base import Batch, Task, bucketed_order, pad_sequences, too_long
from workbench.tasks.classification import classification_metrics
from workbench.tasks.token_examples import TaggedExamples
from workbench.text import Vocab
from workbench.text_cache import TaggedSplit

#: Padding in the target tensor; cross-entropy skips these positions.
IGNORE = -100

#: Splits free text roughly as Universal Dependencies English does: punctuation on its own and the
#: clitics n't 's 're 'll 've 'm 'd as separate words ("don't" -> "do n't").
_WORD_RE = re.compile(r"\w+(?=n't\b)|n't\b|'(?:s|re|ll|ve|m|d)\b|\w+(?:[-.]\w+)*|[^\w\s]", re.IGNORECASE)

# (word ids, character ids [words, longest word] padded with 0, tag ids)
Encoded = tuple[list[int], Tensor, list[int]]


def split_words(text: str) -> list[str]:
    """Words of a free-text sentence for tagging."""
    return _WORD_RE.findall(text)


def clip_word(chars: Sequence[int], limit: int) -> list[int]:
    """At most ``limit`` characters, keeping the start and the end (prefixes and suffixes carry the tag)."""
    if limit <= 0 or len(chars) <= limit:
        return list(chars)
    head = limit - limit // 2
    return list(chars[:head]) + list(chars[len(chars) - limit // 2 :])


class TaggingTask(Task):
    kind = "tagging"
    main_metric = "accuracy"
    higher_is_better = True
    headline_metrics = HEADLINE_METRICS["tagging"]

    def __init__(self, words: Vocab, chars: Vocab, tags: list[str], lowercase: bool, max_word_length: int) -> None:
        self.words = words
        self.chars = chars
        self.tags = tags
        self.tag_index = {t: i for i, t in enumerate(tags)}
        self.lowercase = lowercase
        self.max_word_length = max_word_length

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: TaggingData) -> TaggingTask:
        cls._check(data)
        fold = str.lower if data.lowercase else (lambda w: w)
        if isinstance(data.train, TaggedSplit):  # in the token cache: count its ids, not its words
            word_counts: Counter[str] = Counter()
            char_counts: Counter[str] = Counter()
            for word, count in data.train.token_counts().items():
                word_counts[fold(word)] += count
                for char in word:
                    char_counts[char] += count
            return cls(Vocab.from_counts(word_counts, max_size=data.max_vocab, min_freq=data.min_freq),
                       Vocab.from_counts(char_counts), list(data.tags), data.lowercase, data.max_word_length)
        words = Vocab.build(([fold(w) for w in ws] for ws, _ in data.train), max_size=data.max_vocab,
                            min_freq=data.min_freq)
        chars = Vocab.build(list(w) for ws, _ in data.train for w in ws)
        return cls(words, chars, list(data.tags), data.lowercase, data.max_word_length)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TaggingTask:
        try:
            return cls(Vocab(state["words"]), Vocab(state["chars"]), list(state["tags"]), bool(state["lowercase"]),
                       int(state["max_word_length"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"checkpoint's task description is incomplete ({exc})") from None

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": self.words.itos, "chars": self.chars.itos, "tags": self.tags,
                "lowercase": self.lowercase, "max_word_length": self.max_word_length}

    def model_context(self) -> ModelContext:
        return ModelContext(task=self.kind, vocab_size=len(self.words), pad_index=Vocab.pad_index,
                            num_classes=len(self.tags),
                            extra={"char_vocab_size": len(self.chars), "unk_index": Vocab.unk_index})

    @staticmethod
    def _check(data: Any) -> None:
        if not isinstance(data, TaggingData):
            raise DataError(f"a tagging dataset must return TaggingData, not {type(data).__name__}")
        if len(data.tags) < 2:
            raise DataError("a tagging dataset needs at least two tags")
        if len(set(data.tags)) != len(data.tags):
            raise DataError("the tag list has duplicates")
        if not data.train:
            raise DataError("the training split is empty")
        known = set(data.tags)
        for split_name in ("train", "valid", "test"):
            split = getattr(data, split_name)
            if isinstance(split, TaggedSplit):  # words and tags pair up by construction; check the names
                unknown = sorted(set(split.tag_counts()) - known)
                if unknown:
                    raise DataError(f"{split_name} split has tag {unknown[0]!r}, not in the tag list")
                continue
            for number, (words, tags) in enumerate(getattr(data, split_name), start=1):
                if len(words) != len(tags):
                    raise DataError(f"{split_name} sentence {number} has {len(words)} words but {len(tags)} tags")
                bad = [t for t in tags if t not in known]
                if bad:
                    raise DataError(f"{split_name} sentence {number} has tag {bad[0]!r}, not in the tag list")

    def check_data(self, data: Any) -> None:
        self._check(data)
        if list(data.tags) != self.tags:
            raise DataError("the dataset's tags differ from the ones this model was trained on")

    def _fold(self, word: str) -> str:
        return word.lower() if self.lowercase else word

    def encode_words(self, words: Sequence[str]) -> tuple[list[int], Tensor]:
        ids = self.words.encode(self._fold(w) for w in words)
        chars = [clip_word(self.chars.encode(w), self.max_word_length) or [Vocab.unk_index] for w in words]
        width = max(len(c) for c in chars)
        return ids, torch.tensor([c + [Vocab.pad_index] * (width - len(c)) for c in chars], dtype=torch.long)

    def encode(self, data: TaggingData) -> dict[str, Sequence[Encoded]]:
        result: dict[str, Sequence[Encoded]] = {}
        tables: dict[int, tuple[np.ndarray, ...]] = {}  # per cache: each file has its own lexicon
        for split_name in ("train", "valid", "test"):
            split = getattr(data, split_name)
            if isinstance(split, TaggedSplit):
                if id(split.texts) not in tables:
                    tables[id(split.texts)] = self._tables(split)
                result[split_name] = TaggedExamples(split, *tables[id(split.texts)])
                continue
            encoded: list[Encoded] = []
            for words, tags in getattr(data, split_name):
                if not words:
                    continue
                ids, chars = self.encode_words(words)
                encoded.append((ids, chars, [self.tag_index[t] for t in tags]))
            result[split_name] = encoded
        return result

    def _tables(self, split: TaggedSplit) -> tuple[np.ndarray, ...]:
        """For the cache's lexicon: word ids, character ids (clipped, padded) and their lengths; and
        tag ids for its tag names (what ``encode_words`` and the tag index give a word and a tag)."""
        lexicon = split.texts.lexicon
        word_table = np.array(self.words.encode(self._fold(w) for w in lexicon), dtype=np.int64)
        rows = [clip_word(self.chars.encode(w), self.max_word_length) or [Vocab.unk_index] for w in lexicon]
        char_lengths = np.array([len(r) for r in rows], dtype=np.int64)
        char_matrix = np.zeros((len(rows), int(char_lengths.max(initial=1))), dtype=np.int32)
        for i, row in enumerate(rows):
            char_matrix[i, : len(row)] = row
        tag_table = np.array([self.tag_index.get(t, -1) for t in split.texts.tag_names], dtype=np.int64)
        return word_table, char_matrix, char_lengths, tag_table

    def cut_long(self, examples: Sequence[Encoded], max_tokens: int) -> tuple[Sequence[Encoded], int, int]:
        """A longer sentence keeps its first ``max_tokens`` words (and their tags)."""
        if isinstance(examples, TaggedExamples):
            lengths = examples.lengths
            longest = int(lengths.max()) if len(lengths) else 0
            if not max_tokens or longest <= max_tokens:
                return examples, 0, longest
            return examples.capped(max_tokens), int((lengths > max_tokens).sum()), longest
        longest = max((len(e[0]) for e in examples), default=0)
        if not max_tokens or longest <= max_tokens:
            return examples, 0, longest
        cut = sum(1 for e in examples if len(e[0]) > max_tokens)
        return [(ids[:max_tokens], chars[:max_tokens], tags[:max_tokens]) if len(ids) > max_tokens
                else (ids, chars, tags) for ids, chars, tags in examples], cut, longest

    # -- training ----------------------------------------------------------------------------
    def batches(self, examples: Sequence[Encoded], batch_size: int, shuffle: bool,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        lengths = (examples.lengths.tolist() if isinstance(examples, TaggedExamples)
                   else [len(e[0]) for e in examples])
        for indices in bucketed_order(lengths, batch_size, shuffle, generator):
            yield self.make_batch([examples[i] for i in indices])

    @staticmethod
    def make_batch(examples: Sequence[Encoded]) -> Batch:
        tokens, lens = pad_sequences([e[0] for e in examples], Vocab.pad_index)
        targets = torch.full(tokens.shape, IGNORE, dtype=torch.long)
        width = max(e[1].size(1) for e in examples)
        chars = torch.full((*tokens.shape, width), Vocab.pad_index, dtype=torch.long)
        for row, (_, word_chars, tags) in enumerate(examples):
            targets[row, : len(tags)] = torch.as_tensor(tags, dtype=torch.long)
            chars[row, : word_chars.size(0), : word_chars.size(1)] = word_chars
        return Batch({"tokens": tokens, "lengths": lens, "chars": chars}, targets, len(examples),
                     units=int(lens.sum()))

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
        logits = model(**batch.inputs)
        targets = batch.targets
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE)
        correct = ((logits.detach().argmax(dim=-1) == targets) & (targets != IGNORE)).sum()
        return loss, correct

    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[Encoded], batch_size: int, device: torch.device,
                 detailed: bool = False, top_k: int = 3) -> dict[str, Any]:
        was_training = model.training
        model.eval()
        n_tags = len(self.tags)
        confusion = torch.zeros(n_tags, n_tags, dtype=torch.long)
        loss_sum = 0.0
        tokens_total = oov_total = oov_correct = sentences = sentences_correct = top_k_hits = 0
        k = min(top_k, n_tags)
        try:
            for batch in self.batches(examples, batch_size, shuffle=False):
                batch = batch.to(device)
                logits = model(**batch.inputs)
                targets = batch.targets
                mask = targets != IGNORE
                loss_sum += float(F.cross_entropy(logits.reshape(-1, n_tags), targets.reshape(-1),
                                                  ignore_index=IGNORE, reduction="sum"))
                top = logits.topk(k, dim=-1).indices
                predicted = top[..., 0]
                top_k_hits += int(((top == targets.unsqueeze(-1)).any(-1) & mask).sum())
                right = (predicted == targets) | ~mask
                sentences += batch.size
                sentences_correct += int(right.all(dim=1).sum())
                oov = (batch.inputs["tokens"] == Vocab.unk_index) & mask
                oov_total += int(oov.sum())
                oov_correct += int(((predicted == targets) & oov).sum())
                gold, guess = targets[mask].cpu(), predicted[mask].cpu()
                tokens_total += int(gold.numel())
                confusion += torch.bincount(gold * n_tags + guess, minlength=n_tags**2).view(n_tags, n_tags)
        finally:
            model.train(was_training)
        if tokens_total == 0:
            return {"loss": float("nan"), "accuracy": float("nan"), "count": 0}
        # loss, accuracy, top-k, balanced accuracy and (detailed) the per-tag tables are computed
        # exactly as for classification, so `workbench eval` and the TUI show them unchanged
        metrics = classification_metrics(confusion, loss_sum, top_k_hits, tokens_total, k, list(self.tags), detailed)
        metrics.update({
            "oov_accuracy": oov_correct / oov_total if oov_total else float("nan"),
            "oov_count": oov_total,
            "oov_rate": oov_total / tokens_total,
            "sentence_accuracy": sentences_correct / sentences,
            "sentences": sentences,
        })
        return metrics

    # -- using a trained model ---------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, text: str, device: torch.device, top_k: int = 3) -> dict[str, Any]:
        if not text.strip():
            raise WorkbenchError("nothing to tag: the input is empty")
        words = split_words(text)
        if not words:
            raise WorkbenchError(f"nothing to tag: {text!r} has no words")
        if self.max_tokens and len(words) > self.max_tokens:  # a cut sentence would leave words untagged
            raise too_long("tags", len(words), self.max_tokens, "words")
        ids, chars = self.encode_words(words)
        was_training = model.training
        model.eval()
        try:
            batch = self.make_batch([(ids, chars, [0] * len(ids))]).to(device)
            logits = model(**batch.inputs)[0]
        finally:
            model.train(was_training)
        probs = torch.softmax(logits.float(), dim=-1).cpu()
        k = max(1, min(top_k, len(self.tags)))
        values, indices = probs.topk(k, dim=-1)
        return {
            "input": text,
            "words": words,
            "tags": [self.tags[int(i)] for i in indices[:, 0]],
            "top": [[{"tag": self.tags[int(i)], "probability": round(float(p), 6)} for p, i in zip(vs, ix, strict=True)]
                    for vs, ix in zip(values, indices, strict=True)],
            "unknown_words": [w for w, i in zip(words, ids, strict=True) if i == Vocab.unk_index],
        }

    def render_prediction(self, prediction: dict[str, Any], width: int = 100) -> str:
        """Each tag under its word, wrapped into blocks of at most ``width`` characters."""
        lines = [prediction["input"]]
        words_line: list[str] = []
        tags_line: list[str] = []
        used = 0
        for word, tag in zip(prediction["words"], prediction["tags"], strict=True):
            cell = max(len(word), len(tag))
            if words_line and used + cell + 1 > width:
                lines += ["  " + " ".join(words_line), "  " + " ".join(tags_line), ""]
                words_line, tags_line, used = [], [], 0
            words_line.append(word.ljust(cell))
            tags_line.append(tag.ljust(cell))
            used += cell + 1
        lines += ["  " + " ".join(words_line).rstrip(), "  " + " ".join(tags_line).rstrip()]
        if prediction.get("unknown_words"):
            lines.append(f"  (not in the training vocabulary: {' '.join(prediction['unknown_words'])})")
        return "\n".join(lines)

    # -- contract checks (workbench.testing) -------------------------------------------------
    @classmethod
    def synthetic_data(cls, seed: int = 0) -> TaggingData:
        """Sentences "DET NOUN VERB [DET NOUN]" from small word lists: any tagger learns them quickly."""
        import random

        rng = random.Random(seed)
        words = {"DET": ["the", "a", "this"], "NOUN": ["dog", "cat", "bird", "car"], "VERB": ["sees", "likes", "eats"]}

        def sentence() -> tuple[list[str], list[str]]:
            tags = ["DET", "NOUN", "VERB"] + (["DET", "NOUN"] if rng.random() < 0.5 else [])
            return [rng.choice(words[t]) for t in tags], tags

        return TaggingData(tags=["DET", "NOUN", "VERB"], train=[sentence() for _ in range(96)],
                           valid=[sentence() for _ in range(24)], test=[sentence() for _ in range(24)],
                           info={"source": "generated by TaggingTask.synthetic_data"})

    logits_axes = "batch, words, num_tags"

    def logits_shape(self, batch: Batch) -> tuple[int, ...]:
        return (*batch.inputs["tokens"].shape, len(self.tags))

    def sample_inputs(self, data: Any, count: int = 3) -> list[str]:
        # lazily: a split in the token cache reads each sentence it is asked for
        sentences = list(islice((" ".join(words) for split in (data.test, data.valid, data.train)
                                 for words, _ in split if words), max(count - 1, 1)))
        chosen = sentences[: max(count - 1, 1)]
        if sentences:
            chosen.append(sentences[0].split()[0])  # one word: models must handle length 1
        return chosen
