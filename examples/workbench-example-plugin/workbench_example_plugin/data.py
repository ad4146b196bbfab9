"""The 'majority letter' dataset, generated from a seed (no torch, no files)."""

from __future__ import annotations

import random
import string
from typing import Any

from workbench.api import ClassificationData, DataError, LoadContext


def majority_string(rng: random.Random, alphabet: str, length: int) -> tuple[str, int]:
    """A random string over ``alphabet`` whose most frequent letter is unique, and that letter's index."""
    chars = [rng.choice(alphabet) for _ in range(length)]
    counts = {c: chars.count(c) for c in alphabet}
    top = max(counts.values())
    winners = [c for c in alphabet if counts[c] == top]
    winner = rng.choice(winners)
    if len(winners) > 1:
        # Break the tie: one occurrence of another tied letter becomes the winner.
        other = rng.choice([c for c in winners if c != winner])
        position = rng.choice([i for i, c in enumerate(chars) if c == other])
        chars[position] = winner
    return "".join(chars), alphabet.index(winner)


def load(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    """``context`` is unused (nothing to download); ``params`` are the dataset's declared Params."""
    if params["min_length"] > params["max_length"]:
        raise DataError(f"majority: min_length ({params['min_length']}) is greater than max_length "
                        f"({params['max_length']})")
    alphabet = string.ascii_lowercase[: params["letters"]]
    rng = random.Random(params["seed"])
    examples = [majority_string(rng, alphabet, rng.randint(params["min_length"], params["max_length"]))
                for _ in range(params["size"])]
    n_test = n_valid = max(len(examples) // 10, 1)
    return ClassificationData(
        classes=list(alphabet),
        train=examples[n_test + n_valid:],
        valid=examples[n_test : n_test + n_valid],
        test=examples[:n_test],
        tokenizer="char",
        normalize="lower",
        info={"source": "generated", "size": len(examples), "letters": len(alphabet), "seed": params["seed"]},
    )
