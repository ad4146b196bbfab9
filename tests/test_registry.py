"""Plugin discovery through real entry points, including broken plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench.api import ArchitectureSpec, DatasetSpec, hookimpl
from workbench.errors import PluginError
from workbench.registry import Registry


def make_distribution(site: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """A minimal installed distribution (dist-info + modules) that importlib.metadata discovers."""
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[workbench.plugins]\n{lines}\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


GOOD = """
from workbench.api import ArchitectureSpec, hookimpl

@hookimpl
def workbench_architectures():
    return [ArchitectureSpec(name="tiny", tasks=("classification",), description="a tiny model",
                             build="tiny_models:build")]
"""
TINY_MODELS = """
def build(context, params):
    import torch

    return torch.nn.Linear(1, context.num_classes)
"""
IMPORT_ERROR = "import no_such_module_anywhere\n"
HOOK_RAISES = """
from workbench.api import hookimpl

@hookimpl
def workbench_datasets():
    raise RuntimeError("hook exploded")
"""


def run_cli(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(site), **(env or {})}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          env=environment, timeout=120)


@pytest.fixture()
def plugin_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    make_distribution(site, "wb-good", {"wb_good": GOOD, "tiny_models": TINY_MODELS}, {"good": "wb_good"})
    make_distribution(site, "wb-broken", {"wb_broken": IMPORT_ERROR}, {"broken": "wb_broken"})
    make_distribution(site, "wb-raises", {"wb_raises": HOOK_RAISES}, {"raises": "wb_raises"})
    return site


def test_builtin_plugins_come_from_entry_points(registry):
    builtins = {p.name for p in registry.plugins if p.builtin}
    assert {"names", "classifiers"} <= builtins
    assert registry.dataset("names").task == "classification"
    assert {"elman", "rnn", "lstm", "gru"} <= set(registry.architectures)
    assert registry.dataset_owner["names"] == "names"


def test_broken_plugins_are_reported_and_the_rest_works(plugin_site):
    result = run_cli(plugin_site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert by_name["good"]["architectures"] == ["tiny"]
    assert by_name["good"]["version"] == "1.2.3" and by_name["good"]["package"] == "wb-good"
    assert "failed to import wb_broken" in by_name["broken"]["errors"][0]
    assert "ModuleNotFoundError" in by_name["broken"]["errors"][0]
    assert "hook exploded" in by_name["raises"]["errors"][0]
    assert "names" in listing["datasets"] and "tiny" in listing["architectures"]
    text = run_cli(plugin_site, "plugins")
    assert "ERROR: failed to import wb_broken" in text.stdout


def test_strict_mode_fails_hard(plugin_site):
    result = run_cli(plugin_site, "plugins", env={"WORKBENCH_STRICT_PLUGINS": "1"})
    assert result.returncode == 2
    assert "workbench: error: plugin 'broken'" in result.stderr or "plugin 'raises'" in result.stderr
    assert "Traceback" not in result.stderr


def test_disable_and_select_third_party_plugins(plugin_site):
    listing = json.loads(run_cli(plugin_site, "plugins", "--json", env={"WORKBENCH_DISABLE_PLUGINS": "1"}).stdout)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert by_name["good"]["disabled"] and by_name["broken"]["disabled"] and not by_name["broken"]["errors"]
    assert not by_name["names"]["disabled"]
    assert "tiny" not in listing["architectures"]
    listing = json.loads(run_cli(plugin_site, "plugins", "--json", env={"WORKBENCH_PLUGINS": "good"}).stdout)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert not by_name["good"]["disabled"] and by_name["broken"]["disabled"]
    assert "tiny" in listing["architectures"]


def test_listing_plugins_does_not_import_torch(plugin_site):
    code = (
        "import sys; from workbench.registry import get_registry; r = get_registry(); "
        "from workbench.cli import main; main(['plugins']); "
        "assert 'torch' not in sys.modules, 'torch was imported'; print('clean')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(plugin_site)})
    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout


class _BadReturn:
    @staticmethod
    @hookimpl
    def workbench_datasets():
        return ["not a spec"]


class _Duplicate:
    @staticmethod
    @hookimpl
    def workbench_architectures():
        return [ArchitectureSpec(name="gru", tasks=("classification",), description="x",
                                 build="workbench_plugins.classifier_models:build")]


def test_contract_violations_are_recorded(registry):
    fresh = Registry(strict=False).load_entry_points()
    info = fresh.register_module(_BadReturn)
    assert "returned str, expected DatasetSpec" in info.errors[0]
    info = fresh.register_module(_Duplicate)
    assert "architecture 'gru' is already provided by plugin 'classifiers'" in info.errors[0]
    strict = Registry(strict=True).load_entry_points()
    with pytest.raises(PluginError):
        strict.register_module(_Duplicate)


def test_specs_validate_task_kinds():
    with pytest.raises(ValueError):
        DatasetSpec(name="x", task="regression", description="", load="a:b")
    with pytest.raises(ValueError):
        ArchitectureSpec(name="x", tasks=(), description="", build="a:b")
