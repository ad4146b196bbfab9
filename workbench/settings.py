"""Paths and switches from the environment, read in one place.

Every ``WORKBENCH_*`` variable, and the placement torchrun gives each process it starts (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), is read here and nowhere else, so ``docs`` and ``--help`` can list
them from one table and a test can change one with ``monkeypatch.setenv``: :func:`current` reads the
environment anew on each call (it is a handful of dictionary lookups), never at import time.
No torch, no Textual.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Every variable workbench reads, with what it does (``workbench --help`` and docs/engine.md show it).
VARIABLES: dict[str, str] = {
    "WORKBENCH_DATA_DIR": "a local folder (or file) holding dataset files, searched before downloading",
    "WORKBENCH_DATA_MIRROR": "a base URL that replaces each dataset's canonical download host",
    "WORKBENCH_CACHE_DIR": "where downloads and tokenised corpora are cached (default ./datasets)",
    "WORKBENCH_RUNS_DIR": "where runs are written (default ./checkpoints)",
    "WORKBENCH_DEFAULT_DATASET": "the dataset the app opens on (default names)",
    "WORKBENCH_KEYS": "the key-binding file (default $XDG_CONFIG_HOME/workbench/keys.toml)",
    "WORKBENCH_DISABLE_PLUGINS": "1: load only the built-in plugins",
    "WORKBENCH_PLUGINS": "a,b: load only these third-party plugins (and the built-ins)",
    "WORKBENCH_STRICT_PLUGINS": "1: stop at the first broken plugin instead of skipping it",
    "WORKBENCH_PLUGINS_DIR": "folders (separated by the path separator) of loose plugin files",
    "WORKBENCH_TRACE_PLUGINS": "1: print every plugin hook call and its result on stderr",
    "WORKBENCH_PLUGIN_TIMEOUT": "seconds each plugin may take to import (and each hook call); a plugin "
                                "that takes longer is reported and skipped (default 10; 0: no limit)",
    "WORKBENCH_DIST_TIMEOUT": "seconds a process of a distributed run waits for the others before it "
                              "gives up with a message (default 1800)",
}

#: What torchrun (or another launcher of torch.distributed) tells each process it starts.
LAUNCHER_VARIABLES: dict[str, str] = {
    "RANK": "set by torchrun: this process's number among all processes of a run (0 writes the run folder)",
    "WORLD_SIZE": "set by torchrun: how many processes train the run together",
    "LOCAL_RANK": "set by torchrun: this process's number on its machine (its GPU, cuda:LOCAL_RANK)",
    "MASTER_ADDR": "set by torchrun: the host of rank 0, where the processes meet",
    "MASTER_PORT": "set by torchrun: the port on MASTER_ADDR where the processes meet",
}

#: How long a plugin may take to import when WORKBENCH_PLUGIN_TIMEOUT is unset (or not a number).
DEFAULT_PLUGIN_TIMEOUT = 10.0
#: How long a process of a distributed run waits for the others (torch's own default for gloo).
DEFAULT_DIST_TIMEOUT = 1800.0

_TRUE = {"1", "true", "yes", "on"}


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A non-negative number of seconds; anything else (empty, a word, negative, NaN) is ``default``."""
    try:
        value = float(env.get(name, "").strip())
    except ValueError:
        return default
    return value if value >= 0 and value != float("inf") else default


def _count(env: Mapping[str, str], name: str) -> int | None:
    """A non-negative whole number, or None (unset or not one)."""
    value = env.get(name, "").strip()
    return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class Launch:
    """Where a launcher (torchrun) put this process: one process of one (``world_size`` 1) without one."""

    world_size: int = 1
    rank: int | None = None
    local_rank: int = 0
    master_addr: str | None = None
    master_port: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Launch:
        return cls(
            world_size=_count(env, "WORLD_SIZE") or 1,
            rank=_count(env, "RANK"),
            local_rank=_count(env, "LOCAL_RANK") or 0,
            master_addr=env.get("MASTER_ADDR", "").strip() or None,
            master_port=env.get("MASTER_PORT", "").strip() or None,
        )


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "").strip()
    return Path(value).expanduser() if value else None


