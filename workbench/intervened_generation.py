"""Interventions in text generation: zero or clamp hidden units, or force a gate, from a given step
on, while a language model generates (``workbench generate --intervene SPEC``, the Generate
screen's ``intervene`` field). No Textual here.

Steps count the characters the model reads, as in ``workbench inspect``: the prime's characters
are steps 1 to P (with no prime, step 1 is the start of line the model reads first), then the k-th
generated character is step P + k. An intervention at step s changes the state after the model
reads character s, so the text up to and including character s is what it would have been, and the
text from character s + 1 on may change.

Only while an intervention is set do the trained weights run through the inspector's equation-level
cells (forward hooks, :class:`workbench.inspect.Tracer` in stream mode); plain generation is
``Task.generate`` untouched, fused kernels and all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from torch import nn

from workbench.errors import WorkbenchError
from workbench.inspect import Tracer, _PluginStepper, check_interventions, find_layers
from workbench.interventions import Intervention


def characters_read(task: Any, prime: str) -> int:
    """How many characters the model reads before it generates (as ``LanguageModelTask.generate``
    starts: the prime, or one start-of-line character when there is none)."""
    return len(task.encode_prime(prime)) if prime else 1


def generate(task: Any, model: nn.Module, prime: str, length: int, device: Any,
             interventions: Sequence[Intervention] = (), *, arch: str = "",
             steppers: dict[type, _PluginStepper] | None = None, **options: Any) -> Iterator[str]:
    """``task.generate(model, prime, length, device, **options)``, with ``interventions`` applied
    from their steps on. Everything is validated before this returns (as ``task.generate`` does)."""
    if not interventions:
        return task.generate(model, prime, length, device, **options)  # type: ignore[no-any-return]
    steppers = steppers or {}
    layers = find_layers(model, steppers)
    if any(layer.backward for layer in layers):
        raise WorkbenchError("interventions in generation need a model that reads left to right; this one has a "
                             "backward direction")
    read = characters_read(task, prime)
    check_interventions(interventions, layers, read + max(0, length - 1), arch or type(model).__name__,
                        too_far=f"generation reads only {{tokens}} characters here (the prime's {read}, then each "
                                "generated character but the last): give a smaller step or a longer length",
                        token="character")
    stream = task.generate(model, prime, length, device, **options)
    return _steered(stream, Tracer(model, layers, steppers), interventions, read, layers[0].module)


def _steered(stream: Iterator[str], tracer: Tracer, interventions: Sequence[Intervention], read: int,
             first_module: str) -> Iterator[str]:
    """The stream, with the hooks on (for this thread) while it runs; each character checked to have
    gone through the hooked layers, so an intervention is never silently skipped."""
    with tracer.active(interventions, stream=True) as run:
        for produced, piece in enumerate(stream, start=1):
            if run.positions.get(first_module, 0) != read + produced - 1:
                raise WorkbenchError("this model's generation does not run its recurrent layers where the inspector "
                                     "can reach them (a fast path that bypasses them?), so interventions cannot act "
                                     "on it")
            yield piece


def shared_seed(seed: int | None) -> int:
    """The seed to use for a generation and its untouched baseline (the same draws for both)."""
    return seed if seed is not None else random.SystemRandom().randrange(2**63)


def first_difference(text: str, other: str) -> int | None:
    """The 1-based position of the first character where ``text`` and ``other`` differ, or None."""
    for position, (a, b) in enumerate(zip(text, other, strict=False), start=1):
        if a != b:
            return position
    return None if len(text) == len(other) else min(len(text), len(other)) + 1
