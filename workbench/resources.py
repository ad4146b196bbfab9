"""How much memory a run needs and how much the machine has, before anything is trained.

Needs no torch: the engine (and the app's setup form) pass in the numbers. The estimate is rough on
purpose: weights, gradients and optimiser state are exact; activations are guessed from batch size x
sequence length x hidden size x layers, which is the right order of magnitude for recurrent models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Extra float32 tensors per parameter that each optimiser keeps (Adam: two moments; SGD: momentum).
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 1, "adagrad": 1}

#: Floats kept per hidden unit and time step for the backward pass (an LSTM's four gates, its cell
#: and hidden state, their nonlinearities: about a dozen).
ACTIVATION_FLOATS_PER_UNIT = 12


def estimate_step_bytes(parameters: int, optimizer: str, batch_size: int, sequence_length: int,
                        model: Mapping[str, Any]) -> int:
    """Bytes one training step holds at its peak: parameters, their gradients, the optimiser's state,
    and the activations kept for the backward pass (float32 throughout)."""
    weights = parameters * 4 * (2 + OPTIMIZER_SLOTS.get(optimizer, 2))
    hidden = _positive_int(model.get("hidden_size"), 256)
    layers = _positive_int(model.get("num_layers"), 1)
    directions = 2 if model.get("bidirectional") else 1
    activations = (batch_size * max(sequence_length, 1) * hidden * layers * directions
                   * ACTIVATION_FLOATS_PER_UNIT * 4)
    return weights + activations


def _positive_int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Memory this machine can still give a new allocation: ``MemAvailable`` on Linux, free physical
    pages elsewhere; None when the system does not say."""
    try:
        for line in meminfo.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"
