"""Declarative hyperparameters.

Datasets, architectures and the trainer each declare a list of :class:`Param`. One schema drives
the CLI's ``--set key=value`` overrides, the TUI's form and validation before any work starts.
This module must not import torch: listing and validating parameters has to stay cheap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import ParamError

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, default, allowed values and a line of help."""

    name: str
    type: type
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    #: Hint for forms and sweeps: the value spans orders of magnitude (a learning rate).
    log_scale: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPE_NAMES:
            raise TypeError(f"Param {self.name!r}: type must be int, float, str or bool, not {self.type!r}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        # Defaults must satisfy their own declaration; a plugin that breaks this fails at load.
        self.validate(self.default)

    def describe_allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        kind = _TYPE_NAMES[self.type]
        if self.min is not None and self.max is not None:
            return f"{kind} from {_fmt(self.min)} to {_fmt(self.max)}"
        if self.min is not None:
            return f"{kind} >= {_fmt(self.min)}"
        if self.max is not None:
            return f"{kind} <= {_fmt(self.max)}"
        return kind

    def parse(self, raw: str) -> Any:
        """Turn a string from the command line or a form field into a checked value."""
        text = raw.strip()
        try:
            if self.type is bool:
                low = text.lower()
                if low in _TRUE:
                    value: Any = True
                elif low in _FALSE:
                    value = False
                else:
                    raise ValueError
            elif self.type is int:
                as_float = float(text)
                if not as_float.is_integer():
                    raise ValueError
                value = int(as_float)
            elif self.type is float:
                value = float(text)
            else:
                value = text
        except ValueError:
            raise ParamError(
                f"{self.name} must be {self.describe_allowed()} (got {raw!r})"
            ) from None
        return self.validate(value)

    def validate(self, value: Any) -> Any:
        """Check a typed value (from a config file or code) and return it normalised."""
        if isinstance(value, str) and self.type is not str:
            return self.parse(value)
        if self.type is bool:
            if not isinstance(value, bool):
                raise ParamError(f"{self.name} must be true or false (got {value!r})")
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
                raise ParamError(f"{self.name} must be {self.describe_allowed()} (got {value!r})")
            value = int(value)
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ParamError(f"{self.name} must be {self.describe_allowed()} (got {value!r})")
            value = float(value)
        elif not isinstance(value, str):
            raise ParamError(f"{self.name} must be {self.describe_allowed()} (got {value!r})")
        if self.choices is not None and value not in self.choices:
            raise ParamError(f"{self.name} must be {self.describe_allowed()} (got {value!r})")
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            raise ParamError(f"{self.name} must be {self.describe_allowed()} (got {_fmt(value)})")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.__name__,
            "default": self.default,
            "help": self.help,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) if self.choices is not None else None,
            "allowed": self.describe_allowed(),
        }


def _fmt(number: Any) -> str:
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return str(number)


@dataclass
class ParamGroup:
    """The parameters of one namespace (``train``, ``data`` or ``model``)."""

    namespace: str
    params: list[Param] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise TypeError(f"{self.namespace}: parameters declared twice: {sorted(duplicates)}")

    def get(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``values``, every value validated; unknown names are errors."""
        result = self.defaults()
        for name, value in values.items():
            param = self.get(name)
            if param is None:
                known = ", ".join(p.name for p in self.params) or "none"
                raise ParamError(f"unknown {self.namespace} parameter {name!r} (known: {known})")
            result[name] = param.validate(value)
        return result


def split_assignment(text: str) -> tuple[str, str]:
    """``"lr=0.01"`` -> ``("lr", "0.01")`` with a clear error for anything else."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ParamError(f"--set expects key=value (got {text!r}); for example --set lr=0.01")
    return key.strip(), value


def route_assignments(
    assignments: Iterable[str], groups: Mapping[str, ParamGroup]
) -> dict[str, dict[str, str]]:
    """Sort ``key=value`` strings into namespaces.

    A key may be qualified (``model.hidden_size``) or bare when only one namespace declares it.
    """
    routed: dict[str, dict[str, str]] = {ns: {} for ns in groups}
    for text in assignments:
        key, value = split_assignment(text)
        namespace, dot, bare = key.partition(".")
        if dot:
            if namespace not in groups:
                raise ParamError(
                    f"unknown parameter namespace {namespace!r} in {key!r} (use one of: {', '.join(groups)})"
                )
            if groups[namespace].get(bare) is None:
                known = ", ".join(p.name for p in groups[namespace].params) or "none"
                raise ParamError(f"unknown {namespace} parameter {bare!r} (known: {known})")
            routed[namespace][bare] = value
            continue
        owners = [ns for ns, group in groups.items() if group.get(key) is not None]
        if not owners:
            every = sorted({p.name for g in groups.values() for p in g.params})
            raise ParamError(f"unknown parameter {key!r} (known: {', '.join(every)})")
        if len(owners) > 1:
            options = " or ".join(f"{ns}.{key}" for ns in owners)
            raise ParamError(f"parameter {key!r} is ambiguous; write {options}")
        routed[owners[0]][key] = value
    return routed
