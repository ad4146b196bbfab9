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


# -- hypothesis profiles (tests/test_fuzz_*.py) ------------------------------------------------
# "ci" (the default): few examples per target, derandomized and without an example database, so every
# run of the suite tries the same inputs and the fuzz modules stay within ~20 s on 2 cores.
# "deep" (HYPOTHESIS_PROFILE=deep): many more random examples, for a long hunt on a free machine.
# Every fuzz test runs under the autouse isolated_dirs fixture; that is one environment shared by the
# examples of a test, which is what is wanted, so the function-scoped-fixture health check is off.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is in the test extra; without it the fuzz modules skip themselves
    pass
else:
    _SUPPRESSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile("ci", max_examples=50, derandomize=True, database=None, deadline=None,
                              print_blob=True, suppress_health_check=_SUPPRESSED)
    settings.register_profile("deep", max_examples=2000, derandomize=False, deadline=None,
                              print_blob=True, suppress_health_check=_SUPPRESSED)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
