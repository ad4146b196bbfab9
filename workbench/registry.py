"""Plugin discovery: every dataset and architecture comes from an entry point in ``workbench.plugins``.

Built-in plugins are registered through the same group as third-party ones, so discovery is always
exercised. A plugin that fails to import or raises in a hook is recorded with its error and skipped;
the rest keeps working. Environment switches:

- ``WORKBENCH_DISABLE_PLUGINS=1``: load only the built-in plugins.
- ``WORKBENCH_PLUGINS=a,b``: load only these third-party plugins (by entry-point name), plus built-ins.
- ``WORKBENCH_STRICT_PLUGINS=1``: raise on the first broken plugin (for plugin authors).
- ``WORKBENCH_PLUGINS_DIR=DIR[:DIR...]`` (or ``workbench --plugins-dir DIR``): also import every
  ``*.py`` file and package folder in these folders as a "loose" plugin, for quick experiments
  without packaging. Names starting with ``_`` or ``.`` are skipped (helper modules, caches).

Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from workbench import hookspecs
from workbench.api import ArchitectureSpec, DatasetSpec
from workbench.errors import PluginError, WorkbenchError

BUILTIN_DISTRIBUTION = "workbench"
PLUGINS_DIR_ENV = "WORKBENCH_PLUGINS_DIR"


@dataclass
class PluginInfo:
    """What ``workbench plugins`` shows for one plugin."""

    name: str
    module: str
    package: str | None
    version: str | None
    builtin: bool
    datasets: list[str] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Skipped because of WORKBENCH_DISABLE_PLUGINS / WORKBENCH_PLUGINS.
    disabled: bool = False
    #: "builtin", "package" (an installed entry point), "loose" (a file in a plugins folder) or
    #: "module" (registered from code, e.g. by workbench.testing).
    origin: str = "module"
    #: The file or folder a loose plugin was imported from.
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "package": self.package,
            "version": self.version,
            "builtin": self.builtin,
            "origin": self.origin,
            "path": self.path,
            "disabled": self.disabled,
            "datasets": self.datasets,
            "architectures": self.architectures,
            "errors": self.errors,
        }


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def plugin_dirs_from_env() -> list[Path]:
    """The folders named in ``WORKBENCH_PLUGINS_DIR`` (``os.pathsep``-separated)."""
    raw = os.environ.get(PLUGINS_DIR_ENV, "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


def _selection() -> tuple[bool, set[str]]:
    only = {n.strip() for n in os.environ.get("WORKBENCH_PLUGINS", "").split(",") if n.strip()}
    return _env_flag("WORKBENCH_DISABLE_PLUGINS"), only


class Registry:
    """The datasets and architectures all loaded plugins provide."""

    def __init__(self, strict: bool | None = None) -> None:
        self.strict = _env_flag("WORKBENCH_STRICT_PLUGINS") if strict is None else strict
        self.plugins: list[PluginInfo] = []
        self.datasets: dict[str, DatasetSpec] = {}
        self.architectures: dict[str, ArchitectureSpec] = {}
        self.dataset_owner: dict[str, str] = {}
        self.architecture_owner: dict[str, str] = {}
        self.manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.manager.add_hookspecs(hookspecs)

    # -- loading -----------------------------------------------------------------------------
    def load_entry_points(self, group: str = hookspecs.ENTRY_POINT_GROUP) -> Registry:
        disable_third_party, only = _selection()
        seen: set[tuple[str, str]] = set()
        for ep in sorted(entry_points(group=group), key=_builtin_first):
            key = (ep.name, ep.value)
            if key in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(key)
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else None
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                package=package,
                version=dist.version if dist is not None else None,
                builtin=package == BUILTIN_DISTRIBUTION,
                origin="builtin" if package == BUILTIN_DISTRIBUTION else "package",
            )
            self.plugins.append(info)
            if not info.builtin and (disable_third_party or (only and ep.name not in only)):
                info.disabled = True
                continue
            self._load_entry_point(ep, info)
        return self

    def _load_entry_point(self, ep: EntryPoint, info: PluginInfo) -> None:
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take the app down
            self._fail(info, f"failed to import {ep.value}: {_describe(exc)}", exc)
            return
        self.register_module(module, info)

    def load_plugin_dirs(self, folders: Iterable[str | os.PathLike[str]] | None = None) -> Registry:
        """Import every ``*.py`` file and package folder in ``folders`` (default: ``WORKBENCH_PLUGINS_DIR``)
        as a loose plugin, with the same error isolation as entry points.

        The folder is appended to ``sys.path`` so a loose plugin can name sibling modules lazily
        (``build="_my_models:build"``); appended, not prepended, so a file cannot shadow an installed
        module, and one whose name is already taken is reported instead of silently replaced.
        """
        disable_third_party, only = _selection()
        requested = plugin_dirs_from_env() if folders is None else [Path(f).expanduser() for f in folders]
        loaded = {Path(p.path).parent.resolve() for p in self.plugins if p.origin == "loose" and p.path}
        for folder in dict.fromkeys(requested):
            if folder.is_dir() and folder.resolve() in loaded:
                continue  # the same folder named twice (relative and absolute, option and variable)
            if folder.is_dir():
                loaded.add(folder.resolve())
            if not folder.is_dir():
                info = PluginInfo(name=str(folder), module="", package=None, version=None, builtin=False,
                                  origin="loose", path=str(folder))
                self.plugins.append(info)
                self._fail(info, f"plugins folder {folder} does not exist or is not a folder")
                continue
            for entry in sorted(folder.iterdir()):
                if not entry.name.startswith(("_", ".")):
                    self.load_plugin_path(entry, disabled_check=(disable_third_party, only))
        return self

    def load_plugin_path(self, entry: str | os.PathLike[str],
                         disabled_check: tuple[bool, set[str]] | None = None) -> PluginInfo | None:
        """Import one loose plugin: a ``*.py`` file or a folder with ``__init__.py``. None if it is neither."""
        entry = Path(entry).expanduser()
        if entry.is_file() and entry.suffix == ".py":
            name, expected = entry.stem, entry
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            name, expected = entry.name, entry / "__init__.py"
        else:
            return None
        disable_third_party, only = disabled_check if disabled_check is not None else _selection()
        info = PluginInfo(name=name, module=name, package=None, version=None, builtin=False,
                          origin="loose", path=str(entry))
        self.plugins.append(info)
        if disable_third_party or (only and name not in only):
            info.disabled = True
            return info
        self._load_loose(entry.parent, name, expected, info)
        return info

    def _load_loose(self, folder: Path, name: str, expected: Path, info: PluginInfo) -> None:
        if not name.isidentifier():
            self._fail(info, f"{info.path}: {name!r} is not a valid Python module name; rename it")
            return
        where = str(folder.resolve())
        if where not in sys.path:
            sys.path.append(where)
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            self._fail(info, f"failed to import {info.path}: {_describe(exc)}", exc)
            return
        found = getattr(module, "__file__", None)
        if found is None or Path(found).resolve() != expected.resolve():
            self._fail(info, f"{info.path}: the module name {name!r} is already taken by "
                             f"{found or 'a built-in module'}; rename the file")
            return
        version = getattr(module, "__version__", None)
        info.version = str(version) if version is not None else None
        self.register_module(module, info)

    def register_module(self, module: ModuleType | object, info: PluginInfo | None = None) -> PluginInfo:
        """Register an already-imported plugin object (entry points, loose plugins and tests use this)."""
        if info is None:
            name = getattr(module, "__name__", repr(module))
            info = PluginInfo(name=name, module=name, package=None, version=None, builtin=False)
            self.plugins.append(info)
        try:
            self.manager.register(module, name=f"{info.name}:{info.module}")
        except Exception as exc:
            self._fail(info, f"could not register: {_describe(exc)}", exc)
            return info
        self._collect(module, info)
        return info

    def _collect(self, module: object, info: PluginInfo) -> None:
        known = hookspecs.hook_names()
        for attr in sorted(dir(module)):
            if attr.startswith("workbench_") and attr not in known and callable(getattr(module, attr, None)):
                self._fail(info, f"{attr} is not a workbench hook (known hooks: {', '.join(known)}); "
                                 "a typo? It is ignored")
        for hook_name, kind, expected in (
            ("workbench_datasets", "dataset", DatasetSpec),
            ("workbench_architectures", "architecture", ArchitectureSpec),
        ):
            impl = getattr(module, hook_name, None)
            if impl is None:
                continue
            try:
                specs = impl()
            except Exception as exc:
                self._fail(info, f"{hook_name}() raised {_describe(exc)}", exc)
                continue
            if specs is None:
                specs = []
            if not isinstance(specs, Iterable) or isinstance(specs, (str, bytes)):
                self._fail(info, f"{hook_name}() must return a list of {expected.__name__}, got {type(specs).__name__}")
                continue
            for spec in specs:
                if not isinstance(spec, expected):
                    self._fail(info, f"{hook_name}() returned {type(spec).__name__}, expected {expected.__name__}")
                    continue
                table = self.datasets if kind == "dataset" else self.architectures
                owners = self.dataset_owner if kind == "dataset" else self.architecture_owner
                if spec.name in table:
                    self._fail(info, f"{kind} {spec.name!r} is already provided by plugin {owners[spec.name]!r}")
                    continue
                table[spec.name] = spec  # type: ignore[assignment]
                owners[spec.name] = info.name
                (info.datasets if kind == "dataset" else info.architectures).append(spec.name)

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
        info.errors.append(message)
        if self.strict:
            raise PluginError(f"plugin {info.name!r}: {message}") from exc

    # -- lookup ------------------------------------------------------------------------------
    @property
    def errors(self) -> list[tuple[PluginInfo, str]]:
        return [(p, e) for p in self.plugins for e in p.errors]

    def dataset(self, name: str) -> DatasetSpec:
        try:
            return self.datasets[name]
        except KeyError:
            raise WorkbenchError(
                f"unknown dataset {name!r}; available: {', '.join(sorted(self.datasets)) or 'none'}"
                " (see `workbench plugins`)"
            ) from None

    def architecture(self, name: str) -> ArchitectureSpec:
        try:
            return self.architectures[name]
        except KeyError:
            raise WorkbenchError(
                f"unknown architecture {name!r}; available: {', '.join(sorted(self.architectures)) or 'none'}"
            ) from None

    def architectures_for(self, task: str) -> list[ArchitectureSpec]:
        return [a for a in self.architectures.values() if task in a.tasks]


def _builtin_first(ep: EntryPoint) -> tuple[int, str]:
    dist = getattr(ep, "dist", None)
    builtin = dist is not None and dist.metadata["Name"] == BUILTIN_DISTRIBUTION
    return (0 if builtin else 1, ep.name)


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


_default: Registry | None = None


def get_registry(reload: bool = False) -> Registry:
    """The process-wide registry, loaded from entry points and plugin folders on first use."""
    global _default
    if _default is None or reload:
        importlib.invalidate_caches()
        _default = Registry().load_entry_points().load_plugin_dirs()
    return _default


def reset_registry() -> None:
    """Forget the process-wide registry (after changing WORKBENCH_PLUGINS_DIR, for example)."""
    global _default
    _default = None
