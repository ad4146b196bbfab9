"""Shared fixtures. Real data comes from ../shared/data (or WORKBENCH_TEST_DATA)."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WORKBENCH_TEST_DATA") or REPO.parent / "shared" / "data")


def _require(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("WORKBENCH_REQUIRE_TEST_DATA") or os.environ.get("CI"):
            pytest.fail(f"test data {path} is missing (set WORKBENCH_TEST_DATA to the shared data folder)")
        pytest.skip(f"test data {path} not found")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own runs and cache folders and no stray data dir or mirror."""
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WORKBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("WORKBENCH_DATA_MIRROR", raising=False)
    monkeypatch.delenv("WORKBENCH_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("WORKBENCH_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("WORKBENCH_PLUGINS", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def registry():
    from workbench.registry import get_registry

    return get_registry()


@pytest.fixture()
def mirror(tmp_path: Path):
    """A local HTTP server over ``tmp_path/www``, standing in for a dataset's canonical host (the
    loaders reach it through WORKBENCH_DATA_MIRROR's LoadContext.mirror). Yields (root, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # a short poll interval: shutdown() below waits up to one interval (0.5 s by default) per test
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
