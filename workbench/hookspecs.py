"""The hooks a workbench plugin may implement.

Hooks return *descriptions* (specs). Heavy work, anything that imports torch or touches data,
happens later, when the engine calls a spec's ``load`` or ``build``; that keeps discovery cheap.
"""

from __future__ import annotations

import pluggy

PROJECT_NAME = "workbench"
ENTRY_POINT_GROUP = "workbench.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def workbench_datasets():  # -> list[DatasetSpec]
    """Return the datasets this plugin provides, as a list of :class:`workbench.api.DatasetSpec`."""


@hookspec
def workbench_architectures():  # -> list[ArchitectureSpec]
    """Return the architectures this plugin provides, as a list of :class:`workbench.api.ArchitectureSpec`."""


@hookspec
def workbench_event_sinks():  # -> list[EventSinkSpec]
    """Return the event sinks this plugin provides, as a list of :class:`workbench.api.EventSinkSpec`."""


@hookspec
def workbench_inspectors():  # -> list[InspectorSpec]
    """Return step functions for this plugin's recurrent layer types, as a list of
    :class:`workbench.api.InspectorSpec` (optional: ``workbench inspect`` shows their gates and states)."""


def hook_names() -> list[str]:
    """The names of every hook above (what a plugin may implement), in declaration order."""
    return [name for name, obj in globals().items() if callable(obj) and hasattr(obj, f"{PROJECT_NAME}_spec")]
