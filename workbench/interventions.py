"""Interventions, as written on the command line and in the app: zero or clamp a hidden unit, or
force a gate, from a given step on. Parsing only, no torch (the app reads its fields before any model
is loaded); :mod:`workbench.inspect` applies them while inspecting, :mod:`workbench.intervened_generation`
while generating.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.errors import WorkbenchError


@dataclass(frozen=True)
class Intervention:
    """Clamp a hidden unit, or force a gate, from token ``step`` (1-based) on.

    ``kind`` "unit": hidden unit ``unit`` (0-based; None: every unit) of traced layer ``layer``
    (1-based, as listed) is set to ``value`` after each step. ``kind`` "gate": gate ``gate`` is fixed at ``value`` in
    every layer that has it, or only in ``layer`` when given."""

    kind: str
    step: int
    value: float
    layer: int | None = None
    unit: int | None = None
    gate: str | None = None

    def describe(self, token: str = "token") -> str:
        """In words; ``token`` names what the steps count (generation: "character")."""
        if self.kind == "unit":
            what = "zero" if self.value == 0 else f"clamp to {self.value:g}"
            units = "every unit" if self.unit is None else f"unit {self.unit}"
            return f"{what} {units} of layer {self.layer} from {token} {self.step} on"
        where = f" in layer {self.layer}" if self.layer else ""
        return f"force the {self.gate} gate to {self.value:g}{where} from {token} {self.step} on"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, "value": self.value, "layer": self.layer, "unit": self.unit,
                "gate": self.gate, "description": self.describe()}


_UNIT_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+|\*)\s*(?:=\s*([-+0-9.eE]+))?\s*@\s*(\d+)\s*$")
_GATE_RE = re.compile(r"^\s*(?:(\d+)\s*:\s*)?([a-z]+)\s*=\s*([-+0-9.eE]+)\s*@\s*(\d+)\s*$")


def parse_unit(text: str, value: float | None = None) -> Intervention:
    """``LAYER:UNIT@STEP`` (zero it; with ``value``, clamp to it) or ``LAYER:UNIT=VALUE@STEP``;
    ``*`` for UNIT means every unit of the layer."""
    match = _UNIT_RE.match(text)
    if not match:
        raise WorkbenchError(f"{text!r} is not LAYER:UNIT@STEP (e.g. 1:5@3: unit 5 of layer 1 from token 3 on; "
                             "1:*@3: every unit)")
    layer, unit, written, step = match.groups()
    amount = float(written) if written is not None else (0.0 if value is None else value)
    return Intervention("unit", _positive(step, text), _finite(amount, text), layer=_positive(layer, text),
                        unit=None if unit == "*" else int(unit))


def parse_intervention(text: str) -> Intervention:
    """Any intervention in one spec, as ``--intervene`` takes it: ``LAYER:UNIT@STEP`` (zero a unit),
    ``LAYER:UNIT=VALUE@STEP`` (clamp it; ``*`` for every unit), ``[LAYER:]GATE=VALUE@STEP`` (force a gate)."""
    if _UNIT_RE.match(text):
        return parse_unit(text)
    if _GATE_RE.match(text):
        return parse_gate(text)
    raise WorkbenchError(f"{text!r} is not an intervention: give LAYER:UNIT@STEP (zero a unit, e.g. 1:5@3), "
                         "LAYER:UNIT=VALUE@STEP (clamp it; 1:*@3 zeroes every unit) or [LAYER:]GATE=VALUE@STEP "
                         "(force a gate, e.g. forget=0@4)")


def parse_gate(text: str) -> Intervention:
    """``GATE=VALUE@STEP`` (every layer with that gate) or ``LAYER:GATE=VALUE@STEP``."""
    match = _GATE_RE.match(text)
    if not match:
        raise WorkbenchError(f"{text!r} is not GATE=VALUE@STEP (e.g. forget=1@4, update=0@2, 1:input=0@1)")
    layer, gate, value, step = match.groups()
    amount = _finite(float(value), text)
    if not 0.0 <= amount <= 1.0:
        raise WorkbenchError(f"{text!r}: a gate is a fraction between 0 and 1, not {amount:g}")
    return Intervention("gate", _positive(step, text), amount, layer=_positive(layer, text) if layer else None,
                        gate=gate)


def _positive(number: str, text: str) -> int:
    if int(number) < 1:
        raise WorkbenchError(f"{text!r}: layers and tokens count from 1")
    return int(number)


def _finite(value: float, text: str) -> float:
    if not math.isfinite(value):
        raise WorkbenchError(f"{text!r}: the value must be a finite number")
    return value



def parse_interventions(specs: Sequence[str] | str) -> list[Intervention]:
    """Each spec (``--intervene`` values, or the app's field split at spaces, commas or semicolons)."""
    if isinstance(specs, str):
        specs = specs.replace(",", " ").replace(";", " ").split()
    return [parse_intervention(spec) for spec in specs]
