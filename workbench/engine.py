"""The training engine: knows tasks, models, optimisers and run directories, nothing about Textual.

:func:`train` is what ``workbench train`` and the TUI's training process call. Progress goes to the
run's ``events.jsonl`` and to an optional ``on_event`` callback; another process can pause, resume
or stop a run through :meth:`workbench.runs.Run.request`.
"""

from __future__ import annotations

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

from workbench import __version__
from workbench.api import LoadContext, resolve_callable
from workbench.config import RunConfig
from workbench.data import default_cache_dir, default_data_dir
from workbench.devices import resolve_device
from workbench.errors import CheckpointError, DataError, WorkbenchError
from workbench.events import (
    DownloadEvent,
    EndEvent,
    EpochEvent,
    Event,
    StartEvent,
    StateEvent,
    StatusEvent,
    StepEvent,
)
from workbench.registry import Registry, get_registry
from workbench.runs import EventWriter, Run, default_runs_dir, load_checkpoint, new_run, save_checkpoint
from workbench.tasks import task_class
from workbench.tasks.base import Task

EventCallback = Callable[[Event], None]


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


def load_dataset(config: RunConfig, registry: Registry, progress: Callable[..., None] | None = None) -> Any:
    spec = registry.dataset(config.dataset)
    data_dir = Path(config.data_dir) if config.data_dir else default_data_dir()
    context = LoadContext(
        data_dir=data_dir,
        cache_dir=default_cache_dir(),
        mirror=os.environ.get("WORKBENCH_DATA_MIRROR") or None,
        progress=progress,
        seed=int(config.train.get("seed", 0)),
    )
    try:
        loader = resolve_callable(spec.load, f"dataset {spec.name!r} load")
    except ImportError as exc:
        raise WorkbenchError(f"dataset {spec.name!r}: its plugin could not load its loader ({exc})") from None
    return loader(context, dict(config.data))


