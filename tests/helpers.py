"""Constants the test modules share (importable as ``helpers``: pyproject puts tests/ on the path).

conftest.py holds fixtures only: pytest imports it itself, and importing it again as a module
would load a second copy.
"""

from __future__ import annotations

#: Small, fast settings for training in tests.
FAST = ["epochs=1", "model.hidden_size=32", "model.embedding_dim=16", "batch_size=128", "log_every=5"]


def fuzz_examples(count: int) -> int:
    """``count`` examples for one fuzz target under the default "ci" hypothesis profile; 40 times as
    many under HYPOTHESIS_PROFILE=deep (conftest.py registers both)."""
    import os

    return count * 40 if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else count
