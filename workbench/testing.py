"""The plugin contract test: what a plugin author runs to know their plugin works with workbench.

:func:`check_plugin` takes a plugin (entry-point name, module name, module object or path to a loose
plugin file) and checks everything the engine, the CLI and the app rely on, collecting *every*
violation rather than stopping at the first:

- the plugin imports and registers, its hooks are marked with ``@hookimpl`` and named correctly;
- importing the spec module does not import torch (listing plugins must stay fast);
- every spec: the registration rules (:mod:`workbench.plugin_rules`, applied by the registry, whose
  errors this reports: a usable name, parameters with unique identifier names, ``load``/``build`` whose
  module exists), a description, defaults that read back unchanged when shown as text and typed,
  ``defaults`` that name real parameters with valid values, a ``default_arch`` that exists and fits,
  ``load``/``build`` functions that import;
- every dataset: loads (from ``data_dir`` if given), is the type its task expects, and trains on a
  tiny slice with a fitting architecture;
- every architecture, for each task it claims: on the plugin's own dataset of that task, else on a
  tiny synthetic one (:meth:`workbench.tasks.base.Task.synthetic_data`), the model's output has the
  right shape, its loss reaches its parameters, eval mode is deterministic, a few training steps run
  through the real engine (:class:`workbench.engine.Trainer`) in a temporary runs folder, the
  checkpoint loads back (:func:`workbench.engine.load_trained`) and reproduces the recorded test
  metrics, and ``predict`` (and ``generate`` where the task offers it) work on the loaded model.

In a pytest suite::

    from workbench.testing import assert_plugin_contract

    def test_contract():
        assert_plugin_contract("my_plugin")   # AssertionError listing every violation

From the shell: ``workbench plugins --check my_plugin``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from workbench import hookspecs, settings
from workbench.api import ArchitectureSpec, DatasetSpec, LoadContext, resolve_callable
from workbench.corpus import CorpusText
from workbench.errors import WorkbenchError
from workbench.params import Param, ParamGroup
from workbench.registry import PluginInfo, Registry
from workbench.text_cache import PairSplit, TextSplit

__all__ = ["Report", "Violation", "assert_plugin_contract", "check_plugin", "TINY_TRAIN"]

#: Training settings of the contract run: one short epoch, single-threaded, no early stopping.
TINY_TRAIN: dict[str, Any] = {"epochs": 1, "batch_size": 16, "log_every": 1, "patience": 0, "threads": 1,
                              "seed": 0}


@dataclass
class Violation:
    """One broken rule: where (plugin, dataset or architecture) and what, in words."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Report:
    """Everything :func:`check_plugin` found. ``ok`` is true when there are no violations."""

    plugin: str
    violations: list[Violation] = field(default_factory=list)
    #: Not wrong, but worth knowing (a check that could not run, a default that applies to no model).
    warnings: list[Violation] = field(default_factory=list)
    #: What was checked and passed, one line each.
    passed: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def fail(self, where: str, message: str) -> None:
        self.violations.append(Violation(where, message))

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(Violation(where, message))

    def render(self) -> str:
        count = len(self.violations)
        verdict = "passes the contract" if self.ok else \
            f"breaks the contract ({count} violation{'s' if count != 1 else ''})"
        lines = [f"plugin {self.plugin}: {verdict}"]
        if self.datasets or self.architectures:
            lines.append(f"  datasets: {', '.join(self.datasets) or 'none'}; "
                         f"architectures: {', '.join(self.architectures) or 'none'}")
        lines += [f"  FAIL {v}" for v in self.violations]
        lines += [f"  WARN {w}" for w in self.warnings]
        lines += [f"  ok   {p}" for p in self.passed]
        return "\n".join(lines)

    __str__ = render

    def to_dict(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "ok": self.ok,
            "datasets": self.datasets,
            "architectures": self.architectures,
            "violations": [dataclasses.asdict(v) for v in self.violations],
            "warnings": [dataclasses.asdict(w) for w in self.warnings],
            "passed": self.passed,
        }


def assert_plugin_contract(plugin: Any, **options: Any) -> Report:
    """:func:`check_plugin`, raising ``AssertionError`` with the whole report when anything is violated."""
    report = check_plugin(plugin, **options)
    if not report.ok:
        raise AssertionError(report.render())
    return report


