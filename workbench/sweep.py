"""Sweeps: a grid of configurations times seeds, each cell an ordinary detached run.

A sweep lives in ``<runs root>/sweeps/<name>/``::

    sweep.json   the plan (grid, seeds, the resolved setup of every cell) and the run id of each cell
    sweep.md     the results table, sweep.csv the same per configuration (written by report)

Its runs are ordinary run folders under the runs root (``workbench runs`` and the app list them), so
a sweep that is killed loses nothing: run it again (or ``--resume NAME``) and finished cells are
kept, runs still training are waited for, interrupted runs resume from their last checkpoint and
cells never started are started. Scheduling (:class:`Scheduler`) starts at most ``slots`` runs at
once; statistics (:func:`summarize`) read each run's ``results.json``.

No torch here (the app's Sweep screen imports it).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workbench.config import RunConfig, plan_run
from workbench.errors import WorkbenchError
from workbench.events import ACTIVE_STATES
from workbench.headlines import headline_metrics
from workbench.registry import Registry
from workbench.runs import Run, atomic_write_json, pid_alive, read_json

SWEEPS_DIR = "sweeps"
STATE_FILE = "sweep.json"
FORMAT = "workbench-sweep"
VERSION = 1
#: More runs than this need ``--yes``: a typo in a grid should not start a week of training.
MAX_RUNS_WITHOUT_YES = 100
MAX_RUNS = 10_000
#: Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"loss", "perplexity", "bits_per_char"})
#: The rule that marks a difference as inside the seed spread (printed under every table).
SPREAD_RULE = ("≈ = inside the seed spread: the difference between this configuration's mean and the best "
               "one's is no larger than the larger of the two standard deviations (sample sd over seeds, n-1); "
               "such a difference is not resolved by these seeds; a row without a mark differs by more")
DONE_STATES = ("finished", "stopped")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SEED_KEYS = ("seed", "train.seed")


# -- the plan ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Axis:
    """One ``--grid key=v1,v2,...``: a parameter (or ``arch``) and the values it takes."""

    key: str
    values: tuple[str, ...]


def parse_grid(items: Iterable[str]) -> list[Axis]:
    """``--grid`` options as axes; the values are checked later, when each cell's setup is resolved."""
    axes: list[Axis] = []
    for text in items:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise WorkbenchError(f"--grid {text!r}: write KEY=V1,V2,... (e.g. --grid lr=0.001,0.01)")
        if key in _SEED_KEYS:
            raise WorkbenchError("--grid seed: seeds are given with --seeds N or --seeds 1,2,3")
        values = tuple(v.strip() for v in raw.split(","))
        if not any(values):
            raise WorkbenchError(f"--grid {key}= has no values; write --grid {key}=V1,V2,...")
        if not all(values):
            raise WorkbenchError(f"--grid {text!r}: an empty value between commas; remove the extra comma")
        if len(set(values)) != len(values):
            raise WorkbenchError(f"--grid {key}: a value is given twice ({raw})")
        if any(axis.key == key for axis in axes):
            raise WorkbenchError(f"--grid {key} is given twice; put all its values in one --grid {key}=V1,V2")
        axes.append(Axis(key, values))
    return axes


def parse_seeds(text: str | None, default: int = 3) -> list[int]:
    """``--seeds N`` (seeds 0 to N-1) or ``--seeds 1,2,3`` (exactly these; ``7,`` is seed 7 alone)."""
    if text is None:
        return list(range(default))
    text = text.strip()
    try:
        if "," not in text:
            count = int(text)
            if count <= 0:
                raise WorkbenchError(f"--seeds {text}: give a number of seeds of at least 1, or a list like 0,1,2")
            return list(range(count))
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise WorkbenchError(f"--seeds {text!r}: give a number of seeds (5) or a list of seeds (0,1,2)") from None
    if not seeds:
        raise WorkbenchError("--seeds: the list is empty; give a number of seeds (5) or seeds (0,1,2)")
    if any(seed < 0 or seed > 2**31 - 1 for seed in seeds):
        raise WorkbenchError(f"--seeds {text}: seeds go from 0 to {2**31 - 1}")
    if len(set(seeds)) != len(seeds):
        raise WorkbenchError(f"--seeds {text}: a seed is given twice")
    return seeds


