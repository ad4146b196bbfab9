"""Run directories: config, a growing JSON-lines event stream, status, control and checkpoints.

Layout of one run (``<runs root>/<run id>/``)::

    config.json     the resolved RunConfig
    events.jsonl    one JSON object per line, appended and flushed as training goes; other
                    processes (the TUI) follow it while it grows
    status.json     state (running, paused, finished, stopped, failed), pid, epoch; rewritten atomically
    control         written by another process to ask for "pause", "resume" or "stop"
    results.json    final metrics (with confusion matrix) once training ends
    best.pt last.pt checkpoints, written atomically

Nothing here imports torch at module level, so ``workbench runs`` and the TUI's run browser stay fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from workbench import settings
from workbench.errors import CheckpointError, WorkbenchError
from workbench.events import ACTIVE_STATES, Event, EventReader

__all__ = ["ACTIVE_STATES"]  # re-exported: older callers import it from here

CHECKPOINT_FORMAT = "workbench-checkpoint"
CHECKPOINT_VERSION = 1


def default_runs_dir() -> Path:
    """``WORKBENCH_RUNS_DIR``, else ``./checkpoints``."""
    return settings.current().runs_dir


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Run:
    """A handle on one run directory."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def control_path(self) -> Path:
        return self.path / "control"

    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    def checkpoint_path(self, which: str = "best") -> Path:
        return self.path / f"{which}.pt"

    # -- reading -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        try:
            return read_json(self.config_path)
        except (OSError, ValueError) as exc:
            raise WorkbenchError(f"run {self.id} has no readable config.json ({exc})") from None

    def status(self) -> dict[str, Any]:
        try:
            status = read_json(self.status_path)
        except (OSError, ValueError):
            return {"state": "unknown"}
        if status.get("state") in ACTIVE_STATES and not pid_alive(status.get("pid")):
            status["state"] = "interrupted"  # the process died without saying so (killed, machine lost)
        return status

    def results(self) -> dict[str, Any] | None:
        try:
            return read_json(self.results_path)
        except (OSError, ValueError):
            return None

    def events(self) -> list[Event]:
        """Every readable event so far (lines this workbench cannot read are skipped)."""
        return list(EventFollower(self.events_path).read_events())

    def summary(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        try:
            config = self.config()
        except WorkbenchError:
            pass
        status = self.status()
        return {
            "id": self.id,
            "path": str(self.path),
            "dataset": config.get("dataset"),
            "arch": config.get("arch"),
            "state": status.get("state"),
            "epoch": status.get("epoch"),
            "epochs": config.get("train", {}).get("epochs"),
            "best": status.get("best"),
            "started": status.get("started"),
            "updated": status.get("updated"),
            "checkpoints": [p.name for p in (self.checkpoint_path("best"), self.checkpoint_path("last")) if p.exists()],
        }

    # -- writing (by the process that trains) ------------------------------------------------
    def write_status(self, **fields: Any) -> None:
        current: dict[str, Any] = {}
        try:
            current = read_json(self.status_path)
        except (OSError, ValueError):
            pass
        current.update(fields)
        current["updated"] = time.time()
        atomic_write_json(self.status_path, current)

    def request(self, command: str) -> None:
        """Ask the training process to pause, resume or stop (it polls between steps)."""
        if command not in ("pause", "resume", "stop"):
            raise ValueError(command)
        atomic_write_bytes(self.control_path, command.encode())

    def read_control(self) -> str | None:
        try:
            return self.control_path.read_text().strip() or None
        except OSError:
            return None

    def delete(self) -> None:
        if self.status().get("state") in ACTIVE_STATES:
            raise WorkbenchError(f"run {self.id} is still training; stop it first")
        shutil.rmtree(self.path)


class EventWriter:
    """Appends events as JSON lines, flushed at once so followers see them."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, event: Event) -> None:
        line = event.to_json()
        line.setdefault("time", time.time())
        self._handle.write(json.dumps(line, allow_nan=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class EventFollower:
    """Reads complete new lines of an events file each time it is asked (``tail -f`` without a thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._reader = EventReader()

    def read_events(self) -> Iterator[Event]:
        """The new lines as events (see :mod:`workbench.events`), skipping any it cannot read."""
        for raw in self.read_new():
            event = self._reader(raw)
            if event is not None:
                yield event

    def read_new(self) -> Iterator[dict[str, Any]]:
        """The new lines as plain JSON objects (lines that are not JSON are skipped)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError:
            return
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next read
        for line in lines:
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def new_run(root: Path, dataset: str, arch: str) -> Run:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = _SAFE.sub("-", f"{stamp}-{dataset}-{arch}")
    root.mkdir(parents=True, exist_ok=True)
    for suffix in [""] + [f"-{i}" for i in range(2, 1000)]:
        path = root / f"{base}{suffix}"
        try:
            path.mkdir()
            return Run(path)
        except FileExistsError:
            continue
    raise WorkbenchError(f"could not create a run directory under {root}")


def list_runs(root: Path) -> list[Run]:
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()]
    return sorted(runs, key=lambda r: r.id)


def find_run(reference: str, root: Path | None = None) -> Run:
    """A run by directory path or by id (or unique id prefix/suffix) under the runs root."""
    path = Path(reference)
    if path.is_dir() and (path / "config.json").exists():
        return Run(path)
    root = root or default_runs_dir()
    if reference == "latest":
        runs = sorted(list_runs(root), key=lambda r: r.path.stat().st_mtime)
        if not runs:
            raise WorkbenchError(f"no runs under {root} yet")
        return runs[-1]
    matches = [r for r in list_runs(root) if r.id == reference]
    if not matches:
        matches = [r for r in list_runs(root) if reference in r.id]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise WorkbenchError(f"no run {reference!r} under {root} (see `workbench runs`)")
    raise WorkbenchError(f"{reference!r} matches {len(matches)} runs: {', '.join(r.id for r in matches[:5])}")


def resolve_checkpoint(reference: str, root: Path | None = None) -> Path:
    """A checkpoint file from a path to a .pt file, a run directory or a run id (best, else last)."""
    path = Path(reference)
    if path.is_file():
        return path
    if path.suffix == ".pt":
        raise CheckpointError(f"checkpoint {path} does not exist")
    run = find_run(reference, root)
    for which in ("best", "last"):
        candidate = run.checkpoint_path(which)
        if candidate.exists():
            return candidate
    raise CheckpointError(f"run {run.id} has no checkpoint yet")


# -- checkpoints (torch imported on use) -------------------------------------------------------
def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically. ``payload`` holds only tensors and plain Python values."""
    import io

    import torch

    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing pickled code (``weights_only=True``)."""
    import torch

    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols in foreign files
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any failure to unpickle a garbage file is a corrupt checkpoint
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable workbench checkpoint (corrupt, truncated, or contains code "
            f"we refuse to unpickle): {first[:200]}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file but not a workbench checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {payload.get('version')}; this workbench reads version {CHECKPOINT_VERSION}"
        )
    for key in ("config", "task_state", "model_state"):
        if key not in payload:
            raise CheckpointError(f"{path} is missing {key!r}")
    return payload
