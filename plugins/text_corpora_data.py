"""Loaders for the text-file and synthetic-text language-modelling datasets."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from workbench_plugins.lm_corpus import make_data, make_file_data

from workbench.api import DataError, LanguageModelData, LoadContext


def load_text_file(context: LoadContext, params: dict[str, Any]) -> LanguageModelData:
    if params["path"].strip():
        path = Path(params["path"].strip()).expanduser()
    elif context.data_dir is not None and not context.data_dir.is_dir():
        path = context.data_dir
    else:
        where = f" ({context.data_dir} is a folder)" if context.data_dir is not None else ""
        raise DataError(f"text-file needs a file: --set data.path=FILE or --data-dir FILE{where}")
    return make_file_data(context, path, params, {"source": str(path.resolve())})


# Every slot picks among the first ``variety`` entries, so variety sets how predictable the text is.
_SUBJECTS = ["the old dog", "a small cat", "my friend", "the farmer", "a red bird", "the teacher",
             "our neighbour", "the captain"]
_VERBS = ["sees", "likes", "follows", "finds", "carries", "paints", "watches", "forgets"]
_OBJECTS = ["a red ball", "the green box", "the long road", "a wooden chair", "the blue boat", "an apple",
            "the river", "a letter"]
_ENDINGS = [".", " today.", " again.", " at night.", " slowly.", " twice.", " in the rain.", " with joy."]


def synthetic_text(chars: int, variety: int, seed: int) -> str:
    """Sentences from a four-slot grammar, four to a line, until ``chars`` characters."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    sentence = 0
    while size < chars:
        words = " ".join(rng.choice(slot[:variety]) for slot in (_SUBJECTS, _VERBS, _OBJECTS))
        text = words + rng.choice(_ENDINGS[:variety])
        sentence += 1
        text += "\n" if sentence % 4 == 0 else " "
        parts.append(text)
        size += len(text)
    return "".join(parts)[:chars]


def load_synthetic(context: LoadContext, params: dict[str, Any]) -> LanguageModelData:
    text = synthetic_text(params["chars"], params["variety"], params["text_seed"])
    info = {"source": "generated", "grammar": "subject verb object ending", "variety": params["variety"]}
    data = make_data(text, params, "synthetic-text", info)
    data.test_2x = bool(params.get("test_2x", False))  # the test text also in windows of 2 x seq_len
    return data