def check_plugin(
    plugin: str | os.PathLike[str] | ModuleType | object,
    *,
    data_dir: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    data_params: Mapping[str, Mapping[str, Any]] | None = None,
    model_params: Mapping[str, Mapping[str, Any]] | None = None,
    train_params: Mapping[str, Any] | None = None,
    examples: int = 64,
    check_import: bool = True,
) -> Report:
    """Check ``plugin`` against the plugin contract and return a :class:`Report` of every violation.

    ``plugin``: an entry-point name in ``workbench.plugins`` (an installed plugin), an importable module
    name, a module object, or the path of a loose plugin file or package folder.
    ``data_dir``: where the plugin's datasets find their files (one path, or ``{dataset: path}``);
    default ``WORKBENCH_DATA_DIR``. ``data_params`` / ``model_params``: parameter overrides per dataset /
    architecture name (e.g. a smaller download or model). ``train_params`` overrides :data:`TINY_TRAIN`.
    ``examples``: how many examples of each split the training check keeps.
    """
    checker = _Checker(data_dir, dict(data_params or {}), dict(model_params or {}),
                       {**TINY_TRAIN, **dict(train_params or {})}, examples)
    return checker.run(plugin, check_import)


# -- finding the plugin ------------------------------------------------------------------------
@dataclass
class _Target:
    label: str
    module: Any = None
    module_name: str | None = None  # importable name (for the torch-import check)
    path: Path | None = None  # loose plugin file or folder
    error: str | None = None


def _resolve_target(plugin: Any) -> _Target:
    if not isinstance(plugin, (str, os.PathLike)):
        name = getattr(plugin, "__name__", type(plugin).__name__)
        module_name = name if isinstance(plugin, ModuleType) and not name.startswith("__") else None
        return _Target(label=name, module=plugin, module_name=module_name)
    text = os.fspath(plugin)
    path = Path(text)
    if text.endswith(".py") or "/" in text or os.sep in text or not isinstance(plugin, str):
        return _path_target(text, path)
    for ep in entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        if ep.name == text:
            module_name = ep.value.partition(":")[0].strip()
            try:
                return _Target(label=text, module=ep.load(), module_name=module_name)
            except (Exception, SystemExit) as exc:  # sys.exit() at import is a failure too
                return _Target(label=text, module_name=module_name, error=f"failed to import {ep.value}: {_short(exc)}")
    try:
        return _Target(label=text, module=importlib.import_module(text), module_name=text)
    except ModuleNotFoundError as exc:
        if not (exc.name and text.startswith(exc.name)):
            return _Target(label=text, module_name=text, error=f"failed to import {text}: {_short(exc)}")
    except (Exception, SystemExit) as exc:  # sys.exit() at import is a failure too
        return _Target(label=text, module_name=text, error=f"failed to import {text}: {_short(exc)}")
    if path.exists():
        return _path_target(text, path)
    return _Target(label=text, error=f"no installed plugin (entry point in {hookspecs.ENTRY_POINT_GROUP!r}), "
                                    f"module or file named {text!r}")


def _path_target(text: str, path: Path) -> _Target:
    if not path.exists():
        return _Target(label=text, error=f"{text} does not exist")
    return _Target(label=path.stem if path.is_file() else path.name, path=path)


def _short(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}{where}"


def _imports_torch(module_name: str | None, path: Path | None) -> bool | None:
    """Whether importing the spec module imports torch, checked in a fresh interpreter (None: unknown)."""
    if path is not None:
        setup = f"sys.path.append({str(path.resolve().parent)!r}); "
        name = path.stem if path.is_file() else path.name
    elif module_name:
        setup, name = "", module_name
    else:
        return None
    code = (f"import importlib, sys; {setup}importlib.import_module({name!r}); "
            "print('TORCH' if 'torch' in sys.modules else 'CLEAN')")
    # -P: the current folder stays off sys.path, so a stray module there is neither run nor mistaken for the plugin
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return None
    return "TORCH" in result.stdout


