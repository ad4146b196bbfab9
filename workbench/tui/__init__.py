"""The Textual app (imported only when `workbench` runs without a command)."""
