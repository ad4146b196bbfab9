"""Plugin discovery: every dataset and architecture comes from an entry point in ``workbench.plugins``.

Built-in plugins are registered through the same group as third-party ones, so discovery is always
exercised. Each plugin is registered with a :class:`pluggy.PluginManager` and its hooks are called
through pluggy, one plugin at a time, so a plugin that fails to import, names an unknown hook, raises
in a hook or returns a spec that breaks a rule (:mod:`workbench.plugin_rules`) is recorded with its
error and skipped; the rest keeps working. Environment switches (read through
:func:`workbench.settings.current`):

- ``WORKBENCH_DISABLE_PLUGINS=1``: load only the built-in plugins.
- ``WORKBENCH_PLUGINS=a,b``: load only these third-party plugins (by entry-point name), plus built-ins.
- ``WORKBENCH_STRICT_PLUGINS=1``: raise on the first broken plugin (for plugin authors).
- ``WORKBENCH_PLUGINS_DIR=DIR[:DIR...]`` (or ``workbench --plugins-dir DIR``): also import every
  ``*.py`` file and package folder in these folders as a "loose" plugin, for quick experiments
  without packaging. Names starting with ``_`` or ``.`` are skipped (helper modules, caches).
- ``WORKBENCH_TRACE_PLUGINS=1``: print every hook call, the plugin it went to and what it returned
  (or raised) on stderr.
- ``WORKBENCH_PLUGIN_TIMEOUT=SECONDS`` (default 10, 0 for none): how long each plugin may take to
  import, and each of its hook calls; one that takes longer is reported and skipped.

Containment covers every exception a plugin can raise, ``SystemExit`` (``sys.exit()`` at import)
and other ``BaseException`` subclasses included; only ``KeyboardInterrupt`` in the main thread (the
user's Ctrl-C) goes through. Imports and hook calls run in a daemon thread that is waited for at most
the time limit: Python cannot stop a thread, so one that hangs is left behind until the process exits
(a daemon thread does not keep it alive), and a later attempt to import the same module is refused at
once instead of waiting again.

Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import re
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pluggy

from workbench import hookspecs, settings
from workbench.api import ArchitectureSpec, DatasetSpec, EventSinkSpec, InspectorSpec, resolve_callable
from workbench.errors import PluginError, WorkbenchError
from workbench.plugin_rules import spec_problems

#: The distribution (on the package index) that ships workbench and its built-in plugins.
BUILTIN_DISTRIBUTION = "seq-workbench"

_T = TypeVar("_T")

#: Imports that overran their time limit and are still running, by module name (their threads).
_unfinished_imports: dict[str, threading.Thread] = {}


class PluginTimeout(Exception):
    """A plugin's import or hook call that did not finish in time; its thread is left running."""

    def __init__(self, seconds: float, thread: threading.Thread) -> None:
        super().__init__(f"did not finish within {seconds:g} s")
        self.seconds = seconds
        self.thread = thread


def run_with_time_limit(action: Callable[[], _T], seconds: float, name: str) -> _T:
    """``action()`` in a daemon thread, waited for at most ``seconds`` (0: called here, no limit).

    Raises :class:`PluginTimeout` when it overruns (the thread stays behind: Python cannot stop it)
    and re-raises whatever ``action`` raised, ``SystemExit`` included. A ``KeyboardInterrupt`` from
    the thread becomes a ``RuntimeError``: a real Ctrl-C only ever reaches the main thread, which
    is interruptible while it waits here, so that one still stops the program.
    """
    if seconds <= 0:
        return action()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = action()
        except KeyboardInterrupt as exc:
            outcome["error"] = RuntimeError("raised KeyboardInterrupt itself").with_traceback(exc.__traceback__)
        except BaseException as exc:  # handed to the caller, which decides
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"workbench-plugin {name}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise PluginTimeout(seconds, thread)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


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
    #: The event sinks it provides (hook ``workbench_event_sinks``).
    sinks: list[str] = field(default_factory=list)
    #: The layer step functions it offers the inspector (hook ``workbench_inspectors``).
    inspectors: list[str] = field(default_factory=list)
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
            "sinks": self.sinks,
            "inspectors": self.inspectors,
            "errors": self.errors,
        }


