"""Constants the test modules share (importable as ``helpers``: pyproject puts tests/ on the path).

conftest.py holds fixtures only: pytest imports it itself, and importing it again as a module
would load a second copy.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Small, fast settings for training in tests.
FAST = ["epochs=1", "model.hidden_size=32", "model.embedding_dim=16", "batch_size=128", "log_every=5"]


def fuzz_examples(count: int) -> int:
    """``count`` examples for one fuzz target under the default "ci" hypothesis profile; 40 times as
    many under HYPOTHESIS_PROFILE=deep (conftest.py registers both)."""
    import os

    return count * 40 if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else count


def fixed_runs_root(monkeypatch: Any, folder: str) -> Iterator[Path]:
    """A runs folder at ``/tmp/FOLDER/runs``, in UTC, for snapshots: the Runs screen shows the folder
    and start times, so both must be the same on every machine. Use it as a fixture's body."""
    root = Path("/tmp") / folder / "runs"
    shutil.rmtree(root.parent, ignore_errors=True)
    root.mkdir(parents=True)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield root
    shutil.rmtree(root.parent, ignore_errors=True)
    monkeypatch.undo()
    time.tzset()
