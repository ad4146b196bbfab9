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
from typing import TYPE_CHECKING, Any

from workbench.errors import ParamError, WorkbenchError
from workbench.params import Param, ParamGroup, route_assignments
from workbench.runs import Run, RunLock, atomic_write_json, find_run, lock_held

if TYPE_CHECKING:  # the app imports this before its first paint; the plugin machinery comes after it
    from workbench.registry import Registry

OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad")
SCHEDULES = ("none", "step", "cosine", "plateau", "one-cycle")

#: Training parameters every dataset shares; datasets override their defaults in ``DatasetSpec.defaults``.
TRAIN_PARAMS: list[Param] = [
    Param("epochs", int, 10, "passes over the training data", min=1, max=100_000),
    Param("batch_size", int, 64, "sequences per optimisation step", min=1, max=65_536),
    Param("lr", float, 1e-3, "learning rate", min=1e-8, max=10.0, log_scale=True),
    Param("optimizer", str, "adam", "optimisation algorithm", choices=OPTIMIZERS),
    Param("momentum", float, 0.9, "momentum for sgd", min=0.0, max=0.999),
    Param("weight_decay", float, 0.0, "L2 penalty (decoupled for adamw)", min=0.0, max=1.0),
    Param("schedule", str, "none", "learning-rate schedule (one-cycle: warm up to lr over the first 30% of "
          "steps, then anneal; stepped every batch)", choices=SCHEDULES),
    Param("step_size", int, 5, "epochs between decays for schedule=step", min=1, max=10_000),
    Param("gamma", float, 0.5, "decay factor for schedule=step and plateau", min=0.01, max=1.0),
    Param("class_weight", str, "none", "classification loss weights: none, balanced (n / (classes x "
          "count): rare classes count as much as common ones), or sqrt (the square root of balanced: a middle "
          "way)", choices=("none", "balanced", "sqrt")),
    Param("logit_adjustment", float, 0.0, "classification: add this x log(each class's share of the training "
          "examples) to the logits in the loss only (logit-adjusted loss), so predictions favour rare classes: "
          "higher balanced accuracy for some top-1 (1 = the paper's choice; 0 = off)", min=0.0, max=4.0),
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
    Param("precision", str, "fp32", "arithmetic of the training forward pass: fp32, bf16 or fp16 autocast (fp16 "
          "with a gradient scaler; about 2x faster on recent GPUs and on CPUs with AVX-512 BF16/AMX; weights and "
          "evaluation stay fp32), or auto (what the device computes natively: bf16, else fp16 on GPUs; bf16 on "
          "CPUs that have it, else fp32)", choices=("fp32", "bf16", "fp16", "auto")),
    Param("max_tokens", int, 2000, "longest example fed to the model, in tokens (characters for character "
          "datasets); longer ones are cut and the run says how many (0 = no limit: memory then grows with the "
          "longest line in the data)", min=0, max=10_000_000),
    Param("allow_large", bool, False, "start even when the estimated memory per step exceeds the memory "
          "available (the run may be killed by the system)"),
    Param("deterministic", bool, False, "reproducible runs on GPUs too: deterministic kernels only (a run "
          "whose model needs one that has none is refused before it starts); may be slower"),
    Param("compile", bool, False, "torch.compile the model (falls back to eager, saying why, where it fails; "
          "recurrent layers rarely gain)"),
    Param("memory_every", int, 1, "epochs between probes of memory across time (the gradient reaching each "
          "earlier hidden state, on a fixed batch; recurrent models only; 0 = off)", min=0, max=100_000),
    Param("sinks", str, "", "event sinks that receive the run's events as they happen, comma-separated "
          "(e.g. csv: metrics.csv and steps.csv in the run folder; see `workbench plugins`)"),
]

TRAIN_GROUP = ParamGroup("train", TRAIN_PARAMS)

#: ``train.*`` values a resumed run may change; the engine applies them to the restored optimizer
#: and schedule. Every other train value (optimizer, schedule, step_size, gamma, seed, class_weight,
#: limit, and any added later) is fixed: the restored state would silently overrule it or not fit.
RESUME_CHANGEABLE = ("epochs", "lr", "momentum", "weight_decay", "clip_grad_norm", "patience", "max_minutes",
                     "log_every", "threads", "top_k", "batch_size", "precision", "sinks",
                     "deterministic", "compile", "memory_every")