@dataclass
class Cell:
    """One configuration with one seed, and the run that trains it once it is started."""

    configuration: int
    seed: int
    config: dict[str, Any]
    run: str | None = None
    pid: int | None = None
    state: str = "pending"
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"configuration": self.configuration, "seed": self.seed, "config": self.config, "run": self.run,
                "pid": self.pid, "state": self.state, "message": self.message}


@dataclass
class Sweep:
    """A planned sweep and where it is kept; ``cells`` are in configuration-major order."""

    name: str
    folder: Path
    runs_root: Path
    dataset: str
    kind: str
    axes: list[Axis]
    seeds: list[int]
    configurations: list[dict[str, str]]
    cells: list[Cell]
    command: str = ""
    created: float = field(default_factory=time.time)

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def label(self, configuration: int) -> str:
        values = self.configurations[configuration]
        return " ".join(f"{key}={value}" for key, value in values.items()) or "(one configuration)"

    def run_of(self, cell: Cell) -> Run | None:
        return Run(self.runs_root / cell.run) if cell.run else None

    def cells_of(self, configuration: int) -> list[Cell]:
        return [cell for cell in self.cells if cell.configuration == configuration]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "name": self.name, "dataset": self.dataset, "kind": self.kind,
                "grid": [[axis.key, list(axis.values)] for axis in self.axes], "seeds": self.seeds,
                "configurations": self.configurations, "command": self.command, "created": self.created,
                "cells": [cell.to_dict() for cell in self.cells]}

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.state_path, self.to_dict())

    def same_plan(self, other: Sweep) -> str | None:
        """Why ``other`` (a new plan under the same name) is not this sweep, or None when it is."""
        if [(a.key, a.values) for a in self.axes] != [(a.key, a.values) for a in other.axes]:
            return "its grid differs"
        if self.seeds != other.seeds:
            return f"its seeds differ ({self.seeds} here)"
        for mine, theirs in zip(self.cells, other.cells, strict=True):
            if _comparable(mine.config) != _comparable(theirs.config):
                return "the setup of its runs differs (--set, --config, --dataset or --arch)"
        return None


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """A cell's setup without what the scheduler decides per launch (threads, device index)."""
    train = {k: v for k, v in config.get("train", {}).items() if k != "threads"}
    return {**config, "train": train, "device": None}


def sweeps_root(runs_root: Path) -> Path:
    return runs_root / SWEEPS_DIR


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise WorkbenchError(f"sweep name {name!r}: use letters, digits, '.', '_' and '-' (at most 100)")
    return name


def default_name(dataset: str, axes: Sequence[Axis]) -> str:
    """The same command gives the same name, so running it again resumes the sweep."""
    keys = "-".join(axis.key for axis in axes) or "seeds"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{dataset}-{keys}")[:100].strip("-.") or "sweep"


def plan_sweep(registry: Registry, *, name: str | None, runs_root: Path, axes: Sequence[Axis], seeds: Sequence[int],
               dataset: str | None = None, arch: str | None = None, device: str | None = None,
               assignments: Sequence[str] = (), config_file: str | None = None, data_dir: str | None = None,
               command: str = "") -> Sweep:
    """Every cell's setup, resolved and validated before anything starts (errors name the configuration)."""
    for text in assignments:
        if text.partition("=")[0].strip() in _SEED_KEYS:
            raise WorkbenchError("--set seed: a sweep's seeds are given with --seeds N or --seeds 1,2,3")
    if data_dir:
        data_dir = str(Path(data_dir).expanduser().resolve())  # the runs may be resumed from another folder
    configurations = [dict(zip([a.key for a in axes], values, strict=True))
                      for values in itertools.product(*(a.values for a in axes))]
    cells: list[Cell] = []
    seen: dict[str, str] = {}
    for index, values in enumerate(configurations):
        label = " ".join(f"{k}={v}" for k, v in values.items())
        grid_sets = [f"{key}={value}" for key, value in values.items() if key != "arch"]
        for seed in seeds:
            try:
                plan = plan_run(registry, dataset=dataset, arch=values.get("arch", arch), device=device,
                                assignments=[*assignments, *grid_sets, f"seed={seed}"], config_file=config_file,
                                data_dir=data_dir)
            except WorkbenchError as exc:
                raise type(exc)(f"{label}: {exc}" if label else str(exc)) from None
            cells.append(Cell(index, seed, plan.config.to_dict()))
        key = repr(_comparable(cells[-1].config))
        if key in seen:
            raise WorkbenchError(f"{label} and {seen[key]} are the same setup; remove one of the values")
        seen[key] = label
    first = RunConfig.from_dict(cells[0].config)
    name = check_name(name or default_name(first.dataset, axes))
    return Sweep(name=name, folder=sweeps_root(runs_root) / name, runs_root=runs_root, dataset=first.dataset,
                 kind=registry.dataset(first.dataset).task, axes=list(axes), seeds=list(seeds),
                 configurations=configurations, cells=cells, command=command)