@dataclass(frozen=True)
class Settings:
    """What the environment says; every field has the default a user gets with nothing set."""

    data_dir: Path | None = None
    data_mirror: str | None = None
    cache_dir: Path = field(default_factory=lambda: Path.cwd() / "datasets")
    runs_dir: Path = field(default_factory=lambda: Path.cwd() / "checkpoints")
    default_dataset: str = "names"
    keys_file: Path = field(default_factory=lambda: Path.home() / ".config" / "workbench" / "keys.toml")
    disable_plugins: bool = False
    only_plugins: frozenset[str] = frozenset()
    strict_plugins: bool = False
    plugin_dirs: tuple[Path, ...] = ()
    trace_plugins: bool = False
    #: Seconds a plugin may take to import, and each of its hook calls (0: no limit).
    plugin_timeout: float = DEFAULT_PLUGIN_TIMEOUT
    #: Seconds a process of a distributed run waits for the others.
    dist_timeout: float = DEFAULT_DIST_TIMEOUT
    #: The launcher's placement of this process (torchrun's RANK, WORLD_SIZE, ...).
    launch: Launch = field(default_factory=Launch)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        config_home = _path(env, "XDG_CONFIG_HOME") or Path.home() / ".config"
        return cls(
            data_dir=_path(env, "WORKBENCH_DATA_DIR"),
            data_mirror=env.get("WORKBENCH_DATA_MIRROR", "").strip() or None,
            cache_dir=_path(env, "WORKBENCH_CACHE_DIR") or Path.cwd() / "datasets",
            runs_dir=_path(env, "WORKBENCH_RUNS_DIR") or Path.cwd() / "checkpoints",
            default_dataset=env.get("WORKBENCH_DEFAULT_DATASET", "").strip() or "names",
            keys_file=_path(env, "WORKBENCH_KEYS") or config_home / "workbench" / "keys.toml",
            disable_plugins=_flag(env, "WORKBENCH_DISABLE_PLUGINS"),
            only_plugins=frozenset(n.strip() for n in env.get("WORKBENCH_PLUGINS", "").split(",") if n.strip()),
            strict_plugins=_flag(env, "WORKBENCH_STRICT_PLUGINS"),
            plugin_dirs=tuple(
                Path(part).expanduser() for part in env.get("WORKBENCH_PLUGINS_DIR", "").split(os.pathsep)
                if part.strip()
            ),
            trace_plugins=_flag(env, "WORKBENCH_TRACE_PLUGINS"),
            plugin_timeout=_seconds(env, "WORKBENCH_PLUGIN_TIMEOUT", DEFAULT_PLUGIN_TIMEOUT),
            dist_timeout=_seconds(env, "WORKBENCH_DIST_TIMEOUT", DEFAULT_DIST_TIMEOUT) or DEFAULT_DIST_TIMEOUT,
            launch=Launch.from_env(env),
        )


def current() -> Settings:
    """The settings of this moment's environment."""
    return Settings.from_env()


def add_plugin_dirs(folders: list[str]) -> None:
    """Put ``folders`` first in ``WORKBENCH_PLUGINS_DIR``, so this process and every training
    process it starts see the same loose plugins (``workbench --plugins-dir``)."""
    existing = [str(p) for p in current().plugin_dirs]
    os.environ["WORKBENCH_PLUGINS_DIR"] = os.pathsep.join(dict.fromkeys([*folders, *existing]))


#: cuBLAS's workspace setting that makes its matrix products reproducible (NVIDIA's cuBLAS docs,
#: "Results reproducibility"); torch refuses deterministic CUDA matmuls without it.
DETERMINISTIC_CUBLAS_WORKSPACE = ":4096:8"


def use_deterministic_cublas() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` for ``train.deterministic`` unless the user chose a value;
    cuBLAS reads it when it starts, so this runs before a run's first CUDA operation."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", DETERMINISTIC_CUBLAS_WORKSPACE)
