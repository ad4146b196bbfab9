"""The app's Inspect screen, driven with Textual's pilot on a tiny LSTM trained here, and its layout at 80x24."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_tui import make_app, messages, plain, wait_for


@pytest.fixture(scope="module")
def tiny_trained() -> Any:
    """A two-layer LSTM classifier trained for a few dozen steps on the kind's synthetic data (three
    classes, each drawn mostly from its own letters): quick, deterministic, and it does learn."""
    import torch

    from workbench.config import resolve_config
    from workbench.engine import LoadedModel, build_model
    from workbench.registry import get_registry
    from workbench.tasks.base import pad_sequences
    from workbench.tasks.classification import ClassificationTask

    registry = get_registry()
    task = ClassificationTask.from_data(ClassificationTask.synthetic_data())
    config = resolve_config(registry, "names", "lstm", "cpu",
                            ["model.hidden_size=16", "model.embedding_dim=8", "model.num_layers=2",
                             "model.ngrams=0"])  # the recurrence alone: interventions act on it
    torch.manual_seed(0)
    model = build_model(config, task, registry)
    examples = task.encode(ClassificationTask.synthetic_data())["train"]
    tokens, lengths = pad_sequences([ids for ids, _ in examples])
    labels = torch.tensor([label for _, label in examples])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only wait for each other on a busy machine
    for _ in range(25):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(tokens=tokens, lengths=lengths), labels).backward()
        optimizer.step()
    torch.set_num_threads(threads)
    model.eval()
    return LoadedModel(model, task, config, {"epoch": 1, "run_id": "tiny-lstm"}, torch.device("cpu"),
                       Path("tiny-lstm") / "best.pt")


async def open_inspector(pilot: Any, loaded: Any, text: str) -> Any:
    await pilot.press("f7")
    screen = pilot.app.screen
    assert "no trained model yet" in plain(screen.query_one("#model"))
    screen.use_model(loaded)
    screen.query_one("#text").focus()
    await pilot.press(*text, "enter")
    await wait_for(pilot, lambda: screen.result is not None and screen.result.text == text, timeout=30)
    return screen


@pytest.fixture()
def runs_root(isolated_dirs: Path) -> Path:
    root = isolated_dirs / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.mark.slow
async def test_stepping_shows_the_prediction_state_and_gates_after_each_token(runs_root, tiny_trained):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_inspector(pilot, tiny_trained, "aabbk")
        assert screen.step == 4 and "after 'aabbk'" in plain(screen.query_one("#answer"))
        await pilot.press("left", "left", "left")
        assert screen.step == 1 and "after 'aa'" in plain(screen.query_one("#answer"))
        shown = plain(screen.query_one("#internals"))
        assert "LSTM layer 1 (16 units)" in shown and "forget" in shown and "hidden  |" in shown
        expected = screen.result.steps[1]["prediction"]["top"][0]["label"]
        assert expected in plain(screen.query_one("#answer"))
        await pilot.press("home")
        assert screen.step == 0
        await pilot.press("space")  # play to the end
        await wait_for(pilot, lambda: not screen.playing, timeout=15)
        assert screen.step == 4
        assert "saliency" in plain(screen.query_one("#tokens"))


@pytest.mark.slow
async def test_interventions_by_key_change_the_prediction_and_clear(runs_root, tiny_trained):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_inspector(pilot, tiny_trained, "abcab")
        before = screen.result.steps[-1]["prediction"]
        await pilot.press("left", "left", "left", "f")  # hold layer 1's memory from token 2 on
        await wait_for(pilot, lambda: bool(screen.result.interventions), timeout=30)
        assert screen.result.interventions[0].describe() == "force the forget gate to 1 in layer 1 from token 2 on"
        assert screen.result.steps[-1]["prediction"] != before
        assert "without:" in plain(screen.query_one("#answer"))
        await pilot.press("right_square_bracket", "full_stop", "full_stop", "z")  # zero unit 2 of layer 2
        await wait_for(pilot, lambda: len(screen.result.interventions) == 2, timeout=30)
        assert "zero unit 2 of layer 2 from token 2 on" in plain(screen.query_one("#status"))
        await pilot.press("x")
        await wait_for(pilot, lambda: not screen.result.interventions, timeout=30)
        assert screen.result.steps[-1]["prediction"] == before


@pytest.mark.slow
async def test_an_input_it_cannot_read_is_a_message(runs_root, tiny_trained):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f7")
        screen = app.screen
        screen.use_model(tiny_trained)
        screen.query_one("#text").focus()
        await pilot.press("space", "enter")
        assert "type an input" in plain(screen.query_one("#status"))
        screen.query_one("#text").value = "a" * 201
        await pilot.press("ctrl+l", "enter")
        await wait_for(pilot, lambda: any("at most 200" in m for m in messages(app)), timeout=30)
        assert app.current_mode == "inspect"


def test_snapshot_inspect_80x24(snap_compare, runs_root, tiny_trained):
    async def step_back(pilot: Any) -> None:
        screen = await open_inspector(pilot, tiny_trained, "abcde")
        await pilot.press("left", "left")
        await wait_for(pilot, lambda: screen.step == 2)

    assert snap_compare(make_app(runs_root), terminal_size=(80, 24), run_before=step_back)


@pytest.mark.slow
async def test_a_translation_shows_its_decoder_per_output_word(runs_root):
    """The encoder steps per source token as for any model; below it the decoder's gates and the
    source tokens that moved each output word, for the whole input's translation."""
    import torch

    from workbench.config import resolve_config
    from workbench.engine import LoadedModel, build_model
    from workbench.registry import get_registry
    from workbench.tasks.seq2seq import Seq2SeqTask

    registry = get_registry()
    task = Seq2SeqTask.from_data(Seq2SeqTask.synthetic_data())
    config = resolve_config(registry, "copy-reverse", "gru-attention", "cpu", ["model.hidden_size=8"])
    torch.manual_seed(0)
    loaded = LoadedModel(build_model(config, task, registry).eval(), task, config, {"epoch": 1}, torch.device("cpu"),
                         Path("tiny-translation") / "best.pt")
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_inspector(pilot, loaded, "d a c")
        screen.query_one("#internals-box").scroll_end(animate=False)
        shown = plain(screen.query_one("#internals"))
        assert "decoder, per output word" in shown and "moved by:" in shown and "L1 u" in shown
        assert "saliency" in plain(screen.query_one("#tokens"))
