"""BLEU scores. No torch here.

- :func:`corpus_bleu`: BLEU-4 as defined by Papineni et al. (2002): modified (clipped) n-gram
  precisions for n = 1..4 summed over the whole corpus, uniform weights 1/4, geometric mean, times the
  corpus-level brevity penalty ``exp(1 - r / c)`` when the candidate length ``c`` is below the
  reference length ``r`` (for each sentence the reference length closest to the candidate's, ties to
  the shorter). No smoothing: a corpus with no matching 4-gram scores 0. Returned on a 0..100 scale.
- :func:`d2l_bleu`: the per-sentence score of the Dive into Deep Learning course (``bleu(pred, label,
  k)``), which the course reports for its probe sentences: ``exp(min(0, 1 - len_label / len_pred)) *
  prod_n p_n ** (1 / 2**n)`` for n = 1..k, on a 0..1 scale.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]],
                max_n: int = 4) -> dict[str, float]:
    """Corpus BLEU of tokenised ``hypotheses``, each with one or more tokenised ``references``.

    Returns ``bleu`` (0..100), the precisions ``p1``..``p4`` (0..1), the brevity penalty ``bp`` and the
    lengths, so a figure can be checked by hand.
    """
    if len(hypotheses) != len(references):
        raise ValueError("one list of references per hypothesis")
    counts = BleuCounts(max_n)
    for hyp, refs in zip(hypotheses, references, strict=True):
        counts.add(hyp, refs)
    return counts.result()


class BleuCounts:
    """Corpus BLEU's counts, added a sentence at a time (a corpus read in batches need not be held)."""

    def __init__(self, max_n: int = 4) -> None:
        self.max_n = max_n
        self.matches = [0] * max_n
        self.totals = [0] * max_n
        self.hyp_len = self.ref_len = 0

    def add(self, hyp: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        self.hyp_len += len(hyp)
        self.ref_len += min((len(r) for r in refs), key=lambda length: (abs(length - len(hyp)), length))
        for n in range(1, self.max_n + 1):
            counts = ngrams(hyp, n)
            most: Counter[tuple[str, ...]] = Counter()
            for ref in refs:
                most |= ngrams(ref, n)
            self.matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            self.totals[n - 1] += max(len(hyp) - n + 1, 0)

    def result(self) -> dict[str, float]:
        max_n, hyp_len, ref_len = self.max_n, self.hyp_len, self.ref_len
        precisions = [m / t if t else 0.0 for m, t in zip(self.matches, self.totals, strict=True)]
        if hyp_len == 0:
            bp = 0.0
        else:
            bp = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
        if min(precisions) == 0:
            score = 0.0
        else:
            score = bp * math.exp(sum(math.log(p) for p in precisions) / max_n)
        result = {"bleu": 100 * score, "bp": bp, "hyp_len": hyp_len, "ref_len": ref_len}
        result.update({f"p{n}": precisions[n - 1] for n in range(1, max_n + 1)})
        return result


def d2l_bleu(prediction: Sequence[str], label: Sequence[str], k: int = 2) -> float:
    """The d2l course's sentence BLEU (0..1). Where the prediction is shorter than ``n`` (the course's
    code divides by zero there) the n-gram precision counts as 0, so the score is 0."""
    len_pred, len_label = len(prediction), len(label)
    if len_pred == 0:
        return 0.0
    score = math.exp(min(0.0, 1 - len_label / len_pred))
    for n in range(1, k + 1):
        possible = len_pred - n + 1
        if possible <= 0:
            return 0.0
        label_subs = ngrams(label, n)
        num_matches = 0
        for i in range(possible):
            gram = tuple(prediction[i : i + n])
            if label_subs[gram] > 0:
                num_matches += 1
                label_subs[gram] -= 1
        score *= math.pow(num_matches / possible, math.pow(0.5, n))
    return score
