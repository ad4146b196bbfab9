"""Task kinds. Each owns its batching, loss, metrics, prediction and (where it applies) generation.

The engine is written against :class:`workbench.tasks.base.Task`; adding a kind means adding a
module here and an entry in ``_TASK_MODULES``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

from workbench.errors import CheckpointError, WorkbenchError

_TASK_MODULES = {
    "classification": "workbench.tasks.classification:ClassificationTask",
    "language_model": "workbench.tasks.language_model:LanguageModelTask",
    "tagging": "workbench.tasks.tagging:TaggingTask",
    "seq2seq": "workbench.tasks.seq2seq:Seq2SeqTask",
}


def task_class(kind: str):
    """The Task class for a task kind (imports torch)."""
    target = _TASK_MODULES.get(kind)
    if target is None:
        from workbench.api import TASK_KINDS

        if kind in TASK_KINDS:
            raise WorkbenchError(f"task kind {kind!r} is declared but not implemented in this version of workbench")
        raise WorkbenchError(f"unknown task kind {kind!r}")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


#: Entries of a task's stored state that are vocabularies or label lists.
TOKEN_LISTS = ("vocab", "source_vocab", "target_vocab", "words", "chars", "classes", "tags")
#: Bounds for what a checkpoint's task description may hold: far beyond any real vocabulary, far
#: below what would exhaust memory on reading it. (The model's size is checked against the
#: checkpoint's own weights separately, in :func:`workbench.engine.load_trained`.)
MAX_LIST_ENTRIES = 5_000_000
MAX_TEXT_CHARS = 10_000


def check_task_state(state: Any, source: str) -> None:
    """Raise a CheckpointError unless ``state`` (a checkpoint's ``task_state``) holds only what a
    task stores: a kind, token and label lists of strings, plain numbers and short texts, all sanely sized."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: task_state must be a table, not a {type(state).__name__}")
    for key, value in state.items():
        where = f"{source}: task_state {str(key)[:40]!r}"
        if not isinstance(key, str):
            raise CheckpointError(f"{where}: keys must be names")
        if key in TOKEN_LISTS and not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
            raise CheckpointError(f"{where} must be a list of strings")
        _check_plain(value, where, depth=0)


def _check_plain(value: Any, where: str, depth: int) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise CheckpointError(f"{where} holds a text of {len(value):,} characters (at most {MAX_TEXT_CHARS:,})")
        return
    if isinstance(value, int):
        if abs(value) > 2**31:
            raise CheckpointError(f"{where} holds the number {value} (out of range)")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CheckpointError(f"{where} holds {value}")
        return
    if isinstance(value, (list, tuple)) and depth < 3:
        if len(value) > MAX_LIST_ENTRIES:
            raise CheckpointError(f"{where} holds {len(value):,} entries (at most {MAX_LIST_ENTRIES:,})")
        for item in value:
            _check_plain(item, where, depth + 1)
        return
    raise CheckpointError(f"{where} holds a {type(value).__name__}, not plain values")