def check_size(sweep: Sweep, yes: bool) -> None:
    count = len(sweep.cells)
    if count > MAX_RUNS:
        raise WorkbenchError(f"the grid makes {count:,} runs; at most {MAX_RUNS:,} in one sweep: split it")
    if count > MAX_RUNS_WITHOUT_YES and not yes:
        raise WorkbenchError(f"the grid makes {count:,} runs ({len(sweep.configurations)} configurations x "
                             f"{len(sweep.seeds)} seeds); add --yes to start them all, or make the grid smaller")


def load_sweep(reference: str, runs_root: Path) -> Sweep:
    """A sweep by name (under ``<runs root>/sweeps``) or by folder; one line when it is not there or damaged."""
    path = Path(reference)
    folder = path if (path / STATE_FILE).is_file() else sweeps_root(runs_root) / reference
    if not (folder / STATE_FILE).is_file():
        known = ", ".join(s.name for s in list_sweeps(runs_root)[:8]) or "none yet"
        raise WorkbenchError(f"no sweep {reference!r} under {sweeps_root(runs_root)} (sweeps: {known})")
    try:
        raw = read_json(folder / STATE_FILE)
        return _sweep_from_dict(raw, folder, runs_root)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkbenchError(f"{folder / STATE_FILE} is not a readable sweep ({type(exc).__name__}: {exc})"[:300]) from None


def _sweep_from_dict(raw: Any, folder: Path, runs_root: Path) -> Sweep:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError("not a workbench sweep file")
    if raw.get("version") != VERSION:
        raise ValueError(f"sweep file version {raw.get('version')}; this workbench reads {VERSION}")
    cells = [Cell(int(c["configuration"]), int(c["seed"]), dict(c["config"]), c.get("run"), c.get("pid"),
                  str(c.get("state", "pending")), str(c.get("message", ""))) for c in raw["cells"]]
    for cell in cells:
        if cell.run is not None and (not isinstance(cell.run, str) or "/" in cell.run or cell.run in ("", ".", "..")):
            raise ValueError(f"cell run {cell.run!r} is not a run id")
    return Sweep(name=str(raw["name"]), folder=folder, runs_root=runs_root, dataset=str(raw["dataset"]),
                 kind=str(raw["kind"]), axes=[Axis(str(k), tuple(map(str, v))) for k, v in raw["grid"]],
                 seeds=[int(s) for s in raw["seeds"]],
                 configurations=[{str(k): str(v) for k, v in c.items()} for c in raw["configurations"]],
                 cells=cells, command=str(raw.get("command", "")), created=float(raw.get("created", 0.0)))


def list_sweeps(runs_root: Path) -> list[Sweep]:
    root = sweeps_root(runs_root)
    found = []
    try:
        folders = sorted(p for p in root.iterdir() if (p / STATE_FILE).is_file())
    except OSError:
        return []
    for folder in folders:
        try:
            found.append(load_sweep(str(folder), runs_root))
        except WorkbenchError:
            continue
    return found


def open_or_plan(planned: Sweep) -> tuple[Sweep, bool]:
    """The sweep to run: the stored one when ``planned`` is the same plan (resumed: True), else the new one."""
    if not planned.state_path.exists():
        return planned, False
    stored = load_sweep(str(planned.folder), planned.runs_root)
    why = stored.same_plan(planned) if len(stored.cells) == len(planned.cells) else "its grid differs"
    if why:
        raise WorkbenchError(f"sweep {planned.name} already exists and {why}; continue it with `workbench sweep "
                             f"--resume {planned.name}`, or give this one another --name")
    return stored, True


