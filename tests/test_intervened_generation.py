"""Interventions in generation (workbench.intervened_generation, `workbench generate --intervene`):
plain generation is untouched, an intervention changes the text from its step on and not before,
and the equation path reproduces the fused one wherever no intervention has acted yet."""

from __future__ import annotations

import json

import pytest
import torch

from workbench.api import LanguageModelData
from workbench.config import resolve_config
from workbench.engine import build_model
from workbench.errors import WorkbenchError
from workbench.intervened_generation import first_difference, generate
from workbench.interventions import Intervention, parse_intervention, parse_interventions
from workbench.tasks.language_model import LanguageModelTask

CPU = torch.device("cpu")
PRIME = "the "


def opinionated_lm(registry, cell: str, layers: int = 1):
    """A small untrained character model whose weights are scaled up, so its next-character
    distributions are sharp (an untrained model's are nearly uniform, where a changed state would
    rarely change a sampled character)."""
    task = LanguageModelTask.from_data(LanguageModelData("the quick brown fox jumps over the lazy dog " * 3, seq_len=8))
    config = resolve_config(registry, "synthetic-text", f"char-{cell}", "cpu",
                            ["model.hidden_size=16", "model.embedding_dim=8", f"model.num_layers={layers}"])
    torch.manual_seed(0)
    model = build_model(config, task, registry).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(4)
    return model, task


def text(task, model, interventions=(), length: int = 40, **options) -> str:
    return PRIME + "".join(generate(task, model, PRIME, length, CPU, interventions, **options))


def test_the_one_spec_syntax():
    assert parse_intervention("2:5@3") == Intervention("unit", 3, 0.0, layer=2, unit=5)
    assert parse_intervention("1:*=0.5@2") == Intervention("unit", 2, 0.5, layer=1, unit=None)
    assert parse_intervention("forget=0@4") == Intervention("gate", 4, 0.0, gate="forget")
    assert parse_interventions("1:*@3, 2:update=1@5;forget=1@1") == [
        Intervention("unit", 3, 0.0, layer=1), Intervention("gate", 5, 1.0, layer=2, gate="update"),
        Intervention("gate", 1, 1.0, gate="forget")]
    assert parse_interventions("  ") == []
    for bad in ("1:5", "forget@3", "zero", "1:x@2", "1:5@0"):
        with pytest.raises(WorkbenchError):
            parse_intervention(bad)


@pytest.mark.parametrize("sampling", ["sample", "greedy"])
@pytest.mark.parametrize(("cell", "spec"), [("lstm", "1:*@{s}"), ("lstm", "forget=0@{s}"), ("gru", "update=0@{s}"),
                                            ("rnn", "1:*@{s}"), ("lstm", "2:*@{s}")])
def test_an_intervention_changes_the_text_from_its_step_on_and_not_before(registry, cell, spec, sampling):
    model, task = opinionated_lm(registry, cell, layers=2 if spec.startswith("2:") else 1)
    plain = text(task, model, seed=3, sampling=sampling)
    assert plain == PRIME + "".join(task.generate(model, PRIME, 40, CPU, seed=3, sampling=sampling))  # untouched
    for step in (2, 10, 25):  # in the prime, and in the generated text
        changed = text(task, model, parse_interventions(spec.format(s=step)), seed=3, sampling=sampling)
        assert len(changed) == len(plain)
        assert changed[:step] == plain[:step]  # the characters read up to the step
        assert changed[step:] != plain[step:], (step, plain, changed)


def test_the_equation_path_reproduces_the_fused_generation(registry):
    """An intervention at the last step the model reads acts on nothing that is generated: the text,
    sampled with a fixed seed through the equation cells all the way, equals the fused model's."""
    model, task = opinionated_lm(registry, "lstm", layers=2)
    plain = text(task, model, seed=5)
    last = len(PRIME) + 40 - 1
    assert text(task, model, [Intervention("gate", last, 0.0, gate="forget")], seed=5) == plain


def test_interventions_that_cannot_apply_are_refused_before_any_text(registry):
    model, task = opinionated_lm(registry, "gru")
    for spec, message in (("forget=0@3", "no 'forget' gate"), ("2:0@3", "there is no layer 2"),
                          ("1:16@3", "units 0 to 15"), ("1:0@44", "generation reads only 43 characters")):
        with pytest.raises(WorkbenchError, match=message):
            generate(task, model, PRIME, 40, CPU, parse_interventions(spec))
    with pytest.raises(WorkbenchError, match="temperature"):  # the task's own checks still come first
        generate(task, model, PRIME, 40, CPU, parse_interventions("1:0@3"), temperature=0)


