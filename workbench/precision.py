"""The arithmetic of the training forward pass: fp32, bf16 or fp16 autocast, and ``auto``.

Weights, optimiser state and evaluation stay fp32 whatever is chosen; only the forward pass of each
training step runs under ``torch.autocast``. fp16 has a narrow exponent range, so its gradients go
through a ``torch.amp.GradScaler`` (whose state is saved in checkpoints and restored on resume);
bf16 has fp32's range and needs none.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from workbench.errors import WorkbenchError

#: The precisions a run may ask for (``auto`` resolves to one of the first three).
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """What ``auto`` means on ``device``: what it computes natively in hardware.

    CUDA: bf16 where the GPU has it (Ampere and later), else fp16 (with a gradient scaler). CPU:
    bf16 where oneDNN has native bf16 kernels (AVX-512 BF16, AMX), else fp32 (elsewhere bf16 is
    emulated and slower than fp32). MPS: fp16 (Apple GPUs compute half natively; bf16 needs
    macOS 14 and is missing from many kernels). The trial step then confirms it runs."""
    if precision != "auto":
        return precision
    try:
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if device.type == "cpu":
            return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
        if device.type == "mps":
            return "fp16"
    except (AttributeError, RuntimeError):
        pass
    return "fp32"


def autocast_context(precision: str, device: torch.device) -> Any:
    """The context each training forward pass runs in: nothing for fp32, autocast otherwise."""
    if precision not in DTYPES:
        return contextlib.nullcontext()
    try:
        return torch.autocast(device_type=device.type, dtype=DTYPES[precision])
    except (RuntimeError, ValueError) as exc:
        raise WorkbenchError(f"precision={precision} is not available on {device}: {exc}; use precision=fp32") from None


def make_scaler(precision: str, device: torch.device) -> Any:
    """A gradient scaler for fp16 (None for the others): small fp16 gradients would underflow to zero."""
    if precision != "fp16":
        return None
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        try:
            return amp.GradScaler(device.type)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"precision=fp16 needs a gradient scaler, which torch {torch.__version__} does not "
                                 f"offer on {device} ({exc}); use precision=fp32 or bf16") from None
    if device.type == "cuda":
        return torch.cuda.amp.GradScaler()
    raise WorkbenchError(f"precision=fp16 needs a gradient scaler, which torch {torch.__version__} offers only on CUDA; "
                         "use precision=fp32 or bf16")


def trial_step(task: Any, examples: Any, model: nn.Module, device: torch.device, precision: str) -> None:
    """One forward and backward pass of the real model on two examples in ``precision`` (with fp16,
    through a gradient scaler and its unscale kernel too), so a precision the hardware cannot run
    fails here, before the run starts, rather than at its first step. Leaves no gradients and no
    trace in the random state."""
    batch = next(iter(task.batches(examples[:2], 2, False))).to(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    scaler = make_scaler(precision, device)
    try:
        with torch.random.fork_rng(devices=devices):
            with autocast_context(precision, device):
                output = task.loss(model, batch)
            loss = output[0] if isinstance(output, tuple) else output
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
                params = [p for p in model.parameters() if p.requires_grad]
                scaler.unscale_(torch.optim.SGD(params, lr=0.0))  # a throwaway optimiser: nothing is stepped
    finally:
        model.zero_grad(set_to_none=True)
