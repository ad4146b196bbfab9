"""Tokenisers, text normalisation and vocabularies, by name so that a checkpoint can name them.

A checkpoint stores the tokeniser and normaliser names and the vocabulary as a list of strings,
so predict and generate treat input exactly as training did, without pickled code.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from workbench.errors import WorkbenchError

PAD = "<pad>"
UNK = "<unk>"
BOS = "<bos>"
EOS = "<eos>"

_WORD_RE = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)


def unicode_to_ascii(text: str) -> str:
    """Strip accents as the classic names tutorial does ('Ślusàrski' -> 'Slusarski'); characters with
    no ASCII base letter (ß, ł) are dropped, as the tutorial's filter drops them."""
    return "".join(
        c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn" and c.isascii()
    )


def normalize_nmt(text: str) -> str:
    """The translation tutorials' clean-up: lower-case, straight apostrophes, no-break spaces as spaces,
    and a space before , . ! ? so punctuation becomes its own token ("I'm home." -> "i'm home .")."""
    text = text.replace("\u202f", " ").replace("\xa0", " ").replace("\u2019", "'").lower()
    out = []
    for i, char in enumerate(text):
        if i > 0 and char in ",.!?" and text[i - 1] != " ":
            out.append(" ")
        out.append(char)
    return " ".join("".join(out).split())


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "none": lambda s: s,
    "ascii": unicode_to_ascii,
    "lower": str.lower,
    "ascii_lower": lambda s: unicode_to_ascii(s).lower(),
    "nmt": normalize_nmt,
}

TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "char": list,
    "word": lambda s: _WORD_RE.findall(s.lower()),
    "whitespace": str.split,
}


def get_normalizer(name: str) -> Callable[[str], str]:
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise WorkbenchError(f"unknown normaliser {name!r} (known: {', '.join(NORMALIZERS)})") from None


def get_tokenizer(name: str) -> Callable[[str], list[str]]:
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise WorkbenchError(f"unknown tokenizer {name!r} (known: {', '.join(TOKENIZERS)})") from None


class Vocab:
    """Token <-> index. Index 0 is padding and 1 is unknown; tokens never seen map to unknown."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        self.itos: list[str] = list(tokens)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary has duplicate tokens")

    pad_index = 0
    unk_index = 1

    @classmethod
    def build(
        cls,
        sequences: Iterable[Sequence[str]],
        max_size: int = 0,
        min_freq: int = 1,
        specials: Sequence[str] = (),
    ) -> Vocab:
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        return cls.from_counts(counts, max_size, min_freq, specials)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], max_size: int = 0, min_freq: int = 1,
                    specials: Sequence[str] = ()) -> Vocab:
        """As :meth:`build`, from token counts already taken (a corpus too large to list)."""
        reserved = [PAD, UNK, *[s for s in specials if s not in (PAD, UNK)]]
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq and t not in reserved), key=lambda t: (-counts[t], t)
        )
        if max_size:
            ranked = ranked[: max(0, max_size - len(reserved))]
        return cls(reserved + ranked)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        unk = self.unk_index
        return [self.stoi.get(t, unk) for t in tokens]

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in indices]

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        return [t for t in tokens if t not in self.stoi]


def cut_note(prediction: Mapping[str, Any]) -> str | None:
    """The line saying which part of a too-long input the model read (a prediction's ``cut``)."""
    cut = prediction.get("cut")
    if not isinstance(cut, dict):
        return None
    return f"read only the {cut['part']} {cut['kept']:,} of its {cut['tokens']:,} tokens: the run's train.max_tokens"
