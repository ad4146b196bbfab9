"""Run configuration: which dataset, architecture and device, and every hyperparameter.

A :class:`RunConfig` is resolved and validated completely before any work starts; it is stored in
each run directory and in every checkpoint, and round-trips through TOML for ``--config``.
No torch here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ParamError, WorkbenchError
from workbench.params import Param, ParamGroup, route_assignments
from workbench.registry import Registry

#: What the app offers first (``WORKBENCH_DEFAULT_DATASET`` overrides): the classic surname classifier.
DEFAULT_DATASET = os.environ.get("WORKBENCH_DEFAULT_DATASET") or "names"

OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad")
SCHEDULES = ("none", "step", "cosine", "plateau")

#: Training parameters every dataset shares; datasets override their defaults in ``DatasetSpec.defaults``.
TRAIN_PARAMS: list[Param] = [
    Param("epochs", int, 10, "passes over the training data", min=1, max=100_000),
    Param("batch_size", int, 64, "sequences per optimisation step", min=1, max=65_536),
    Param("lr", float, 1e-3, "learning rate", min=1e-8, max=10.0, log_scale=True),
    Param("optimizer", str, "adam", "optimisation algorithm", choices=OPTIMIZERS),
    Param("momentum", float, 0.9, "momentum for sgd", min=0.0, max=0.999),
    Param("weight_decay", float, 0.0, "L2 penalty (decoupled for adamw)", min=0.0, max=1.0),
    Param("schedule", str, "none", "learning-rate schedule", choices=SCHEDULES),
    Param("step_size", int, 5, "epochs between decays for schedule=step", min=1, max=10_000),
    Param("gamma", float, 0.5, "decay factor for schedule=step and plateau", min=0.01, max=1.0),
    Param("class_weight", str, "none", "classification loss weights: none, or balanced (n / (classes x "
          "count): rare classes count as much as common ones)", choices=("none", "balanced")),
    Param("clip_grad_norm", float, 5.0, "clip the global gradient norm to this (0 = off)", min=0.0, max=1e6),
    Param("patience", int, 5, "stop after this many epochs without validation improvement (0 = never)",
          min=0, max=10_000),
    Param("seed", int, 0, "random seed for initialisation, shuffling and dropout", min=0, max=2**31 - 1),
    Param("threads", int, 0, "torch intra-op threads (0 = pick for this machine)", min=0, max=256),
    Param("log_every", int, 20, "steps between progress events", min=1, max=100_000),
    Param("max_minutes", float, 0.0, "stop training after this many minutes (0 = no limit)", min=0.0, max=1e6),
    Param("top_k", int, 3, "k for top-k accuracy", min=1, max=100),
    Param("limit", int, 0, "train on at most this many examples (0 = all): quick experiments", min=0,
          max=10**9),
    Param("precision", str, "fp32", "arithmetic of the training forward pass: fp32, bf16 autocast (about 2x "
          "faster on CPUs with AVX-512 BF16/AMX and on recent GPUs; weights and evaluation stay fp32), or auto "
          "(bf16 where the device has fast bf16, else fp32)", choices=("fp32", "bf16", "auto")),
]

TRAIN_GROUP = ParamGroup("train", TRAIN_PARAMS)


@dataclass
class RunConfig:
    dataset: str
    arch: str
    device: str = "auto"
    train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunConfig:
        try:
            return cls(
                dataset=str(raw["dataset"]),
                arch=str(raw["arch"]),
                device=str(raw.get("device", "auto")),
                train=dict(raw.get("train", {})),
                data=dict(raw.get("data", {})),
                model=dict(raw.get("model", {})),
                data_dir=raw.get("data_dir"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkbenchError(f"not a workbench run configuration ({exc})") from None

    def to_toml(self) -> str:
        lines = ["[run]", f"dataset = {_toml_value(self.dataset)}", f"arch = {_toml_value(self.arch)}",
                 f"device = {_toml_value(self.device)}"]
        if self.data_dir:
            lines.append(f"data_dir = {_toml_value(self.data_dir)}")
        for section in ("train", "data", "model"):
            values = getattr(self, section)
            lines.append("")
            lines.append(f"[{section}]")
            lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML setup file (as the TUI saves it) into the fields of :func:`resolve_config`."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkbenchError(f"config file {file} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"config file {file} is not valid TOML: {exc}") from None
    run = raw.get("run", {})
    unknown = set(raw) - {"run", "train", "data", "model"}
    if unknown:
        raise WorkbenchError(f"config file {file}: unknown sections {sorted(unknown)} (use run, train, data, model)")
    return {
        "dataset": run.get("dataset"),
        "arch": run.get("arch"),
        "device": run.get("device"),
        "data_dir": run.get("data_dir"),
        "values": {ns: dict(raw.get(ns, {})) for ns in ("train", "data", "model")},
    }


def param_groups(registry: Registry, dataset: str, arch: str) -> dict[str, ParamGroup]:
    return {
        "train": TRAIN_GROUP,
        "data": ParamGroup("data", list(registry.dataset(dataset).params)),
        "model": ParamGroup("model", list(registry.architecture(arch).params)),
    }


def resolve_config(
    registry: Registry,
    dataset: str,
    arch: str | None = None,
    device: str = "auto",
    assignments: Iterable[str] = (),
    values: Mapping[str, Mapping[str, Any]] | None = None,
    data_dir: str | None = None,
) -> RunConfig:
    """Defaults, then the dataset's recommended defaults, then ``values`` (a config file), then
    ``--set`` assignments; every value validated, with errors that name the parameter."""
    spec = registry.dataset(dataset)
    if arch is None:
        if spec.default_arch is None:
            choices = ", ".join(a.name for a in registry.architectures_for(spec.task))
            raise WorkbenchError(f"dataset {dataset!r} names no default architecture; pass --arch (one of: {choices})")
        arch = spec.default_arch
    arch_spec = registry.architecture(arch)
    if spec.task not in arch_spec.tasks:
        fitting = ", ".join(a.name for a in registry.architectures_for(spec.task)) or "none"
        raise WorkbenchError(
            f"architecture {arch!r} does not do {spec.task} (dataset {dataset!r}); choose one of: {fitting}"
        )
    groups = param_groups(registry, dataset, arch)
    layered: dict[str, dict[str, Any]] = {ns: {} for ns in groups}
    for key, value in spec.defaults.items():
        namespace, _, name = key.partition(".")
        if namespace in groups and groups[namespace].get(name) is not None:
            layered[namespace][name] = value  # defaults for another architecture's params are skipped
    for namespace, items in (values or {}).items():
        if namespace not in groups:
            raise ParamError(f"unknown parameter namespace {namespace!r} (use one of: {', '.join(groups)})")
        layered[namespace].update(items)
    for namespace, items in route_assignments(assignments, groups).items():
        layered[namespace].update(items)
    resolved = {ns: groups[ns].resolve(layered[ns]) for ns in groups}
    from workbench.devices import validate_device_name

    return RunConfig(
        dataset=dataset,
        arch=arch,
        device=validate_device_name(device or "auto"),
        train=resolved["train"],
        data=resolved["data"],
        model=resolved["model"],
        data_dir=data_dir,
    )
