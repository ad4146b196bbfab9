"""What the training process costs the machine: CPU use and resident memory of the process, and for
each GPU its memory (from torch) and utilisation (from NVML, where ``pynvml`` is installed).

The engine asks :meth:`SystemSampler.due` after every step; it answers with a
:class:`~workbench.events.SystemEvent` at the first step and then every :data:`SAMPLE_SECONDS`,
else None after one clock read, so sampling costs nothing per step. Everything is read from
``/proc``, ``resource`` and torch's own counters: no new dependency; NVML is optional.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import torch

from workbench.events import SystemEvent

#: Seconds between two samples while training.
SAMPLE_SECONDS = 5.0


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used, all threads together."""
    times = os.times()
    return times.user + times.system


def resident_bytes() -> int | None:
    """The process's resident memory now (Linux ``/proc/self/statm``), else its peak, else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_resident_bytes()


def peak_resident_bytes() -> int | None:
    """The process's peak resident memory (``ru_maxrss``: KiB on Linux, bytes on macOS), or None."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


class _Nvml:
    """NVML's view of every GPU (utilisation, memory used by all processes), when pynvml works."""

    def __init__(self) -> None:
        self.module: Any = None
        try:
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            self.module = pynvml
        except Exception:  # not installed, no driver, no permission: torch's counters still report
            self.module = None

    def devices(self) -> dict[int, dict[str, Any]]:
        if self.module is None:
            return {}
        nvml, found = self.module, {}
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                found[index] = {"utilization": float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                                "used_bytes": int(memory.used), "total_bytes": int(memory.total)}
        except Exception:  # a GPU that fell off the bus must not end the run
            return found
        return found


def gpu_stats(device: torch.device, nvml: _Nvml | None = None) -> list[dict[str, Any]]:
    """One dict per GPU: torch's counters for the device this process trains on (allocated,
    peak reserved, total), NVML's utilisation and memory in use for every GPU it sees."""
    gpus: dict[int, dict[str, Any]] = {}
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        gpus[index] = {
            "index": index, "name": torch.cuda.get_device_name(index),
            "allocated_bytes": int(torch.cuda.memory_allocated(index)),
            "max_reserved_bytes": int(torch.cuda.max_memory_reserved(index)),
            "total_bytes": int(torch.cuda.get_device_properties(index).total_memory),
        }
    elif device.type == "mps":
        gpus[0] = {"index": 0, "name": "mps", "allocated_bytes": int(torch.mps.current_allocated_memory()),
                   "max_reserved_bytes": int(torch.mps.driver_allocated_memory())}
    for index, seen in (nvml.devices() if nvml is not None else {}).items():
        gpus.setdefault(index, {"index": index}).update(seen)
    return [gpus[index] for index in sorted(gpus)]


class SystemSampler:
    """Samples the process (and its GPUs) at the first step and every ``every`` seconds after."""

    def __init__(self, device: torch.device, every: float = SAMPLE_SECONDS) -> None:
        self.device = device
        self.every = every
        self._nvml = _Nvml() if device.type == "cuda" else None
        self._last_wall = time.monotonic()
        self._last_cpu = cpu_seconds()
        self._next: float | None = None  # None: the first call samples

    def due(self) -> SystemEvent | None:
        """A sample when one is due, else None (one clock read)."""
        now = time.monotonic()
        if self._next is not None and now < self._next:
            return None
        self._next = now + self.every
        return self.sample(now)

    def sample(self, now: float | None = None) -> SystemEvent:
        """CPU use since the last sample (100 = one core busy), memory now and at its peak, GPUs."""
        now = time.monotonic() if now is None else now
        cpu = cpu_seconds()
        elapsed = max(now - self._last_wall, 1e-6)
        percent = 100.0 * (cpu - self._last_cpu) / elapsed
        self._last_wall, self._last_cpu = now, cpu
        return SystemEvent(cpu_percent=round(percent, 1), rss_bytes=resident_bytes(),
                           peak_rss_bytes=peak_resident_bytes(), cpus=os.cpu_count() or 1,
                           gpus=tuple(gpu_stats(self.device, self._nvml)))
