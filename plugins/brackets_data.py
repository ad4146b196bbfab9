"""Synthetic balanced-bracket strings: half balanced, half with one defect somewhere.

Balanced strings are drawn uniformly from all balanced strings of the length (a uniform random Dyck
path, bracket kinds chosen at random). Each unbalanced string is a balanced one with exactly one
defect, so that no shortcut (length, first or last character, bracket counts alone) gives the
answer away:

- ``count``: one bracket turned the other way round (the counts no longer match);
- ``order``: an opening bracket at depth 0 swapped with the next closing bracket, so the depth dips
  below zero once while the counts still match;
- ``kind`` (2 or 3 pairs): one closing bracket of the wrong kind.

Like every balanced string, every unbalanced one starts with an opening bracket and ends with a
closing one (except at lengths too short to allow it). Without that rule about 60% of the order
defects at length 100 would start with ``)``, since a random balanced string seldom returns to
depth 0 before its end: a one-character shortcut that needs no memory at all.

``defects`` picks one kind for every unbalanced string, or "mixed" (the default) for a random one each.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache
from typing import Any

from workbench.api import ClassificationData, DataError, LoadContext

PAIRS = ["()", "[]", "{}"]
CLASSES = ["unbalanced", "balanced"]


@lru_cache(maxsize=1 << 20)
def _log_paths(remaining: int, depth: int) -> float:
    """log of the number of ways to close ``depth`` open brackets in ``remaining`` steps, never
    going below zero (a ballot number: (d+1)/(w+1) * C(r, u), u ups and w downs)."""
    if depth > remaining or (remaining - depth) % 2:
        return -math.inf
    ups = (remaining - depth) // 2
    downs = remaining - ups
    return (math.log(depth + 1) - math.log(downs + 1) + math.lgamma(remaining + 1) - math.lgamma(ups + 1)
            - math.lgamma(downs + 1))


def balanced_string(length: int, pairs: int, rng: random.Random) -> str:
    """A uniformly random balanced string of ``length`` (even) characters."""
    out: list[str] = []
    stack: list[int] = []
    for position in range(length):
        remaining = length - position
        depth = len(stack)
        if depth == 0:
            up = True
        elif depth == remaining:
            up = False
        else:
            p_up = math.exp(_log_paths(remaining - 1, depth + 1) - _log_paths(remaining, depth))
            up = rng.random() < p_up
        if up:
            kind = rng.randrange(pairs)
            stack.append(kind)
            out.append(PAIRS[kind][0])
        else:
            out.append(PAIRS[stack.pop()][1])
    return "".join(out)


def is_balanced(text: str) -> bool:
    """The reference answer: every closing bracket matches the latest unmatched opening one."""
    closing = {pair[1]: pair[0] for pair in PAIRS}
    stack: list[str] = []
    for char in text:
        if char in closing:
            if not stack or stack.pop() != closing[char]:
                return False
        else:
            stack.append(char)
    return not stack


DEFECTS = ("mixed", "count", "order", "kind")


def corrupt(text: str, pairs: int, rng: random.Random, defects: str = "mixed", *,
            keep_ends: bool = True) -> str | None:
    """One defect (see the module docstring) in a balanced string: of the kind ``defects`` names, or
    for "mixed" one of count, order (and kind with 2 or more pairs) at random. With ``keep_ends`` the
    result still starts with an opening and ends with a closing bracket; None when this string has
    no such defect of that kind (an order defect needs a return to depth 0 before the end)."""
    chars = list(text)
    defect = draw_defect(pairs, rng) if defects == "mixed" else defects
    opening = {pair[0]: pair for pair in PAIRS}
    closing = {pair[1]: pair for pair in PAIRS}
    if defect == "count":
        positions = range(1, len(chars) - 1) if keep_ends else range(len(chars))
        if not positions:
            return None
        position = rng.choice(positions)
        pair = opening.get(chars[position]) or closing[chars[position]]
        chars[position] = pair[1] if chars[position] == pair[0] else pair[0]
    elif defect == "order":
        depth = 0
        swaps = []
        for position, char in enumerate(chars):
            if depth == 0:  # chars[position] opens at depth 0: swap it with the next closing bracket
                end = next(j for j in range(position + 1, len(chars)) if chars[j] in closing)
                if not keep_ends or (position > 0 and end < len(chars) - 1):
                    swaps.append((position, end))
            depth += 1 if char in opening else -1
        if not swaps:
            return None
        start, end = rng.choice(swaps)
        chars[start], chars[end] = chars[end], chars[start]
    else:
        positions = [j for j, char in enumerate(chars) if char in closing]
        position = rng.choice(positions)
        others = [pair[1] for pair in PAIRS[:pairs] if pair[1] != chars[position]]
        chars[position] = rng.choice(others)
    return "".join(chars)


def draw_defect(pairs: int, rng: random.Random) -> str:
    return rng.choice(["count", "order"] + (["kind"] if pairs > 1 else []))


def unbalanced_string(length: int, pairs: int, rng: random.Random, defects: str = "mixed") -> str:
    """A balanced string of ``length`` with one defect that leaves the ends alone, drawing a new
    balanced string when one cannot take the defect; the kind is drawn first, so "mixed" keeps its
    proportions."""
    defect = draw_defect(pairs, rng) if defects == "mixed" else defects
    text = balanced_string(length, pairs, rng)
    for _ in range(100):
        bad = corrupt(text, pairs, rng, defect)
        if bad is not None:
            return bad
        text = balanced_string(length, pairs, rng)
    # lengths 2 and 4 may have no such string at all: allow the ends to change, which every
    # balanced string can take for every kind of defect
    bad = corrupt(text, pairs, rng, defect, keep_ends=False)
    assert bad is not None
    return bad


def generate(count: int, length: int, pairs: int, rng: random.Random, min_length: int = 0,
             defects: str = "mixed") -> list[tuple[str, int]]:
    """``count`` labelled strings, alternately balanced (label 1) and not (label 0), shuffled; with
    ``min_length`` each string's (even) length is drawn uniformly from ``min_length..length``."""
    examples = []
    for index in range(count):
        size = length if not min_length else 2 * rng.randint(max(1, min_length // 2), length // 2)
        if index % 2:
            examples.append((balanced_string(size, pairs, rng), 1))
        else:
            examples.append((unbalanced_string(size, pairs, rng, defects), 0))
    rng.shuffle(examples)
    return examples


def load(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    length, pairs = params["length"], params["pairs"]
    if length % 2:
        raise DataError(f"brackets: length must be even, a balanced string of {length} characters cannot exist")
    defects = params["defects"]
    # even, at least 2, never above length: 0.4 of 100 -> 40, 0.4 of 8 -> 4
    min_length = min(length, max(2, 2 * round(params["min_fraction"] * length / 2))) if params["min_fraction"] else 0
    if defects == "kind" and pairs < 2:
        raise DataError("brackets: defects=kind needs pairs >= 2 (a wrong kind of bracket needs two kinds)")
    rng = random.Random(params["data_seed"])
    n_valid = round(params["train_size"] * params["valid_fraction"])
    # validation and test strings are all `length` long; only training strings vary with min_length
    train = generate(params["train_size"] - n_valid, length, pairs, rng, min_length, defects)
    valid = generate(n_valid, length, pairs, rng, defects=defects)
    test = generate(params["test_size"], length, pairs, rng, defects=defects)
    # drawn after the others, so adding it changed none of them
    long_test = generate(params.get("long_test_size", 0), 2 * length, pairs, rng, defects=defects)
    return ClassificationData(
        classes=list(CLASSES),
        train=train,
        valid=valid,
        test=test,
        tokenizer="char",
        extra_tests={"test_2x": long_test} if long_test else {},
        info={"source": "generated", "length": length, "test_2x_length": 2 * length if long_test else 0, "train_lengths": f"{min_length or length}-{length}",
              "defects": defects, "pairs": " ".join(PAIRS[:pairs]),
              "train": len(train), "valid": len(valid), "test": len(test), "test_2x": len(long_test)},
    )
