"""workbench: a keyboard-driven terminal workbench for training and exploring sequence models."""

__version__ = "0.1.0"
