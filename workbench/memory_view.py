"""Memory across time as text: an epoch x lag map of the gradient reaching earlier hidden states
(the measurement is :mod:`workbench.memory`; this module needs neither torch nor Textual, so the app
and ``workbench runs show RUN --memory`` draw the same picture).

Each cell is the gradient at that lag relative to the gradient at lag 0 (the last step) of the same
probe, in decades, drawn with shades that read without colour: a full block is still at least a
tenth of the last step's gradient, a blank less than a millionth (or no sequence that long).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from workbench.events import MemoryEvent

#: (lowest ratio to lag 0, shade), strongest first.
LEVELS: tuple[tuple[float, str], ...] = ((1e-1, "█"), (1e-2, "▓"), (1e-3, "▒"), (1e-4, "░"), (1e-6, "·"))
LEGEND = "vs lag 0: █>.1 ▓>.01 ▒>1e-3 ░>1e-4 ·>1e-6"
SHORT_LEGEND = "█▓▒░·: 1e-1..1e-6"
LABEL_WIDTH = 4


def shade(ratio: float) -> str:
    for lowest, mark in LEVELS:
        if ratio >= lowest:
            return mark
    return " "


def _columns(lags: int, width: int) -> list[range]:
    """Lags grouped into at most ``width`` columns of equal span."""
    span = max(1, math.ceil(lags / max(width, 1)))
    return [range(start, min(start + span, lags)) for start in range(0, lags, span)]


def _rows(events: Sequence[MemoryEvent], height: int) -> list[MemoryEvent]:
    """At most ``height`` probes, evenly spread, always with the first and the latest."""
    if len(events) <= height:
        return list(events)
    if height <= 1:
        return [events[-1]]
    picks = sorted({round(i * (len(events) - 1) / (height - 1)) for i in range(height)})
    return [events[i] for i in picks]


def memory_map(events: Sequence[MemoryEvent], width: int = 60, height: int = 12) -> list[str]:
    """The map as lines no wider than ``width``: a header, one row per probe (``epoch`` label then
    one cell per lag column, lag 0 on the left), and the legend; empty when there are no probes."""
    probes = [e for e in events if e.lags]
    if not probes:
        return []
    lags = max(len(e.lags) for e in probes)
    columns = _columns(lags, width - LABEL_WIDTH)
    span = len(columns[0])
    header = f"{'ep':<{LABEL_WIDTH}}lag 0"
    tail = f"{lags - 1}" + (f" ({span}/col)" if span > 1 else "")
    if len(header) + 1 + len(tail) > width:
        tail = f"{lags - 1}"
    room = LABEL_WIDTH + len(columns) - len(header) - len(tail)
    header = header + " " * max(room, 1) + tail
    lines = [header[:width]]
    for event in _rows(probes, max(1, height - 2)):
        reference = event.lags[0] if event.lags[0] > 0 else max(event.lags)
        cells = []
        for column in columns:
            values = [event.lags[k] for k in column if k < len(event.lags)]
            positive = [v for v in values if v > 0]
            if not values or reference <= 0:
                cells.append(" ")
            elif not positive:
                cells.append(" ")
            else:  # the geometric mean of the column's lags
                cells.append(shade(math.exp(sum(math.log(v) for v in positive) / len(positive)) / reference))
        lines.append(f"{event.epoch:>{LABEL_WIDTH - 1}} " + "".join(cells))
    lines.append(LEGEND if len(LEGEND) <= width else SHORT_LEGEND[:width])
    return lines


def reach(event: MemoryEvent, ratio: float = 1e-3) -> int:
    """The largest lag whose gradient is still at least ``ratio`` of lag 0's: how far back the loss
    can still teach the network (one number per probe, for summaries)."""
    if not event.lags or event.lags[0] <= 0:
        return 0
    kept = [k for k, value in enumerate(event.lags) if value >= ratio * event.lags[0]]
    return max(kept) if kept else 0
