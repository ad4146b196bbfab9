"""The example plugin's own tests: what a plugin author would write for their package.

Run from the workbench checkout (the README's ``python -m pytest -q`` includes this folder) or from
``examples/workbench-example-plugin`` after ``pip install -e examples/workbench-example-plugin``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

plugin = pytest.importorskip(
    "workbench_example_plugin", reason="install it first: pip install -e examples/workbench-example-plugin")

from workbench_example_plugin import data  # noqa: E402

from workbench.api import DataError, LoadContext  # noqa: E402
from workbench.testing import assert_plugin_contract  # noqa: E402

DEFAULTS = {"size": 3000, "letters": 5, "min_length": 5, "max_length": 25, "seed": 0}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("WORKBENCH_DATA_DIR", "WORKBENCH_PLUGINS", "WORKBENCH_DISABLE_PLUGINS", "WORKBENCH_PLUGINS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def load(**params):
    return data.load(LoadContext(data_dir=None, cache_dir=Path(".")), {**DEFAULTS, **params})


def test_the_plugin_passes_the_workbench_contract():
    report = assert_plugin_contract("example")
    assert report.datasets == ["majority"] and report.architectures == ["meanpool"]
    assert "notes" in plugin.workbench_event_sinks()[0].name


def test_labels_are_the_unique_most_frequent_letter():
    generated = load(size=500, letters=3, min_length=1, max_length=6)
    assert generated.classes == ["a", "b", "c"]
    assert len(generated.train) + len(generated.valid) + len(generated.test) == 500
    for text, label in generated.train + generated.valid + generated.test:
        counts = Counter(text)
        top = counts.most_common(1)[0][1]
        assert counts[generated.classes[label]] == top
        assert [c for c, n in counts.items() if n == top] == [generated.classes[label]]


def test_generation_is_reproducible_and_seeded():
    assert load(size=100).train == load(size=100).train
    assert load(size=100, seed=1).train != load(size=100).train
    rng = random.Random(0)
    assert data.majority_string(rng, "ab", 2)[0] in {"aa", "bb"}  # a tie is always broken


def test_bad_lengths_are_one_clear_error():
    with pytest.raises(DataError, match="min_length \\(9\\) is greater than max_length \\(3\\)"):
        load(min_length=9, max_length=3)


def test_meanpool_ignores_padding():
    import torch
    from workbench_example_plugin.models import build

    from workbench.api import ModelContext

    model = build(ModelContext(task="classification", vocab_size=7, pad_index=0, num_classes=3),
                  {"embedding_dim": 8, "hidden_size": 16, "dropout": 0.0}).eval()
    short = model(tokens=torch.tensor([[2, 3, 4]]), lengths=torch.tensor([3]))
    padded = model(tokens=torch.tensor([[2, 3, 4, 0, 0]]), lengths=torch.tensor([3]))
    assert short.shape == (1, 3)
    assert torch.allclose(short, padded)


def workbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)


@pytest.mark.slow
def test_listed_trained_and_used_from_the_cli():
    listing = json.loads(workbench("plugins", "--json").stdout)
    entry = next(p for p in listing["plugins"] if p["name"] == "example")
    assert entry["version"] == "0.1.0" and entry["package"] == "workbench-example-plugin" and not entry["errors"]
    assert listing["datasets"]["majority"]["default_arch"] == "meanpool"

    result = workbench("train", "--dataset", "majority", "--set", "data.size=1500", "--set", "epochs=4",
                       "--set", "threads=1", "--set", "sinks=notes", "--json")
    assert result.returncode == 0, result.stderr
    trained = json.loads(result.stdout)
    assert trained["state"] == "finished"
    notes = (Path(trained["run_dir"]) / "notes.txt").read_text().splitlines()
    assert notes[0].endswith(": majority with meanpool") and notes[-1].startswith("finished")
    assert [line.split(":")[0] for line in notes[1:-1]] == [f"epoch {n}/4" for n in range(1, len(notes) - 1)]
    assert trained["metrics"]["accuracy"] > 0.4  # guessing among 5 letters scores 0.2

    predicted = workbench("predict", trained["run"], "aaaab", "ddddee", "--json")
    assert predicted.returncode == 0, predicted.stderr
    labels = [p["label"] for p in json.loads(predicted.stdout)["predictions"]]
    assert len(labels) == 2 and set(labels) <= set("abcde")
