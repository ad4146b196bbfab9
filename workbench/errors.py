"""Exceptions that carry a message meant for the user.

Anything raised as a ``WorkbenchError`` is shown as one line (CLI) or a notification (TUI);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A problem the user can fix; the message says what to do next."""


class ParamError(WorkbenchError):
    """A hyperparameter or option has a bad value."""


class DataError(WorkbenchError):
    """A dataset is missing, malformed or cannot be downloaded."""


class CheckpointError(WorkbenchError):
    """A checkpoint is missing, corrupt or not a workbench checkpoint."""


class PluginError(WorkbenchError):
    """A plugin failed to load or broke the plugin contract."""


class DeviceError(WorkbenchError):
    """A requested device does not exist on this machine."""