def _selection() -> tuple[bool, set[str]]:
    now = settings.current()
    return now.disable_plugins, set(now.only_plugins)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with workbench's hook specs, plus two allowances.

    Unmarked functions named like a hook (``def workbench_datasets():`` without ``@hookimpl``) are
    taken as implementations, as workbench always did, so plugins written that way keep working
    (``workbench plugins --check`` still asks for the marker). And a plugin found to implement a hook
    with no spec can be registered again without it (:meth:`drop_unknown_hooks`), so a typo costs the
    plugin that one function, not its other hooks.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        # Plugins registered without their unknown hooks, by id(); the value keeps each object alive
        # so its id is not reused by another.
        self._known_hooks_only: dict[int, object] = {}

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(f"{self.project_name}_") and _is_plain_function(plugin, name):
            opts = pluggy.HookimplOpts(wrapper=False, hookwrapper=False, optionalhook=False, tryfirst=False,
                                       trylast=False, specname=None)
        if opts is not None and id(plugin) in self._known_hooks_only:
            hook = getattr(self.hook, opts.get("specname") or name, None)
            if hook is None or not hook.has_spec():
                return None
        return opts

    def unknown_hooks(self, plugin: object) -> list[str]:
        """The hooks ``plugin`` implements that no spec declares (what ``check_pending`` rejects)."""
        callers = self.get_hookcallers(plugin) or []
        return sorted(caller.name for caller in callers if not caller.has_spec())

    def drop_unknown_hooks(self, plugin: object) -> None:
        """Register ``plugin`` again under the same name, without its hooks that have no spec."""
        name = self.get_name(plugin)
        self.unregister(plugin)
        self._known_hooks_only[id(plugin)] = plugin
        self.register(plugin, name=name)

    def call_one(self, hook_name: str, plugin: object) -> list[Any] | None:
        """Call ``plugin``'s implementation of ``hook_name`` alone (None if it has none), through
        pluggy, so hook-call monitoring (``WORKBENCH_TRACE_PLUGINS``) sees it and its exception is
        its own."""
        others = [p for p in self.get_plugins() if p is not plugin]
        caller = self.subset_hook_caller(hook_name, remove_plugins=others)
        if not any(impl.plugin is plugin for impl in caller.get_hookimpls()):
            return None
        return caller()


def _is_plain_function(plugin: object, name: str) -> bool:
    """Whether ``plugin.name`` is a function pluggy can take as a hook (read without running
    properties or ``__getattr__``)."""
    static = inspect.getattr_static(plugin, name, None)
    return isinstance(static, (staticmethod, classmethod, types.FunctionType, types.MethodType))


