"""The training engine: knows tasks, models, optimisers and run directories, nothing about Textual.

:func:`train` is what ``workbench train`` and the TUI's training process call. Progress goes to the
run's ``events.jsonl`` and to an optional ``on_event`` callback; another process can pause, resume
or stop a run through :meth:`workbench.runs.Run.request`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench import __version__, distributed
from workbench.accelerate import compile_model, deterministic_mode, flatten_recurrent_weights
from workbench.api import LoadContext
from workbench.config import RunConfig, resume_refusal, stored_config
from workbench.devices import resolve_device
from workbench.distributed import SingleProcess
from workbench.errors import CheckpointError, DataError, WorkbenchError
from workbench.events import (
    DownloadEvent,
    EndEvent,
    EpochEvent,
    Event,
    MemoryEvent,
    StartEvent,
    StateEvent,
    StatusEvent,
    StepEvent,
)
from workbench.model_check import check_first_batch
from workbench.position import status_fields
from workbench.precision import autocast_context, make_scaler, resolve_precision, trial_step
from workbench.registry import Registry, get_registry, plugin_code
from workbench.resources import available_memory_bytes, estimate_step_bytes, format_bytes
from workbench.runs import (
    EventWriter,
    Run,
    RunLock,
    atomic_write_json,
    load_checkpoint,
    new_run,
    remove_stale_temporaries,
    save_checkpoint,
)
from workbench.schedules import ONE_CYCLE, make_one_cycle, step_batch, steps_per_batch
from workbench.settings import current as current_settings
from workbench.sinks import EventSinks, sink_names
from workbench.step_stats import Diverged, EpochTotals, StepWindow, WindowSums, gradient_norm
from workbench.system_metrics import SystemSampler
from workbench.tasks import check_task_state, task_class
from workbench.tasks.base import Task
from workbench.training import EarlyStopping, LossWatch, StopWatchdog, TrainOptions

EventCallback = Callable[[Event], None]

#: How long a step may go on after a stop request (or the time limit) before it is interrupted.
STOP_GRACE_SECONDS = 5.0
STOP_REQUESTED = "stop requested"
TIME_LIMIT = "time limit"


def choose_threads(requested: int) -> int:
    """Intra-op threads. On small machines leave a core free: an RNN step with every core busy in
    torch while another process (the UI, a data loader) also wants one is many times slower."""
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    if cores <= 2:
        return 1
    return min(cores - 1, 8)


def configure_threads(requested: int) -> int:
    threads = choose_threads(requested)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process (or parallel work has started); harmless
    return threads


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def load_dataset(config: RunConfig, registry: Registry, progress: Callable[..., None] | None = None,
                 status: Callable[[str], None] | None = None) -> Any:
    spec = registry.dataset(config.dataset)
    settings = current_settings()
    context = LoadContext(
        data_dir=Path(config.data_dir) if config.data_dir else settings.data_dir,
        cache_dir=settings.cache_dir,
        mirror=settings.data_mirror,
        progress=progress,
        seed=int(TrainOptions.from_config(config.train).seed),
        status=status,
    )
    loader = registry.plugin_function(spec)
    with plugin_code(f"{registry.named(spec)} while loading"):
        return loader(context, dict(config.data))


def build_model(config: RunConfig, task: Task, registry: Registry) -> nn.Module:
    spec = registry.architecture(config.arch)
    builder = registry.plugin_function(spec)
    with plugin_code(f"{registry.named(spec)} while building the model"):
        model = builder(task.model_context(), dict(config.model))
    if not isinstance(model, nn.Module):
        raise WorkbenchError(f"architecture {spec.name!r} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def make_optimizer(model: nn.Module, options: TrainOptions) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    name, lr, wd = options.optimizer, options.lr, options.weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=options.momentum, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise WorkbenchError(f"unknown optimizer {name!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, options: TrainOptions, higher_is_better: bool,
                   steps_per_epoch: int = 1) -> Any:
    name = options.schedule
    if name == ONE_CYCLE:
        return make_one_cycle(optimizer, options.lr, options.epochs, steps_per_epoch)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=options.step_size, gamma=options.gamma)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.epochs)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max" if higher_is_better else "min", factor=options.gamma, patience=1)
    return None


def apply_resume_changes(optimizer: torch.optim.Optimizer, scheduler: Any, stored: dict[str, Any],
                         options: TrainOptions) -> None:
    """Make the values a resume may change count: the restored optimiser and schedule states carry
    the old ones. A new ``lr`` scales the current rate by new/old, so a schedule keeps its place
    (with no schedule the rate simply becomes ``lr``)."""
    old_lr = stored.get("lr")
    scheduled = scheduler is not None and isinstance(old_lr, (int, float)) and old_lr > 0
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * options.lr / old_lr if scheduled else options.lr
        if "initial_lr" in group:
            group["initial_lr"] = options.lr
        if "weight_decay" in group:
            group["weight_decay"] = options.weight_decay
        if "momentum" in group:
            group["momentum"] = options.momentum
    if scheduler is None:
        return
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [options.lr for _ in optimizer.param_groups]
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        scheduler.T_max = options.epochs  # the cosine ends with the run, however long it now is
    if hasattr(scheduler, "_last_lr"):
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def step_scheduler(scheduler: Any, score: float) -> None:
    """Once per epoch; the plateau schedule watches the epoch's score (one-cycle moves per batch)."""
    if scheduler is None or steps_per_batch(scheduler):
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(score)
    else:
        scheduler.step()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def device_memory_bytes(device: torch.device) -> int | None:
    """Memory free for a new run on ``device`` (None when it cannot be told)."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    if device.type == "cpu":
        return available_memory_bytes()
    return None


def estimate_setup(config: RunConfig, registry: Registry | None = None) -> tuple[int, int] | None:
    """What the app's setup form shows before a run: the parameters of ``config``'s model, built on
    the meta device (no memory, no time) for its task kind's small synthetic dataset, so a vocabulary's
    share is left out; and the bytes per step its weights, gradients and optimiser state take. None when
    the kind has no synthetic data or the architecture cannot be built on the meta device."""
    registry = registry or get_registry()
    try:
        task_cls = task_class(registry.dataset(config.dataset).task)
        data = task_cls.synthetic_data()
        if data is None:
            return None
        task = task_cls.from_data(data)
        with torch.device("meta"):
            model = build_model(config, task, registry)
    except Exception:  # a plugin that cannot build on the meta device: no estimate, nothing else
        return None
    parameters = count_parameters(model)
    options = TrainOptions.from_config(config.train)
    return parameters, estimate_step_bytes(parameters, options.optimizer, 0, 0, {})


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def hardware_name(device: torch.device) -> str:
    return "CPU" if device.type == "cpu" else f"GPU ({device})" if device.type == "cuda" else str(device)


@dataclass
class TrainResult:
    run: Run
    state: str
    checkpoint: Path | None
    metrics: dict[str, Any]
    valid_metrics: dict[str, Any]
    best_epoch: int | None
    epochs_completed: int
    seconds: float
    samples_per_second: float
    message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run.id,
            "run_dir": str(self.run.path),
            "state": self.state,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "metrics": self.metrics,
            "valid_metrics": self.valid_metrics,
            "best_epoch": self.best_epoch,
            "epochs_completed": self.epochs_completed,
            "seconds": round(self.seconds, 3),
            "samples_per_second": round(self.samples_per_second, 1),
            "message": self.message,
        }


@dataclass
class Training:
    """What one run trains with, made once by :meth:`Trainer._prepare`."""

    task: Task
    train_set: Any
    valid_set: Any
    test_set: Any
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    generator: torch.Generator
    dataset_info: dict[str, Any]
    #: The context of each training forward pass (autocast or nothing).
    autocast: Any
    #: The arithmetic the forward pass runs in ("fp32", "bf16" or "fp16"), after the trial step.
    precision: str = "fp32"
    #: fp16's gradient scaler (None in the other precisions).
    scaler: Any = None
    #: The estimated peak memory of one training step, in bytes.
    memory_estimate: int = 0
    #: The parameters the optimiser trains (their gradient norm is clipped and reported).
    params: list[nn.Parameter] = field(default_factory=list)
    #: The module the training steps call: ``model``, its ``torch.compile`` form (same weights), or
    #: DistributedDataParallel around it (several processes); evaluation and checkpoints always use
    #: ``model`` itself.
    step_model: nn.Module | None = None
    #: Further test splits (``ClassificationData.extra_tests``), evaluated with the best weights at the end.
    extra_tests: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if self.step_model is None:
            self.step_model = self.model


@dataclass
class RunProgress:
    """Where the run stands across epochs (and, through checkpoints, across resumes)."""

    start_epoch: int = 1
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds_before: float = 0.0  # wall time of the runs this one resumes
    started: float = field(default_factory=time.monotonic)
    samples_seen: int = 0
    train_seconds: float = 0.0
    last_valid: dict[str, Any] = field(default_factory=dict)

    def seconds(self) -> float:
        return self.seconds_before + (time.monotonic() - self.started)


@dataclass
class EpochRun:
    """What training one epoch gave: its metrics, how long it took, whether it was cut short."""

    metrics: dict[str, float]
    samples: int
    seconds: float
    stopped: bool
    #: Steps trained in the epoch and steps the whole epoch has.
    steps: int = 0
    total_steps: int = 0


class Trainer:
    """One training run, from resolved config to finished run directory.

    :meth:`_train` reads top to bottom like a training script: prepare, restore, then per epoch
    train, evaluate, checkpoint and decide whether to go on; then the final evaluation and results.
    """

    def __init__(
        self,
        config: RunConfig,
        registry: Registry | None = None,
        runs_root: Path | None = None,
        on_event: EventCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        resume: Run | None = None,
        run: Run | None = None,
        lock: RunLock | None = None,
        world: SingleProcess | None = None,
    ) -> None:
        self.config = config
        #: The processes training this run together (one, without torchrun): see workbench/distributed.py.
        self.world = world or distributed.current()
        self._lock = lock  # taken by RunPlan.begin() for a resume; else train() takes it
        self.registry = registry or get_registry()
        self.on_event = on_event
        self.should_stop = should_stop or (lambda: False)
        self.resume_run = resume
        self.device = self.world.device(resolve_device(config.device))  # fail before a run directory is made
        if resume is not None:
            self.run = resume
        elif run is not None:
            self.run = run
        elif not self.world.distributed:
            self.run = new_run(runs_root or current_settings().runs_dir, config.dataset, config.arch)
        else:  # made by rank 0; the other processes learn its path
            made = new_run(runs_root or current_settings().runs_dir, config.dataset, config.arch) \
                if self.world.is_main else None
            self.run = Run(Path(self.world.share(made and str(made.path))))
        self._events: EventWriter | None = None
        self._sinks: EventSinks | None = None
        self._last_control_check = 0.0
        self._last_download = 0.0
        self._started_at: float | None = None
        self._deadline: float | None = None
        #: Seconds spent paused so far: left out of samples/s, ETA and epoch seconds.
        self._paused_seconds = 0.0
        self._last_position_write = 0.0
        self._watchdog: StopWatchdog | None = None
        self._loss_watch = LossWatch()
        #: Optimisation steps the run has taken (all epochs, resumes included), once training ends.
        self.global_step = 0
        self._memory_probe: Any = None
        self._memory_off = False
        #: Seconds a step may go on after a stop request before it is interrupted.
        self.stop_grace = STOP_GRACE_SECONDS
        #: CPU, memory and GPU use, sent as system events at the first step and every few seconds.
        self.system = SystemSampler(self.device)

    @property
    def options(self) -> TrainOptions:
        return TrainOptions.from_config(self.config.train)

    # -- events ------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        if not self.world.is_main:
            return  # rank 0 tells the run's story for all processes
        if event.time is None:
            event = replace(event, time=time.time())
        if self._events is not None:
            self._events.write(event)
        if self.on_event is not None:
            self.on_event(event)
        if self._sinks is not None:
            for problem in self._sinks.send(event):  # a failing sink is dropped; the run goes on
                self.emit(StatusEvent(message=problem))

    def _poll_control(self, force: bool = False) -> str | None:
        """"stop", or None; blocks while paused. Checks the control file at most a few times a second.
        All processes of a distributed run act on the same decision (rank 0 reads the file)."""
        command = self.world.agree(self._control_command(force))
        if command != "pause":
            return command
        self._write_status(state="paused")
        self.emit(StateEvent(state="paused"))
        paused_at = time.monotonic()
        try:
            while command == "pause":
                time.sleep(0.2)
                command = self.world.agree(self._control_command(force=True))
        finally:  # left out of samples/s, ETA and epoch seconds
            self._paused_seconds += time.monotonic() - paused_at
        if command == "stop":
            return "stop"
        self._write_status(state="running")
        self.emit(StateEvent(state="running"))
        return None

    def _control_command(self, force: bool) -> str | None:
        """This process's wish: "stop" (asked, or past the time limit), "pause", or None."""
        if self.should_stop():
            return "stop"
        if self._deadline is not None and self.world.distributed and time.monotonic() > self._deadline:
            return "stop"  # one clock decides for all processes
        now = time.monotonic()
        if not self.world.is_main or (not force and now - self._last_control_check < 0.25):
            return None
        self._last_control_check = now
        command = self.run.read_control()
        return command if command in ("stop", "pause") else None

    def _write_status(self, **fields: Any) -> None:
        if self.world.is_main:
            self.run.write_status(**fields)

    def _download_progress(self, done: int, total: int | None, label: str) -> None:
        now = time.monotonic()
        if total is not None and done >= total or now - self._last_download > 0.2:
            self._last_download = now
            self.emit(DownloadEvent(label=label, done=done, total=total))

    # -- the run -----------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Train while holding the run's lock (:class:`~workbench.runs.RunBusyError` when another
        live process trains it); the files a killed writer left are removed first."""
        lock = self._lock or (RunLock.acquire(self.run) if self.world.is_main else None)
        self._lock = None
        try:
            if self.world.is_main:
                remove_stale_temporaries(self.run)
            return self._train_locked()
        finally:
            if lock is not None:
                lock.release()

    def _train_locked(self) -> TrainResult:
        run = self.run
        if self.world.is_main:
            if self.resume_run is None:
                atomic_write_json(run.config_path, self.config.to_dict())
            try:
                run.control_path.unlink()
            except FileNotFoundError:
                pass
            run.write_status(state="starting", pid=os.getpid(), started=time.time())
            self._events = EventWriter(run.events_path)
        try:
            try:
                with deterministic_mode(self.options.deterministic):
                    return self._train()
            except RuntimeError as exc:  # in a distributed run: another process died (one line, not a trace)
                lost = self.world.lost(exc)
                if lost is None:
                    raise
                raise lost from None
        except BaseException as exc:
            if not self.world.is_main:
                raise
            if self._started_at is None and self.resume_run is None and isinstance(exc, WorkbenchError):
                # a mistake found while preparing (bad data path, unknown plugin): leave no empty run behind
                if self._events is not None:
                    self._events.close()
                self._events = None
                shutil.rmtree(run.path, ignore_errors=True)
                raise
            message = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
            state = "stopped" if isinstance(exc, KeyboardInterrupt) else "failed"
            with contextlib.suppress(WorkbenchError):  # disk full: the first error is the one to tell
                run.write_status(state=state, message=message, pid=None)
                self.emit(EndEvent(state=state, message=message))
            raise
        finally:
            self._close_sinks()
            if self._events is not None:
                self._events.close()
            self._events = None

    def _close_sinks(self) -> None:
        sinks, self._sinks = self._sinks, None
        if sinks is not None:
            for problem in sinks.close():
                with contextlib.suppress(WorkbenchError):
                    self.emit(StatusEvent(message=problem))

    def _train(self) -> TrainResult:
        options = self.options
        if self.world.is_main:  # the other processes of a distributed run write nothing
            self._sinks = EventSinks(self.registry, sink_names(options.sinks), self.run.path)
        threads = configure_threads(options.threads)
        generator = seed_everything(options.seed)

        # the checkpoint to resume from, if any (read first: a missing one fails before any work);
        # rank 0 reads it for all processes, which need not see the run folder
        resume = self._resume_payload() if self.world.is_main else None
        if self.resume_run is not None:
            resume = self.world.share(resume)

        # data, task, model, optimiser and schedule
        t = self._prepare(options, generator, resume)

        # restore: weights, optimiser and schedule state, counters, early stopping, random state
        progress = RunProgress()
        stopper = EarlyStopping(options.patience, t.task.higher_is_better)
        if resume is not None:
            self._restore(t, resume, progress, stopper)

        if self.world.distributed:  # after restoring: DDP copies rank 0's weights
            if options.compile:
                self.emit(StatusEvent(message="compile is not used with several processes; training eagerly"))
            t.step_model = self.world.wrap(t.model, self.device)

        # say what runs where, then train
        self.emit(self._start_event(t, options, threads, resumed=resume is not None, start_epoch=progress.start_epoch))
        self._write_status(state="running", epochs=options.epochs,
                              **status_fields(progress.start_epoch - 1, 0, math.ceil(len(t.train_set) / options.batch_size)))
        self._started_at = time.time()
        progress.started = time.monotonic()

        # the epoch loop; a watchdog ends a step that outlasts a stop request by more than a few seconds
        with StopWatchdog(self._stop_reason, grace=self.stop_grace) as watchdog:
            self._watchdog = watchdog
            try:
                state, message = self._epoch_loop(t, options, progress, stopper)
            except KeyboardInterrupt:
                if watchdog.fired is None:
                    raise
                state, message = self._forced_stop(watchdog.fired)
            finally:
                self._watchdog = None
                self.global_step = progress.global_step
        if self._loss_watch.warning:
            message = f"{message}; {self._loss_watch.warning}" if message else self._loss_watch.warning

        # final evaluation with the best weights (not after a forced stop: it would be as slow), and the results
        if watchdog.fired is None:
            test_metrics, valid_metrics = self._final_evaluation(t, options, progress.last_valid)
        else:
            test_metrics, valid_metrics = {}, progress.last_valid
        return self._finish(progress, stopper, state, message, test_metrics, valid_metrics)

    def _stop_reason(self) -> str | None:
        """Why the run should stop now (asked by the watchdog thread), or None."""
        if self.should_stop() or (self.world.is_main and self.run.read_control() == "stop"):
            return STOP_REQUESTED
        if self._deadline is not None and self.world.is_main and time.monotonic() > self._deadline:
            return TIME_LIMIT  # in a distributed run rank 0's clock decides (the others follow its decision)
        return None

    def _forced_stop(self, reason: str) -> tuple[str, str]:
        """The state and message of a run whose slow step the watchdog interrupted."""
        detail = (f"the step in progress was abandoned after {self.stop_grace:g} s; the checkpoint of the last "
                  "finished epoch is kept")
        if reason == TIME_LIMIT:
            return "finished", f"stopped at the time limit of {self.options.max_minutes} minutes: {detail}"
        return "stopped", f"stopped on request: {detail}"

    def _arm(self, armed: bool) -> None:
        if self._watchdog is not None:
            self._watchdog.arm(armed)

    def _resume_payload(self) -> dict[str, Any] | None:
        if self.resume_run is None:
            return None
        last = self.run.checkpoint_path("last")
        if not last.exists():
            raise CheckpointError(f"run {self.run.id} has no last.pt to resume from")
        return load_checkpoint(last)

    def _prepare(self, options: TrainOptions, generator: torch.Generator,
                 resume: dict[str, Any] | None) -> Training:
        config = self.config
        self.emit(StatusEvent(phase="prepare", message=f"loading dataset {config.dataset}"))
        with self.world.local_main_first():  # one download per machine
            data = load_dataset(config, self.registry, progress=self._download_progress,
                                status=lambda message: self.emit(StatusEvent(message=message)))
        task_cls = task_class(self.registry.dataset(config.dataset).task)
        if resume is not None:
            last = self.run.checkpoint_path("last")
            check_task_state(resume["task_state"], f"checkpoint {last}")
            task = task_cls.from_state(resume["task_state"])
            task.check_data(data)
            _check_model_size(config, task, self.registry, resume["model_state"], last)
        else:
            task = task_cls.from_data(data)
        encoded, longest = self._cut_long(task, task.encode(data), options.max_tokens)
        train_set = encoded["train"][: options.limit] if options.limit else encoded["train"]
        if not train_set:
            raise DataError(f"dataset {config.dataset!r} has no usable training examples")

        task.prepare_training(train_set, config.train)
        model = build_model(config, task, self.registry)
        sequence_length = int(getattr(train_set, "seq_len", 0) or longest)
        memory = self._check_memory(count_parameters(model), options, sequence_length)
        model = model.to(self.device)
        flatten_recurrent_weights(model)  # once, so cuDNN's fused kernels run without copying weights each step
        arch = self.registry.named(self.registry.architecture(config.arch))
        check_first_batch(task, model, train_set, self.device, arch)  # before a step: fail fast, naming the plugin
        precision = self._trial_precision(task, train_set, model, options.precision)
        if options.deterministic:
            self._trial_deterministic(task, train_set, model, precision)
        step_model = self._compiled(task, train_set, model, precision) if options.compile else model
        optimizer = make_optimizer(model, options)
        # one process's steps per epoch (a distributed run splits the training split between processes)
        steps_per_epoch = math.ceil(math.ceil(len(train_set) / self.world.world_size) / options.batch_size)
        return Training(
            task=task, train_set=train_set, valid_set=encoded["valid"], test_set=encoded["test"], model=model,
            optimizer=optimizer, scheduler=make_scheduler(optimizer, options, task.higher_is_better,
                                                          steps_per_epoch),
            generator=generator, dataset_info=getattr(data, "info", {}) or {},
            autocast=autocast_context(precision, self.device), precision=precision, memory_estimate=memory,
            scaler=make_scaler(precision, self.device), step_model=step_model,
            extra_tests={k: v for k, v in encoded.items() if k not in ("train", "valid", "test")},
        )

    def _cut_long(self, task: Task, encoded: dict[str, Any], max_tokens: int) -> tuple[dict[str, Any], int]:
        """Every split cut to ``max_tokens`` per example (saying how many were cut); the longest
        example length the model will see."""
        result: dict[str, Any] = {}
        cut: dict[str, int] = {}
        longest = 0
        for split, examples in encoded.items():
            result[split], cut[split], split_longest = task.cut_long(examples, max_tokens)
            longest = max(longest, split_longest)
        if sum(cut.values()):
            counts = ", ".join(f"{count:,} {split}" for split, count in cut.items() if count)
            self.emit(StatusEvent(message=(
                f"cut {plural(sum(cut.values()), 'example')} longer than max_tokens={max_tokens:,} ({counts}; the longest "
                f"had {longest:,} tokens); raise train.max_tokens to keep more of them")))
        return result, min(longest, max_tokens) if max_tokens else longest

    def _check_memory(self, parameters: int, options: TrainOptions, sequence_length: int) -> int:
        """The estimated memory per step; refuses a run that needs more than the device has free,
        unless ``train.allow_large`` is set."""
        estimate = estimate_step_bytes(parameters, options.optimizer, options.batch_size, sequence_length,
                                       self.config.model)
        available = device_memory_bytes(self.device)
        if available is not None and estimate > available and not options.allow_large:
            raise WorkbenchError(
                f"this run needs about {format_bytes(estimate)} per training step ({parameters:,} parameters, "
                f"batch_size {options.batch_size} x {sequence_length:,} tokens) but only {format_bytes(available)} "
                f"is free on {hardware_name(self.device)}; lower model.hidden_size, batch_size or max_tokens, "
                "or set train.allow_large=true to start anyway")
        return estimate

    def _trial_precision(self, task: Task, train_set: Any, model: nn.Module, requested: str) -> str:
        """The precision the run trains in: bf16 or fp16 only after a trial step shows the hardware
        runs it (``auto`` falls back to fp32 saying so; an explicit one that fails is a one-line error)."""
        precision = resolve_precision(requested, self.device)
        if precision == "fp32":
            return precision
        try:
            trial_step(task, train_set, model, self.device, precision)
        except (RuntimeError, NotImplementedError, WorkbenchError) as exc:
            if requested == "auto":
                self.emit(StatusEvent(message=f"precision=auto: {precision} failed a trial step here, training in fp32"))
                return "fp32"
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise WorkbenchError(f"precision={precision} is not supported on this {hardware_name(self.device)} "
                                 f"({reason}); use precision=fp32") from None
        return precision

    def _trial_deterministic(self, task: Task, train_set: Any, model: nn.Module, precision: str) -> None:
        """A trial step with deterministic kernels only, so a model that needs one without a
        deterministic version fails here in one line, not at its first step."""
        try:
            trial_step(task, train_set, model, self.device, precision)
        except (RuntimeError, NotImplementedError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise WorkbenchError(f"deterministic=true cannot train this model on {hardware_name(self.device)} "
                                 f"({reason}); set deterministic=false") from None

    def _compiled(self, task: Task, train_set: Any, model: nn.Module, precision: str) -> nn.Module:
        """``torch.compile``'s form of ``model`` once a trial step ran through it; else ``model``, saying why."""
        self.emit(StatusEvent(phase="prepare", message="compiling the model (torch.compile)"))
        compiled, problem = compile_model(
            model, lambda candidate: trial_step(task, train_set, candidate, self.device, precision))
        if problem is not None:
            self.emit(StatusEvent(message=f"compile=true: torch.compile failed here ({problem}); training without it"))
        return compiled

    def _restore(self, t: Training, payload: dict[str, Any], progress: RunProgress, stopper: EarlyStopping) -> None:
        """Continue where ``payload`` (a ``last.pt``) left off: weights, optimiser, schedule, counters, RNG."""
        stored = payload["config"].get("train", {}) if isinstance(payload["config"], dict) else {}
        refusal = resume_refusal(self.run.id, stored, self.config.train)
        if refusal:
            raise WorkbenchError(refusal)  # before any state is loaded into a shape that does not fit
        t.model.load_state_dict(payload["model_state"])
        if payload.get("optimizer_state"):
            t.optimizer.load_state_dict(payload["optimizer_state"])
        if t.scheduler is not None and payload.get("scheduler_state"):
            t.scheduler.load_state_dict(payload["scheduler_state"])
        if t.scaler is not None and payload.get("scaler_state"):
            t.scaler.load_state_dict(payload["scaler_state"])  # fp16 resumes with the loss scale it had reached
        apply_resume_changes(t.optimizer, t.scheduler, stored, self.options)
        saved = payload.get("progress", {})
        progress.start_epoch = int(payload.get("epoch", 0)) + 1
        progress.global_step = int(saved.get("global_step", 0))
        if steps_per_batch(t.scheduler):  # the cycle's peak and length follow the new lr, epochs, batch_size
            t.scheduler = make_one_cycle(t.optimizer, self.options.lr, self.options.epochs,
                                         math.ceil(len(t.train_set) / self.options.batch_size), progress.global_step)
        progress.history = [h for h in saved.get("history", []) if not h.get("partial")]
        progress.seconds_before = float(saved.get("seconds", 0.0))
        stopper.load_state_dict(EarlyStopping.state_from_progress(saved))
        rng = payload.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "generator" in rng:
            t.generator.set_state(rng["generator"])

    def _start_event(self, t: Training, options: TrainOptions, threads: int, resumed: bool,
                     start_epoch: int) -> StartEvent:
        return StartEvent(
            run=self.run.id,
            config=self.config.to_dict(),
            task=t.task.kind,
            main_metric=t.task.main_metric,
            device=str(self.device),
            threads=threads,
            precision=t.precision,
            parameters=count_parameters(t.model),
            memory_estimate=t.memory_estimate,
            sizes={"train": len(t.train_set), "valid": len(t.valid_set), "test": len(t.test_set)},
            steps_per_epoch=math.ceil(math.ceil(len(t.train_set) / self.world.world_size) / options.batch_size),
            dataset_info=t.dataset_info,
            resumed_at_epoch=start_epoch if resumed else None,
            workbench_version=__version__,
            headline_metrics=tuple(t.task.headline_metrics),
            world_size=self.world.world_size,
        )

    def _epoch_loop(self, t: Training, options: TrainOptions, progress: RunProgress,
                    stopper: EarlyStopping) -> tuple[str, str]:
        """Train epochs until done, stopped or out of patience; the run's state and message."""
        deadline = (time.monotonic() + options.max_minutes * 60) if options.max_minutes else None
        self._deadline = deadline
        if progress.start_epoch == 1:
            self._probe_memory(t, options, 0, 0)  # the untrained model: where memory starts from
        for epoch in range(progress.start_epoch, options.epochs + 1):
            # train one epoch (cut short by a stop request or the time limit)
            self._arm(True)
            trained = self._run_epoch(t, options, epoch, progress, deadline)
            if trained.stopped and self._watchdog is not None:
                self._watchdog.acknowledge()
            progress.train_seconds += trained.seconds
            progress.samples_seen += trained.samples

            # evaluate: the score picks the best checkpoint, drives early stopping and the plateau schedule
            valid = self._evaluate(t, options, t.valid_set, detailed=False) if t.valid_set and self.world.is_main else {}
            valid = self.world.share(valid)  # rank 0 evaluates; every process follows its score
            progress.last_valid = valid
            score = epoch_score(t.task, trained.metrics, valid)
            improved = stopper.update(score, epoch)
            step_scheduler(t.scheduler, score)

            # record the epoch and checkpoint it
            summary = EpochEvent(
                epoch=epoch, epochs=options.epochs, train=trained.metrics, valid=valid,
                lr=t.optimizer.param_groups[0]["lr"], seconds=trained.seconds,
                samples_per_s=trained.samples / max(trained.seconds, 1e-9), best=improved,
                partial=trained.samples < len(t.train_set),
            )
            progress.history.append(summary.history_entry())
            payload = self._checkpoint_payload(t, summary, progress, stopper)
            payload["position"] = status_fields(payload["epoch"], trained.steps if summary.partial else 0,
                                                trained.total_steps)
            self._arm(False)  # never interrupt a checkpoint write
            if self.world.is_main:
                save_checkpoint(self.run.checkpoint_path("last"), payload)
                if improved:
                    save_checkpoint(self.run.checkpoint_path("best"), payload)
            self.emit(summary)
            if not summary.partial and self.world.is_main:
                self._probe_memory(t, options, epoch, progress.global_step)
            self._write_status(state="running", best={t.task.main_metric: stopper.best_score,
                                                         "epoch": stopper.best_epoch},
                                  **status_fields(epoch - 1 if summary.partial else epoch,
                                                  trained.steps if summary.partial else 0, trained.total_steps))

            # go on?
            if trained.stopped:
                if deadline is not None and time.monotonic() > deadline:
                    return "finished", f"stopped at the time limit of {options.max_minutes} minutes"
                return "stopped", "stopped on request"
            if stopper.reason is not None:
                self.emit(StatusEvent(message=stopper.reason))
                return "finished", stopper.reason
        if progress.start_epoch > options.epochs:
            return "finished", (f"nothing to do: the run already completed {options.epochs} epochs "
                                "(raise epochs to continue)")
        return "finished", ""

    def _probe_memory(self, t: Training, options: TrainOptions, epoch: int, global_step: int) -> None:
        """Every ``memory_every`` epochs, memory across time on the fixed probe batch (workbench.memory)."""
        if not options.memory_every or epoch % options.memory_every or self._memory_off:
            return
        from workbench.memory import MemoryProbe, recurrent_direction

        found = recurrent_direction(t.model, t.task.kind)
        if found is None:
            return
        try:
            if self._memory_probe is None:
                self._memory_probe = MemoryProbe(t.task, t.valid_set or t.train_set)
            lags = self._memory_probe.measure(t.model, self.device)
        except Exception as exc:  # a diagnostic never ends a run: say so once and stop probing
            self._memory_off = True
            self.emit(StatusEvent(message=f"memory probe failed ({type(exc).__name__}: {exc}); probing is off"))
            return
        if lags:
            self.emit(MemoryEvent(epoch=epoch, global_step=global_step, lags=tuple(lags), cell=found[1],
                                  examples=self._memory_probe.examples))

    def _run_epoch(self, t: Training, options: TrainOptions, epoch: int, progress: RunProgress,
                   deadline: float | None) -> EpochRun:
        t.model.train()
        started = time.monotonic()
        totals, window = EpochTotals(), StepWindow()
        window.reset(started, 1)
        examples = self.world.shard(t.train_set, epoch, options.seed)  # this process's part (all, in one)
        steps = math.ceil(len(examples) / options.batch_size)
        batches = t.task.batches(examples, options.batch_size, True, t.generator)
        step = 0
        for step, batch in enumerate(batches, start=1):
            loss, grad_norm, correct = self._train_step(t, options, batch)
            progress.global_step += 1
            window.add(loss, grad_norm, correct, batch.size, batch.units or batch.size)
            if step == 1 and epoch == progress.start_epoch:
                self._loss_watch.update(float(loss))  # the reference: the loss before any learning
            if step % options.log_every == 0 or step == steps:
                self._emit_step(t, options, window, totals, epoch, step, steps, progress.global_step)
            if (sample := self.system.due()) is not None:
                self.emit(sample)
            paused_before = self._paused_seconds
            stop = self._poll_control() == "stop" or (deadline is not None and time.monotonic() > deadline
                                                      and not self.world.distributed)  # there: rank 0's clock
            paused = self._paused_seconds - paused_before
            window.started += paused  # time spent paused is not training time
            started += paused
            if stop:
                if window.steps:  # the steps since the last event, so the last step event is where it stopped
                    self._emit_step(t, options, window, totals, epoch, step, steps, progress.global_step)
                return EpochRun(totals.metrics(t.task.main_metric), totals.samples, time.monotonic() - started,
                                stopped=True, steps=step, total_steps=steps)
        return EpochRun(totals.metrics(t.task.main_metric), totals.samples, time.monotonic() - started, stopped=False,
                        steps=step, total_steps=steps)

    def _emit_step(self, t: Training, options: TrainOptions, window: StepWindow, totals: EpochTotals,
                   epoch: int, step: int, steps: int, global_step: int) -> None:
        """A step event for the window, a loss warning if it calls for one, and now and then the
        position in ``status.json`` (so run lists show progress within an epoch)."""
        sums = self._sum_over_processes(self._close_window(window, epoch))
        totals.add(sums)
        event = self._step_event(t, options, sums, totals, epoch, step, steps, global_step)
        self.emit(event)
        warning = self._loss_watch.update(event.loss)
        if warning is not None:
            self.emit(StatusEvent(message=warning))
        now = time.monotonic()
        if now - self._last_position_write >= 2.0:
            self._last_position_write = now
            self._write_status(**status_fields(epoch - 1, step, steps))

    def _sum_over_processes(self, sums: WindowSums) -> WindowSums:
        """The whole run's window: counts and loss sums added over the processes of a distributed run
        (every process closes its window at the same step); one process: as it is."""
        if not self.world.distributed:
            return sums
        summed = self.world.sum({"samples": sums.samples, "units": sums.units, "loss_sum": sums.loss_sum,
                                 "weighted_loss": sums.weighted_loss, "correct": sums.correct or 0})
        return dataclasses.replace(
            sums, samples=int(summed["samples"]), units=int(summed["units"]),
            loss_sum=summed["loss_sum"] / self.world.world_size, weighted_loss=summed["weighted_loss"],
            correct=None if sums.correct is None else int(summed["correct"]),
        )

    @staticmethod
    def _close_window(window: StepWindow, epoch: int) -> WindowSums:
        """The window's sums; a loss that stopped being finite in it ends the run (checked here,
        once per window, so a step never waits for the device)."""
        try:
            return window.close(time.monotonic())
        except Diverged as diverged:
            raise WorkbenchError(
                f"training diverged at epoch {epoch}, step {diverged.step}: the loss is {diverged.loss}; "
                "lower lr or set clip_grad_norm"
            ) from None

    def _train_step(self, t: Training, options: TrainOptions,
                    batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One optimisation step; the detached loss, the gradient norm before clipping, the hits
        (all still on the device: nothing here waits for it)."""
        batch = batch.to(self.device)
        t.optimizer.zero_grad(set_to_none=True)
        with t.autocast:
            output = t.task.loss(t.step_model if t.step_model is not None else t.model, batch)
        loss, correct = output if isinstance(output, tuple) else (output, None)
        if t.scaler is None:
            loss.backward()
            grad_norm = gradient_norm(t.params, options.clip_grad_norm)
            t.optimizer.step()
        else:  # fp16: scaled gradients, unscaled before the norm and clipping; a step with inf/nan ones is skipped
            t.scaler.scale(loss).backward()
            t.scaler.unscale_(t.optimizer)
            grad_norm = gradient_norm(t.params, options.clip_grad_norm)
            t.scaler.step(t.optimizer)
            t.scaler.update()
            grad_norm = torch.nan_to_num(grad_norm, nan=0.0, posinf=0.0)  # a skipped step plots as 0, not inf
        step_batch(t.scheduler)
        return loss.detach(), grad_norm.detach(), correct

    def _step_event(self, t: Training, options: TrainOptions, window: WindowSums, totals: EpochTotals,
                    epoch: int, step: int, steps: int, global_step: int) -> StepEvent:
        """The event of one closed window (summed over the processes of a distributed run)."""
        rate = window.samples / max(window.seconds, 1e-9)
        remaining = ((steps - step) * options.batch_size * self.world.world_size
                     + (options.epochs - epoch) * len(t.train_set))
        return StepEvent(
            epoch=epoch, step=step, steps=steps, global_step=global_step,
            loss=window.loss_sum / max(window.steps, 1), grad_norm=window.max_grad_norm,
            lr=t.optimizer.param_groups[0]["lr"], samples_per_s=rate, eta_s=remaining / max(rate, 1e-9),
            metric_name=t.task.main_metric,
            metric=(window.correct or 0) / max(window.units, 1) if totals.has_correct else None,
        )

    def _evaluate(self, t: Training, options: TrainOptions, examples: Any, detailed: bool) -> dict[str, Any]:
        return t.task.evaluate(t.model, examples, max(options.batch_size, 256), self.device, detailed=detailed,
                               top_k=options.top_k)

    def _checkpoint_payload(self, t: Training, summary: EpochEvent, progress: RunProgress,
                            stopper: EarlyStopping) -> dict[str, Any]:
        """What ``last.pt`` (and, when the epoch is the best, ``best.pt``) holds after an epoch."""
        early = stopper.state_dict()
        return {
            "config": self.config.to_dict(), "task_state": t.task.state(), "model_state": t.model.state_dict(),
            "optimizer_state": t.optimizer.state_dict(),
            "scheduler_state": t.scheduler.state_dict() if t.scheduler is not None else None,
            "scaler_state": t.scaler.state_dict() if t.scaler is not None else None,
            # a partial epoch (stopped mid-way) is redone on resume, from the weights it reached
            "epoch": summary.epoch if not summary.partial else summary.epoch - 1,
            "metrics": {"train": summary.train, "valid": summary.valid},
            "progress": {
                "global_step": progress.global_step,
                # the early-stopping state as workbench 0.1 wrote it, so it resumes these checkpoints too
                "best_metric": early["best_score"], "best_epoch": early["best_epoch"],
                "bad_epochs": early["wait_count"],
                "early_stopping": early,
                "history": progress.history, "seconds": progress.seconds(),
            },
            "rng": {"torch": torch.get_rng_state(), "generator": t.generator.get_state()},
            "run_id": self.run.id, "workbench_version": __version__,
        }

    def _final_evaluation(self, t: Training, options: TrainOptions,
                          last_valid: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Test and validation metrics (detailed) of the best weights, also stored in ``best.pt``."""
        if not self.world.is_main:
            return self.world.share(None)  # rank 0 evaluates the best weights for all processes
        best_path = self.run.checkpoint_path("best")
        if not best_path.exists():
            return self.world.share(({}, last_valid))
        best = load_checkpoint(best_path)
        t.model.load_state_dict(best["model_state"])
        test = self._evaluate(t, options, t.test_set, detailed=True) if t.test_set else {}
        for name, examples in t.extra_tests.items():
            test.update(extra_test_metrics(name, self._evaluate(t, options, examples, detailed=False)))
        valid = self._evaluate(t, options, t.valid_set, detailed=True) if t.valid_set else last_valid
        best["evaluation"] = {"test": test, "valid": valid}
        save_checkpoint(best_path, best)
        return self.world.share((test, valid))

    def _finish(self, progress: RunProgress, stopper: EarlyStopping, state: str, message: str,
                test: dict[str, Any], valid: dict[str, Any]) -> TrainResult:
        """Write ``results.json`` and the final status, and say so."""
        run = self.run
        best_path = run.checkpoint_path("best")
        result = TrainResult(
            run=run, state=state, checkpoint=best_path if best_path.exists() else None, metrics=test,
            valid_metrics=valid, best_epoch=stopper.best_epoch,
            epochs_completed=max((h["epoch"] for h in progress.history if not h.get("partial")), default=0),
            seconds=progress.seconds(), samples_per_second=progress.samples_seen / max(progress.train_seconds, 1e-9),
            message=message, history=progress.history,
        )
        if not self.world.is_main:
            return result
        atomic_write_json(run.results_path, result.to_dict())
        # the end event first: a follower that sees the final state in status.json finds it already written
        self.emit(EndEvent(state=state, message=message, test=test, valid=valid, best_epoch=stopper.best_epoch,
                           checkpoint=str(result.checkpoint)))
        run.write_status(state=state, pid=None, message=message, epoch=result.epochs_completed)
        return result


def epoch_score(task: Task, train_metrics: dict[str, Any], valid_metrics: dict[str, Any]) -> float:
    """The number early stopping and the best checkpoint follow: the main metric on the validation
    split, else on the training split, else the training loss (negated when higher is better)."""
    score = valid_metrics.get(task.main_metric, train_metrics.get(task.main_metric))
    if score is None:
        score = -train_metrics["loss"] if task.higher_is_better else train_metrics["loss"]
    return float(score)


def extra_test_metrics(name: str, metrics: dict[str, Any]) -> dict[str, float]:
    """An extra test split's numbers, named after it (``test_2x_accuracy``), to sit next to the test metrics."""
    return {f"{name}_{key}": float(value) for key, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "count"}


def train(config: RunConfig, **kwargs: Any) -> TrainResult:
    return Trainer(config, **kwargs).train()


@dataclass
class LoadedModel:
    model: nn.Module
    task: Task
    config: RunConfig
    payload: dict[str, Any]
    device: torch.device
    path: Path


def load_trained(path: Path, registry: Registry | None = None, device: str = "auto") -> LoadedModel:
    """A checkpoint's model and task, ready for evaluate, predict and generate.

    A checkpoint is a file from anywhere: its config is validated against the parameter schemas,
    its task description checked, and the model it describes compared with the weights it holds,
    all before the model is built for real, so a crafted file cannot make it take all memory."""
    registry = registry or get_registry()
    payload = load_checkpoint(path)
    source = f"checkpoint {path}"
    arch = RunConfig.from_dict(payload["config"], source).arch
    if arch not in registry.architectures:
        raise CheckpointError(f"{path} was trained with architecture {arch!r}, which no installed plugin provides")
    config = stored_config(registry, payload["config"], source)
    check_task_state(payload["task_state"], source)
    torch_device = resolve_device(device)
    try:
        kind = registry.dataset(config.dataset).task
    except WorkbenchError:
        kind = payload["task_state"].get("kind", "")
    task = task_class(kind).from_state(payload["task_state"])
    task.max_tokens = int(config.train.get("max_tokens") or 0)  # predict reads no more than training did
    _check_model_size(config, task, registry, payload["model_state"], path)
    model = build_model(config, task, registry)
    try:
        model.load_state_dict(payload["model_state"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: weights do not fit architecture {config.arch!r}: {str(exc)[:200]}") from None
    model.to(torch_device).eval()
    flatten_recurrent_weights(model)
    return LoadedModel(model, task, config, payload, torch_device, path)


def _check_model_size(config: RunConfig, task: Task, registry: Registry, weights: Any, path: Path) -> None:
    """Refuse a checkpoint whose config describes a larger model than the weights it holds.

    The model is built on the meta device (shapes only, no memory); a real checkpoint holds
    exactly its model's weights, so memory stays bounded by the file's own size."""
    if not isinstance(weights, dict) or not all(isinstance(t, torch.Tensor) for t in weights.values()):
        raise CheckpointError(f"{path}: model_state must be a table of tensors")
    held = sum(t.numel() for t in weights.values())
    try:
        with torch.device("meta"):
            described = sum(t.numel() for t in build_model(config, task, registry).state_dict().values())
    except Exception:  # noqa: BLE001 - a builder that needs real memory; the schema limits still hold
        return
    if described > held:
        raise CheckpointError(
            f"{path}: its config and vocabulary describe a model of {described:,} values but it holds weights "
            f"for {held:,}; the file was altered or does not belong to architecture {config.arch!r}"
        )


def evaluate_checkpoint(loaded: LoadedModel, registry: Registry | None = None, split: str = "test",
                        data_dir: str | None = None, batch_size: int = 256) -> dict[str, Any]:
    registry = registry or get_registry()
    config = loaded.config
    if data_dir is not None:
        config = RunConfig.from_dict({**config.to_dict(), "data_dir": data_dir})
    data = load_dataset(config, registry)
    loaded.task.check_data(data)
    encoded = loaded.task.encode(data)
    examples = encoded[split]
    if not examples:
        other = " (try --split valid)" if split == "test" else ""
        raise DataError(f"dataset {config.dataset!r} has no {split} examples{other}")
    top_k = TrainOptions.from_config(config.train).top_k
    metrics = loaded.task.evaluate(loaded.model, examples, batch_size, loaded.device, detailed=True, top_k=top_k)
    if split == "test":  # the extra test splits (length generalisation) come with the test split
        for name in (k for k in encoded if k not in ("train", "valid", "test")):
            extra = loaded.task.evaluate(loaded.model, encoded[name], batch_size, loaded.device, top_k=top_k)
            metrics.update(extra_test_metrics(name, extra))
    return metrics
