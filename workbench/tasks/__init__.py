"""Task kinds. Each owns its batching, loss, metrics, prediction and (where it applies) generation.

The engine is written against :class:`workbench.tasks.base.Task`; adding a kind means adding a
module here and an entry in ``_TASK_MODULES``.
"""

from __future__ import annotations

import importlib

from workbench.errors import WorkbenchError

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
