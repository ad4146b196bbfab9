"""Run directories: config, a growing JSON-lines event stream, status, control and checkpoints.

Layout of one run (``<runs root>/<run id>/``)::

    config.json     the resolved RunConfig
    events.jsonl    one JSON object per line, appended and flushed as training goes; other
                    processes (the TUI) follow it while it grows
    status.json     state (running, paused, finished, stopped, failed), pid, epoch, step; rewritten atomically
    control         written by another process to ask for "pause", "resume" or "stop"
    results.json    final metrics (with confusion matrix) once training ends
    best.pt last.pt checkpoints, written atomically
    lock            held (``flock``) by the process that trains the run, for as long as it lives

Every reader accepts any content: a file of the wrong shape makes that run "unreadable" (with a
reason), never an exception for the whole list. Writes that fail (disk full, read-only folder)
are a :class:`StorageError` that names the path; earlier files stay as they were.

Nothing here imports torch at module level, so ``workbench runs`` and the TUI's run browser stay fast.
"""

from __future__ import annotations

import errno
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

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: a pid lock file instead (see RunLock)
    fcntl = None  # type: ignore[assignment]

__all__ = ["ACTIVE_STATES"]  # re-exported: older callers import it from here

CHECKPOINT_FORMAT = "workbench-checkpoint"
CHECKPOINT_VERSION = 1
MAX_RUN_FILE_BYTES = 64 * 1024 * 1024  # status/config/results beyond this are not what workbench writes
LOCK_FILE = "lock"
UNREADABLE = "unreadable"


class StorageError(WorkbenchError):
    """A run file could not be written (disk full, read-only or missing folder, no permission)."""


class RunBusyError(WorkbenchError):
    """Another live process is training this run."""


def storage_error(exc: OSError, path: Path | str, doing: str = "write") -> StorageError:
    """One line: what failed, where, and what to do about it."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENOSPC or exc.errno == getattr(errno, "EDQUOT", -1):
        advice = "free some space or choose another --runs-dir"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        advice = "make the folder writable or choose another --runs-dir"
    else:
        advice = "check the folder or choose another --runs-dir"
    return StorageError(f"could not {doing} {path}: {reason}; {advice} (checkpoints already written are kept)")


def default_runs_dir() -> Path:
    """``WORKBENCH_RUNS_DIR``, else ``./checkpoints``."""
    return settings.current().runs_dir


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers see old or new, never half.

    A failed write (disk full, read-only folder) is a :class:`StorageError`; the old file is intact.
    A process killed mid-write leaves ``.NAME.*.tmp`` behind: :func:`remove_stale_temporaries`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise storage_error(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise storage_error(exc, path) from None
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: Path) -> Any:
    """The JSON in ``path``; OSError or ValueError (not JSON, too large, nested too deep) otherwise."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_RUN_FILE_BYTES + 1)
    if len(data) > MAX_RUN_FILE_BYTES:
        raise ValueError(f"larger than {MAX_RUN_FILE_BYTES // 2**20} MB")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _why_unreadable(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _status_problem(status: Any) -> str | None:
    """Why ``status`` is not a status.json this workbench writes, or None when it is."""
    if not isinstance(status, dict):
        return f"status.json holds a {type(status).__name__}, not an object"
    checks: list[tuple[str, Any]] = [
        ("state", lambda v: isinstance(v, str) and re.fullmatch(r"[a-z][a-z_-]{0,31}", v) is not None),
        ("pid", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0)),
        ("epoch", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))),
        ("epochs", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))),
        ("step", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))),
        ("steps", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))),
        ("best", lambda v: v is None or (isinstance(v, dict) and all(isinstance(k, str) for k in v))),
        ("started", lambda v: v is None or _is_number(v)),
        ("updated", lambda v: v is None or _is_number(v)),
        ("message", lambda v: v is None or isinstance(v, str)),
    ]
    if "state" not in status:
        return "status.json has no state"
    for key, valid in checks:
        if key in status and not valid(status[key]):
            return f"status.json has {key} = {json.dumps(status[key])[:40]}"
    return None