def resume_refusal(run_id: str, stored: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why ``new`` train values cannot continue a run trained with ``stored`` ones, or None."""
    changed = [key for key in sorted(set(stored) | set(new))
               if key not in RESUME_CHANGEABLE and key in stored and new.get(key) != stored.get(key)]
    if not changed:
        return None
    was = ", ".join(f"{key}={stored[key]!r}" for key in changed)
    return (f"a resumed run keeps its {', '.join(changed)} (run {run_id} has {was}); only "
            f"{', '.join(RESUME_CHANGEABLE)} may change on resume: start a new run for the rest")


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
    def from_dict(cls, raw: Any, source: str = "") -> RunConfig:
        """The shape of a stored configuration (a run's ``config.json``, a checkpoint's ``config``):
        known keys, names as strings, sections as tables. Values are checked by :func:`stored_config`."""
        where = f"{source}: " if source else ""
        if not isinstance(raw, Mapping):
            raise WorkbenchError(f"{where}not a workbench run configuration (a {type(raw).__name__}, not a table)")
        unknown = sorted(map(str, set(raw) - set(CONFIG_FIELDS)))
        if unknown:
            raise WorkbenchError(f"{where}unknown run configuration keys {unknown} (known: {', '.join(CONFIG_FIELDS)})")
        for key in ("dataset", "arch"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise WorkbenchError(f"{where}not a workbench run configuration ({key} must be a name, got "
                                     f"{raw.get(key)!r:.60})")
        device, data_dir = raw.get("device", "auto"), raw.get("data_dir")
        if not isinstance(device, str) or not (data_dir is None or isinstance(data_dir, str)):
            raise WorkbenchError(f"{where}device and data_dir must be strings (got {device!r:.60}, {data_dir!r:.60})")
        sections = {name: raw.get(name, {}) for name in ("train", "data", "model")}
        for name, values in sections.items():
            if not isinstance(values, Mapping) or not all(isinstance(key, str) for key in values):
                raise WorkbenchError(f"{where}{name} must be a table of parameter = value (got {values!r:.60})")
        return cls(dataset=raw["dataset"], arch=raw["arch"], device=device, train=dict(sections["train"]),
                   data=dict(sections["data"]), model=dict(sections["model"]), data_dir=data_dir)

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


RUN_FIELDS = ("dataset", "arch", "device", "data_dir")
CONFIG_FIELDS = ("dataset", "arch", "device", "train", "data", "model", "data_dir")


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML setup file (as the app saves it) into the fields of :func:`resolve_config`.

    The shape is checked here (sections, ``[run]`` keys, strings); the values of ``[train]``,
    ``[data]`` and ``[model]`` are validated by :func:`resolve_config`, as ``--set`` values are."""
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkbenchError(f"config file {file} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WorkbenchError(f"config file {file} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise WorkbenchError(f"config file {file} cannot be read: {exc.strerror}") from None
    except ValueError:  # a NUL in the name (the app's form passes any text); the OS refuses such a path
        raise WorkbenchError(f"config file {str(file)!r} is not a usable path") from None
    unknown = set(raw) - {"run", "train", "data", "model"}
    if unknown:
        raise WorkbenchError(f"config file {file}: unknown sections {sorted(unknown)} (use run, train, data, model)")
    not_tables = [name for name, value in raw.items() if not isinstance(value, dict)]
    if not_tables:
        raise WorkbenchError(f"config file {file}: {', '.join(not_tables)} must be a [section] of key = value lines")
    run = raw.get("run", {})
    unknown = set(run) - set(RUN_FIELDS)
    if unknown:
        raise WorkbenchError(f"config file {file}: unknown [run] keys {sorted(unknown)} (use {', '.join(RUN_FIELDS)})")
    for key, value in run.items():
        if not isinstance(value, str):
            raise ParamError(f"config file {file}: [run] {key} must be a string (got {value!r})")
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
    values_from: str | None = None,
) -> RunConfig:
    """Defaults, then the dataset's recommended defaults, then ``values`` (a config file), then
    ``--set`` assignments; every value validated, with errors that name the parameter (and, for
    ``values``, where they came from: ``values_from``, such as ``config file setup.toml``)."""
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
        try:
            if namespace not in groups:
                raise ParamError(f"unknown parameter namespace {namespace!r} (use one of: {', '.join(groups)})")
            groups[namespace].resolve(items)  # each value on its own, so an error can say where it came from
        except ParamError as exc:
            raise ParamError(f"{values_from}: {exc}" if values_from else str(exc)) from None
        layered[namespace].update(items)
    for namespace, items in route_assignments(assignments, groups).items():
        layered[namespace].update(items)
    resolved = {ns: groups[ns].resolve(layered[ns]) for ns in groups}
    from workbench.sinks import check_sink_names

    check_sink_names(registry, resolved["train"].get("sinks", ""))
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


def stored_config(registry: Registry, raw: Any, source: str) -> RunConfig:
    """A configuration read back from a file (a checkpoint's ``config``, a run's ``config.json``),
    validated exactly as ``--set`` values are before anything is built from it: a crafted file
    must not size a model past the schemas' limits. Errors name ``source`` and the parameter.

    A dataset whose plugin is gone is allowed (predict needs only the architecture): then the
    ``data`` values are kept as they are, if they are plain values."""
    config = RunConfig.from_dict(raw, source)
    try:
        arch_spec = registry.architecture(config.arch)
    except WorkbenchError:
        raise WorkbenchError(f"{source} names architecture {config.arch!r}, which no installed plugin provides") from None
    groups = {"train": TRAIN_GROUP, "model": ParamGroup("model", list(arch_spec.params))}
    dataset_known = config.dataset in registry.datasets
    if dataset_known:
        groups["data"] = ParamGroup("data", list(registry.dataset(config.dataset).params))
    for namespace, group in groups.items():
        _check_section(group, getattr(config, namespace), source)
    bad_data = [key for key, value in config.data.items() if not isinstance(value, (str, int, float, bool))]
    if bad_data:
        raise ParamError(f"{source}: data.{bad_data[0]} must be a plain value (got {config.data[bad_data[0]]!r:.60})")
    from workbench.devices import validate_device_name

    try:
        device = validate_device_name(config.device)
        if dataset_known:
            return resolve_config(registry, config.dataset, config.arch, device,
                                  values={"train": config.train, "data": config.data, "model": config.model},
                                  data_dir=config.data_dir, values_from=source)
    except WorkbenchError as exc:
        raise type(exc)(str(exc) if str(exc).startswith(source) else f"{source}: {exc}") from None
    return RunConfig(dataset=config.dataset, arch=config.arch, device=device, train=TRAIN_GROUP.resolve(config.train),
                     data=dict(config.data), model=groups["model"].resolve(config.model), data_dir=config.data_dir)


def _check_section(group: ParamGroup, values: Mapping[str, Any], source: str) -> None:
    """Each value against its declaration; the error names the file and ``namespace.parameter``."""
    for name, value in values.items():
        param = group.get(name)
        if param is None:
            known = ", ".join(p.name for p in group.params) or "none"
            raise ParamError(f"{source}: unknown parameter {group.namespace}.{name} (known: {known})")
        try:
            param.validate(value)
        except ParamError as exc:
            raise ParamError(f"{source}: {group.namespace}.{exc}") from None


# -- what a front end is about to train -------------------------------------------------------
@dataclass(frozen=True)
class RunPlan:
    """A validated setup and where it trains: a run to continue (``resume``), a new folder the
    caller named (``run``), or neither (the trainer makes a folder under the runs root)."""

    config: RunConfig
    resume: Run | None = None
    run: Run | None = None

    def begin(self) -> RunLock | None:
        """Write what must be on disk before training starts: a resumed run's config takes the
        new ``train.*`` values, so the run folder always says what the run was trained with.

        A resumed run is locked first (:class:`RunBusyError` when another process trains it) and
        the lock is returned, for the :class:`~workbench.engine.Trainer` to hold while it trains."""
        if self.resume is None:
            return None
        lock = RunLock.acquire(self.resume)
        try:
            atomic_write_json(self.resume.config_path, self.config.to_dict())
        except BaseException:
            lock.release()
            raise
        return lock


def plan_run(
    registry: Registry,
    *,
    dataset: str | None = None,
    arch: str | None = None,
    device: str | None = None,
    assignments: Iterable[str] = (),
    values: Mapping[str, Mapping[str, Any]] | None = None,
    data_dir: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    resume: str | Run | None = None,
    runs_root: Path | None = None,
    run_dir: str | os.PathLike[str] | None = None,
) -> RunPlan:
    """The one place that decides what a run is, for ``workbench train`` and the app alike.

    A new run layers the declared defaults, the dataset's, ``config_file``, ``values`` and then
    ``assignments``; arguments given here win over the file's ``[run]`` fields. A resumed run
    (``resume``: a Run, or a reference for :func:`workbench.runs.find_run`) starts from its stored
    config, validated like a file, and may change only the ``train.*`` values in
    :data:`RESUME_CHANGEABLE` (plus device and data_dir); a run another process trains is refused."""
    if run_dir and resume:
        raise WorkbenchError("--run-dir makes a new run; it cannot be combined with --resume")
    if resume:
        if config_file:
            raise WorkbenchError("--config makes a new run; it cannot be combined with --resume (change train.* "
                                 "with --set)")
        run = resume if isinstance(resume, Run) else find_run(resume, runs_root)
        if lock_held(run):
            raise run.busy_error()
        config = _resumed_config(registry, run, dataset=dataset, arch=arch, device=device, assignments=assignments,
                                 data_dir=data_dir)
        return RunPlan(config, resume=run)
    file: dict[str, Any] = read_config_file(config_file) if config_file else {}
    dataset = dataset or file.get("dataset")
    if not dataset:
        if config_file:
            raise WorkbenchError(f"config file {config_file} names no dataset ([run] dataset = ...)")
        raise WorkbenchError("choose a dataset with --dataset NAME (see `workbench plugins`)")
    layered = {ns: dict(items) for ns, items in file.get("values", {}).items()}
    for namespace, items in (values or {}).items():
        layered.setdefault(namespace, {}).update(items)
    config = resolve_config(
        registry, dataset, arch or file.get("arch"), device or file.get("device") or "auto", assignments,
        values=layered, data_dir=data_dir or file.get("data_dir"),
        values_from=f"config file {config_file}" if config_file and not values else None,
    )
    return RunPlan(config, run=_new_run_folder(run_dir) if run_dir else None)


def _resumed_config(
    registry: Registry, run: Run, *, dataset: str | None, arch: str | None, device: str | None,
    assignments: Iterable[str], data_dir: str | None,
) -> RunConfig:
    """The stored config with new ``train.*`` values; data and model must stay as they were."""
    stored = RunConfig.from_dict(run.config(), f"run {run.id}'s config.json")
    for name, given, kept in (("dataset", dataset, stored.dataset), ("architecture", arch, stored.arch)):
        if given and given != kept:
            raise WorkbenchError(f"a resumed run keeps its {name} (run {run.id} has {kept!r}, not {given!r})")
    def resolve(changes: Iterable[str]) -> RunConfig:
        return resolve_config(
            registry, stored.dataset, stored.arch, device or stored.device, changes,
            values={"train": stored.train, "data": stored.data, "model": stored.model},
            data_dir=data_dir or stored.data_dir, values_from=f"run {run.id}'s config.json",
        )

    config = resolve(assignments)
    if config.data != stored.data or config.model != stored.model:
        raise WorkbenchError("a resumed run keeps its data and model parameters; only train.* may change")
    refusal = resume_refusal(run.id, resolve(()).train, config.train)
    if refusal:
        raise WorkbenchError(refusal)
    return config


def _new_run_folder(run_dir: str | os.PathLike[str]) -> Run:
    run = Run(Path(run_dir).resolve())
    if run.path.exists() and not run.path.is_dir():
        raise WorkbenchError(f"--run-dir {run.path} is a file; choose a new or empty folder")
    if lock_held(run):
        raise run.busy_error()
    if run.config_path.exists():
        raise WorkbenchError(f"--run-dir {run.path} already holds a run; choose an empty folder")
    return run