class Registry:
    """The datasets, architectures and event sinks all loaded plugins provide."""

    def __init__(self, strict: bool | None = None) -> None:
        now = settings.current()
        self.strict = now.strict_plugins if strict is None else strict
        self.plugins: list[PluginInfo] = []
        self.datasets: dict[str, DatasetSpec] = {}
        self.architectures: dict[str, ArchitectureSpec] = {}
        self.dataset_owner: dict[str, str] = {}
        self.architecture_owner: dict[str, str] = {}
        self.sinks: dict[str, EventSinkSpec] = {}
        self.sink_owner: dict[str, str] = {}
        self.inspectors: dict[str, InspectorSpec] = {}
        self.inspector_owner: dict[str, str] = {}
        self.manager = PluginManager()
        if now.trace_plugins:
            self.manager.add_hookcall_monitoring(_trace_before, _trace_after)

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
                builtin=_is_builtin_distribution(package),
                origin="builtin" if _is_builtin_distribution(package) else "package",
            )
            self.plugins.append(info)
            if not info.builtin and (disable_third_party or (only and ep.name not in only)):
                info.disabled = True
                continue
            self._load_entry_point(ep, info)
        return self

    def _load_entry_point(self, ep: EntryPoint, info: PluginInfo) -> None:
        module = self._import(ep.module, ep.load, info, ep.value)
        if module is not None:
            self.register_module(module, info)

    def _import(self, module_name: str, load: Callable[[], Any], info: PluginInfo, what: str) -> Any | None:
        """``load()`` within the time limit; None after recording why it failed. Nothing a plugin
        raises (``sys.exit()`` included) gets past this; a hang costs at most the time limit."""
        limit = settings.current().plugin_timeout
        earlier = _unfinished_imports.get(module_name)
        if earlier is not None and earlier.is_alive():
            self._fail(info, f"{what} is still importing since an earlier attempt that did not finish within "
                             f"the time limit; skipped ({_TIMEOUT_ADVICE})")
            return None
        try:
            return run_with_time_limit(load, limit, module_name)
        except PluginTimeout as exc:
            _unfinished_imports[module_name] = exc.thread
            self._fail(info, f"{what} did not finish importing within {limit:g} s; skipped ({_TIMEOUT_ADVICE})",
                       exc)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin must not take the app down, sys.exit() included
            self._fail(info, f"failed to import {what}: {_describe(exc)}", exc)
        return None

    def load_plugin_dirs(self, folders: Iterable[str | os.PathLike[str]] | None = None) -> Registry:
        """Import every ``*.py`` file and package folder in ``folders`` (default: ``WORKBENCH_PLUGINS_DIR``)
        as a loose plugin, with the same error isolation as entry points.

        The folder is appended to ``sys.path`` so a loose plugin can name sibling modules lazily
        (``build="_my_models:build"``); appended, not prepended, so a file cannot shadow an installed
        module, and one whose name is already taken is reported instead of silently replaced.
        """
        disable_third_party, only = _selection()
        named = settings.current().plugin_dirs if folders is None else folders
        requested = [Path(f).expanduser() for f in named]
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
        module = self._import(name, lambda: importlib.import_module(name), info, str(info.path))
        if module is None:
            return
        found = vars(module).get("__file__")
        if found is None or Path(found).resolve() != expected.resolve():
            self._fail(info, f"{info.path}: the module name {name!r} is already taken by "
                             f"{found or 'a built-in module'}; rename the file")
            return
        version = vars(module).get("__version__")
        info.version = str(version) if version is not None else None
        self.register_module(module, info)

    def register_module(self, module: ModuleType | object, info: PluginInfo | None = None) -> PluginInfo:
        """Register an already-imported plugin object (entry points, loose plugins and tests use this)
        and collect the specs its hooks return."""
        if info is None:
            name = getattr(module, "__name__", repr(module))
            info = PluginInfo(name=name, module=name, package=None, version=None, builtin=False)
            self.plugins.append(info)
        if self._register_with_manager(module, info):
            self._collect(module, info)
        return info

    def _forget(self, plugin: object) -> None:
        """pluggy before 1.7 leaves a plugin that failed validation half registered: take it out."""
        if self.manager.is_registered(plugin):
            self.manager.unregister(plugin)

    def _register_with_manager(self, plugin: object, info: PluginInfo) -> bool:
        """pluggy validates the plugin: ``register`` rejects a known hook with arguments its spec
        lacks, ``check_pending`` a hook no spec declares (that one function is dropped, with an error)."""
        manager = self.manager
        try:
            manager.register(plugin, name=f"{info.name}:{info.module}")
        except pluggy.PluginValidationError as exc:
            self._forget(plugin)
            self._fail(info, f"could not register: {_one_line(exc)}", exc)
            return False
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # e.g. a property that calls sys.exit() while pluggy scans the plugin
            self._forget(plugin)
            self._fail(info, f"could not register: {_describe(exc)}", exc)
            return False
        try:
            manager.check_pending()
        except pluggy.PluginValidationError as exc:
            unknown = manager.unknown_hooks(exc.plugin)
            manager.drop_unknown_hooks(exc.plugin)
            if exc.plugin is not plugin:  # registered behind the registry's back: not this plugin's error
                unknown = []
            known = ", ".join(hookspecs.hook_names())
            for hook_name in unknown:
                self._fail(info, f"{hook_name} is not a workbench hook (known hooks: {known}); a typo? "
                                 "It is ignored", exc)
        return True

    def _collect(self, plugin: object, info: PluginInfo) -> None:
        for hook_name, kind, expected in (
            ("workbench_datasets", "dataset", DatasetSpec),
            ("workbench_architectures", "architecture", ArchitectureSpec),
            ("workbench_event_sinks", "event sink", EventSinkSpec),
            ("workbench_inspectors", "inspector", InspectorSpec),
        ):
            try:
                call = functools.partial(self.manager.call_one, hook_name, plugin)
                results = run_with_time_limit(call, settings.current().plugin_timeout, f"{info.name}.{hook_name}")
            except PluginTimeout as exc:
                self._fail(info, f"{hook_name}() {exc}; skipped ({_TIMEOUT_ADVICE})", exc)
                continue
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # sys.exit() in a hook is that plugin's error too
                self._fail(info, f"{hook_name}() raised {_describe(exc)}", exc)
                continue
            for specs in results or ():  # pluggy leaves out a None result
                if not isinstance(specs, Iterable) or isinstance(specs, (str, bytes)):
                    self._fail(info, f"{hook_name}() must return a list of {expected.__name__}, "
                                     f"got {type(specs).__name__}")
                    continue
                for spec in specs:
                    if not isinstance(spec, expected):
                        self._fail(info, f"{hook_name}() returned {type(spec).__name__}, "
                                         f"expected {expected.__name__}")
                        continue
                    self._add_spec(kind, spec, info)

    def _add_spec(self, kind: str, spec: DatasetSpec | ArchitectureSpec | EventSinkSpec | InspectorSpec,
                  info: PluginInfo) -> None:
        """Record one spec, unless it breaks a registration rule or its name is taken."""
        problems = spec_problems(spec)
        for problem in problems:
            self._fail(info, problem)
        if problems:
            return
        places: dict[str, tuple[dict[str, Any], dict[str, str], list[str]]] = {
            "dataset": (self.datasets, self.dataset_owner, info.datasets),
            "architecture": (self.architectures, self.architecture_owner, info.architectures),
            "event sink": (self.sinks, self.sink_owner, info.sinks),
            "inspector": (self.inspectors, self.inspector_owner, info.inspectors),
        }
        table, owners, names = places[kind]
        if spec.name in table:
            self._fail(info, f"{kind} {spec.name!r} is already provided by plugin {owners[spec.name]!r}")
            return
        table[spec.name] = spec
        owners[spec.name] = info.name
        names.append(spec.name)

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None = None) -> None:
        info.errors.append(message)
        if self.strict:
            raise PluginError(f"plugin {info.name!r}: {message}") from exc

    # -- lookup ------------------------------------------------------------------------------
    @property
    def errors(self) -> list[tuple[PluginInfo, str]]:
        return [(p, e) for p in self.plugins for e in p.errors]

    def dataset(self, name: str) -> DatasetSpec:
        return self._lookup(self.datasets, "dataset", name)

    def architecture(self, name: str) -> ArchitectureSpec:
        return self._lookup(self.architectures, "architecture", name, see_plugins=False)

    def sink(self, name: str) -> EventSinkSpec:
        return self._lookup(self.sinks, "event sink", name)

    def _lookup(self, table: dict[str, Any], kind: str, name: str, see_plugins: bool = True) -> Any:
        """``table[name]``, or an error listing what there is and which plugins failed to load."""
        try:
            return table[name]
        except KeyError:
            raise WorkbenchError(
                f"unknown {kind} {name!r}; available: {', '.join(sorted(table)) or 'none'}"
                f"{self._broken_note()}{' (see `workbench plugins`)' if see_plugins else ''}"
            ) from None

    def _broken_note(self) -> str:
        """Which plugins failed to load, for a missing name that one of them may have provided."""
        broken = [p.name for p in self.plugins if p.errors and not (p.datasets or p.architectures or p.sinks)]
        return f"; plugins that failed to load: {', '.join(broken)}" if broken else ""

    def architectures_for(self, task: str) -> list[ArchitectureSpec]:
        return [a for a in self.architectures.values() if task in a.tasks]

    def named(self, spec: DatasetSpec | ArchitectureSpec) -> str:
        """``dataset 'x' (plugin 'p')``: how errors name a spec and the plugin it came from."""
        kind, owners = (("dataset", self.dataset_owner) if isinstance(spec, DatasetSpec)
                        else ("architecture", self.architecture_owner))
        owner = owners.get(spec.name)
        return f"{kind} {spec.name!r}" + (f" (plugin {owner!r})" if owner else "")

    def plugin_function(self, spec: DatasetSpec | ArchitectureSpec) -> Callable[..., Any]:
        """A dataset's ``load`` or an architecture's ``build``, imported now if it is a
        ``"module:function"`` string; whatever that import raises, ``sys.exit()`` included, becomes
        a one-line WorkbenchError naming the spec and its plugin (Ctrl-C still stops)."""
        is_dataset = isinstance(spec, DatasetSpec)
        target = spec.load if isinstance(spec, DatasetSpec) else spec.build
        what = "loader" if is_dataset else "model"
        try:
            return resolve_callable(target, f"{self.named(spec)} {'load' if is_dataset else 'build'}")
        except KeyboardInterrupt:
            raise
        except ImportError as exc:
            raise WorkbenchError(f"{self.named(spec)}: its plugin could not load its {what} ({exc})") from None
        except BaseException as exc:
            raise WorkbenchError(f"{self.named(spec)}: its plugin could not load its {what} "
                                 f"({_describe(exc)})") from None