def _config_problem(config: Any) -> str | None:
    """Why ``config`` is not a config.json this workbench writes, or None when it is."""
    if not isinstance(config, dict):
        return f"config.json holds a {type(config).__name__}, not an object"
    for key in ("dataset", "arch"):
        if not isinstance(config.get(key), str):
            return f"config.json has no {key} name"
    for key in ("train", "data", "model"):
        if not isinstance(config.get(key, {}), dict):
            return f"config.json has {key} = {json.dumps(config[key])[:40]}, not a table"
    return None


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError) as exc:
        return isinstance(exc, PermissionError)
    return True


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and len(text) < 12 else None


class RunLock:
    """Held by the one process that trains a run, for as long as it lives.

    ``flock`` on ``<run>/lock``: the kernel drops it when the process dies however it dies, so a
    killed trainer leaves no stale lock and a recycled process id means nothing. Where ``flock``
    is missing (Windows) or refused (some network file systems), the file holds the trainer's pid
    and a live pid counts as held, which a recycled pid can fool; the flock path has no such gap."""

    def __init__(self, path: Path, fd: int, flocked: bool) -> None:
        self.path, self._fd, self.flocked = path, fd, flocked

    @classmethod
    def acquire(cls, run: Run) -> RunLock:
        """Take the run's lock or raise :class:`RunBusyError` (a :class:`StorageError` when the
        folder cannot hold a lock file at all)."""
        path = run.path / LOCK_FILE
        try:
            run.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, path, "create the lock file") from None
        flocked = fcntl is not None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise run.busy_error() from None
            except OSError:
                flocked = False  # e.g. ENOLCK: fall back to the pid
        if not flocked:
            other = _read_pid(path)
            if other is not None and other != os.getpid() and pid_alive(other):
                os.close(fd)
                raise run.busy_error()
        try:  # the pid is for people (and the fallback); a full disk must not stop the lock
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            if not flocked:
                os.close(fd)
                raise storage_error(exc, path) from None
        return cls(path, fd, flocked)

    def __del__(self) -> None:  # a lock nobody kept is a lock nobody holds
        self.release()

    def release(self) -> None:
        if self._fd < 0:
            return
        if not self.flocked:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
        os.close(self._fd)  # closing drops the flock
        self._fd = -1


