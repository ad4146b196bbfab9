"""The options of text generation, one schema for ``workbench generate`` and the app's Generate
screen (no torch: the app builds its form from it before any model is loaded).

The ranges are the ones :meth:`workbench.tasks.language_model.LanguageModelTask.generate` accepts,
so a value the form or the command line lets through is never refused later by the model.
"""

from __future__ import annotations

from typing import Any

from workbench.params import Param

#: length, temperature, sampling, top_k, top_p: names and ranges shared by the CLI and the app.
GENERATE_PARAMS: list[Param] = [
    Param("length", int, 200, "characters or tokens to generate", min=0, max=1_000_000),
    Param("temperature", float, 1.0, "below 1 sharper, above 1 more random (greedy sampling: the likeliest "
          "every time)", min=0.001, max=100.0),
    Param("sampling", str, "sample", "sample, greedy, top-k or top-p", choices=("sample", "greedy", "top-k", "top-p")),
    Param("top_k", int, 10, "k for top-k sampling", min=1, max=100_000),
    Param("top_p", float, 0.9, "probability mass for top-p sampling", min=0.001, max=1.0),
]


def checked_options(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (name -> value, from the command line) checked against :data:`GENERATE_PARAMS`;
    a :class:`~workbench.errors.ParamError` names the first bad one and its range."""
    return {param.name: param.parse(str(values[param.name])) for param in GENERATE_PARAMS if param.name in values}
