"""The plugin author's kit: the docs cover every hook, the contract check, loose plugin folders."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench import api, hookspecs
from workbench.registry import Registry
from workbench.testing import assert_plugin_contract, check_plugin

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugins.md"


def workbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


# -- the docs --------------------------------------------------------------------------------
def hookspec_functions() -> dict[str, str]:
    """Every function in hookspecs.py decorated with @hookspec, with its parameter list, parsed from source."""
    tree = ast.parse(Path(hookspecs.__file__).read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "hookspec" for d in node.decorator_list):
            found[node.name] = ", ".join(a.arg for a in node.args.args)
    return found


def markdown_headings(text: str) -> list[str]:
    """Heading lines, not counting comment lines inside fenced code blocks."""
    headings, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif line.startswith("#") and not fenced:
            headings.append(line)
    return headings


def test_every_hook_has_a_section_in_the_docs():
    text = DOCS.read_text(encoding="utf-8")
    hooks = hookspec_functions()
    assert hooks and set(hooks) == set(hookspecs.hook_names())
    headings = markdown_headings(text)
    for name, args in hooks.items():
        assert any(name in h for h in headings), f"docs/plugins.md has no section (heading) for hook {name}"
        assert re.search(rf"def {name}\({re.escape(args)}\)", text), f"docs/plugins.md lacks {name}'s signature"


def test_every_spec_field_and_task_kind_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    for cls in (api.DatasetSpec, api.ArchitectureSpec, api.LoadContext, api.ModelContext, api.ClassificationData,
                api.Param, api.EventSinkSpec):
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in text, f"docs/plugins.md does not describe {cls.__name__}.{f.name}"
    headings = "\n".join(markdown_headings(text))
    for kind in api.TASK_KINDS:
        assert kind in headings, f"docs/plugins.md has no section for task kind {kind}"


# -- the contract check ----------------------------------------------------------------------
def builtin_plugins() -> list[str]:
    """Every built-in plugin, so one added later is checked too (listing them imports no torch)."""
    return sorted(p.name for p in Registry(strict=False).load_entry_points().plugins if p.builtin)


def test_the_builtins_are_found():
    assert {"names", "classifiers"} <= set(builtin_plugins())


@pytest.mark.slow
@pytest.mark.parametrize("name", builtin_plugins())
def test_builtin_plugins_pass_the_contract(name, shared_data, tmp_path):
    # text-file, parallel-tsv, conllu and tagged-text read the user's own files: point them at real ones
    from workbench_plugins.ud_data import parse_conllu

    dev = shared_data / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
    tagged = tmp_path / "tagged.txt"  # word/TAG lines made from real EWT sentences
    tagged.write_text("".join(" ".join(f"{w}/{t}" for w, t in zip(words, tags, strict=True)) + "\n"
                              for words, tags in parse_conllu(dev.read_text(encoding="utf-8"), str(dev))[:200]))
    # text-folder and text-csv: one class folder / CSV row per real rt-polarity sentence
    import csv

    sentences = {label: (shared_data / "rt-polarity" / f"rt-polarity.{label}").read_text(encoding="latin-1")
                 .splitlines()[:60] for label in ("pos", "neg")}
    for label, lines in sentences.items():
        (tmp_path / "folder" / label).mkdir(parents=True)
        for index, line in enumerate(lines):
            (tmp_path / "folder" / label / f"{index}.txt").write_text(line, encoding="utf-8")
    with open(tmp_path / "reviews.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((line, label) for label, lines in sentences.items() for line in lines)
    data_params = {"text-file": {"path": str(shared_data / "tinyshakespeare" / "input.txt")},
                   "text-folder": {"path": str(tmp_path / "folder")},
                   "text-csv": {"path": str(tmp_path / "reviews.csv")},
                   "parallel-tsv": {"path": str(shared_data / "fra-eng" / "fra.txt")},
                   "conllu": {"path": str(shared_data / "ud-english-ewt" / "en_ewt-ud-dev.conllu")},
                   "tagged-text": {"path": str(tagged)}}
    report = assert_plugin_contract(name, data_dir=shared_data, data_params=data_params)
    assert report.passed and not report.violations


BROKEN = '''
import torch  # a spec module must not import torch

from workbench.api import ArchitectureSpec, ClassificationData, DatasetSpec, Param, hookimpl


def load_wrong_type(context, params):
    return [("abc", 0)]


class WrongShape(torch.nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.linear = torch.nn.Linear(1, classes + 1)

    def forward(self, tokens, lengths):
        return self.linear(tokens[:, :1].float())


class Noisy(torch.nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.embedding = torch.nn.Embedding(100, classes)

    def forward(self, tokens, lengths):
        return torch.nn.functional.dropout(self.embedding(tokens).mean(1), 0.5, training=True)


@hookimpl
def workbench_datasets():
    return [DatasetSpec(name="wrongtype", task="classification", description="", load=load_wrong_type,
                        default_arch="nosuch", defaults={"train.epoch": 3, "train.lr": 99.0})]


@hookimpl
def workbench_architectures():
    return [
        ArchitectureSpec(name="wrongshape", tasks=("classification",), description="x",
                         build=lambda context, params: WrongShape(context.num_classes)),
        ArchitectureSpec(name="noisy", tasks=("classification",), description="x",
                         build=lambda context, params: Noisy(context.num_classes)),
        ArchitectureSpec(name="notmodule", tasks=("classification",), description="x",
                         build=lambda context, params: "not a model"),
        ArchitectureSpec(name="lazy", tasks=("classification",), description="x", build="nosuchmodule:build",
                         params=[Param("size", int, 3, "a"), Param("size", int, 4, "b")]),
        ArchitectureSpec(name="noattr", tasks=("classification",), description="x",
                         build="workbench_plugins.classifier_models:no_such_builder"),
    ]


def workbench_architecture():  # a typo of the hook name
    return []
'''


def test_contract_reports_every_violation(tmp_path):
    plugin = tmp_path / "brokenplug.py"
    plugin.write_text(BROKEN)
    report = check_plugin(plugin)
    assert not report.ok
    text = report.render()
    expected = [
        "workbench_architecture is not a workbench hook",
        "importing the plugin module imports torch",
        "dataset 'wrongtype': description is empty",
        "default_arch 'nosuch' is not provided by any installed plugin",
        "defaults key 'train.epoch': unknown train parameter 'epoch'",
        "defaults key 'train.lr': lr must be a number from 1e-08 to 10 (got 99)",
        "load returned data the classification task rejects: a classification dataset must return "
        "ClassificationData, not list",
        "architecture 'wrongshape' on 'synthetic-classification': forward(tokens [4, ",
        "expected logits [4, 3] (batch, num_classes)",
        "architecture 'noisy' on 'synthetic-classification': two forward passes in eval mode differ",
        "architecture 'notmodule' built a str, not a torch.nn.Module",
        # broken at registration (workbench.plugin_rules): the plugin's errors, the spec skipped
        "plugin: architecture 'lazy': parameters declared twice: size",
        "plugin: architecture 'lazy': build='nosuchmodule:build' does not resolve: no module named 'nosuchmodule'",
        # the module exists (so it registers); the contract check imports it and finds no such function
        "architecture 'noattr': build='workbench_plugins.classifier_models:no_such_builder' does not resolve: "
        "ImportError",
    ]
    for fragment in expected:
        assert fragment in text, f"{fragment!r} missing from:\n{text}"
    assert len(report.violations) >= len(expected) - 1
    assert "reloaded checkpoint" not in text  # not blamed twice for the same randomness
    assert "lazy" not in report.architectures and "noattr" in report.architectures
    with pytest.raises(AssertionError, match="breaks the contract"):
        assert_plugin_contract(plugin, check_import=False)


def test_contract_names_what_it_cannot_find():
    report = check_plugin("no_such_plugin_anywhere")
    assert [str(v) for v in report.violations] == [
        "plugin: no installed plugin (entry point in 'workbench.plugins'), module or file named "
        "'no_such_plugin_anywhere'"]


# -- loose plugins ---------------------------------------------------------------------------
LOOSE_SPEC = '''
"""A loose plugin: a dataset and an architecture in a plain folder, no packaging."""
from workbench.api import ArchitectureSpec, ClassificationData, DatasetSpec, Param, hookimpl

__version__ = "0.3"


def load(context, params):
    texts = ["aaab", "abaa", "bbba", "babb", "aaaa", "bbbb", "aab", "bba"] * params["repeat"]
    examples = [(t, int(t.count("b") > t.count("a"))) for t in texts]
    return ClassificationData(classes=["a", "b"], train=examples, valid=examples[:8], test=examples[:8])


@hookimpl
def workbench_datasets():
    return [DatasetSpec(name="ab", task="classification", description="more a or more b", load=load,
                        params=[Param("repeat", int, 8, "copies of the examples", min=1, max=100)],
                        default_arch="countnet")]


@hookimpl
def workbench_architectures():
    return [ArchitectureSpec(name="countnet", tasks=("classification",), description="embedding sum",
                             build="_loose_models:build")]
'''
LOOSE_MODELS = '''
import torch


class CountNet(torch.nn.Module):
    def __init__(self, context):
        super().__init__()
        self.embedding = torch.nn.Embedding(context.vocab_size, context.num_classes, padding_idx=context.pad_index)

    def forward(self, tokens, lengths):
        return self.embedding(tokens).sum(dim=1)


def build(context, params):
    return CountNet(context)
'''


@pytest.fixture()
def plugin_folders(tmp_path: Path) -> tuple[Path, Path]:
    first = tmp_path / "first"
    first.mkdir()
    (first / "abplug.py").write_text(LOOSE_SPEC)
    (first / "_loose_models.py").write_text(LOOSE_MODELS)  # a helper: skipped by discovery, imported lazily
    (first / "badsyntax.py").write_text("def broken(:\n")
    (first / "json.py").write_text("# shadows the standard library's json\n")
    (first / "notes.txt").write_text("not a plugin")
    second = tmp_path / "second"
    (second / "pkgplug").mkdir(parents=True)
    (second / "pkgplug" / "__init__.py").write_text(textwrap.dedent('''
        from workbench.api import hookimpl

        @hookimpl
        def workbench_datasets():
            return []
    '''))
    return first, second


def test_loose_plugins_are_listed_with_their_errors(plugin_folders):
    first, second = plugin_folders
    # `first` twice (option and variable): loaded once, not reported as a clash with itself
    result = workbench("--plugins-dir", str(first), "plugins", "--json",
                       env={"WORKBENCH_PLUGINS_DIR": os.pathsep.join([str(second), str(first / ".." / "first")])})
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    loose = {p["name"]: p for p in listing["plugins"] if p["origin"] == "loose"}
    assert set(loose) == {"abplug", "badsyntax", "json", "pkgplug"}
    assert loose["abplug"]["version"] == "0.3" and loose["abplug"]["datasets"] == ["ab"]
    assert loose["abplug"]["path"] == str(first / "abplug.py") and not loose["abplug"]["errors"]
    assert "SyntaxError" in loose["badsyntax"]["errors"][0]
    assert "the module name 'json' is already taken" in loose["json"]["errors"][0]
    assert loose["pkgplug"]["path"] == str(second / "pkgplug") and not loose["pkgplug"]["errors"]
    assert listing["datasets"]["ab"]["plugin"] == "abplug" and "countnet" in listing["architectures"]
    assert {"names", "classifiers"} <= {p["name"] for p in listing["plugins"] if p["origin"] == "builtin"}

    text = workbench("plugins", env={"WORKBENCH_PLUGINS_DIR": os.pathsep.join(map(str, plugin_folders))}).stdout
    assert f"abplug 0.3 (loose: {first / 'abplug.py'})" in text
    assert "  datasets: ab (classification)" in text and "ERROR: failed to import" in text

    disabled = json.loads(workbench("plugins", "--json", env={"WORKBENCH_PLUGINS_DIR": str(first),
                                                              "WORKBENCH_DISABLE_PLUGINS": "1"}).stdout)
    assert all(p["disabled"] for p in disabled["plugins"] if p["origin"] == "loose")
    assert "ab" not in disabled["datasets"]


@pytest.mark.slow
def test_train_and_predict_with_a_loose_plugin(plugin_folders):
    first, _ = plugin_folders
    result = workbench("train", "--plugins-dir", str(first), "--dataset", "ab", "--set", "epochs=3",
                       "--set", "lr=0.1", "--json")
    assert result.returncode == 0, result.stderr
    trained = json.loads(result.stdout)
    assert trained["state"] == "finished"
    # Another process finds the architecture again through the environment variable.
    predicted = workbench("predict", trained["run"], "bbbba", "--json", env={"WORKBENCH_PLUGINS_DIR": str(first)})
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["predictions"][0]["label"] in {"a", "b"}
    missing = workbench("predict", trained["run"], "bbbba")
    assert missing.returncode == 2 and "architecture 'countnet', which no installed plugin provides" in missing.stderr


@pytest.mark.slow
def test_a_loose_plugin_passes_the_contract_from_the_cli(plugin_folders):
    first, _ = plugin_folders
    result = workbench("plugins", "--check", str(first / "abplug.py"), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["datasets"] == ["ab"] and report["architectures"] == ["countnet"]
    assert any("checkpoint round trip, predict" in line for line in report["passed"])
    broken = workbench("plugins", "--check", str(first / "badsyntax.py"))
    assert broken.returncode == 1 and "FAIL plugin: failed to import" in broken.stdout


def test_missing_plugins_dir_is_one_line():
    result = workbench("--plugins-dir", "/no/such/folder", "plugins")
    assert result.returncode == 2
    assert result.stderr.strip() == "workbench: error: --plugins-dir /no/such/folder: no such folder"
    listing = json.loads(workbench("plugins", "--json", env={"WORKBENCH_PLUGINS_DIR": "/no/such/folder"}).stdout)
    assert "plugins folder /no/such/folder does not exist" in listing["errors"][0]["error"]


def test_misnamed_hooks_are_reported():
    class Typo:
        @staticmethod
        def workbench_dataset():
            return []

    info = Registry(strict=False).register_module(Typo)
    assert info.errors == ["workbench_dataset is not a workbench hook (known hooks: workbench_datasets, "
                           "workbench_architectures, workbench_event_sinks, workbench_inspectors); a typo? It is ignored"]



# -- registration rules and the distribution name ----------------------------------------------
RULE_BREAKER = '''
from workbench.api import ArchitectureSpec, Param, hookimpl


@hookimpl
def workbench_architectures():
    return [
        ArchitectureSpec(name="-dash-first", tasks=("classification",), description="x",
                         build="workbench_plugins.classifier_models:build_rnn"),
        ArchitectureSpec(name="twice", tasks=("classification",), description="x",
                         build="workbench_plugins.classifier_models:build_rnn",
                         params=[Param("size", int, 3, "a"), Param("size", int, 4, "b")]),
        ArchitectureSpec(name="nowhere", tasks=("classification",), description="x", build="nowhere_mod_xyz:build"),
    ]
'''


def test_the_contract_reports_the_registration_rules_as_listing_does(tmp_path):
    plugin = tmp_path / "rulebreaker2.py"
    plugin.write_text(RULE_BREAKER)
    listed = json.loads(workbench("plugins", "--json", env={"WORKBENCH_PLUGINS_DIR": str(tmp_path)}).stdout)
    errors = next(p for p in listed["plugins"] if p["name"] == "rulebreaker2")["errors"]
    assert len(errors) == 3 and errors[0].startswith("architecture '-dash-first': name '-dash-first' must be")
    report = check_plugin(plugin, check_import=False)
    assert [str(v) for v in report.violations] == [f"plugin: {e}" for e in errors]
    assert report.architectures == []


def test_plugin_switches_are_documented():
    from workbench.settings import VARIABLES

    text = DOCS.read_text(encoding="utf-8")
    switches = [name for name in VARIABLES if "PLUGINS" in name]
    assert "WORKBENCH_TRACE_PLUGINS" in switches
    for name in switches:
        assert name in text, f"docs/plugins.md does not mention {name}"


def test_plugins_depend_on_the_distribution_name():
    """`workbench` on PyPI is an unrelated project: the docs, the README and the example plugin must
    name workbench's own distribution."""
    import importlib.metadata
    import tomllib

    from workbench.registry import BUILTIN_DISTRIBUTION

    assert BUILTIN_DISTRIBUTION == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    example = tomllib.loads((REPO / "examples" / "workbench-example-plugin" / "pyproject.toml").read_text())
    assert [d for d in example["project"]["dependencies"] if re.match(r"^workbench\b(?!-)", d)] == []
    assert f"{BUILTIN_DISTRIBUTION}>=0.1" in example["project"]["dependencies"]
    assert f"{BUILTIN_DISTRIBUTION}>=0.1" in (importlib.metadata.requires("workbench-example-plugin") or [])
    for document in (DOCS, REPO / "README.md"):
        text = document.read_text(encoding="utf-8")
        assert f'dependencies = ["{BUILTIN_DISTRIBUTION}"]' in text, document
        assert re.findall(r'dependencies = \["workbench[^-]', text) == [], document


def test_contract_refuses_a_default_that_reads_back_differently(tmp_path):
    """Param already refuses a default outside its own rules; the contract checks the default also
    survives being shown as text (a form field, --help, a saved setup) and typed back."""
    plugin = tmp_path / "paddedplug.py"
    plugin.write_text('''
from workbench.api import DatasetSpec, Param, hookimpl


def load(context, params):
    raise RuntimeError("not reached")


@hookimpl
def workbench_datasets():
    return [DatasetSpec(name="padded", task="classification", description="a padded default", load=load,
                        params=[Param("prefix", str, " the", "text put before each example")])]
''')
    text = check_plugin(plugin).render()
    assert "parameter 'prefix': its default ' the' is shown as ' the', which reads back as 'the'" in text