def lock_held(run: Run) -> bool | None:
    """Whether a live process trains ``run``: True or False, or None where the folder has no lock
    file (a run from an older workbench: its status pid is all there is)."""
    path = run.path / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError:
        return pid_alive(_read_pid(path))
    try:
        if fcntl is None:
            return pid_alive(_read_pid(path))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return pid_alive(_read_pid(path))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def remove_stale_temporaries(run: Run) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files a killed writer left in ``run`` (call while holding its
    lock, so no live trainer is writing them; ``control`` is written by other processes: kept)."""
    removed = []
    try:
        candidates = list(run.path.glob(".*.tmp"))
    except OSError:
        return []
    for path in candidates:
        if path.name.startswith(".control."):
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


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

    # -- reading ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        try:
            config = read_json(self.config_path)
        except (OSError, ValueError) as exc:
            raise WorkbenchError(f"run {self.id} has no readable config.json ({_why_unreadable(exc)})") from None
        problem = _config_problem(config)
        if problem:
            raise WorkbenchError(f"run {self.id} has no readable config.json ({problem})")
        return config

    def status(self) -> dict[str, Any]:
        """The status file; ``state`` "unreadable" (with a ``reason``) when it is not what workbench
        writes, "interrupted" when it says training but no live process holds the run."""
        try:
            status = read_json(self.status_path)
        except FileNotFoundError:
            return {"state": "unknown"}
        except (OSError, ValueError) as exc:
            return {"state": UNREADABLE, "reason": f"status.json: {_why_unreadable(exc)}"}
        problem = _status_problem(status)
        if problem:
            return {"state": UNREADABLE, "reason": problem}
        if status.get("state") in ACTIVE_STATES and not self.trainer_alive(status.get("pid")):
            status["state"] = "interrupted"  # the process died without saying so (killed, machine lost)
        return status

    def trainer_alive(self, pid: Any = None) -> bool:
        """Whether a live process trains this run: its lock, else (older runs) the status pid."""
        held = lock_held(self)
        return pid_alive(pid) if held is None else held

    def busy_error(self) -> RunBusyError:
        pid = _read_pid(self.path / LOCK_FILE)
        by = f"process {pid}" if pid else "another process"
        return RunBusyError(f"run {self.id} is being trained by {by}; stop it first "
                            f"(workbench runs stop {self.id}) or wait until it ends")

    def results(self) -> dict[str, Any] | None:
        try:
            results = read_json(self.results_path)
        except (OSError, ValueError):
            return None
        return results if isinstance(results, dict) else None

    def events(self) -> list[Event]:
        """Every readable event so far (lines this workbench cannot read are skipped)."""
        return list(EventFollower(self.events_path).read_events())

    def summary(self) -> dict[str, Any]:
        """What a list of runs shows; an unreadable config or status makes ``state`` "unreadable"
        with a ``reason``, so one damaged folder never hides the others."""
        config: dict[str, Any] = {}
        reason = None
        try:
            config = self.config()
        except WorkbenchError as exc:
            reason = str(exc).removeprefix(f"run {self.id} has ")
        status = self.status()
        reason = status.get("reason") if status.get("state") == UNREADABLE else reason
        summary = {
            "id": self.id,
            "path": str(self.path),
            "dataset": config.get("dataset"),
            "arch": config.get("arch"),
            "state": UNREADABLE if reason else status.get("state"),
            "epoch": status.get("epoch"),
            "epochs": config.get("train", {}).get("epochs"),
            # steps trained of the epoch after ``epoch`` (workbench.position): a run stopped mid-epoch
            "step": status.get("step"),
            "steps": status.get("steps"),
            "best": status.get("best"),
            "started": status.get("started"),
            "updated": status.get("updated"),
            "checkpoints": [p.name for p in (self.checkpoint_path("best"), self.checkpoint_path("last")) if p.exists()],
        }
        if reason:
            summary["reason"] = reason
        return summary

    # -- writing (by the process that trains) ------------------------------------------------
    def write_status(self, **fields: Any) -> None:
        current: Any = {}
        try:
            current = read_json(self.status_path)
        except (OSError, ValueError):
            pass
        if not isinstance(current, dict) or _status_problem(current):
            current = {}  # a damaged status file is replaced, not merged
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
        if lock_held(self):
            raise self.busy_error()
        if self.status().get("state") in ACTIVE_STATES:
            raise WorkbenchError(f"run {self.id} is still training; stop it first")
        try:
            shutil.rmtree(self.path)
        except OSError as exc:
            raise storage_error(exc, getattr(exc, "filename", None) or self.path, "delete") from None


class EventWriter:
    """Appends events as JSON lines, flushed at once so followers see them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "a", encoding="utf-8")
        except OSError as exc:
            raise storage_error(exc, path) from None

    def write(self, event: Event) -> None:
        line = event.to_json()
        line.setdefault("time", time.time())
        try:
            self._handle.write(json.dumps(line, allow_nan=True) + "\n")
            self._handle.flush()
        except OSError as exc:
            raise storage_error(exc, self.path) from None

    def close(self) -> None:
        try:
            self._handle.close()
        except OSError:
            pass  # the flush failed (disk full): what was written before stays


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
    for suffix in [""] + [f"-{i}" for i in range(2, 1000)]:
        path = root / f"{base}{suffix}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            path.mkdir()
            return Run(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise storage_error(exc, path, "create") from None
    raise WorkbenchError(f"could not create a run directory under {root}")


def list_runs(root: Path) -> list[Run]:
    try:
        if not root.is_dir():
            return []
        runs = [Run(p) for p in root.iterdir() if _holds_a_run(p)]
    except OSError as exc:
        raise WorkbenchError(f"cannot read the runs folder {root}: {exc.strerror}") from None
    return sorted(runs, key=lambda r: r.id)


def _holds_a_run(path: Path) -> bool:
    try:
        return path.is_dir() and (path / "config.json").exists()
    except OSError:
        return True  # a folder we may not look into is listed, as unreadable


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