# -- the checks --------------------------------------------------------------------------------
class _Checker:
    def __init__(self, data_dir: Any, data_params: dict[str, Any], model_params: dict[str, Any],
                 train: dict[str, Any], examples: int) -> None:
        self.data_dir = data_dir
        self.data_params = data_params
        self.model_params = model_params
        self.train = train
        self.examples = max(int(examples), 4)
        self.report = Report(plugin="?")
        self.registry = Registry(strict=False)
        self.trained: set[tuple[str, str]] = set()  # (arch, task) already trained
        self.broken_params: set[str] = set()  # "dataset NAME" / "architecture NAME" with unusable params
        self.tmp: Path | None = None

    def run(self, plugin: Any, check_import: bool) -> Report:
        target = _resolve_target(plugin)
        report = self.report
        report.plugin = target.label
        if target.error:
            report.fail("plugin", target.error)
            return report
        info = self._register(target)
        if info is None:
            return report
        report.datasets, report.architectures = list(info.datasets), list(info.architectures)
        for error in info.errors:
            report.fail("plugin", error)
        module = self._module_object(info, target)
        if module is not None:
            self._check_markers(module)
        import_failed = any(e.startswith("failed to import") for e in info.errors)
        if check_import and not import_failed:
            imports_torch = _imports_torch(target.module_name, target.path)
            if imports_torch:
                report.fail("plugin", "importing the plugin module imports torch; keep torch code in a separate "
                            "module named lazily as build=\"package.models:build\" (listing plugins must stay fast)")
            elif imports_torch is False:
                report.passed.append("the plugin module imports without torch")
            else:
                report.warn("plugin", "not checked whether importing the plugin imports torch: it could not be "
                            "imported by name in a fresh interpreter")
        if not info.datasets and not info.architectures and not info.sinks and not info.errors:
            report.fail("plugin", "registers no dataset, architecture or event sink: implement workbench_datasets(), "
                        "workbench_architectures() and/or workbench_event_sinks(), each decorated with @hookimpl "
                        "and returning a list")
        datasets = [self.registry.datasets[n] for n in info.datasets]
        architectures = [self.registry.architectures[n] for n in info.architectures]
        for spec in datasets:
            self._check_dataset_spec(spec)
        for arch in architectures:
            self._check_architecture_spec(arch)
        import torch

        threads = torch.get_num_threads()
        with tempfile.TemporaryDirectory(prefix="workbench-contract-") as tmp:
            self.tmp = Path(tmp)
            try:
                loaded_data: dict[str, Any] = {}
                for spec in datasets:
                    data = self._check_dataset(spec)
                    if data is not None:
                        loaded_data[spec.name] = data
                for arch in architectures:
                    for kind in arch.tasks:
                        self._check_architecture(arch, kind, datasets, loaded_data)
            finally:
                torch.set_num_threads(threads)
                self.tmp = None
        return report

    # -- registration ------------------------------------------------------------------------
    def _register(self, target: _Target) -> PluginInfo | None:
        registry = self.registry
        registry.load_entry_points().load_plugin_dirs()
        if target.path is not None:
            path = target.path.resolve()
            for info in registry.plugins:
                if info.origin == "loose" and info.path and Path(info.path).resolve() == path and not info.disabled:
                    return info
            loaded = registry.load_plugin_path(path, disabled_check=(False, set()))
            if loaded is None:
                self.report.fail("plugin", f"{target.path} is not a loose plugin: give a .py file or a folder "
                                 "with __init__.py")
            return loaded
        for info in registry.plugins:
            if info.disabled or info.origin not in ("package", "builtin"):
                continue
            if info.module.partition(":")[0].strip() == target.module_name:
                return info
        return registry.register_module(target.module)

    def _module_object(self, info: PluginInfo, target: _Target) -> Any:
        if target.module is not None:
            return target.module
        return sys.modules.get(info.module)

    def _check_markers(self, module: Any) -> None:
        marker = f"{hookspecs.PROJECT_NAME}_impl"
        for name in hookspecs.hook_names():
            impl = getattr(module, name, None)
            if impl is not None and not hasattr(impl, marker):
                self.report.fail("plugin", f"{name} is not decorated with @hookimpl "
                                 "(from workbench.api import hookimpl)")

    # -- static checks -----------------------------------------------------------------------
    def _check_params(self, where: str, namespace: str, params: Sequence[Param]) -> ParamGroup | None:
        from workbench.config import TRAIN_GROUP

        # Names, Param types and duplicates are registration rules (workbench.plugin_rules): a spec that
        # breaks one never gets here, its plugin's errors (reported above as "plugin: ...") say why.
        ok = True
        for param in params:
            problem = _default_typed_back(param)
            if problem:
                self.report.fail(where, f"parameter {param.name!r}: {problem}")
                ok = False
            if not param.help:
                self.report.warn(where, f"parameter {param.name!r} has no help text (shown by the CLI and the app)")
            if TRAIN_GROUP.get(param.name) is not None:
                self.report.warn(where, f"parameter {param.name!r} shares its name with a training parameter; "
                                 f"users must qualify it (--set {namespace}.{param.name}=...)")
        if not ok:
            self.broken_params.add(where)
            return None
        return ParamGroup(namespace, list(params))

    def _check_callable(self, where: str, target: Any, what: str) -> None:
        try:
            resolve_callable(target, f"{where} {what}")
        except (Exception, SystemExit) as exc:  # sys.exit() at import is a failure too
            self.report.fail(where, f"{what}={target!r} does not resolve: {_short(exc)}")

    def _check_dataset_spec(self, spec: DatasetSpec) -> None:
        where = f"dataset {spec.name!r}"
        before = len(self.report.violations)
        if not spec.description.strip():
            self.report.fail(where, "description is empty (the CLI and the app show it)")
        self._check_params(where, "data", spec.params)
        self._check_callable(where, spec.load, "load")
        if spec.default_arch is not None:
            arch = self.registry.architectures.get(spec.default_arch)
            if arch is None:
                self.report.fail(where, f"default_arch {spec.default_arch!r} is not provided by any installed plugin")
            elif spec.task not in arch.tasks:
                self.report.fail(where, f"default_arch {spec.default_arch!r} does not do {spec.task}")
        self._check_defaults(where, spec)
        if len(self.report.violations) == before:
            self.report.passed.append(f"{where}: spec, parameters and defaults are valid")

    def _check_defaults(self, where: str, spec: DatasetSpec) -> None:
        from workbench.config import TRAIN_GROUP

        for key, value in spec.defaults.items():
            namespace, dot, name = str(key).partition(".")
            if not dot or namespace not in ("train", "data", "model"):
                self.report.fail(where, f"defaults key {key!r} must be train.NAME, data.NAME or model.NAME")
                continue
            if namespace == "model":
                owners = [p for a in self.registry.architectures_for(spec.task) for p in a.params if p.name == name]
                if not owners:
                    self.report.warn(where, f"defaults key {key!r}: no installed {spec.task} architecture has a "
                                     f"parameter {name!r}, so it applies to none")
                    continue
                candidates = owners
            else:
                group = TRAIN_GROUP if namespace == "train" else ParamGroup("data", list(spec.params))
                param = group.get(name)
                if param is None:
                    known = ", ".join(p.name for p in group.params) or "none"
                    self.report.fail(where, f"defaults key {key!r}: unknown {namespace} parameter {name!r} "
                                     f"(known: {known}); it would be silently ignored")
                    continue
                candidates = [param]
            errors = []
            for param in candidates:
                try:
                    param.validate(value)
                except WorkbenchError as exc:
                    errors.append(str(exc))
            if len(errors) == len(candidates):
                self.report.fail(where, f"defaults key {key!r}: {errors[0]}")

    def _check_architecture_spec(self, spec: ArchitectureSpec) -> None:
        where = f"architecture {spec.name!r}"
        before = len(self.report.violations)
        if not spec.description.strip():
            self.report.fail(where, "description is empty (the CLI and the app show it)")
        self._check_params(where, "model", spec.params)
        self._check_callable(where, spec.build, "build")
        if len(self.report.violations) == before:
            self.report.passed.append(f"{where}: spec and parameters are valid")

    # -- datasets ----------------------------------------------------------------------------
    def _data_dir_for(self, name: str) -> Path | None:
        from workbench.data import default_data_dir

        value = self.data_dir
        if isinstance(value, Mapping):
            value = value.get(name)
        return Path(value) if value is not None else default_data_dir()

    def _check_dataset(self, spec: DatasetSpec) -> Any | None:
        from workbench.data import default_cache_dir
        from workbench.tasks import task_class

        where = f"dataset {spec.name!r}"
        if where in self.broken_params:
            self.report.warn(where, "not loaded: fix its parameters first")
            return None
        try:
            task_cls = task_class(spec.task)
        except WorkbenchError as exc:
            self.report.warn(where, f"not loaded: {exc}")
            return None
        try:
            params = ParamGroup("data", list(spec.params)).resolve(self.data_params.get(spec.name, {}))
        except (WorkbenchError, TypeError) as exc:
            self.report.fail(where, f"data_params: {exc}")
            return None
        context = LoadContext(data_dir=self._data_dir_for(spec.name), cache_dir=default_cache_dir(),
                              mirror=settings.current().data_mirror, seed=0)
        try:
            data = resolve_callable(spec.load, f"{where} load")(context, params)
        except WorkbenchError as exc:
            self.report.fail(where, f"load raised {type(exc).__name__}: {exc} (pass data_dir= to check_plugin, "
                             "or --data-dir to `workbench plugins --check`, if it needs local files)")
            return None
        except Exception as exc:
            self.report.fail(where, f"load crashed with {_short(exc)}; a loader raises workbench.api.DataError "
                             "with a message naming the file and line for bad or missing data")
            return None
        try:
            task_cls.from_data(data)
        except WorkbenchError as exc:
            self.report.fail(where, f"load returned data the {spec.task} task rejects: {exc}")
            return None
        except Exception as exc:
            self.report.fail(where, f"load returned data the {spec.task} task cannot read: {_short(exc)}")
            return None
        tiny = _tiny(data, self.examples)
        self.report.passed.append(f"{where}: loads ({_describe_sizes(data)}) as {type(data).__name__}")
        arch = self._architecture_for(spec)
        if arch is None:
            self.report.warn(where, f"no usable installed architecture does {spec.task}; not trained")
            return tiny
        self._train_and_probe(arch, spec.task, spec, tiny)
        return tiny

    def _architecture_for(self, spec: DatasetSpec) -> ArchitectureSpec | None:
        """The plugin's own architecture for the task, else the dataset's default_arch, else any."""
        own = [self.registry.architectures[n] for n in self.report.architectures]
        default = [self.registry.architectures[spec.default_arch]] if spec.default_arch in self.registry.architectures \
            else []
        for arch in [*own, *default, *self.registry.architectures_for(spec.task)]:
            if spec.task in arch.tasks and f"architecture {arch.name!r}" not in self.broken_params:
                return arch
        return None

    # -- architectures -----------------------------------------------------------------------
    def _check_architecture(self, spec: ArchitectureSpec, kind: str, datasets: list[DatasetSpec],
                            loaded: dict[str, Any]) -> None:
        from workbench.tasks import task_class

        where = f"architecture {spec.name!r} ({kind})"
        if (spec.name, kind) in self.trained:
            return
        if f"architecture {spec.name!r}" in self.broken_params:
            self.report.warn(where, "not trained: fix its parameters first")
            return
        own = next((d for d in datasets if d.task == kind and d.name in loaded), None)
        if own is not None:
            self._train_and_probe(spec, kind, own, loaded[own.name])
            return
        try:
            task_cls = task_class(kind)
        except WorkbenchError as exc:
            self.report.warn(where, f"not checked: {exc}")
            return
        data = task_cls.synthetic_data(seed=0)
        if data is None:
            self.report.warn(where, f"not checked: the plugin has no {kind} dataset and this workbench has no "
                             f"synthetic {kind} data; add a dataset or check with one")
            return
        synthetic = DatasetSpec(name=f"synthetic-{kind}", task=kind, description=f"synthetic {kind} data",
                                load=lambda context, params: data)
        self._train_and_probe(spec, kind, synthetic, _tiny(data, self.examples))

    # -- the training probe ------------------------------------------------------------------
    def _train_and_probe(self, arch: ArchitectureSpec, kind: str, dataset: DatasetSpec, data: Any) -> None:
        """Shapes, gradients, determinism, real training, checkpoint round trip, predict, generate."""
        from workbench.tasks import task_class

        self.trained.add((arch.name, kind))
        where = f"architecture {arch.name!r} on {dataset.name!r}"
        before = len(self.report.violations)
        config = self._contract_config(where, arch, kind, dataset, data)
        if config is None:
            return
        task = task_class(kind).from_data(data)
        encoded = task.encode(data)
        if not encoded["train"]:
            self.report.fail(where, "no training example left after encoding")
            return
        deterministic = self._probe_model(where, config, task, encoded["train"])
        if deterministic is None:
            return
        trained = self._train_through_engine(where, config)
        if trained is None:
            return
        result, loaded = trained
        if encoded["test"] and deterministic:
            self._check_reloaded_metrics(where, loaded, result.metrics, task.main_metric)
        self._check_predict(where, loaded, data)
        if len(self.report.violations) == before:
            self.report.passed.append(
                f"{where}: output shape, gradients, {result.epochs_completed} epoch of training "
                f"({len(encoded['train'])} examples), checkpoint round trip, predict"
                + (", generate" if loaded.task.supports_generation else ""))

    def _contract_config(self, where: str, arch: ArchitectureSpec, kind: str, dataset: DatasetSpec,
                         data: Any) -> Any:
        """The probe's RunConfig (None after reporting why there is none). The run reads the (sliced)
        data through a registered dataset, exactly as `workbench train` does."""
        from workbench.config import resolve_config

        contract_name = f"contract-{dataset.name}"
        proxy = DatasetSpec(name=contract_name, task=kind, description=dataset.description,
                            load=lambda context, params: data, params=dataset.params)
        if contract_name not in self.registry.datasets:
            self.registry.register_module(_Provides([proxy]), PluginInfo(
                name=contract_name, module=contract_name, package=None, version=None, builtin=False))
        try:
            return resolve_config(
                self.registry, contract_name, arch.name, "cpu",
                values={"train": self.train, "data": self.data_params.get(dataset.name, {}),
                        "model": self.model_params.get(arch.name, {})},
            )
        except WorkbenchError as exc:
            self.report.fail(where, f"settings rejected: {exc}")
        except Exception as exc:
            self.report.fail(where, f"settings could not be resolved: {_short(exc)}")
        return None

    def _probe_model(self, where: str, config: Any, task: Any, examples: Any) -> bool | None:
        """Build the model and check one batch's output and gradients; whether it is deterministic,
        or None after reporting why it could not be checked."""
        import torch

        from workbench.engine import build_model

        report = self.report
        torch.manual_seed(0)
        try:
            model = build_model(config, task, self.registry)
        except WorkbenchError as exc:
            report.fail(where, str(exc))
            return None
        except Exception as exc:
            report.fail(where, f"build({task.model_context()}, params) crashed with {_short(exc)}")
            return None
        batch = next(task.batches(examples, min(4, len(examples)), shuffle=False))
        model.train()
        try:
            output = model(**batch.inputs)
        except Exception as exc:
            inputs = ", ".join(f"{k}={_shape(v)}" for k, v in batch.inputs.items())
            report.fail(where, f"forward({inputs}) crashed with {_short(exc)}")
            return None
        problems = task.check_output(output, batch)
        for problem in problems:
            report.fail(where, problem)
        if problems:
            return None
        self._check_gradients(where, model, task, batch)
        return self._check_determinism(where, model, batch)

    def _train_through_engine(self, where: str, config: Any) -> tuple[Any, Any] | None:
        """A real (tiny) run and its checkpoint loaded back; None after reporting a failure."""
        from workbench.engine import Trainer, load_trained

        assert self.tmp is not None
        try:
            result = Trainer(config, registry=self.registry, runs_root=self.tmp / "runs").train()
        except Exception as exc:
            self.report.fail(where, f"training through the engine failed: {_short(exc)}")
            return None
        if result.state != "finished" or result.checkpoint is None:
            self.report.fail(where, f"training ended {result.state} without a checkpoint ({result.message})")
            return None
        try:
            return result, load_trained(result.checkpoint, self.registry, "cpu")
        except Exception as exc:
            self.report.fail(where, f"the checkpoint does not load back: {_short(exc)}")
            return None

    def _check_reloaded_metrics(self, where: str, loaded: Any, recorded: dict[str, Any], main_metric: str) -> None:
        """The reloaded checkpoint scores what training recorded (else state lives outside state_dict)."""
        from workbench.engine import evaluate_checkpoint

        try:
            again = evaluate_checkpoint(loaded, self.registry, "test")
        except Exception as exc:
            self.report.fail(where, f"evaluating the reloaded checkpoint failed: {_short(exc)}")
            return
        for key in ("loss", main_metric):
            a, b = recorded.get(key), again.get(key)
            if isinstance(a, float) and isinstance(b, float) and not math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5):
                self.report.fail(where, f"the reloaded checkpoint gives test {key} {b:.6f}, training recorded "
                                 f"{a:.6f}: state outside the module's state_dict (register buffers, "
                                 "not plain attributes)?")

    def _check_gradients(self, where: str, model: Any, task: Any, batch: Any) -> None:
        import torch

        model.zero_grad(set_to_none=True)
        try:
            output = task.loss(model, batch)
            loss = output[0] if isinstance(output, tuple) else output
            loss.backward()
        except Exception as exc:
            self.report.fail(where, f"the loss does not backpropagate: {_short(exc)}")
            return
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            self.report.fail(where, "the model has no trainable parameters")
            return
        if not any(p.grad is not None and bool(torch.any(p.grad != 0)) for p in params):
            self.report.fail(where, "the loss does not reach any parameter (all gradients are zero or None)")
        model.zero_grad(set_to_none=True)

    def _check_determinism(self, where: str, model: Any, batch: Any) -> bool:
        import torch

        model.eval()
        with torch.no_grad():
            first, second = model(**batch.inputs), model(**batch.inputs)
        model.train()
        if isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and not torch.allclose(
                first, second, atol=1e-6):
            self.report.fail(where, "two forward passes in eval mode differ: randomness outside nn.Dropout "
                             "(F.dropout(training=True)? sampling in forward?)")
            return False
        return True

    def _check_predict(self, where: str, loaded: Any, data: Any) -> None:
        task = loaded.task
        inputs = task.sample_inputs(data)
        if not inputs:
            self.report.warn(where, f"predict not checked: the {task.kind} task offers no sample inputs")
        for text in inputs:
            try:
                prediction = task.predict(loaded.model, text, loaded.device)
                json.dumps(prediction)
                task.render_prediction(prediction)
            except Exception as exc:
                self.report.fail(where, f"predict({text!r}) on the reloaded model failed: {_short(exc)}")
        if task.supports_generation:
            prime = inputs[0] if inputs else ""
            try:
                pieces = list(_take(task.generate(loaded.model, prime, 8, loaded.device, seed=0), 8))
            except Exception as exc:
                self.report.fail(where, f"generate(prime={prime!r}) on the reloaded model failed: {_short(exc)}")
                return
            if not all(isinstance(p, str) for p in pieces):
                self.report.fail(where, "generate must yield strings")


