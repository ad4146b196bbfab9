"""A fresh machine: no data folder, no network, an empty cache; the default dataset still trains."""

from __future__ import annotations

import hashlib
import socket
import urllib.request
import zipfile

import pytest
from workbench_plugins import names_data

from helpers import FAST
from workbench.api import LoadContext
from workbench.config import resolve_config
from workbench.errors import DataError

DEFAULTS = {"split": "classic", "test_fraction": 0.2, "valid_fraction": 0.1, "split_seed": 0, "ascii": True}


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to download fails loudly (the tests would pass without a network anyway)."""

    def refuse(*args, **kwargs):
        raise AssertionError("no download was expected")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_the_bundled_copy_is_small_and_holds_the_published_files():
    assert names_data.BUNDLED.stat().st_size < 100_000
    with zipfile.ZipFile(names_data.BUNDLED) as archive:
        digests = {name.split("/")[-1]: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}
    assert digests == names_data.CHECKSUMS
    assert (names_data.BUNDLED.parent / "NAMES-LICENSE.txt").read_text().count("BSD 3-Clause") == 1


def test_names_load_from_the_bundled_copy_with_no_data_dir_and_no_network(tmp_path, no_network):
    context = LoadContext(data_dir=None, cache_dir=tmp_path / "cache", mirror=None)
    data = names_data.load(context, dict(DEFAULTS))
    assert len(data.classes) == 18 and len(data.train) + len(data.valid) + len(data.test) == 20074
    assert data.info["source"].startswith("bundled copy")
    assert not (tmp_path / "cache" / "names").exists()  # nothing was downloaded or written


def test_a_damaged_bundled_copy_is_refused(tmp_path, monkeypatch, no_network):
    damaged = tmp_path / "names.zip"
    with zipfile.ZipFile(names_data.BUNDLED) as original, zipfile.ZipFile(damaged, "w") as copy:
        for name in original.namelist():
            raw = original.read(name)
            copy.writestr(name, raw.replace(b"Abe", b"Abz") if name.endswith("Japanese.txt") else raw)
    monkeypatch.setattr(names_data, "BUNDLED", damaged)
    with pytest.raises(DataError, match="Japanese.txt does not match its published sha256: reinstall"):
        names_data.load(LoadContext(data_dir=None, cache_dir=tmp_path / "cache"), dict(DEFAULTS))


@pytest.mark.slow
def test_the_default_dataset_trains_on_a_fresh_machine(registry, tmp_path, no_network):
    from workbench.engine import train

    config = resolve_config(registry, "names", None, "cpu", [*FAST, "limit=500"])
    assert config.data_dir is None
    result = train(config, registry=registry)
    assert result.run.status()["state"] == "finished"
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


def test_the_package_data_ships_the_bundled_copy_and_its_notice():
    """pyproject's package-data names both files (a wheel built from it holds them: checked by hand)."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {p.relative_to(root / "plugins").as_posix() for pattern in patterns["workbench_plugins"]
               for p in (root / "plugins").glob(pattern)}
    assert {"data/names.zip", "data/NAMES-LICENSE.txt"} <= shipped