# -- where each cell stands ------------------------------------------------------------------------
def cell_state(sweep: Sweep, cell: Cell) -> str:
    """pending, starting, running, paused, interrupted, finished, stopped or failed (from the run folder)."""
    run = sweep.run_of(cell)
    if run is None:
        return "pending"
    if not run.path.is_dir():
        return "failed" if cell.state == "failed" else "pending"  # failed while preparing: the folder is gone
    state = str(run.status().get("state"))
    if state in ("unknown", "interrupted") and launched_alive(cell.pid, run):
        return "starting"  # launched, still importing: no lock or status yet
    if state == "unknown":
        return "interrupted"
    return state


def launched_alive(pid: int | None, run: Run) -> bool:
    """Whether the process a sweep started for ``run`` still lives (it may not hold the run's lock
    yet: it is still importing). Where /proc shows command lines, a recycled pid does not count."""
    if pid is None or not pid_alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): the pid is all there is
    return run.id.encode() in command


def cell_result(sweep: Sweep, cell: Cell) -> dict[str, Any] | None:
    """The metrics the run reports (test split, else validation), or None before it has ended."""
    run = sweep.run_of(cell)
    results = run.results() if run is not None else None
    if not results or results.get("state") not in DONE_STATES:
        return None
    metrics = results.get("metrics") or results.get("valid_metrics")
    return metrics if isinstance(metrics, dict) and metrics else None


# -- scheduling ------------------------------------------------------------------------------------
class Handle(Protocol):
    """A started training process, as the scheduler sees it."""

    run: Run

    def finished(self) -> int | None: ...

    def output(self, limit: int = 4000) -> str: ...


class Launcher(Protocol):
    def start(self, config: RunConfig, runs_root: Path) -> Handle: ...

    def resume(self, run: Run) -> Handle: ...


@dataclass
class Adopted:
    """A run a previous sweep process started that is still training: followed through its folder."""

    run: Run
    pid: int | None

    def finished(self) -> int | None:
        return None if self.run.trainer_alive() or launched_alive(self.pid, self.run) else 0

    def output(self, limit: int = 4000) -> str:
        return ""


class DetachedLauncher:
    """Each cell an ordinary detached run (:mod:`workbench.launch`)."""

    def start(self, config: RunConfig, runs_root: Path) -> Handle:
        from workbench.launch import start_training

        return start_training(config, runs_root)

    def resume(self, run: Run) -> Handle:
        from workbench.launch import resume_training

        return resume_training(run)


@dataclass(frozen=True)
class Slots:
    """How many runs at once, and with how many threads and on which device each."""

    count: int
    threads: int
    devices: tuple[str, ...] = ()
    reason: str = ""


def machine_slots(device: str, parallel: int | None = None, cuda_devices: int | None = None) -> Slots:
    """One run per free core on a CPU box (free: cores this process may use minus the 1-minute load),
    one per device on a GPU box; ``parallel`` overrides. A run's threads never overlap another's."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cuda_devices is None and (device == "auto" or device.startswith("cuda")):
        cuda_devices = _cuda_count()
    if cuda_devices and device in ("auto", "cuda"):
        count = parallel or cuda_devices
        devices = tuple(f"cuda:{i % cuda_devices}" for i in range(count))
        return Slots(count, max(1, cores // count), devices, f"{cuda_devices} GPU(s): one run per device")
    if parallel:
        return Slots(parallel, max(1, cores // parallel), (), f"--parallel {parallel} on {cores} core(s)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    free = max(1, cores - int(load + 0.5))
    return Slots(free, 1, (), f"{cores} core(s), load {load:.1f}: {free} free, one single-threaded run each")


def _cuda_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # no torch build with CUDA: a CPU box
        return 0


def launch_config(cell: Cell, slots: Slots, slot: int) -> RunConfig:
    """The cell's setup with the threads and device of the slot it runs in (unless the user set them)."""
    config = RunConfig.from_dict(cell.config)
    if not config.train.get("threads"):
        config.train = {**config.train, "threads": slots.threads}
    if slots.devices and config.device in ("auto", "cuda"):
        config.device = slots.devices[slot]
    return config


Notify = Callable[[str, Cell], None]