def build_model(config: RunConfig, task: Task, registry: Registry) -> nn.Module:
    spec = registry.architecture(config.arch)
    try:
        builder = resolve_callable(spec.build, f"architecture {spec.name!r} build")
    except ImportError as exc:
        raise WorkbenchError(f"architecture {spec.name!r}: its plugin could not load its model ({exc})") from None
    model = builder(task.model_context(), dict(config.model))
    if not isinstance(model, nn.Module):
        raise WorkbenchError(f"architecture {spec.name!r} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def make_optimizer(model: nn.Module, train: dict[str, Any]) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    name, lr, wd = train["optimizer"], train["lr"], train["weight_decay"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=train["momentum"], weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    raise WorkbenchError(f"unknown optimizer {name!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, train: dict[str, Any], higher_is_better: bool) -> Any:
    name = train["schedule"]
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=train["step_size"], gamma=train["gamma"])
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train["epochs"])
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max" if higher_is_better else "min", factor=train["gamma"], patience=1)
    return None


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where the device computes bf16 natively (AVX-512 BF16/AMX CPUs, Ampere+ GPUs)."""
    if precision != "auto":
        return precision
    try:
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        if device.type == "cpu":
            return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    except (AttributeError, RuntimeError):
        pass
    return "fp32"


def mixed_precision(precision: str, device: torch.device) -> Any:
    """The context the training forward pass runs in: nothing for fp32, bf16 autocast otherwise."""
    import contextlib

    if resolve_precision(precision, device) != "bf16":
        return contextlib.nullcontext()
    try:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    except (RuntimeError, ValueError) as exc:
        raise WorkbenchError(f"precision=bf16 is not available on {device}: {exc}; use precision=fp32") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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


class Trainer:
    """One training run, from resolved config to finished run directory."""

    def __init__(
        self,
        config: RunConfig,
        registry: Registry | None = None,
        runs_root: Path | None = None,
        on_event: EventCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        resume: Run | None = None,
        run: Run | None = None,
    ) -> None:
        self.config = config
        self.registry = registry or get_registry()
        self.on_event = on_event
        self.should_stop = should_stop or (lambda: False)
        self.resume_run = resume
        self.device = resolve_device(config.device)  # fail before a run directory is made
        if resume is not None:
            self.run = resume
        elif run is not None:
            self.run = run
        else:
            self.run = new_run(runs_root or default_runs_dir(), config.dataset, config.arch)
        self._events: EventWriter | None = None
        self._last_control_check = 0.0
        self._started_at: float | None = None

    # -- events ------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        if event.time is None:
            event = replace(event, time=time.time())
        if self._events is not None:
            self._events.write(event)
        if self.on_event is not None:
            self.on_event(event)

    def _poll_control(self, force: bool = False) -> str | None:
        """"stop", or None; blocks while paused. Checks the control file at most a few times a second."""
        if self.should_stop():
            return "stop"
        now = time.monotonic()
        if not force and now - self._last_control_check < 0.25:
            return None
        self._last_control_check = now
        command = self.run.read_control()
        if command == "stop":
            return "stop"
        if command != "pause":
            return None
        self.run.write_status(state="paused")
        self.emit(StateEvent(state="paused"))
        while True:
            time.sleep(0.2)
            if self.should_stop():
                return "stop"
            command = self.run.read_control()
            if command == "stop":
                return "stop"
            if command != "pause":
                break
        self.run.write_status(state="running")
        self.emit(StateEvent(state="running"))
        return None

    # -- the run -----------------------------------------------------------------------------
    def train(self) -> TrainResult:
        run = self.run
        config = self.config
        run.path.mkdir(parents=True, exist_ok=True)
        if self.resume_run is None:
            from workbench.runs import atomic_write_json

            atomic_write_json(run.config_path, config.to_dict())
        try:
            run.control_path.unlink()
        except FileNotFoundError:
            pass
        run.write_status(state="starting", pid=os.getpid(), started=time.time())
        self._events = EventWriter(run.events_path)
        try:
            return self._train()
        except BaseException as exc:
            if self._started_at is None and self.resume_run is None and isinstance(exc, WorkbenchError):
                # a mistake found while preparing (bad data path, unknown plugin): leave no empty run behind
                self._events.close()
                self._events = None
                shutil.rmtree(run.path, ignore_errors=True)
                raise
            message = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
            state = "stopped" if isinstance(exc, KeyboardInterrupt) else "failed"
            run.write_status(state=state, message=message, pid=None)
            self.emit(EndEvent(state=state, message=message))
            raise
        finally:
            if self._events is not None:
                self._events.close()
            self._events = None

    def _train(self) -> TrainResult:
        run, config, train_cfg = self.run, self.config, self.config.train
        threads = configure_threads(train_cfg["threads"])
        device = self.device
        generator = seed_everything(train_cfg["seed"])

        resume_payload = None
        if self.resume_run is not None:
            last = run.checkpoint_path("last")
            if not last.exists():
                raise CheckpointError(f"run {run.id} has no last.pt to resume from")
            resume_payload = load_checkpoint(last)

        self.emit(StatusEvent(phase="prepare", message=f"loading dataset {config.dataset}"))
        data = load_dataset(config, self.registry, progress=self._download_progress)
        task_cls = task_class(self.registry.dataset(config.dataset).task)
        if resume_payload is not None:
            task = task_cls.from_state(resume_payload["task_state"])
            task.check_data(data)
        else:
            task = task_cls.from_data(data)
        encoded = task.encode(data)
        train_set, valid_set, test_set = encoded["train"], encoded["valid"], encoded["test"]
        if train_cfg["limit"]:
            train_set = train_set[: train_cfg["limit"]]
        if not train_set:
            raise DataError(f"dataset {config.dataset!r} has no usable training examples")

        task.prepare_training(train_set, train_cfg)
        model = build_model(config, task, self.registry).to(device)
        optimizer = make_optimizer(model, train_cfg)
        scheduler = make_scheduler(optimizer, train_cfg, task.higher_is_better)

        start_epoch = 1
        global_step = 0
        best_metric: float | None = None
        best_epoch: int | None = None
        bad_epochs = 0
        history: list[dict[str, Any]] = []
        elapsed_before = 0.0
        if resume_payload is not None:
            model.load_state_dict(resume_payload["model_state"])
            if resume_payload.get("optimizer_state"):
                optimizer.load_state_dict(resume_payload["optimizer_state"])
            if scheduler is not None and resume_payload.get("scheduler_state"):
                scheduler.load_state_dict(resume_payload["scheduler_state"])
            progress = resume_payload.get("progress", {})
            start_epoch = int(resume_payload.get("epoch", 0)) + 1
            global_step = int(progress.get("global_step", 0))
            best_metric = progress.get("best_metric")
            best_epoch = progress.get("best_epoch")
            bad_epochs = int(progress.get("bad_epochs", 0))
            history = [h for h in progress.get("history", []) if not h.get("partial")]
            elapsed_before = float(progress.get("seconds", 0.0))
            rng = resume_payload.get("rng", {})
            if "torch" in rng:
                torch.set_rng_state(rng["torch"])
            if "generator" in rng:
                generator.set_state(rng["generator"])

        epochs = train_cfg["epochs"]
        batch_size = train_cfg["batch_size"]
        steps_per_epoch = math.ceil(len(train_set) / batch_size)
        info = getattr(data, "info", {}) or {}
        self.emit(StartEvent(
            run=run.id,
            config=config.to_dict(),
            task=task.kind,
            main_metric=task.main_metric,
            device=str(device),
            threads=threads,
            precision=resolve_precision(train_cfg.get("precision", "fp32"), device),
            parameters=count_parameters(model),
            sizes={"train": len(train_set), "valid": len(valid_set), "test": len(test_set)},
            steps_per_epoch=steps_per_epoch,
            dataset_info=info,
            resumed_at_epoch=start_epoch if resume_payload is not None else None,
            workbench_version=__version__,
            headline_metrics=tuple(task.headline_metrics),
        ))
        run.write_status(state="running", epoch=start_epoch - 1, epochs=epochs)
        self._started_at = time.time()

        state = "finished"
        message = ""
        deadline = (time.monotonic() + train_cfg["max_minutes"] * 60) if train_cfg["max_minutes"] else None
        clip = train_cfg["clip_grad_norm"]
        log_every = train_cfg["log_every"]
        eval_batch = max(batch_size, 256)
        started = time.monotonic()
        samples_seen = 0
        train_seconds = 0.0
        last_valid: dict[str, Any] = {}
        epoch = start_epoch - 1
        params = [p for p in model.parameters() if p.requires_grad]
        autocast = mixed_precision(train_cfg.get("precision", "fp32"), device)

        for epoch in range(start_epoch, epochs + 1):
            model.train()
            epoch_start = time.monotonic()
            loss_sum = torch.zeros((), device=device)
            correct_sum = torch.zeros((), device=device, dtype=torch.long)
            window_loss = torch.zeros((), device=device)
            window_norm = torch.zeros((), device=device)
            window_correct = torch.zeros((), device=device, dtype=torch.long)
            window_count = 0
            window_start = time.monotonic()
            window_samples = 0
            window_units = 0
            epoch_samples = 0
            epoch_units = 0
            has_correct = False
            stop_now = False
            for step, batch in enumerate(task.batches(train_set, batch_size, True, generator), start=1):
                batch = batch.to(device)
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    output = task.loss(model, batch)
                loss, correct = output if isinstance(output, tuple) else (output, None)
                if not torch.isfinite(loss.detach()).all():
                    raise WorkbenchError(
                        f"training diverged at epoch {epoch}, step {step}: the loss is {float(loss)}; "
                        "lower lr or set clip_grad_norm"
                    )
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
                optimizer.step()
                global_step += 1
                detached = loss.detach()
                units = batch.units or batch.size
                loss_sum += detached * units
                epoch_units += units
                window_units += units
                window_loss += detached
                window_norm = torch.maximum(window_norm, norm.detach())
                if correct is not None:
                    correct_sum += correct
                    window_correct += correct
                    has_correct = True
                window_count += 1
                window_samples += batch.size
                epoch_samples += batch.size
                if step % log_every == 0 or step == steps_per_epoch:
                    now = time.monotonic()
                    rate = window_samples / max(now - window_start, 1e-9)
                    remaining = (steps_per_epoch - step) * batch_size + (epochs - epoch) * len(train_set)
                    self.emit(StepEvent(
                        epoch=epoch, step=step, steps=steps_per_epoch,
                        global_step=global_step, loss=float(window_loss) / window_count,
                        grad_norm=float(window_norm), lr=optimizer.param_groups[0]["lr"],
                        samples_per_s=rate, eta_s=remaining / max(rate, 1e-9),
                        metric_name=task.main_metric,
                        metric=float(window_correct) / max(window_units, 1) if has_correct else None,
                    ))
                    window_correct.zero_()
                    window_loss.zero_()
                    window_norm.zero_()
                    window_count = 0
                    window_samples = 0
                    window_units = 0
                    window_start = now
                if self._poll_control() == "stop":
                    stop_now = True
                    break
                if deadline is not None and time.monotonic() > deadline:
                    stop_now = True
                    break
            epoch_train_seconds = time.monotonic() - epoch_start
            train_seconds += epoch_train_seconds
            samples_seen += epoch_samples
            train_metrics = {"loss": float(loss_sum) / max(epoch_units, 1)}
            if has_correct:
                train_metrics[task.main_metric] = float(correct_sum) / max(epoch_units, 1)
            valid_metrics = (
                task.evaluate(model, valid_set, eval_batch, device, top_k=train_cfg["top_k"]) if valid_set else {}
            )
            last_valid = valid_metrics
            score = valid_metrics.get(task.main_metric, train_metrics.get(task.main_metric))
            if score is None:
                score = -train_metrics["loss"] if task.higher_is_better else train_metrics["loss"]
            improved = best_metric is None or (
                score > best_metric if task.higher_is_better else score < best_metric
            )
            if improved:
                best_metric, best_epoch, bad_epochs = float(score), epoch, 0
            else:
                bad_epochs += 1
            if scheduler is not None:
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(score)
                else:
                    scheduler.step()
            summary = EpochEvent(
                epoch=epoch, epochs=epochs, train=train_metrics, valid=valid_metrics,
                lr=optimizer.param_groups[0]["lr"], seconds=epoch_train_seconds,
                samples_per_s=epoch_samples / max(epoch_train_seconds, 1e-9), best=improved,
                partial=epoch_samples < len(train_set),
            )
            history.append(summary.history_entry())
            progress = {
                "global_step": global_step, "best_metric": best_metric, "best_epoch": best_epoch,
                "bad_epochs": bad_epochs, "history": history,
                "seconds": elapsed_before + (time.monotonic() - started),
            }
            payload = {
                "config": config.to_dict(), "task_state": task.state(), "model_state": model.state_dict(),
                "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
                # a partial epoch (stopped mid-way) is redone on resume, from the weights it reached
                "epoch": epoch if not summary.partial else epoch - 1,
                "metrics": {"train": train_metrics, "valid": valid_metrics},
                "progress": progress, "rng": {"torch": torch.get_rng_state(), "generator": generator.get_state()},
                "run_id": run.id, "workbench_version": __version__,
            }
            save_checkpoint(run.checkpoint_path("last"), payload)
            if improved:
                save_checkpoint(run.checkpoint_path("best"), payload)
            self.emit(summary)
            run.write_status(state="running", epoch=epoch, best={task.main_metric: best_metric, "epoch": best_epoch})
            if stop_now:
                if deadline is not None and time.monotonic() > deadline:
                    message = f"stopped at the time limit of {train_cfg['max_minutes']} minutes"
                else:
                    state, message = "stopped", "stopped on request"
                break
            if train_cfg["patience"] and bad_epochs >= train_cfg["patience"]:
                message = f"early stop: no validation improvement for {bad_epochs} epochs"
                self.emit(StatusEvent(message=message))
                break
        else:
            if start_epoch > epochs:
                message = f"nothing to do: the run already completed {epochs} epochs (raise epochs to continue)"

        # Final evaluation with the best weights.
        best_path = run.checkpoint_path("best")
        test_metrics: dict[str, Any] = {}
        valid_detailed: dict[str, Any] = last_valid
        if best_path.exists():
            best_payload = load_checkpoint(best_path)
            model.load_state_dict(best_payload["model_state"])
            if test_set:
                test_metrics = task.evaluate(model, test_set, eval_batch, device, detailed=True,
                                             top_k=train_cfg["top_k"])
            if valid_set:
                valid_detailed = task.evaluate(model, valid_set, eval_batch, device, detailed=True,
                                               top_k=train_cfg["top_k"])
            best_payload["evaluation"] = {"test": test_metrics, "valid": valid_detailed}
            save_checkpoint(best_path, best_payload)
        total_seconds = elapsed_before + (time.monotonic() - started)
        rate = samples_seen / max(train_seconds, 1e-9)
        result = TrainResult(
            run=run, state=state, checkpoint=best_path if best_path.exists() else None, metrics=test_metrics,
            valid_metrics=valid_detailed, best_epoch=best_epoch,
            epochs_completed=max((h["epoch"] for h in history if not h.get("partial")), default=0),
            seconds=total_seconds, samples_per_second=rate, message=message, history=history,
        )
        from workbench.runs import atomic_write_json

        atomic_write_json(run.results_path, result.to_dict())
        run.write_status(state=state, pid=None, message=message, epoch=result.epochs_completed)
        self.emit(EndEvent(state=state, message=message, test=test_metrics, valid=valid_detailed,
                           best_epoch=best_epoch, checkpoint=str(result.checkpoint)))
        return result

    def _download_progress(self, done: int, total: int | None, label: str) -> None:
        now = time.monotonic()
        if total is not None and done >= total or now - getattr(self, "_last_dl", 0.0) > 0.2:
            self._last_dl = now
            self.emit(DownloadEvent(label=label, done=done, total=total))


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
    """A checkpoint's model and task, ready for evaluate, predict and generate."""
    registry = registry or get_registry()
    payload = load_checkpoint(path)
    config = RunConfig.from_dict(payload["config"])
    torch_device = resolve_device(device)
    try:
        spec = registry.dataset(config.dataset)
        kind = spec.task
    except WorkbenchError:
        kind = payload["task_state"].get("kind", "")
    task = task_class(kind).from_state(payload["task_state"])
    try:
        registry.architecture(config.arch)
    except WorkbenchError:
        raise CheckpointError(
            f"{path} was trained with architecture {config.arch!r}, which no installed plugin provides"
        ) from None
    model = build_model(config, task, registry)
    try:
        model.load_state_dict(payload["model_state"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: weights do not fit architecture {config.arch!r}: {str(exc)[:200]}") from None
    model.to(torch_device).eval()
    return LoadedModel(model, task, config, payload, torch_device, path)


def evaluate_checkpoint(loaded: LoadedModel, registry: Registry | None = None, split: str = "test",
                        data_dir: str | None = None, batch_size: int = 256) -> dict[str, Any]:
    registry = registry or get_registry()
    config = loaded.config
    if data_dir is not None:
        config = RunConfig.from_dict({**config.to_dict(), "data_dir": data_dir})
    data = load_dataset(config, registry)
    loaded.task.check_data(data)
    examples = loaded.task.encode(data)[split]
    if not examples:
        other = " (try --split valid)" if split == "test" else ""
        raise DataError(f"dataset {config.dataset!r} has no {split} examples{other}")
    return loaded.task.evaluate(loaded.model, examples, batch_size, loaded.device, detailed=True,
                                top_k=int(config.train.get("top_k", 3)))
