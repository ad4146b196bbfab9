"""The detached launcher lives in :mod:`workbench.launch` (``workbench sweep`` uses it without Textual);
the app imports it from here as before."""

from workbench.launch import (
    FORCED_MESSAGE,
    LOG_FILE,
    SETUP_FILE,
    Launched,
    force_stop,
    start_training,
    train_command,
)

__all__ = ["FORCED_MESSAGE", "LOG_FILE", "SETUP_FILE", "Launched", "force_stop", "start_training", "train_command"]