class Scheduler:
    """Starts the cells that need a run, at most ``slots.count`` at once, until every cell has ended.

    A cell counts as running from the moment its process is started until that process has ended
    (a previous sweep's runs until their trainer is gone), so no two runs ever share a slot."""

    def __init__(self, sweep: Sweep, launcher: Launcher, slots: Slots, *, poll_seconds: float = 0.5,
                 notify: Notify | None = None, retry_failed: bool = False) -> None:
        self.sweep, self.launcher, self.slots = sweep, launcher, slots
        self.poll_seconds = poll_seconds
        self.notify: Notify = notify or (lambda what, cell: None)
        self.retry_failed = retry_failed
        self.running: dict[int, tuple[Handle, int]] = {}  # cell index -> (handle, slot)
        self.peak = 0
        self.retry: list[int] = []  # cells whose run died (killed, out of memory): resumed once more
        self._retried: set[int] = set()

    def todo(self) -> list[int]:
        """Cells to start or resume, after adopting the runs of a previous sweep process still training."""
        pending = []
        for index, cell in enumerate(self.sweep.cells):
            state = cell_state(self.sweep, cell)
            if state in (*ACTIVE_STATES, "starting"):
                run = self.sweep.run_of(cell)
                assert run is not None
                self.running[index] = (Adopted(run, cell.pid), self._free_slot())
                self.notify("adopted", cell)
            elif state in DONE_STATES or (state == "failed" and not self.retry_failed):
                cell.state = state
            else:
                pending.append(index)
        return pending

    def _free_slot(self) -> int:
        used = {slot for _, slot in self.running.values()}
        return next(i for i in itertools.count() if i not in used)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        pending = self.todo()
        while pending or self.running:
            self._settle()
            pending[:0], self.retry = self.retry, []
            while pending and len(self.running) < self.slots.count and not should_stop():
                self._launch(pending.pop(0))
            self.peak = max(self.peak, len(self.running))
            if should_stop():
                return
            if self.running:
                time.sleep(self.poll_seconds)

    def _launch(self, index: int) -> None:
        cell = self.sweep.cells[index]
        slot = self._free_slot()
        previous = self.sweep.run_of(cell)
        interrupted = previous is not None and previous.path.is_dir() and cell_state(self.sweep, cell) == "interrupted"
        if interrupted and previous is not None and previous.checkpoint_path("last").exists():
            handle = self.launcher.resume(previous)
            what = "resumed"
        else:
            if interrupted and previous is not None:  # killed before its first checkpoint: nothing to keep
                shutil.rmtree(previous.path, ignore_errors=True)
            handle = self.launcher.start(launch_config(cell, self.slots, slot), self.sweep.runs_root)
            what = "started"
        cell.run, cell.state, cell.message = handle.run.id, "running", ""
        process = getattr(handle, "process", None)
        cell.pid = getattr(process, "pid", None)
        self.running[index] = (handle, slot)
        self.sweep.save()
        self.notify(what, cell)

    def _settle(self) -> None:
        """Record the cells whose process has ended."""
        for index, (handle, _) in list(self.running.items()):
            if handle.finished() is None:
                continue
            del self.running[index]
            cell = self.sweep.cells[index]
            cell.pid = None
            if not handle.run.path.is_dir():
                cell.state = "failed"
                lines = [line for line in handle.output().splitlines() if line.strip()]
                cell.message = lines[-1] if lines else "the run ended before it started"
            else:
                status = handle.run.status()
                cell.state = str(status.get("state"))
                cell.message = str(status.get("message") or "")
            if hasattr(handle, "close"):
                handle.close()
            if cell.state == "interrupted" and index not in self._retried:
                self._retried.add(index)  # its process was killed: once more from its checkpoint
                self.retry.append(index)
            self.sweep.save()
            self.notify(cell.state, cell)


def stop_sweep(sweep: Sweep) -> list[str]:
    """Ask every run of the sweep that is training to stop (it keeps its checkpoint); their ids."""
    asked = []
    for cell in sweep.cells:
        run = sweep.run_of(cell)
        if run is not None and cell_state(sweep, cell) in ACTIVE_STATES:
            run.request("stop")
            asked.append(run.id)
    return asked


# -- statistics ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """Values of one metric over seeds: mean, sample standard deviation (None for one value), min, max."""

    n: int
    mean: float
    std: float | None
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        values = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        if not values:
            return None
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(len(values), statistics.fmean(values), std, min(values), max(values))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "min": self.low, "max": self.high}


