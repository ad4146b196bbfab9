"""Start training as a detached process, so closing the app or losing SSH never stops a run.

The child is ``python -P -m workbench train --config setup.toml --run-dir DIR --quiet`` in its own
session (no SIGHUP from the terminal), with its output in ``DIR/train.log``. The app and
``workbench sweep`` follow the run like any other run: through the run directory, never through a pipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from workbench.config import RunConfig
from workbench.runs import Run, new_run, pid_alive

SETUP_FILE = "setup.toml"
LOG_FILE = "train.log"


@dataclass
class Launched:
    """A training process this app started; ``log`` stays readable even if the run folder is removed
    (a run that fails while preparing deletes its folder)."""

    run: Run
    process: subprocess.Popen[bytes]
    log: IO[bytes] = field(repr=False)

    def finished(self) -> int | None:
        return self.process.poll()

    def output(self, limit: int = 4000) -> str:
        try:
            self.log.seek(0)
            data = self.log.read()
        except (OSError, ValueError):
            return ""
        return data.decode("utf-8", errors="replace")[-limit:]

    def close(self) -> None:
        try:
            self.log.close()
        except OSError:
            pass


def train_command(run_dir: Path, setup: Path, processes: int = 1) -> list[str]:
    # -P: ``-m`` would otherwise put the current folder first on sys.path, and a ``numpy.py`` or
    # ``pluggy.py`` lying where the user started the app would run in the trainer. The child keeps
    # the app's working folder, so relative paths in the setup mean what they meant in the form.
    train = ["-m", "workbench", "train", "--config", str(setup), "--run-dir", str(run_dir), "--quiet"]
    if processes <= 1:
        return [sys.executable, "-P", *train]
    # torchrun's workers do not inherit -P; PYTHONSAFEPATH (set by start_training) does the same for them
    return [sys.executable, "-P", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            *train]


def resume_command(run_dir: Path) -> list[str]:
    return [sys.executable, "-P", "-m", "workbench", "train", "--resume", str(run_dir), "--quiet"]


def start_training(config: RunConfig, runs_root: Path, processes: int = 1) -> Launched:
    """Make the run folder, write the setup there and start the trainer detached from this process
    (``processes`` > 1: that many under torchrun, one per GPU)."""
    run = new_run(runs_root, config.dataset, config.arch)
    setup = run.path / SETUP_FILE
    setup.write_text(config.to_toml(), encoding="utf-8")
    log = open(run.path / LOG_FILE, "w+b")  # noqa: SIM115 - kept open to read a failure after the folder is gone
    env = {**os.environ, "PYTHONSAFEPATH": "1"} if processes > 1 else None
    return Launched(run, _detached(train_command(run.path, setup, processes), log, env), log)


def resume_training(run: Run) -> Launched:
    """Continue an interrupted run from its last checkpoint, detached like a new one; its log grows."""
    log = open(run.path / LOG_FILE, "a+b")  # noqa: SIM115 - as in start_training
    return Launched(run, _detached(resume_command(run.path), log), log)


def _detached(command: list[str], log: IO[bytes], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child in its own session (no SIGHUP when the terminal goes), writing into ``log``."""
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True, env=env)


FORCED_MESSAGE = "forced to stop from the app; the checkpoint of the last finished epoch is kept"


def force_stop(run: Run) -> bool:
    """End a run's training process now (SIGKILL), for a step that will not finish: the engine's own
    stop (the control file, then an interrupt between torch operations) cannot end a single torch
    operation of minutes. Checkpoints are written atomically, so the last one stays intact; the
    status says what happened. False when no live training process is known."""
    status = run.status()
    pid = status.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not pid_alive(pid):
        return False
    try:
        os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
    except (ProcessLookupError, PermissionError):
        return False
    run.write_status(state="stopped", pid=None, message=FORCED_MESSAGE)
    return True
