"""Device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) and what this machine has.

``validate_device_name`` checks spelling without importing torch; ``resolve_device`` checks the
device exists and says what to do when it does not.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from workbench.errors import DeviceError

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def validate_device_name(name: str) -> str:
    name = name.strip().lower()
    if not _DEVICE_RE.match(name):
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return name


@dataclass
class DeviceInfo:
    name: str
    description: str
    available: bool
    memory_bytes: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def list_devices() -> list[DeviceInfo]:
    """Every device kind with whether it can be used here and, if not, why."""
    import torch

    found = [DeviceInfo("cpu", f"CPU ({os.cpu_count()} cores)", True)]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found.append(DeviceInfo(f"cuda:{index}", props.name, True, int(props.total_memory)))
    else:
        reason = (
            "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        )
        found.append(DeviceInfo("cuda", "NVIDIA GPU", False, reason=reason))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append(DeviceInfo("mps", "Apple GPU (Metal)", True))
    else:
        found.append(DeviceInfo("mps", "Apple GPU (Metal)", False, reason="only on Apple silicon with macOS"))
    return found


def list_devices_in_child(timeout: float = 120.0) -> list[DeviceInfo]:
    """:func:`list_devices`, computed by ``workbench devices --json`` in a child process.

    For the app: importing torch takes seconds and, in a thread, holds the interpreter lock for up
    to a second at a time, freezing the screen; a child process leaves this one free."""
    try:
        done = subprocess.run([sys.executable, "-m", "workbench", "devices", "--json"], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceError(f"`workbench devices` did not run: {exc}") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise DeviceError(f"`workbench devices` failed: {lines[-1] if lines else f'exit status {done.returncode}'}")
    try:
        return [DeviceInfo(**entry) for entry in json.loads(done.stdout)["devices"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DeviceError(f"`workbench devices` printed something unexpected ({exc})") from exc


def resolve_device(name: str) -> Any:
    """The ``torch.device`` for a validated name; ``auto`` prefers CUDA, then MPS, then CPU."""
    import torch

    name = validate_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"device {name!r} is not available: {why}; use --device cpu or auto")
        if ":" in name:
            index = int(name.split(":")[1])
            count = torch.cuda.device_count()
            if index >= count:
                raise DeviceError(
                    f"device {name!r} does not exist: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
                )
        return torch.device(name)
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        raise DeviceError("device 'mps' is not available (Apple silicon with macOS only); use --device cpu or auto")
    return torch.device("mps")