@dataclass
class Row:
    """One configuration: its metrics over seeds and how it compares with the best configuration."""

    configuration: int
    label: str
    values: dict[str, str]
    planned: int
    done: int
    per_seed: dict[int, float | None]
    metrics: dict[str, Spread]
    best: bool = False
    delta: float | None = None
    verdict: str = ""  # best, inside, outside, or n<2 (too few seeds to say)

    def to_dict(self) -> dict[str, Any]:
        return {"configuration": self.values, "label": self.label, "runs": self.done, "planned": self.planned,
                "per_seed": {str(k): v for k, v in self.per_seed.items()},
                "metrics": {k: s.to_dict() for k, s in self.metrics.items()}, "best": self.best,
                "delta_to_best": self.delta, "vs_best": self.verdict}


@dataclass
class Report:
    sweep: Sweep
    main: str
    higher_is_better: bool
    metrics: list[str]
    rows: list[Row]
    states: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"sweep": self.sweep.name, "folder": str(self.sweep.folder), "dataset": self.sweep.dataset,
                "task": self.sweep.kind, "seeds": self.sweep.seeds, "command": self.sweep.command,
                "main_metric": self.main, "higher_is_better": self.higher_is_better, "metrics": self.metrics,
                "rule": SPREAD_RULE, "states": self.states, "configurations": [r.to_dict() for r in self.rows],
                "cells": [{"configuration": c.configuration, "seed": c.seed, "run": c.run,
                           "state": cell_state(self.sweep, c), "message": c.message} for c in self.sweep.cells]}


def inside_spread(a: Spread, b: Spread) -> bool | None:
    """The rule of :data:`SPREAD_RULE`; None when either side has fewer than two seeds."""
    if a.std is None or b.std is None:
        return None
    return abs(a.mean - b.mean) <= max(a.std, b.std)


def summarize(sweep: Sweep) -> Report:
    """Per configuration, mean and spread of the main metric and the other headline metrics over seeds."""
    headline = headline_metrics(sweep.kind)
    main = headline[0] if headline else "loss"
    metrics = [main, *[m for m in ("loss", *headline) if m != main]]
    higher = main not in LOWER_IS_BETTER
    states: dict[str, int] = {}
    rows = []
    for index, values in enumerate(sweep.configurations):
        per_metric: dict[str, list[float]] = {m: [] for m in metrics}
        per_seed: dict[int, float | None] = {}
        for cell in sweep.cells_of(index):
            state = cell_state(sweep, cell)
            states[state] = states.get(state, 0) + 1
            result = cell_result(sweep, cell)
            per_seed[cell.seed] = result.get(main) if result else None
            for metric in metrics:
                if result and isinstance(result.get(metric), (int, float)):
                    per_metric[metric].append(float(result[metric]))
        spreads = {m: s for m, s in ((m, Spread.of(v)) for m, v in per_metric.items()) if s is not None}
        done = spreads[main].n if main in spreads else 0
        rows.append(Row(index, sweep.label(index), values, len(sweep.seeds), done, per_seed, spreads))
    _compare(rows, main, higher)
    return Report(sweep, main, higher, metrics, rows, states)


def _compare(rows: list[Row], main: str, higher: bool) -> None:
    scored = [row for row in rows if main in row.metrics]
    if not scored:
        return
    best = (max if higher else min)(scored, key=lambda r: r.metrics[main].mean)
    best.best, best.verdict, best.delta = True, "best", 0.0
    for row in scored:
        if row is best:
            continue
        row.delta = row.metrics[main].mean - best.metrics[main].mean
        inside = inside_spread(row.metrics[main], best.metrics[main])
        row.verdict = "n<2" if inside is None else ("inside" if inside else "outside")


# -- tables ----------------------------------------------------------------------------------------
def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4f}"


def spread_text(spread: Spread | None, with_range: bool = True) -> str:
    if spread is None:
        return "-"
    text = fmt(spread.mean) + (f" ± {fmt(spread.std)}" if spread.std is not None else "")
    return text + (f" [{fmt(spread.low)}, {fmt(spread.high)}]" if with_range and spread.n > 1 else "")


MARKS = {"best": "best", "inside": "≈", "outside": "", "n<2": "?", "": ""}


