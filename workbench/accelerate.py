"""Getting a model ready for fast (or reproducible) steps on its device.

- :func:`flatten_recurrent_weights`: after ``model.to(device)`` each ``nn.LSTM``/``nn.GRU``/``nn.RNN``
  holds its weights as separate tensors; cuDNN's fused kernels want them in one block and otherwise
  copy them into one on every call (with the "RNN module weights are not part of single contiguous
  chunk of memory" warning). ``flatten_parameters`` does it once. A no-op off CUDA.
- :func:`deterministic_mode`: ``train.deterministic`` -- the same run twice gives the same numbers on
  a GPU too (deterministic algorithms only, cuDNN's deterministic kernels, cuBLAS's fixed workspace).
- :func:`compile_model`: ``train.compile`` -- ``torch.compile`` where it works, the eager model (and
  one line saying why) where it does not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from workbench.settings import use_deterministic_cublas


def flatten_recurrent_weights(model: nn.Module) -> int:
    """Put every recurrent layer's weights in one contiguous block (cuDNN); how many layers it found."""
    layers = [module for module in model.modules() if isinstance(module, nn.RNNBase)]
    for layer in layers:
        layer.flatten_parameters()
    return len(layers)


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Deterministic kernels for the duration of one run (restored afterwards: the switch is global
    to the process, and a test or a notebook may run several trainings)."""
    if not enabled:
        yield
        return
    use_deterministic_cublas()  # read by cuBLAS when it starts: set before the first CUDA matmul
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2], previous[3]


def compile_model(model: nn.Module, trial: Callable[[nn.Module], None]) -> tuple[nn.Module, str | None]:
    """``torch.compile(model)`` after ``trial`` (a forward and backward pass) shows it compiles and
    runs here; else ``model`` itself and the reason, in a few words. Recurrent layers are where
    compilation most often fails or falls back to eager (no C compiler for the CPU backend, an
    unsupported op, a graph break per time step)."""
    compile_function: Any = getattr(torch, "compile", None)
    if compile_function is None:
        return model, f"torch {torch.__version__} has no torch.compile"
    try:
        compiled = compile_function(model, dynamic=True)  # one graph for every batch shape, not one per length
        trial(compiled)
    except Exception as exc:  # noqa: BLE001 - any failure of the compiler stack means: train eagerly
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return model, f"{type(exc).__name__}: {first[:160]}"
    return compiled, None
