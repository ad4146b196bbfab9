"""The cheap rules every dataset and architecture spec must keep, checked when a plugin registers.

The registry applies them to each spec a hook returns (a spec that breaks one is reported as its
plugin's error and skipped), and the contract check (:mod:`workbench.testing`) reports them with the
same words, so ``workbench plugins`` and ``workbench plugins --check`` never disagree. Each function
returns the problems it finds as sentences; none imports the module a ``load``/``build`` string names
(only its parent packages, through :func:`importlib.util.find_spec`), so listing plugins stays fast
and torch-free.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable

from workbench.api import ArchitectureSpec, DatasetSpec, EventSinkSpec, InspectorSpec
from workbench.params import Param

#: Dataset and architecture names: typed on the command line and used in run folder names.
SPEC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Parameter names: written as ``--set NAME=VALUE`` and as keys of ``params`` dictionaries.
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def spec_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a dataset or architecture, or None when it can."""
    if isinstance(name, str) and SPEC_NAME.match(name):
        return None
    return (f"name {name!r} must be letters, digits, '_', '-' or '.', starting with a letter or digit "
            "(it is typed on the command line and names run folders)")


def param_problems(params: Iterable[object]) -> list[str]:
    """What makes a spec's parameter list unusable: non-``Param`` items, names that cannot be typed
    as ``--set NAME=VALUE``, names declared twice."""
    problems: list[str] = []
    names: list[str] = []
    for param in params:
        if not isinstance(param, Param):
            problems.append(f"params must be workbench.api.Param objects, not {type(param).__name__}")
            continue
        names.append(param.name)
        if not (isinstance(param.name, str) and PARAM_NAME.match(param.name)):
            problems.append(f"parameter name {param.name!r} must be a Python identifier "
                            "(it is written as --set NAME=VALUE)")
    duplicates = sorted({n for n in names if names.count(n) > 1}, key=str)
    if duplicates:
        problems.append(f"parameters declared twice: {', '.join(map(str, duplicates))}")
    return problems


def target_problem(target: object, what: str) -> str | None:
    """Why a spec's ``load``/``build`` cannot be found: neither a callable nor ``"module:function"``,
    or a module that does not exist. Imports the module's parent packages, never the module."""
    if callable(target):
        return None
    module_name, sep, attr = target.partition(":") if isinstance(target, str) else ("", "", "")
    if not sep or not _DOTTED.match(module_name.strip()) or not _DOTTED.match(attr.strip()):
        return (f"{what}={target!r} must be a callable or a 'module:function' string "
                "(e.g. 'mypackage.models:build')")
    module_name = module_name.strip()
    try:
        found = importlib.util.find_spec(module_name)
    except ModuleNotFoundError as exc:  # a parent package is missing
        return f"{what}={target!r} does not resolve: no module named {exc.name or module_name!r}"
    except Exception as exc:  # a parent package failed to import, or a module without a spec
        return f"{what}={target!r} does not resolve: {type(exc).__name__}: {exc}"
    if found is None:
        return f"{what}={target!r} does not resolve: no module named {module_name!r}"
    return None


def spec_problems(spec: DatasetSpec | ArchitectureSpec | EventSinkSpec | InspectorSpec) -> list[str]:
    """Every rule above applied to one spec, each problem prefixed with what it is about
    (``dataset 'x': ...``), as ``workbench plugins`` and the contract report show it."""
    if isinstance(spec, InspectorSpec):
        layer = target_problem(spec.layer, "layer") if isinstance(spec.layer, str) else None  # else a class
        found = [spec_name_problem(spec.name), layer, target_problem(spec.step, "step")]
        return [f"inspector {spec.name!r}: {problem}" for problem in found if problem]
    kind, target, what = (
        ("dataset", spec.load, "load") if isinstance(spec, DatasetSpec)
        else ("event sink", spec.create, "create") if isinstance(spec, EventSinkSpec)
        else ("architecture", spec.build, "build"))
    found = [spec_name_problem(spec.name), *param_problems(spec.params), target_problem(target, what)]
    return [f"{kind} {spec.name!r}: {problem}" for problem in found if problem]