class _Provides:
    """A plugin object registering given dataset specs (the contract run's sliced data)."""

    def __init__(self, specs: list[DatasetSpec]) -> None:
        self._specs = specs

    @hookspecs.hookimpl
    def workbench_datasets(self) -> list[DatasetSpec]:
        return self._specs


def _take(iterator: Iterator[Any], count: int) -> Iterator[Any]:
    for index, item in enumerate(iterator):
        if index >= count:
            break
        yield item


def _default_typed_back(param: Param) -> str | None:
    """Why the default, shown as text (the app's field, `--help`, a saved setup) and read back as a
    user's typing would be, is not the same value; None when it is. (Param already checks that the
    default itself is allowed.)"""
    default = param.default
    shown = ("true" if default else "false") if isinstance(default, bool) else str(default)
    try:
        typed_back = param.parse(shown)
    except WorkbenchError as exc:
        return f"its default {default!r} is shown as {shown!r}, which is refused when typed back ({exc})"
    if typed_back != default:
        return f"its default {default!r} is shown as {shown!r}, which reads back as {typed_back!r}"
    return None


def _tiny(data: Any, examples: int) -> Any:
    """The first ``examples`` items of each split (``train``/``valid``/``test`` lists; strings keep
    ``examples * 32`` characters), so the contract run stays fast on any dataset."""
    if not dataclasses.is_dataclass(data) or isinstance(data, type):
        return data
    changes: dict[str, Any] = {}
    for split in ("train", "valid", "test"):
        value = getattr(data, split, None)
        if isinstance(value, (str, CorpusText)):  # a corpus in the token cache slices to a string
            changes[split] = value[: examples * 32]
        elif isinstance(value, (list, TextSplit, PairSplit)):  # a split in the text cache slices like a list
            changes[split] = value[: examples if split == "train" else max(examples // 2, 2)]
    return dataclasses.replace(data, **changes) if changes else data


def _describe_sizes(data: Any) -> str:
    sizes = []
    for split in ("train", "valid", "test"):
        value = getattr(data, split, None)
        if isinstance(value, (list, str, CorpusText, TextSplit, PairSplit)):
            sizes.append(f"{split} {len(value):,}")
    return ", ".join(sizes) or "no splits"


def _shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    dtype = str(getattr(value, "dtype", "")).replace("torch.", "")
    return f"[{', '.join(map(str, shape))}] {dtype}" if shape is not None else type(value).__name__

