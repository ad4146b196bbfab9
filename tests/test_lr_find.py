"""The learning-rate finder: on a real (tiny) model, from the command line and in the setup form."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.config import resolve_config
from workbench.lr_find import exponential_rates, find_lr, smooth, suggest

TINY = ["model.hidden_size=32", "model.embedding_dim=16", "limit=3000", "threads=1"]


def tiny_config(registry, shared_data: Path, *extra: str):
    return resolve_config(registry, "names", "gru", "cpu", [*TINY, *extra], data_dir=str(shared_data))


def test_the_rule_is_a_tenth_of_the_rate_at_the_lowest_smoothed_loss():
    lrs = exponential_rates(1e-5, 1.0, 51)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    # falls from 3 to 1 up to lr 1e-2, then climbs steeply: the minimum is at index 30 (lr 1e-2)
    curve = [3 - 2 * i / 30 if i <= 30 else 1 + 0.5 * (i - 30) for i in range(51)]
    suggestion, minimum, steepest = suggest(lrs, curve)
    assert minimum == pytest.approx(1e-2) and suggestion == pytest.approx(1e-3)
    assert steepest is not None and steepest < minimum
    assert suggest(lrs, [1.0 + i for i in range(51)]) == (None, None, None)  # never fell: no advice
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # bias-corrected: no pull to zero


@pytest.mark.slow
def test_on_a_real_model_the_loss_falls_then_diverges_and_the_suggestion_is_stable(registry, shared_data,
                                                                                    isolated_dirs):
    config = tiny_config(registry, shared_data)
    seen: list[tuple[int, float]] = []
    first = find_lr(config, registry, start_lr=1e-5, steps=80, on_step=lambda step, steps, lr, loss: seen.append((step, lr)))
    assert first.ended == "diverged" and len(first.lrs) < 80  # stopped once the loss blew up
    lowest = min(range(len(first.smoothed)), key=first.smoothed.__getitem__)
    assert first.smoothed[lowest] < 0.8 * first.smoothed[0]  # it learned on the way up ...
    assert first.smoothed[-1] > 2 * first.smoothed[lowest]  # ... and then diverged
    assert first.suggestion is not None and first.start_lr < first.suggestion < first.end_lr
    assert first.suggestion == pytest.approx(first.minimum_lr / 10)
    assert 1e-4 < first.suggestion < 0.1  # a sane rate for Adam on this model
    assert [step for step, _ in seen] == list(range(1, len(first.lrs) + 1))
    again = find_lr(config, registry, start_lr=1e-5, steps=80)
    assert again.losses == first.losses and again.suggestion == first.suggestion  # same seed, same sweep
    assert not (isolated_dirs / "runs").exists() or not any((isolated_dirs / "runs").iterdir())  # no run saved


@pytest.mark.slow
def test_lr_find_command_prints_the_curve_the_suggestion_and_json(shared_data, capsys, isolated_dirs):
    args = ["lr-find", "--dataset", "names", "--data-dir", str(shared_data), "--steps", "80", "--start-lr", "1e-5",
            *[x for item in TINY for x in ("--set", item)]]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "learning rate (log scale)" in out and "suggested lr" in out
    line = next(line for line in out.splitlines() if line.startswith("use it: --set lr="))
    suggested = float(line.split("=", 1)[1])
    assert main([*args, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert float(f"{found['suggestion']:.2g}") == suggested
    assert found["ended"] == "diverged" and len(found["lrs"]) == len(found["losses"]) == len(found["smoothed"])
    assert all(math.isfinite(x) for x in found["losses"]) and found["rule"].startswith("min/10")


def test_lr_find_refuses_a_range_that_cannot_work_in_one_line(capsys):
    assert main(["lr-find", "--dataset", "names", "--start-lr", "1", "--end-lr", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("workbench: error: the learning-rate range must run upwards") and err.count("\n") == 1
    assert main(["lr-find", "--dataset", "names", "--steps", "1"]) == 2
    assert "--steps must be from 5" in capsys.readouterr().err


@pytest.mark.slow
async def test_the_setup_form_runs_the_finder_and_takes_its_suggestion(registry, shared_data, isolated_dirs,
                                                                       monkeypatch):
    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: [])
    monkeypatch.setattr("workbench.lr_find.DEFAULT_STEPS", 60)
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.lr_find_screen import LRFindScreen

    runs = isolated_dirs / "runs"
    app = WorkbenchApp(runs_root=runs, keys_file=isolated_dirs / "no-keys.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.pause()
        for key, value in (("run-data_dir", str(shared_data)), ("model-hidden_size", "32"),
                           ("model-embedding_dim", "16"), ("train-limit", "3000"), ("train-threads", "1")):
            screen.query_one(f"#p-{key}").value = value
        assert screen.query_one("#p-train-lr").value == "0.003"
        await pilot.press("ctrl+l")
        await pilot.pause()
        finder = app.screen
        assert isinstance(finder, LRFindScreen)
        deadline = 60.0
        while finder.finding is None and deadline > 0:  # the UI stays live while the sweep runs
            await pilot.pause(0.1)
            deadline -= 0.1
        assert finder.finding is not None and finder.finding.suggestion is not None
        await pilot.pause()
        assert "suggested lr" in str(finder.query_one("#lr-status").render())
        await pilot.press("enter")
        await pilot.pause()
        from workbench.lr_find import format_lr

        assert app.screen is screen
        assert screen.query_one("#p-train-lr").value == format_lr(finder.finding.suggestion) != "0.003"
        assert screen.build_config().train["lr"] == float(format_lr(finder.finding.suggestion))

        # escape while the sweep runs cancels it and leaves the field alone
        await pilot.press("ctrl+l")
        await pilot.pause()
        cancelled = app.screen
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and cancelled._cancel.is_set()
        assert screen.query_one("#p-train-lr").value == format_lr(finder.finding.suggestion)
    assert not runs.exists() or not any(runs.iterdir())