def test_a_generation_that_bypasses_the_hooks_is_an_error_not_a_silent_no_op(registry, monkeypatch):
    model, task = opinionated_lm(registry, "lstm")
    full = model.forward

    def always_fast(tokens, lengths, state=None, return_state=False):  # a plugin's fast path, hooks or not
        if tokens.size(1) == 1:
            return model._step(tokens, state, return_state)
        return full(tokens, lengths, state, return_state)

    monkeypatch.setattr(model, "forward", always_fast)
    with pytest.raises(WorkbenchError, match="interventions cannot act"):
        text(task, model, parse_interventions("1:*@6"))


def test_first_difference():
    assert first_difference("abc", "abc") is None
    assert first_difference("abx", "abc") == 3
    assert first_difference("ab", "abc") == 3


@pytest.mark.slow
def test_generate_command_with_and_without_interventions(registry, tmp_path, capsys):
    """In-process through the CLI: without --intervene the text is what the task generates; with one,
    --json has the untouched baseline drawn with the same seed and where the two part."""
    from workbench.cli import main
    from workbench.engine import load_trained, train

    config = resolve_config(registry, "synthetic-text", "char-lstm", "cpu",
                            ["chars=8000", "epochs=2", "lr=0.02", "seq_len=32", "model.hidden_size=24",
                             "model.embedding_dim=8"])
    checkpoint = train(config, registry=registry, runs_root=tmp_path / "runs").checkpoint
    loaded = load_trained(checkpoint, registry, "cpu")
    expected = "the " + "".join(loaded.task.generate(loaded.model, "the ", 60, CPU, seed=7))

    assert main(["generate", str(checkpoint), "--prime", "the ", "--length", "60", "--seed", "7"]) == 0
    assert capsys.readouterr().out == expected + "\n"

    assert main(["generate", str(checkpoint), "--prime", "the ", "--length", "60", "--seed", "7", "--json",
                 "--intervene", "1:*@20", "--intervene", "forget=0@20"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["baseline"] == expected and out["text"][:20] == expected[:20] and out["text"] != expected
    assert out["differs_from"] >= 21 and len(out["interventions"]) == 2 and out["seed"] == 7
    assert "from character 20 on" in captured.err

    for args, message in ((["--intervene", "1:5"], "is not an intervention"),
                          (["--intervene", "update=0@3"], "no 'update' gate"),
                          (["--intervene", "1:0@100"], "generation reads only")):
        assert main(["generate", str(checkpoint), "--prime", "the ", "--length", "10", *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("workbench: error: ") and message in lines[0], lines


# -- the Generate screen's intervene field ------------------------------------------------------
@pytest.mark.slow
async def test_the_generate_screen_intervenes_from_the_step_on(registry, tmp_path, isolated_dirs):
    from test_tui import make_app, notified, wait_for

    from workbench.config import RunConfig
    from workbench.engine import LoadedModel

    model, task = opinionated_lm(registry, "lstm")
    loaded = LoadedModel(model, task, RunConfig(dataset="synthetic-text", arch="char-lstm"), {"epoch": 1}, CPU,
                         tmp_path / "lm.pt")
    plain = text(task, model, length=30, seed=4)
    root = isolated_dirs / "runs"
    root.mkdir(parents=True, exist_ok=True)
    app = make_app(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        screen = app.screen
        screen.use_model(loaded)
        screen.query_one("#g-length").value = "30"
        screen.query_one("#g-seed").value = "4"
        screen.query_one("#prime").value = PRIME
        screen.query_one("#prime").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not screen.generating and len(screen.text) == len(plain), timeout=20)
        assert screen.text == plain  # no intervention: the task's own generation

        screen.query_one("#g-intervene").value = "forget=0@12, 1:*@12"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not screen.generating and screen.text != plain, timeout=20)
        assert screen.text[:12] == plain[:12] and len(screen.text) == len(plain)

        screen.query_one("#g-intervene").value = "update=0@3"  # an LSTM has no update gate
        await pilot.press("enter")
        await notified(pilot, "no 'update' gate", timeout=20)
        screen.query_one("#g-intervene").value = "1:5"
        await pilot.press("enter")
        await notified(pilot, "is not an intervention")
        assert app.focused is screen.query_one("#g-intervene")