@contextlib.contextmanager
def plugin_code(what: str) -> Iterator[None]:
    """Around a call into plugin code (a dataset's load, an architecture's build): ``sys.exit()`` or
    another ``BaseException`` that is not an ``Exception`` becomes a WorkbenchError naming ``what``,
    instead of ending the program silently. Exceptions and Ctrl-C pass unchanged."""
    try:
        yield
    except (Exception, KeyboardInterrupt):
        raise
    except BaseException as exc:
        raise WorkbenchError(f"{what}: {_describe(exc)}; fix the plugin or ask its author") from None


def _is_builtin_distribution(name: str | None) -> bool:
    """Whether ``name`` is workbench's own distribution, compared as the package index does
    (case, ``-``, ``_`` and ``.`` do not matter)."""
    return name is not None and _normalize(name) == _normalize(BUILTIN_DISTRIBUTION)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _builtin_first(ep: EntryPoint) -> tuple[int, str]:
    dist = getattr(ep, "dist", None)
    builtin = dist is not None and _is_builtin_distribution(dist.metadata["Name"])
    return (0 if builtin else 1, ep.name)


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


# -- WORKBENCH_TRACE_PLUGINS --------------------------------------------------------------------
def _trace_before(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, object]) -> None:
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    plugins = ", ".join(impl.plugin_name for impl in impls) or "no plugin"
    print(f"[workbench plugins] {hook_name}({arguments}) -> {plugins}", file=sys.stderr, flush=True)


def _trace_after(outcome: pluggy.Result[Any], hook_name: str, impls: Sequence[pluggy.HookImpl],
                 kwargs: Mapping[str, object]) -> None:
    plugins = ", ".join(impl.plugin_name for impl in impls) or "no plugin"
    if outcome.exception is not None:
        said = f"raised {type(outcome.exception).__name__}: {outcome.exception}"
    else:
        said = f"returned {_summarize(outcome.get_result())}"
    print(f"[workbench plugins] {hook_name} <- {plugins} {said}", file=sys.stderr, flush=True)


def _summarize(value: object) -> str:
    """A result in one short line: specs by kind and name, anything else by a clipped repr."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_summarize(item) for item in value) + "]"
    name = getattr(value, "name", None)
    if isinstance(name, str) and isinstance(value, (DatasetSpec, ArchitectureSpec, EventSinkSpec)):
        return f"{type(value).__name__}({name!r})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    if isinstance(exc, SystemExit):
        return f"SystemExit: sys.exit({exc.code!r}) was called{where}"
    return f"{type(exc).__name__}: {exc}{where}"


_TIMEOUT_ADVICE = ("it keeps running in the background until workbench exits; if it is only slow, "
                   "raise WORKBENCH_PLUGIN_TIMEOUT")


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