def table_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """The results table as header and text cells (shared by the text, Markdown and app tables)."""
    main = report.main
    header = ["configuration", "runs", f"{main} mean ± sd [min, max]", "Δ best", "vs best",
              *[f"{m} mean ± sd" for m in report.metrics[1:]]]
    body = []
    for row in report.rows:
        delta = "-" if row.delta is None else ("0" if row.best else f"{row.delta:+.4f}")
        body.append([row.label, f"{row.done}/{row.planned}", spread_text(row.metrics.get(main)), delta,
                     MARKS[row.verdict], *[spread_text(row.metrics.get(m), False) for m in report.metrics[1:]]])
    return header, body


def footnote(report: Report) -> str:
    direction = "higher" if report.higher_is_better else "lower"
    return (f"{report.main} on the test split (validation where the dataset has none); {direction} is better. "
            f"{SPREAD_RULE}. ? = fewer than two seeds finished.")


def render_text(report: Report) -> str:
    header, body = table_rows(report)
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *body)]
    states = ", ".join(f"{n} {state}" for state, n in sorted(report.states.items()))
    return "\n".join([f"sweep {report.sweep.name}: {report.sweep.dataset}, {len(report.sweep.configurations)} "
                      f"configurations x {len(report.sweep.seeds)} seeds ({states})", *lines, "", footnote(report)])


def render_markdown(report: Report) -> str:
    header, body = table_rows(report)
    escape = str.maketrans({"|": "\\|"})
    lines = ["| " + " | ".join(c.translate(escape) for c in line) + " |" for line in (header, *body)]
    lines.insert(1, "|" + "---|" * len(header))
    sweep = report.sweep
    intro = [f"# Sweep {sweep.name}", "", f"{sweep.dataset} ({sweep.kind}), seeds {', '.join(map(str, sweep.seeds))}.",
             ""]
    if sweep.command:
        intro += ["```sh", sweep.command, "```", ""]
    return "\n".join([*intro, *lines, "", footnote(report), ""])


def render_csv(report: Report) -> str:
    import csv
    import io

    keys = [axis.key for axis in report.sweep.axes]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    stats = [f"{m}_{s}" for m in report.metrics for s in ("mean", "std", "min", "max", "n")]
    writer.writerow(["configuration", *keys, "runs", "planned", *stats, "delta_to_best", "vs_best"])
    for row in report.rows:
        cells: list[Any] = []
        for metric in report.metrics:
            spread = row.metrics.get(metric)
            cells += ["", "", "", "", 0] if spread is None else [spread.mean, "" if spread.std is None else spread.std,
                                                                  spread.low, spread.high, spread.n]
        writer.writerow([row.label, *[row.values.get(k, "") for k in keys], row.done, row.planned, *cells,
                         "" if row.delta is None else row.delta, row.verdict])
    return buffer.getvalue()


def write_tables(report: Report) -> list[Path]:
    """sweep.md and sweep.csv in the sweep's folder."""
    written = []
    for name, text in (("sweep.md", render_markdown(report)), ("sweep.csv", render_csv(report))):
        path = report.sweep.folder / name
        from workbench.runs import atomic_write_bytes

        atomic_write_bytes(path, text.encode("utf-8"))
        written.append(path)
    return written


# -- the live matrix (status and the app) ------------------------------------------------------------
def render_matrix(sweep: Sweep) -> str:
    """``workbench sweep status``: configuration x seed, each cell its main metric or its state."""
    header = ["configuration", *[f"seed {seed}" for seed in sweep.seeds]]
    body = [[label, *texts] for label, texts in matrix(sweep)]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in (header, *body))


def matrix(sweep: Sweep) -> list[tuple[str, list[str]]]:
    """Per configuration, one short text per seed: the main metric when done, else the state (and epoch)."""
    report_main = (headline_metrics(sweep.kind) or ("loss",))[0]
    rows = []
    for index in range(len(sweep.configurations)):
        texts = []
        for cell in sweep.cells_of(index):
            state = cell_state(sweep, cell)
            result = cell_result(sweep, cell) if state in DONE_STATES else None
            if result and isinstance(result.get(report_main), (int, float)):
                texts.append(fmt(float(result[report_main])) + ("" if state == "finished" else " (stopped)"))
            elif state in ("running", "paused"):
                run = sweep.run_of(cell)
                status = run.status() if run else {}
                texts.append(f"{'run' if state == 'running' else state} {status.get('epoch') or 0}/"
                             f"{status.get('epochs') or '?'}")
            else:
                texts.append(state)
        rows.append((sweep.label(index), texts))
    return rows
