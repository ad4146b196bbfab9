"""The step-through inspector (workbench.inspect, `workbench inspect`): its equation cells against the
fused modules, its per-step predictions against `predict`, interventions, saliency and bad input."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import FAST
from workbench.api import ArchitectureSpec, LanguageModelData, ModelContext, hookimpl
from workbench.config import resolve_config
from workbench.engine import Trainer, build_model, load_trained
from workbench.errors import WorkbenchError
from workbench.inspect import (
    Intervention,
    Tracer,
    find_layers,
    inspect_model,
    make_reader,
    parse_gate,
    parse_unit,
    plugin_steppers,
    render_text,
)
from workbench.registry import Registry
from workbench.tasks.classification import ClassificationTask
from workbench.tasks.language_model import LanguageModelTask


def classifier(registry, arch: str, *settings: str, sized: bool = True) -> tuple[nn.Module, ClassificationTask]:
    task = ClassificationTask.from_data(ClassificationTask.synthetic_data())
    sizes = ["model.hidden_size=12", "model.embedding_dim=6"] if sized else []
    config = resolve_config(registry, "names", arch, "cpu", [*sizes, *settings])
    torch.manual_seed(0)
    return build_model(config, task, registry).eval(), task


def traces_of(model: nn.Module, task, text: str, registry) -> tuple[dict[int, dict[str, torch.Tensor]], list]:
    steppers = plugin_steppers(registry)
    reader = make_reader(task, model, torch.device("cpu"), 3, text)
    layers = find_layers(model, steppers, reader.exclude)
    tracer = Tracer(model, layers, steppers)
    with torch.no_grad(), tracer.active(record=True) as run:
        reader.forward(len(reader.tokens))
    return run.traces, layers


# -- equation cells against the fused modules -------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_equation_states_equal_the_fused_multilayer_module_at_every_step(registry, cell):
    """A two-layer nn.LSTM/nn.GRU (the character language model's): each layer's hidden (and cell)
    state after every prefix equals what the fused module returns for that prefix."""
    task = LanguageModelTask.from_data(LanguageModelData("the quick brown fox jumps over the lazy dog " * 3, seq_len=8))
    config = resolve_config(registry, "synthetic-text", f"char-{cell}", "cpu",
                            ["model.hidden_size=10", "model.embedding_dim=5", "model.num_layers=2"])
    torch.manual_seed(1)
    model = build_model(config, task, registry).eval()
    text = "the lazy fox"
    traces, layers = traces_of(model, task, text, registry)
    assert [layer.label for layer in layers] == [f"{cell.upper()} layer 1", f"{cell.upper()} layer 2"]
    ids = torch.tensor([task.encode_prime(text)])
    with torch.no_grad():
        vectors = model.embedding(ids)
        for t in range(1, ids.size(1) + 1):
            _, state = model.rnn(vectors[:, :t])
            hidden, cell_state = state if cell == "lstm" else (state, None)
            for layer in (0, 1):
                assert (traces[layer + 1]["hidden"][t - 1] - hidden[layer, 0]).abs().max() < 1e-5
                if cell_state is not None:
                    assert (traces[layer + 1]["cell"][t - 1] - cell_state[layer, 0]).abs().max() < 1e-5
    assert set(traces[1]) >= ({"input", "forget", "output", "cell"} if cell == "lstm" else {"update", "reset"})


@pytest.mark.parametrize("mode", ["padded", "packed"])
def test_bidirectional_stacks_are_stepped_per_layer_and_direction(registry, mode):
    model, task = classifier(registry, "gru", "model.num_layers=2", "model.bidirectional=true",
                             f"model.sequence_mode={mode}")
    traces, layers = traces_of(model, task, "abcxfg", registry)
    assert [(layer.label, layer.backward) for layer in layers] == [
        ("GRU layer 1", False), ("GRU layer 1 backward", True), ("GRU layer 2", False), ("GRU layer 2 backward", True)]
    ids = torch.tensor([task.vocab.encode(task.tokens("abcxfg"))])
    with torch.no_grad():
        outputs, _ = model.encoder(model.input(ids), torch.tensor([ids.size(1)]))
    top_forward, top_backward = outputs[0, :, :12], outputs[0, :, 12:]
    assert (traces[3]["hidden"] - top_forward).abs().max() < 1e-5
    assert (traces[4]["hidden"] - top_backward).abs().max() < 1e-5  # in text order, like the module's output


def test_the_equation_path_changes_no_prediction(registry):
    """With no intervention, running the layers through the equations gives the fused model's answer."""
    for arch in ("lstm", "gru", "elman", "rnn"):
        model, task = classifier(registry, arch, "model.num_layers=2")
        result = inspect_model(model, task, "abcab", arch=arch)
        expected = task.predict(model, "abcab", torch.device("cpu"))
        last = result.steps[-1]["prediction"]
        assert last["label"] == expected["label"], arch
        for ours, theirs in zip(last["top"], expected["top"], strict=True):
            assert ours["probability"] == pytest.approx(theirs["probability"], abs=1e-5)
        assert result.layers and "hidden" in result.steps[0]["layers"][0]


# -- interventions ---------------------------------------------------------------------------------
def test_zeroing_a_unit_changes_the_prediction_from_that_step_on(registry):
    model, task = classifier(registry, "lstm")
    plain = inspect_model(model, task, "abcdeab")
    zeroed = inspect_model(model, task, "abcdeab", interventions=[Intervention("unit", 3, 0.0, layer=1, unit=0),
                                                                  Intervention("unit", 3, 0.0, layer=1, unit=1)])
    before = [s["prediction"] for s in plain.steps]
    after = [s["prediction"] for s in zeroed.steps]
    assert after[:2] == before[:2]  # tokens 1 and 2 are read before the intervention
    assert all(a != b for a, b in zip(after[2:], before[2:], strict=True))
    assert [s["baseline"] for s in zeroed.steps] == before
    assert all(s["layers"][0]["hidden"][:2] == [0.0, 0.0] for s in zeroed.steps[2:])


def test_clamping_a_unit_to_its_own_value_is_a_no_op(registry):
    """The identity intervention: hold a unit at exactly the value it has at the last step."""
    model, task = classifier(registry, "gru")
    traces, _ = traces_of(model, task, "abcde", registry)
    value = float(traces[1]["hidden"][4, 7])
    plain = inspect_model(model, task, "abcde")
    held = inspect_model(model, task, "abcde", interventions=[Intervention("unit", 5, value, layer=1, unit=7)])
    assert [s["prediction"] for s in held.steps] == [s["prediction"] for s in plain.steps]


def test_forcing_gates(registry):
    model, task = classifier(registry, "lstm")
    kept = inspect_model(model, task, "abcde", interventions=[parse_gate("forget=1@2")])
    forget = [s["layers"][0]["gates"]["forget"] for s in kept.steps]
    assert all(v == 1.0 for step in forget[1:] for v in step) and any(v != 1.0 for v in forget[0])
    assert kept.steps[-1]["prediction"] != kept.steps[-1]["baseline"]
    gru, gru_task = classifier(registry, "gru")
    replaced = inspect_model(gru, gru_task, "abcde", interventions=[parse_gate("update=0@1")])
    first = replaced.steps[0]["layers"][0]
    assert first["hidden"] == first["states"]["candidate"]  # update = 0: the state is the candidate


def test_intervention_specs_are_parsed_or_refused_with_one_line(registry):
    assert parse_unit("2:5@3") == Intervention("unit", 3, 0.0, layer=2, unit=5)
    assert parse_unit("1:0=0.5@1").value == 0.5
    assert parse_gate("1:forget=1@4") == Intervention("gate", 4, 1.0, layer=1, gate="forget")
    for bad in ("5@3", "a:b@c", "1:2@0"):
        with pytest.raises(WorkbenchError):
            parse_unit(bad)
    with pytest.raises(WorkbenchError, match="between 0 and 1"):
        parse_gate("forget=2@1")
    model, task = classifier(registry, "lstm")
    for intervention, message in ((parse_gate("update=0@1"), "no 'update' gate"),
                                  (parse_unit("3:0@1"), "there is no layer 3"),
                                  (parse_unit("1:99@1"), "units 0 to 11"),
                                  (parse_unit("1:0@9"), "only 3 tokens")):
        with pytest.raises(WorkbenchError, match=message):
            inspect_model(model, task, "abc", interventions=[intervention])


# -- saliency, attention, plugins, other architectures -----------------------------------------------
def test_saliency_is_gradient_times_input_on_the_embeddings(registry):
    model, task = classifier(registry, "gru")
    result = inspect_model(model, task, "abcde")
    ids = torch.tensor([task.vocab.encode(task.tokens("abcde"))])
    vectors = model.input(ids).detach().requires_grad_()
    _, summary = model.encoder(vectors, torch.tensor([5]))
    if model.ngrams is not None:  # the names defaults' n-gram bag reads the ids, not the vectors
        summary = torch.cat([summary, model.ngrams(ids, torch.tensor([5]))], dim=-1)
    torch.log_softmax(model.output(summary)[0], dim=-1).max().backward()
    expected = (vectors.grad * vectors)[0].sum(-1)
    assert result.saliency == pytest.approx(expected.tolist(), abs=1e-5)
    assert sum(result.saliency_shares() or []) == pytest.approx(1.0)
    assert "saliency" in render_text(result)


def test_attention_weights_per_prefix_and_the_plugin_hook(registry):
    """lstm-attention reports attention over the prefix at each step; gated-lstm's layers are stepped
    through the step function its plugin offers (hook workbench_inspectors)."""
    task = ClassificationTask.from_data(ClassificationTask.synthetic_data())
    config = resolve_config(registry, "brackets", "lstm-attention", "cpu", ["model.hidden_size=8"])
    model = build_model(config, task, registry).eval()
    result = inspect_model(model, task, "abcd", arch="lstm-attention")
    assert [len(s["prediction"]["attention"]) for s in result.steps] == [1, 2, 3, 4]
    assert sum(result.steps[-1]["prediction"]["attention"]) == pytest.approx(1.0, abs=1e-4)

    config = resolve_config(registry, "brackets", "gated-lstm", "cpu", ["model.hidden_size=8", "model.gates=fo"])
    gated = build_model(config, task, registry).eval()
    steppers = plugin_steppers(registry)
    traced = inspect_model(gated, task, "abcd", arch="gated-lstm", steppers=steppers)
    assert [layer.cell for layer in traced.layers] == ["gated-lstm"]
    assert set(traced.steps[0]["layers"][0]["gates"]) == {"forget", "output"}  # no input gate in "fo"
    expected = task.predict(gated, "abcd", torch.device("cpu"))["top"][0]["probability"]
    assert traced.steps[-1]["prediction"]["top"][0]["probability"] == pytest.approx(expected, abs=1e-5)
    forced = inspect_model(gated, task, "abcd", steppers=steppers, interventions=[parse_gate("forget=0@2")])
    assert all(v == 0.0 for v in forced.steps[2]["layers"][0]["gates"]["forget"])


class MeanOfEmbeddings(nn.Module):
    """No recurrence: the mean of the token vectors, then a linear layer."""

    def __init__(self, context: ModelContext, params: dict) -> None:
        super().__init__()
        self.embedding = nn.Embedding(context.vocab_size, 8, padding_idx=context.pad_index)
        self.output = nn.Linear(8, context.num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.output(self.embedding(tokens).sum(1) / lengths.unsqueeze(1).to(torch.float))


def test_a_model_without_recurrence_still_shows_predictions_and_says_why_no_internals():
    module = types.ModuleType("bag_of_chars")
    module.workbench_architectures = hookimpl(lambda: [  # type: ignore[attr-defined]
        ArchitectureSpec("bag", ("classification",), "mean of embeddings", build=MeanOfEmbeddings)])
    registry = Registry().load_entry_points()
    registry.register_module(module)
    model, task = classifier(registry, "bag", sized=False)
    result = inspect_model(model, task, "abc", arch="bag")
    assert len(result.steps) == 3 and not result.layers
    assert any("internals are not available for architecture 'bag'" in note for note in result.notes)
    assert result.saliency is not None
    with pytest.raises(WorkbenchError, match="has none"):
        inspect_model(model, task, "abc", arch="bag", interventions=[parse_gate("forget=1@1")])


# -- a model trained in the test, through the CLI ------------------------------------------------------
@pytest.fixture(scope="module")
def names_lstm(shared_data, tmp_path_factory, registry) -> Path:
    config = resolve_config(registry, "names", "lstm", "cpu", [*FAST, "limit=2000", "model.num_layers=2"],
                            data_dir=str(shared_data))
    result = Trainer(config, registry=registry, runs_root=tmp_path_factory.mktemp("runs")).train()
    assert result.checkpoint is not None
    return result.checkpoint


@pytest.mark.slow
def test_inspect_json_agrees_with_predict_and_has_its_schema(names_lstm, capsys):
    from workbench.cli import main

    assert main(["inspect", str(names_lstm), "Dostoevsky", "--json", "--top", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"checkpoint", "arch", "task", "input", "tokens", "layers", "steps", "saliency", "interventions",
            "notes", "internals"} <= set(data)
    assert data["tokens"] == list("Dostoevsky") and len(data["steps"]) == 10
    assert [layer["label"] for layer in data["layers"]] == ["LSTM layer 1", "LSTM layer 2"]
    step = data["steps"][3]
    assert step["token"] == "t" and len(step["prediction"]["top"]) == 4
    assert set(step["layers"][0]["gates"]) == {"input", "forget", "output"}
    assert set(step["layers"][0]["states"]) == {"candidate", "cell"} and len(step["layers"][1]["hidden"]) == 32
    loaded = load_trained(names_lstm)
    expected = loaded.task.predict(loaded.model, "Dostoevsky", loaded.device, top_k=4)
    last = data["steps"][-1]["prediction"]
    assert [e["label"] for e in last["top"]] == [e["label"] for e in expected["top"]]
    for ours, theirs in zip(last["top"], expected["top"], strict=True):
        assert ours["probability"] == pytest.approx(theirs["probability"], abs=1e-5)
    assert [s["token"] for s in data["saliency"]] == list("Dostoevsky")


@pytest.mark.slow
def test_inspect_text_view_and_bad_input_each_give_one_line(names_lstm, tmp_path, capsys):
    """In-process through the CLI's main (a subprocess each would cost seconds of start-up)."""
    from workbench.cli import main

    assert main(["inspect", str(names_lstm), "Dostoevsky", "--force-gate", "forget=1@3"]) == 0
    shown = capsys.readouterr().out
    assert "   4 t " in shown and "L2 |" in shown and "f1.00" in shown
    assert "without:" in shown and "saliency" in shown
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    for args, message in (([str(names_lstm), ""], "the input is empty"),
                          ([str(names_lstm), "Dost0evsky"], "'0' never occurred"),
                          ([str(corrupt), "Dostoevsky"], "not a readable workbench checkpoint"),
                          ([str(names_lstm), "Smith", "--zero-unit", "1:5"], "is not LAYER:UNIT@STEP"),
                          ([str(names_lstm), "Smith", "--force-gate", "update=0@1"], "no 'update' gate")):
        assert main(["inspect", *args]) == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("workbench: error: ") and message in lines[0], lines
    assert main(["inspect", str(names_lstm), "Dost0evsky", "--allow-unknown", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unknown_tokens"] == ["0"]
    assert main(["inspect", str(names_lstm), "Smith", "--intervene", "2:*@3", "--intervene", "forget=1@2"]) == 0
    shown = capsys.readouterr().out
    assert "intervention: zero every unit of layer 2 from token 3 on" in shown and "f1.00" in shown


@pytest.mark.slow
def test_taggers_translators_and_language_models_are_read_their_own_way(registry):
    """A tagger: tags of every word so far, its per-word character encoder not stepped; a translation
    model: the encoder stepped, the alignment per prefix, saliency of the whole translation; a language model: the next
    character, and a greedy continuation that an intervention changes."""
    from workbench.tasks.seq2seq import Seq2SeqTask
    from workbench.tasks.tagging import TaggingTask

    torch.manual_seed(0)
    tagging = TaggingTask.from_data(TaggingTask.synthetic_data())
    tagger = build_model(resolve_config(registry, "ud-ewt", "char-bilstm-tagger", "cpu", ["model.hidden_size=8"]),
                         tagging, registry).eval()
    words = TaggingTask.synthetic_data().train[0][0][:3]
    tagged = inspect_model(tagger, tagging, " ".join(words))
    assert [len(s["prediction"]["tags"]) for s in tagged.steps] == [1, 2, 3]
    assert all(not layer.module.startswith("chars") for layer in tagged.layers) and tagged.layers
    assert tagged.steps[-1]["prediction"]["tags"] == tagging.predict(tagger, " ".join(words), torch.device("cpu"))["tags"]

    translation = Seq2SeqTask.from_data(Seq2SeqTask.synthetic_data())
    translator = build_model(resolve_config(registry, "copy-reverse", "gru-attention", "cpu", ["model.hidden_size=8"]),
                             translation, registry).eval()
    result = inspect_model(translator, translation, "d a c")
    assert [layer.module for layer in result.layers] == ["encoder.layers.0"] and len(result.saliency) == 3
    assert len(result.steps[1]["prediction"]["alignment"]["source"]) == 3  # "d a" and the end marker

    text = "the quick brown fox jumps over the lazy dog " * 3
    language = LanguageModelTask.from_data(LanguageModelData(text, seq_len=8))
    model = build_model(resolve_config(registry, "synthetic-text", "char-gru", "cpu", ["model.hidden_size=8"]),
                        language, registry).eval()
    plain = inspect_model(model, language, "the q", generate=12)
    assert set(plain.steps[-1]["prediction"]) == {"next"} and len(plain.continuation["text"]) == 12
    expected = language.predict(model, "the q", torch.device("cpu"))["next"]
    assert [e["char"] for e in plain.steps[-1]["prediction"]["next"]] == [e["char"] for e in expected]
    zeroed = inspect_model(model, language, "the q", generate=12,
                           interventions=[parse_unit(f"1:{u}@1") for u in range(8)])
    assert zeroed.continuation["baseline"] == plain.continuation["text"]
    assert zeroed.continuation["text"] != plain.continuation["text"]


def test_another_thread_using_the_model_meanwhile_sees_no_intervention(registry):
    """The app shares one loaded model between screens: a predict on another thread while an
    inspection with interventions runs gets the untouched model's answer."""
    import threading

    model, task = classifier(registry, "lstm")
    expected = task.predict(model, "abcab", torch.device("cpu"))
    steppers = plugin_steppers(registry)
    reader = make_reader(task, model, torch.device("cpu"), 3, "abcab")
    tracer = Tracer(model, find_layers(model, steppers), steppers)
    seen: list = []
    with torch.no_grad(), tracer.active([Intervention("gate", 1, 0.0, gate="forget")]):
        assert reader.summarise(reader.forward(5), 5)["top"] != expected["top"]  # this thread: intervened
        other = threading.Thread(target=lambda: seen.append(task.predict(model, "abcab", torch.device("cpu"))))
        other.start()
        other.join()
    assert seen[0]["top"] == expected["top"]


# -- translation: the decoder per output word, saliency per output word --------------------------
def test_translation_decoder_states_and_saliency_agree_with_the_model(registry):
    """The decoder's traced state at each output word equals the fused decoder's (within 1e-5, its
    own decode_step fed the greedy words), the traced translation is predict's, and each word's
    saliency equals gradient x input computed here directly on the source vectors."""
    from workbench.tasks.base import pad_sequences
    from workbench.tasks.seq2seq import Seq2SeqTask

    task = Seq2SeqTask.from_data(Seq2SeqTask.synthetic_data())
    torch.manual_seed(0)
    model = build_model(resolve_config(registry, "copy-reverse", "gru-attention", "cpu",
                                       ["model.hidden_size=8", "model.num_layers=2"]), task, registry).eval()
    result = inspect_model(model, task, "d a c b")
    decoder = result.decoder
    assert [layer["label"] for layer in decoder["layers"]] == ["GRU layer 1", "GRU layer 2"]
    assert [layer.label for layer in result.layers] == ["encoder.layers.0: GRU layer 1",
                                                        "encoder.layers.1: GRU layer 1"]
    greedy = task.beam_search(model, task.source.encode(["d", "a", "c", "b"]), torch.device("cpu"), width=1)[0]
    assert decoder["translation"] == " ".join(task.detokenize(greedy["ids"]))
    outputs = greedy["ids"] + ([task.eos] if decoder["steps"][-1]["token"] == "<eos>" else [])
    assert len(decoder["steps"]) == len(outputs) > 0 and decoder["source"] == ["d", "a", "c", "b", "<eos>"]

    source = task.source.encode(["d", "a", "c", "b"]) + [task.src_eos]
    tokens, lengths = pad_sequences([source], 0)
    vectors = model.encoder.embedding(tokens).detach().requires_grad_()
    embedding = model.encoder.embedding
    model.encoder.embedding = _Fixed(vectors)
    try:
        state = model.encode(tokens, lengths)
        previous = torch.tensor([task.bos])
        for index, word in enumerate(outputs):
            logits, state, _ = model.decode_step(previous, state)
            step = decoder["steps"][index]
            for layer in (0, 1):
                traced = torch.tensor(step["layers"][layer]["hidden"])
                assert (traced - state["hidden"][0, layer].detach()).abs().max() < 1e-5
            objective = torch.log_softmax(logits, dim=-1)[0, word]
            (grad,) = torch.autograd.grad(objective, vectors, retain_graph=True)
            expected = (grad * vectors.detach())[0].sum(dim=-1)
            scores = torch.tensor([entry["score"] for entry in step["saliency"]])
            assert (scores - expected).abs().max() < 1e-5
            assert sum(entry["share"] for entry in step["saliency"]) == pytest.approx(1.0, abs=1e-4)
            previous = torch.tensor([word])
    finally:
        model.encoder.embedding = embedding
    assert result.saliency is not None and len(result.saliency) == 4  # the whole translation, per source token
    shown = render_text(result)
    assert "decoder, per output word" in shown and "moved by:" in shown
    zeroed = inspect_model(model, task, "d a c b", interventions=[parse_unit("2:*@1")])  # the encoder's top layer
    assert zeroed.decoder["steps"][0]["layers"][0]["hidden"] != decoder["steps"][0]["layers"][0]["hidden"]


class _Fixed(nn.Module):
    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.value
