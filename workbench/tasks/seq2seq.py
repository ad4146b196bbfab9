"""Sequence -> sequence: translation and the synthetic copy / reverse tasks.

The contract a seq2seq model follows (see ``workbench_plugins.seq2seq_models``):

- ``model(tokens, lengths, target_in)`` -> logits [B, T, target vocab]: the training pass, with the
  target shifted right (``<bos>`` first) as decoder input; the model may replace some inputs by its
  own predictions while training (teacher-forcing ratio).
- ``model.encode(tokens, lengths)`` -> a dict of tensors, every one batch-first, the decoder state.
- ``model.decode_step(previous [B], state)`` -> (logits [B, V], new state, attention [B, S] or None).

Greedy and beam search are written here against that contract, so every architecture gets both.
The source gets ``<eos>`` appended; the target is ``<bos> ... `` in and ``... <eos>`` out. The loss is
cross-entropy over real target tokens only; the main metric is corpus BLEU-4 (``workbench.bleu``) of
greedy translations, with every reference of a repeated source sentence used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.api import ModelContext, Seq2SeqData
from workbench.bleu import BleuCounts, d2l_bleu
from workbench.errors import DataError, WorkbenchError
from workbench.headlines import HEADLINE_METRICS
from workbench.tasks.base import Batch, Task, bucketed_order, pad_sequences, too_long
from workbench.tasks.token_examples import PairExamples
from workbench.text import BOS, EOS, Vocab, get_normalizer, get_tokenizer
from workbench.text_cache import PairSplit

IGNORE = -100
SPECIALS = (BOS, EOS)
#: Widest beam `workbench predict --top-k` may ask for (each hypothesis carries its alignment rows).
MAX_BEAM_WIDTH = 100

# (source ids, target ids, source tokens, target tokens); ids without <bos>/<eos>
Encoded = tuple[list[int], list[int], tuple[str, ...], tuple[str, ...]]


class EncoderDecoder(Protocol):
    """The two methods decoding calls on a seq2seq model (see the module docstring)."""

    def encode(self, tokens: Tensor, lengths: Tensor) -> dict[str, Tensor]: ...

    def decode_step(self, previous: Tensor,
                    state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor | None]: ...


class Seq2SeqTask(Task):
    kind = "seq2seq"
    main_metric = "bleu"
    higher_is_better = True
    headline_metrics = HEADLINE_METRICS["seq2seq"]

    def __init__(self, source: Vocab, target: Vocab, normalize: str, tokenizer: str, max_output_length: int,
                 probes: Sequence[Sequence[str]] = ()) -> None:
        if source.stoi.get(EOS) is None or target.stoi.get(BOS) is None or target.stoi.get(EOS) is None:
            raise WorkbenchError("seq2seq vocabularies need <bos> and <eos>")
        self.source = source
        self.target = target
        self.normalize_name = normalize
        self.tokenizer_name = tokenizer
        self._normalize = get_normalizer(normalize)
        self._tokenize = get_tokenizer(tokenizer)
        self.max_output_length = max_output_length
        self.probes = [(str(s), str(r)) for s, r in probes]
        self.src_eos = source.stoi[EOS]
        self.bos = target.stoi[BOS]
        self.eos = target.stoi[EOS]

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: Seq2SeqData) -> Seq2SeqTask:
        cls._check(data)
        if isinstance(data.train, PairSplit):
            return cls._from_cached(data)
        normalize, tokenize = get_normalizer(data.normalize), get_tokenizer(data.tokenizer)
        pairs = [(tokenize(normalize(s)), tokenize(normalize(t))) for s, t in data.train]
        source = Vocab.build((s for s, _ in pairs), data.max_vocab, data.min_freq, specials=SPECIALS)
        target = Vocab.build((t for _, t in pairs), data.max_vocab, data.min_freq, specials=SPECIALS)
        # room for the longest reference, the extra test splits' (length generalisation) included
        extra = [tokenize(normalize(t)) for split in getattr(data, "extra_tests", {}).values() for _, t in split]
        longest = max(len(t) for t in [*(t for _, t in pairs), *extra])
        return cls(source, target, data.normalize, data.tokenizer, longest + 10, data.probes)

    @classmethod
    def _from_cached(cls, data: Seq2SeqData) -> Seq2SeqTask:
        """Vocabularies from the training split's ids in the token cache (each side counted on its own)."""
        train = cast(PairSplit, data.train)
        source = Vocab.from_counts(Counter(train.token_counts("source")), data.max_vocab, data.min_freq,
                                   specials=SPECIALS)
        target = Vocab.from_counts(Counter(train.token_counts("target")), data.max_vocab, data.min_freq,
                                   specials=SPECIALS)
        longest = int(train.lengths("target").max(initial=0))
        normalize, tokenize = get_normalizer(data.normalize), get_tokenizer(data.tokenizer)
        for split in (getattr(data, "extra_tests", None) or {}).values():
            if isinstance(split, PairSplit):
                longest = max(longest, int(split.lengths("target").max(initial=0)))
            else:
                longest = max([longest, *(len(tokenize(normalize(t))) for _, t in split)])
        return cls(source, target, data.normalize, data.tokenizer, longest + 10, data.probes)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Seq2SeqTask:
        try:
            return cls(Vocab(state["source_vocab"]), Vocab(state["target_vocab"]), state["normalize"],
                       state["tokenizer"], int(state["max_output_length"]), state.get("probes", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"checkpoint's task description is incomplete ({exc})") from None

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "source_vocab": self.source.itos, "target_vocab": self.target.itos,
                "normalize": self.normalize_name, "tokenizer": self.tokenizer_name,
                "max_output_length": self.max_output_length, "probes": [list(p) for p in self.probes]}

    def model_context(self) -> ModelContext:
        return ModelContext(task=self.kind, vocab_size=len(self.source), pad_index=Vocab.pad_index,
                            target_vocab_size=len(self.target),
                            extra={"bos_index": self.bos, "eos_index": self.eos, "unk_index": Vocab.unk_index})

    @staticmethod
    def _check(data: Any) -> None:
        if not isinstance(data, Seq2SeqData):
            raise DataError(f"a seq2seq dataset must return Seq2SeqData, not {type(data).__name__}")
        if not data.train:
            raise DataError("the training split is empty")
        get_normalizer(data.normalize)
        get_tokenizer(data.tokenizer)

    def check_data(self, data: Any) -> None:
        self._check(data)
        if data.normalize != self.normalize_name or data.tokenizer != self.tokenizer_name:
            raise DataError("the dataset normalises or tokenises text differently from this model's training data")

    def tokens(self, text: str) -> list[str]:
        return self._tokenize(self._normalize(text))

    def encode(self, data: Seq2SeqData) -> dict[str, Sequence[Encoded]]:
        result: dict[str, Sequence[Encoded]] = {}
        splits = {"train": data.train, "valid": data.valid, "test": data.test,
                  **(getattr(data, "extra_tests", None) or {})}
        tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per cache: each file has its own lexicon
        for split_name, pairs in splits.items():
            if isinstance(pairs, PairSplit):
                lexicon = pairs.texts.lexicon
                if id(pairs.texts) not in tables:
                    tables[id(pairs.texts)] = (np.array(self.source.encode(lexicon), dtype=np.int64),
                                               np.array(self.target.encode(lexicon), dtype=np.int64))
                result[split_name] = PairExamples(pairs, *tables[id(pairs.texts)])
                continue
            encoded: list[Encoded] = []
            for source, target in pairs:
                src, tgt = self.tokens(source), self.tokens(target)
                if src and tgt:
                    encoded.append((self.source.encode(src), self.target.encode(tgt), tuple(src), tuple(tgt)))
            result[split_name] = encoded
        return result

    def cut_long(self, examples: Sequence[Encoded], max_tokens: int) -> tuple[Sequence[Encoded], int, int]:
        """A longer pair keeps the first ``max_tokens`` tokens of each side."""
        if isinstance(examples, PairExamples):
            widest = np.maximum(examples.lengths("source"), examples.lengths("target"))
            longest = int(widest.max(initial=0))
            if not max_tokens or longest <= max_tokens:
                return examples, 0, longest
            return examples.capped(max_tokens), int((widest > max_tokens).sum()), longest
        longest = max((max(len(e[0]), len(e[1])) for e in examples), default=0)
        if not max_tokens or longest <= max_tokens:
            return examples, 0, longest
        m = max_tokens
        cut = sum(1 for e in examples if max(len(e[0]), len(e[1])) > m)
        return [(src[:m], tgt[:m], src_tokens[:m], tgt_tokens[:m])
                for src, tgt, src_tokens, tgt_tokens in examples], cut, longest

    # -- training ----------------------------------------------------------------------------
    def batches(self, examples: Sequence[Encoded], batch_size: int, shuffle: bool,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
        if isinstance(examples, PairExamples):  # from the offsets, reading no ids
            lengths: Any = (examples.lengths("source") * 1000 + examples.lengths("target")).tolist()
        else:
            lengths = [len(e[0]) * 1000 + len(e[1]) for e in examples]  # by source, then target length
        for indices in bucketed_order(lengths, batch_size, shuffle, generator):
            yield self.make_batch([examples[i] for i in indices])

    def make_batch(self, examples: Sequence[Encoded]) -> Batch:
        tokens, lengths = pad_sequences([e[0] + [self.src_eos] for e in examples], Vocab.pad_index)
        target_in, _ = pad_sequences([[self.bos] + e[1] for e in examples], Vocab.pad_index)
        targets, target_lengths = pad_sequences([e[1] + [self.eos] for e in examples], Vocab.pad_index)
        mask = torch.arange(targets.size(1)).unsqueeze(0) < target_lengths.unsqueeze(1)
        targets = targets.masked_fill(~mask, IGNORE)
        return Batch({"tokens": tokens, "lengths": lengths, "target_in": target_in}, targets, len(examples),
                     units=int(target_lengths.sum()))

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        # no correct count: the main metric is BLEU, which needs decoding, not teacher-forced accuracy
        logits = model(**batch.inputs)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch.targets.reshape(-1), ignore_index=IGNORE)

    # -- decoding ----------------------------------------------------------------------------
    @torch.no_grad()
    def greedy(self, model: nn.Module, sources: Sequence[Sequence[int]], device: torch.device,
               max_length: int | None = None) -> list[list[int]]:
        """Greedy translations of a batch of source id lists (without <eos>), stopping at <eos>."""
        max_length = max_length or self.max_output_length
        tokens, lengths = pad_sequences([list(s) + [self.src_eos] for s in sources], Vocab.pad_index)
        state = cast(EncoderDecoder, model).encode(tokens.to(device), lengths)
        batch = len(sources)
        previous = torch.full((batch,), self.bos, dtype=torch.long, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        steps = []
        for _ in range(max_length):
            logits, state, _ = cast(EncoderDecoder, model).decode_step(previous, state)
            previous = logits.argmax(dim=-1)
            steps.append(previous.masked_fill(done, self.eos))
            done |= previous == self.eos
            if bool(done.all()):
                break
        outputs = torch.stack(steps, dim=1).tolist()
        return [row[: row.index(self.eos)] if self.eos in row else row for row in outputs]

    @torch.no_grad()
    def beam_search(self, model: nn.Module, source: Sequence[int], device: torch.device, width: int = 4,
                    max_length: int | None = None) -> list[dict[str, Any]]:
        """The ``width`` best translations of one source by summed log-probability, best first.

        Each is ``{"ids", "score", "attention"}`` (attention: one row per output step incl. <eos>, or
        None). Hypotheses end at <eos>; the search stops once no live hypothesis can beat the
        ``width`` finished ones, or at ``max_length`` steps. With width 1 this is greedy decoding.
        """
        max_length = max_length or self.max_output_length
        width = max(1, width)
        tokens, lengths = pad_sequences([list(source) + [self.src_eos]], Vocab.pad_index)
        state = cast(EncoderDecoder, model).encode(tokens.to(device), lengths)
        scores = torch.zeros(1, device=device)
        sequences: list[list[int]] = [[]]
        attentions: list[list[list[float]]] = [[]]
        previous = torch.full((1,), self.bos, dtype=torch.long, device=device)
        finished: list[tuple[float, list[int], list[list[float]] | None]] = []
        has_attention = False
        for _ in range(max_length):
            logits, state, attention = cast(EncoderDecoder, model).decode_step(previous, state)
            has_attention = attention is not None
            log_probs = F.log_softmax(logits.float(), dim=-1)
            vocab = log_probs.size(-1)
            total = (scores.unsqueeze(1) + log_probs).view(-1)
            top_scores, top_index = total.topk(min(2 * width, total.numel()))
            keep_rows: list[int] = []
            keep_tokens: list[int] = []
            keep_scores: list[float] = []
            new_sequences: list[list[int]] = []
            new_attentions: list[list[list[float]]] = []
            for score, index in zip(top_scores.tolist(), top_index.tolist(), strict=True):
                row, token = divmod(index, vocab)
                att = attentions[row] + ([attention[row].tolist()] if attention is not None else [])
                if token == self.eos:
                    finished.append((score, sequences[row], att if has_attention else None))
                    continue
                if len(keep_rows) < width:
                    keep_rows.append(row)
                    keep_tokens.append(token)
                    keep_scores.append(score)
                    new_sequences.append(sequences[row] + [token])
                    new_attentions.append(att)
            finished.sort(key=lambda f: -f[0])
            if not keep_rows or (len(finished) >= width and keep_scores[0] <= finished[width - 1][0]):
                break
            index_t = torch.tensor(keep_rows, dtype=torch.long, device=device)
            state = {k: v.index_select(0, index_t) for k, v in state.items()}
            scores = torch.tensor(keep_scores, device=device)
            previous = torch.tensor(keep_tokens, dtype=torch.long, device=device)
            sequences, attentions = new_sequences, new_attentions
        else:  # out of steps: unfinished hypotheses compete as they are
            finished.extend((s, q, a if has_attention else None)
                            for s, q, a in zip(scores.tolist(), sequences, attentions, strict=True))
            finished.sort(key=lambda f: -f[0])
        return [{"ids": ids, "score": score, "attention": att} for score, ids, att in finished[:width]]

    def detokenize(self, ids: Sequence[int]) -> list[str]:
        return self.target.decode(ids)

    # -- metrics -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module, examples: Sequence[Encoded], batch_size: int, device: torch.device,
                 detailed: bool = False, top_k: int = 3) -> dict[str, Any]:
        was_training = model.training
        model.eval()
        loss_sum = 0.0
        count = 0
        try:
            for batch in self.batches(examples, batch_size, shuffle=False):
                batch = batch.to(device)
                logits = model(**batch.inputs)
                loss_sum += float(F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch.targets.reshape(-1),
                                                  ignore_index=IGNORE, reduction="sum"))
                count += batch.units
            bleu, exact, sentences, shown = self._bleu(model, examples, batch_size, device, detailed)
            probes = self.score_probes(model, device) if detailed and self.probes else None
        finally:
            model.train(was_training)
        if count == 0:
            return {"loss": float("nan"), "bleu": float("nan"), "count": 0}
        metrics: dict[str, Any] = {
            "loss": loss_sum / count,
            "perplexity": float(torch.tensor(loss_sum / count).exp()),
            "bleu": bleu["bleu"],
            "exact_match": exact / max(1, sentences),  # sentences translated exactly as a reference
            "bleu_bp": bleu["bp"],
            **{f"bleu_p{n}": bleu[f"p{n}"] for n in range(1, 5)},
            "count": len(examples),
            "sentences": sentences,
        }
        if detailed:
            metrics["examples"] = shown
            if probes is not None:
                metrics["probes"] = probes
                metrics["probe_bleu_mean"] = sum(p["bleu"] for p in probes) / len(probes)
        return metrics

    def _bleu(self, model: nn.Module, examples: Sequence[Encoded], batch_size: int, device: torch.device,
              detailed: bool) -> tuple[dict[str, float], int, int, list[dict[str, Any]]]:
        """Corpus BLEU over distinct source sentences, each with all its references in this split, by
        greedy decoding, shortest sources first; references are read a batch of sources at a time.
        Returns (BLEU, sentences translated exactly as a reference, sentences, up to 8 shown)."""
        members = _source_groups(examples)
        keys = sorted(range(len(members)), key=lambda k: len(examples[members[k][0]][2]) if not isinstance(
            examples, PairExamples) else int(examples.lengths("source")[members[k][0]]))
        every = max(1, len(keys) // 8)
        counts, exact = BleuCounts(), 0
        shown: list[dict[str, Any]] = []
        for start in range(0, len(keys), batch_size):
            chunk = keys[start : start + batch_size]
            firsts = [examples[members[k][0]] for k in chunk]
            outputs = self.greedy(model, [first[0] for first in firsts], device)
            for position, (key, first, ids) in enumerate(zip(chunk, firsts, outputs, strict=True), start=start):
                hypothesis = self.detokenize(ids)
                references = [first[3]] + [examples[i][3] for i in members[key][1:]]
                counts.add(hypothesis, references)
                exact += tuple(hypothesis) in references
                if detailed and position % every == 0 and len(shown) < 8:
                    shown.append({"source": " ".join(first[2]), "references": [" ".join(r) for r in references],
                                  "translation": " ".join(hypothesis)})
        return counts.result(), exact, len(keys), shown

    def score_probes(self, model: nn.Module, device: torch.device) -> list[dict[str, Any]]:
        """Greedy translations of the probe sentences with the course's sentence BLEU (k=2)."""
        results = []
        for source, reference in self.probes:
            src = self.tokens(source)
            output = self.detokenize(self.greedy(model, [self.source.encode(src)], device)[0])
            ref = self.tokens(reference)
            results.append({"source": " ".join(src), "reference": " ".join(ref), "translation": " ".join(output),
                            "bleu": round(d2l_bleu(output, ref, k=2), 3)})
        return results

    # -- using a trained model ---------------------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, text: str, device: torch.device, top_k: int = 3) -> dict[str, Any]:
        """Beam search with width ``top_k`` (1 = greedy); the best translation and its alignment."""
        if not text.strip():
            raise WorkbenchError("nothing to translate: the input is empty")
        if top_k > MAX_BEAM_WIDTH:  # the beam keeps top_k hypotheses with their alignments: memory grows with it
            raise WorkbenchError(f"beam width (top_k) must be at most {MAX_BEAM_WIDTH}, not {top_k:,}")
        src = self.tokens(text)
        if not src:
            raise WorkbenchError(f"nothing to translate: {text!r} has no tokens after normalisation")
        if self.max_tokens and len(src) > self.max_tokens:  # a cut source would be translated as if whole
            raise too_long("translates", len(src), self.max_tokens)
        was_training = model.training
        model.eval()
        try:
            beams = self.beam_search(model, self.source.encode(src), device, width=max(1, top_k))
        finally:
            model.train(was_training)
        best = beams[0]
        output = self.detokenize(best["ids"])
        prediction: dict[str, Any] = {
            "input": text,
            "source_tokens": src,
            "translation": " ".join(output),
            "tokens": output,
            "beam_width": max(1, top_k),
            "translations": [{"text": " ".join(self.detokenize(b["ids"])), "log_prob": round(b["score"], 4)}
                             for b in beams],
            "unknown_tokens": sorted(set(self.source.unknown(src))),
        }
        if best["attention"] is not None:
            # one row per output step: a translation cut at the length limit has no row for <eos>
            ended = len(best["attention"]) > len(output)
            prediction["alignment"] = {
                "source": src + [EOS],
                "target": output + [EOS] if ended else output,
                "weights": [[round(w, 4) for w in row] for row in best["attention"]],
            }
        return prediction

    def render_prediction(self, prediction: dict[str, Any]) -> str:
        lines = [f"{prediction['input']}", f"  -> {prediction['translation']}"]
        if len(prediction.get("translations", [])) > 1:
            lines[-1] += f"  (log p {prediction['translations'][0]['log_prob']:.3f})"
        for other in prediction.get("translations", [])[1:]:
            lines.append(f"     {other['text']}  (log p {other['log_prob']:.3f})")
        alignment = prediction.get("alignment")
        if alignment:
            lines.append("  attention (rows: output words, columns: input words; darker = more weight):")
            shades = " ░▒▓█"
            source = alignment["source"]
            cell = [max(2, len(s)) for s in source]
            label = max(len(t) for t in alignment["target"])
            lines.append("  " + " " * label + " " + " ".join(s.ljust(c) for s, c in zip(source, cell, strict=True)))
            for word, row in zip(alignment["target"], alignment["weights"], strict=True):
                marks = [shades[min(len(shades) - 1, int(w * len(shades)))] * c for w, c in zip(row, cell, strict=True)]
                lines.append("  " + word.rjust(label) + " " + " ".join(marks))
        if prediction.get("unknown_tokens"):
            lines.append(f"  (not in the source vocabulary, read as <unk>: {' '.join(prediction['unknown_tokens'])})")
        return "\n".join(lines)

    # -- contract checks (workbench.testing) -------------------------------------------------
    @classmethod
    def synthetic_data(cls, seed: int = 0) -> Seq2SeqData:
        """Short random letter sequences and their reversal."""
        import random

        rng = random.Random(seed)

        def pair() -> tuple[str, str]:
            seq = [rng.choice("abcdef") for _ in range(rng.randint(1, 6))]
            return " ".join(seq), " ".join(reversed(seq))

        return Seq2SeqData(train=[pair() for _ in range(96)], valid=[pair() for _ in range(24)],
                           test=[pair() for _ in range(24)], normalize="none", tokenizer="whitespace",
                           info={"source": "generated by Seq2SeqTask.synthetic_data"})

    logits_axes = "batch, target steps, target vocabulary"

    def logits_shape(self, batch: Batch) -> tuple[int, ...]:
        return (*batch.inputs["target_in"].shape, len(self.target))

    def sample_inputs(self, data: Any, count: int = 3) -> list[str]:
        sources = []  # the first few of each split (a cached split is not read whole)
        for split in (data.test, data.valid, data.train):
            sources += [s for s, _ in split[:count] if s.strip()]
        chosen = sources[: max(count - 1, 1)]
        if sources:
            chosen.append(sources[0].split()[0])  # one token: models must handle length 1
        return chosen


def _source_groups(examples: Sequence[Encoded]) -> list[list[int]]:
    """Example indices grouped by source sentence (its tokens), groups in order of first appearance.
    Over a token cache the sources' ids are read one at a time and only their bytes kept as keys."""
    groups: dict[Any, list[int]] = {}
    if isinstance(examples, PairExamples):
        for i in range(len(examples)):
            groups.setdefault(examples.raw(i, "source").tobytes(), []).append(i)
    else:
        for i, example in enumerate(examples):
            groups.setdefault(example[2], []).append(i)
    return list(groups.values())
