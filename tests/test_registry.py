"""Plugin discovery through real entry points, including broken plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
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


# -- through pluggy --------------------------------------------------------------------------
class _Raises:
    @staticmethod
    @hookimpl
    def workbench_datasets():
        raise RuntimeError("first plugin exploded")


class _Provides:
    @staticmethod
    @hookimpl
    def workbench_datasets():
        return [DatasetSpec(name="provided", task="classification", description="x",
                            load="workbench_plugins.names_data:load")]


def test_each_plugin_is_called_alone_through_pluggy():
    registry = Registry(strict=False)
    calls: list[tuple[str, list[str]]] = []
    registry.manager.add_hookcall_monitoring(
        lambda hook, impls, kwargs: calls.append((hook, [i.plugin_name for i in impls])),
        lambda outcome, hook, impls, kwargs: None)
    broken = registry.register_module(_Raises)
    fine = registry.register_module(_Provides)
    assert calls == [("workbench_datasets", [registry.manager.get_name(_Raises)]),
                     ("workbench_datasets", [registry.manager.get_name(_Provides)])]
    assert registry.manager.is_registered(_Raises) and registry.manager.is_registered(_Provides)
    assert "RuntimeError: first plugin exploded" in broken.errors[0]
    assert fine.datasets == ["provided"] and not fine.errors
    # the manager's own hook, as any pluggy host would call it, reaches the registered plugins
    with pytest.raises(RuntimeError, match="first plugin exploded"):
        registry.manager.hook.workbench_datasets()


class _MarkedTypo:
    @staticmethod
    @hookimpl
    def workbench_dataset():
        return []

    @staticmethod
    @hookimpl
    def workbench_architectures():
        return [ArchitectureSpec(name="typo-arch", tasks=("classification",), description="x",
                                 build="workbench_plugins.classifier_models:build_rnn")]


class _OtherTypo:
    @staticmethod
    def workbench_architecture():  # unmarked, and misspelt
        return []


def test_unknown_hooks_are_rejected_by_pluggy_and_cost_only_that_function():
    registry = Registry(strict=False)
    first = registry.register_module(_MarkedTypo)
    assert first.errors == ["workbench_dataset is not a workbench hook (known hooks: workbench_datasets, "
                            "workbench_architectures, workbench_event_sinks, workbench_inspectors); a typo? It is ignored"]
    assert first.architectures == ["typo-arch"]  # its real hook still counts
    second = registry.register_module(_OtherTypo)  # found although the first typo came before it
    assert second.errors and second.errors[0].startswith("workbench_architecture is not a workbench hook")
    registry.manager.check_pending()  # nothing unknown is left registered
    with pytest.raises(PluginError, match="workbench_dataset is not a workbench hook"):
        Registry(strict=True).register_module(_MarkedTypo)


class _WrongArguments:
    @staticmethod
    @hookimpl
    def workbench_datasets(config):
        return []


def test_a_hook_with_arguments_its_spec_lacks_does_not_register():
    registry = Registry(strict=False)
    info = registry.register_module(_WrongArguments)
    assert len(info.errors) == 1
    assert info.errors[0].startswith("could not register: Plugin ")
    assert "Argument(s) {'config'} are declared in the hookimpl but can not be found in the hookspec" in info.errors[0]
    assert not registry.manager.is_registered(_WrongArguments)


class _Unmarked:
    @staticmethod
    def workbench_architectures():
        return [ArchitectureSpec(name="unmarked-arch", tasks=("classification",), description="x",
                                 build="workbench_plugins.classifier_models:build_rnn")]


def test_unmarked_hook_functions_still_work():
    registry = Registry(strict=False)
    info = registry.register_module(_Unmarked)
    assert info.architectures == ["unmarked-arch"] and not info.errors
    assert [i.plugin for i in registry.manager.hook.workbench_architectures.get_hookimpls()] == [_Unmarked]


def test_hook_calls_are_traced_on_stderr(plugin_site):
    result = run_cli(plugin_site, "plugins", "--json", env={"WORKBENCH_TRACE_PLUGINS": "1"})
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)  # the trace never reaches stdout
    assert listing["datasets"]["names"]["plugin"] == "names"
    lines = result.stderr.splitlines()
    assert "[workbench plugins] workbench_datasets() -> names:workbench_plugins.names" in lines
    assert "[workbench plugins] workbench_datasets <- names:workbench_plugins.names returned " \
           "[[DatasetSpec('names')]]" in lines
    assert "[workbench plugins] workbench_architectures <- good:wb_good returned [[ArchitectureSpec('tiny')]]" in lines
    assert "[workbench plugins] workbench_datasets <- raises:wb_raises raised RuntimeError: hook exploded" in lines
    quiet = run_cli(plugin_site, "plugins", "--json")
    assert "[workbench plugins]" not in quiet.stderr and json.loads(quiet.stdout) == listing


def test_switches_are_read_through_settings(monkeypatch, plugin_site):
    from workbench import settings

    monkeypatch.setattr(settings, "current", lambda: settings.Settings(strict_plugins=True, trace_plugins=True,
                                                                       disable_plugins=True))
    registry = Registry()
    assert registry.strict
    monkeypatch.syspath_prepend(str(plugin_site))
    registry.load_entry_points()
    assert {p.name for p in registry.plugins if p.disabled} >= {"good", "broken", "raises"}


def test_builtins_are_recognised_by_the_distribution_name(registry):
    from workbench.registry import BUILTIN_DISTRIBUTION

    assert BUILTIN_DISTRIBUTION != "workbench"  # the unrelated project of that name on PyPI
    packages = {p.package for p in registry.plugins if p.builtin}
    assert packages == {BUILTIN_DISTRIBUTION}
    assert {"names", "classifiers", "sentiment"} <= {p.name for p in registry.plugins if p.origin == "builtin"}
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == BUILTIN_DISTRIBUTION


# -- registration rules ----------------------------------------------------------------------
RULE_BREAKERS = '''
from workbench.api import ArchitectureSpec, DatasetSpec, Param, hookimpl


@hookimpl
def workbench_datasets():
    return [
        DatasetSpec(name="bad name!", task="classification", description="x", load="_rule_data:load"),
        DatasetSpec(name="no-colon", task="classification", description="x", load="_rule_data.load"),
        DatasetSpec(name="good-data", task="classification", description="x", load="_rule_data:load"),
    ]


@hookimpl
def workbench_architectures():
    return [
        ArchitectureSpec(name="missing", tasks=("classification",), description="x", build="no_such_rule_mod:build"),
        ArchitectureSpec(name="missing-sub", tasks=("classification",), description="x",
                         build="workbench_plugins.no_such_sub:build"),
        ArchitectureSpec(name="params", tasks=("classification",), description="x", build="_rule_models:build",
                         params=[Param("hidden size", int, 3, "a"), Param("depth", int, 1, "b"),
                                 Param("depth", int, 2, "c")]),
        ArchitectureSpec(name="good-arch", tasks=("classification",), description="x", build="_rule_models:build"),
    ]
'''


def test_registration_rules_skip_broken_specs(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "rulebreaker.py").write_text(RULE_BREAKERS)
    (folder / "_rule_data.py").write_text("def load(context, params):\n    raise NotImplementedError\n")
    # found, never imported: listing must not run model code (or import torch)
    (folder / "_rule_models.py").write_text("raise RuntimeError('imported while listing')\n")
    result = run_cli(tmp_path, "plugins", "--json", env={"WORKBENCH_PLUGINS_DIR": str(folder)})
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    info = next(p for p in listing["plugins"] if p["name"] == "rulebreaker")
    assert info["datasets"] == ["good-data"] and info["architectures"] == ["good-arch"]
    assert info["errors"] == [
        "dataset 'bad name!': name 'bad name!' must be letters, digits, '_', '-' or '.', starting with a letter "
        "or digit (it is typed on the command line and names run folders)",
        "dataset 'no-colon': load='_rule_data.load' must be a callable or a 'module:function' string "
        "(e.g. 'mypackage.models:build')",
        "architecture 'missing': build='no_such_rule_mod:build' does not resolve: no module named "
        "'no_such_rule_mod'",
        "architecture 'missing-sub': build='workbench_plugins.no_such_sub:build' does not resolve: no module "
        "named 'workbench_plugins.no_such_sub'",
        "architecture 'params': parameter name 'hidden size' must be a Python identifier (it is written as "
        "--set NAME=VALUE)",
        "architecture 'params': parameters declared twice: depth",
    ]
    assert "bad name!" not in listing["datasets"] and "missing" not in listing["architectures"]
    text = run_cli(tmp_path, "plugins", env={"WORKBENCH_PLUGINS_DIR": str(folder)}).stdout
    assert "ERROR: architecture 'missing': build='no_such_rule_mod:build' does not resolve" in text
    strict = run_cli(tmp_path, "plugins", env={"WORKBENCH_PLUGINS_DIR": str(folder), "WORKBENCH_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and "plugin 'rulebreaker': dataset 'bad name!'" in strict.stderr
