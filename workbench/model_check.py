"""The first-batch check: a model's output is held against its task's contract before training.

A plugin model whose output does not fit (a tuple where logits belong, the wrong number of classes,
a missing time axis) would otherwise either fail deep in the loss with a traceback that does not name
the architecture, or, worse, train to "finished" and fail only later in ``predict``. One forward pass
on a few training examples, in eval mode and without gradients (no dropout, no batch-norm statistics
updated, no random numbers drawn, so a run stays reproducible), finds it in a fraction of a second.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.tasks.base import Task

_ADVICE = "fix the model (`workbench plugins --check PLUGIN` checks a plugin in full)"

#: Examples in the batch the check runs on: enough for batch-size mistakes, cheap for big models.
CHECK_EXAMPLES = 4


def check_first_batch(task: Task, model: nn.Module, examples: Sequence[Any], device: torch.device,
                      named: str) -> None:
    """Raise a one-line WorkbenchError naming ``named`` (``architecture 'x' (plugin 'p')``) unless the
    model's output on the first few ``examples`` (their first batch in order) is what ``task`` expects."""
    batch = next(iter(task.batches(examples, CHECK_EXAMPLES, shuffle=False)), None)
    if batch is None:
        return
    batch = batch.to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(**batch.inputs)
    except (WorkbenchError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # sys.exit() in forward too: this plugin's error, not the end of workbench
        raise WorkbenchError(f"{named}: its model failed on the first batch before training: "
                             f"{_describe(exc)}; {_ADVICE}") from None
    finally:
        model.train(was_training)
    problems = task.check_output(output, batch)
    if problems:
        raise WorkbenchError(f"{named}: its model's output does not fit the {task.kind} task: "
                             f"{'; '.join(problems)}; {_ADVICE}")


def _describe(exc: BaseException) -> str:
    """The exception's type, the first line of its message and where it was raised."""
    lines = str(exc).strip().splitlines()
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {lines[0][:300] if lines else '(no message)'}{where}"
