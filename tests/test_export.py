"""workbench export: every built-in architecture to TorchScript and ONNX, checked against its checkpoint.

Each architecture trains one tiny epoch on a synthetic dataset (brackets, synthetic-text,
copy-reverse) or a small tagged text written here, so nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from workbench.cli import main
from workbench.errors import WorkbenchError

TINY = ["epochs=1", "model.hidden_size=8", "batch_size=32", "log_every=1000"]
DATASETS: dict[str, tuple[str, list[str]]] = {
    "classification": ("brackets", ["data.length=10", "data.train_size=40", "data.test_size=20",
                                    "data.valid_fraction=0.25", "model.embedding_dim=8"]),
    "language_model": ("synthetic-text", ["data.chars=1500", "data.seq_len=16", "model.embedding_dim=8"]),
    "seq2seq": ("copy-reverse", ["data.train_size=40", "data.valid_size=20", "data.test_size=10",
                                 "data.max_length=6", "model.embedding_dim=8"]),
    "tagging": ("tagged-text", ["model.embedding_dim=8"]),
}
ARCHITECTURES = {
    "classification": ["elman", "rnn", "lstm", "gru", "gru-eq", "lstm-attention", "gated-lstm"],
    "language_model": ["char-rnn", "char-lstm", "char-gru", "char-gru-eq"],
    "seq2seq": ["gru-seq2seq", "gru-attention"],
    "tagging": ["lstm-tagger", "bilstm-tagger", "char-bilstm-tagger"],
}
ALL = [(kind, arch) for kind, archs in ARCHITECTURES.items() for arch in archs]


def tagged_text(folder: Path) -> Path:
    """A small word/TAG corpus: 60 sentences of a toy grammar."""
    words = {"the": "DET", "a": "DET", "dog": "NOUN", "cat": "NOUN", "sees": "VERB", "eats": "VERB",
             "red": "ADJ", "old": "ADJ", ".": "PUNCT"}
    lines = []
    for i in range(60):
        sentence = ["the", ["old", "red"][i % 2], ["dog", "cat"][i % 3 % 2], ["sees", "eats"][i % 5 % 2], "a",
                    "cat" if i % 7 else "dog", "."]
        lines.append(" ".join(f"{w}/{words[w]}" for w in sentence))
    path = folder / "tagged.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_tiny(kind: str, arch: str, root: Path, extra: tuple[str, ...] = ()) -> Path:
    """One tiny epoch of ``arch`` on its kind's synthetic data; the best checkpoint's path."""
    from workbench.config import plan_run
    from workbench.engine import Trainer
    from workbench.registry import get_registry

    registry = get_registry()
    dataset, settings = DATASETS[kind]
    data_dir = str(tagged_text(root)) if kind == "tagging" else None
    run_dir = root / f"run-{arch}"
    plan = plan_run(registry, dataset=dataset, arch=arch, device="cpu", assignments=[*TINY, *settings, *extra],
                    data_dir=data_dir, runs_root=root / "runs", run_dir=run_dir)
    plan.begin()
    result = Trainer(plan.config, registry=registry, runs_root=root / "runs", run=plan.run).train()
    assert result.checkpoint is not None
    return Path(result.checkpoint)


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def run_export(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["export", *args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize(("kind", "arch"), ALL)
def test_every_builtin_architecture_exports_within_tolerance(kind: str, arch: str, fmt: str, tmp_path: Path) -> None:
    if fmt == "onnx" and not onnx_available():
        pytest.skip("onnx or onnxruntime is not installed (pip install onnx onnxruntime)")
    from workbench.export import TOLERANCE, export_checkpoint

    checkpoint = train_tiny(kind, arch, tmp_path)
    result = export_checkpoint(checkpoint, fmt, tmp_path / "export", verify=True, limit=64)
    assert result["verify"]["max_abs_diff"] < TOLERANCE, result
    assert result["verify"]["examples"] > 0
    info = json.loads((tmp_path / "export" / "model.json").read_text(encoding="utf-8"))
    assert info["architecture"] == arch and info["task"] == kind
    assert [i["name"] for i in info["inputs"]] == info["input_order"] == result["input_order"]
    assert info["task_state"]["kind"] == kind
    task_inputs = {"classification": ["tokens", "lengths"], "language_model": ["tokens", "lengths"],
                   "seq2seq": ["tokens", "lengths", "target_in"], "tagging": ["tokens", "lengths", "chars"]}[kind]
    kept = [name for name in task_inputs if name not in info.get("dropped_inputs", [])]
    assert info["input_order"] == kept  # ONNX lists only the inputs its graph reads
    # a loop written in Python is unrolled: those exports say so and take a fixed length
    unrolled = arch in {"elman", "gru-eq", "gated-lstm", "char-gru-eq", "gru-attention"}
    assert bool(info["fixed_length"]) == unrolled


def test_cli_exports_torchscript_that_runs_from_its_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The quick check: the exported file and model.json alone rebuild the checkpoint's logits."""
    import torch

    from workbench.engine import load_trained

    checkpoint = train_tiny("classification", "gru", tmp_path)
    out = tmp_path / "export"
    code, result, err = run_export(capsys, str(checkpoint), "--format", "torchscript", "--output", str(out), "--verify")
    assert code == 0, err
    assert result["verify"]["ok"] and result["verify"]["max_abs_diff"] < 1e-4
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.pt"]
    info = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert info["input_order"] == ["tokens", "lengths"] and info["fixed_length"] is None
    assert info["task_state"]["classes"] and info["task_state"]["vocab"][info["special_indices"]["pad"]]
    # encode a string with the JSON's vocabulary only, run the TorchScript file, compare with the checkpoint
    vocab = {token: index for index, token in enumerate(info["task_state"]["vocab"])}
    text = "(()())"
    tokens = torch.tensor([[vocab[c] for c in text]])
    lengths = torch.tensor([len(text)])
    loaded = load_trained(checkpoint, device="cpu")
    with torch.no_grad():
        exported = torch.jit.load(str(out / "model.pt"))(tokens, lengths)
        expected = loaded.model(tokens=tokens, lengths=lengths)
    assert float((exported - expected).abs().max()) < 1e-4


def test_bad_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code = main(["export", str(bad), "--format", "torchscript", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("workbench: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_non_empty_output_is_refused_and_force_keeps_other_files(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = train_tiny("classification", "rnn", tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    code = main(["export", str(checkpoint), "--format", "torchscript", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "not empty" in err and "--force" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]

    (out / "model.json").write_text("{}", encoding="utf-8")  # an earlier export's file is replaced
    code = main(["export", str(checkpoint), "--format", "torchscript", "--output", str(out), "--force"])
    capsys.readouterr()
    assert code == 0
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert json.loads((out / "model.json").read_text(encoding="utf-8"))["architecture"] == "rnn"


def test_onnx_without_onnxruntime_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    code = main(["export", str(tmp_path / "x.pt"), "--format", "onnx", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "pip install onnx onnxruntime" in err and "seq-workbench[export]" in err


def test_packed_model_to_onnx_is_refused_naming_the_architecture(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    if not onnx_available():
        pytest.skip("onnx or onnxruntime is not installed (pip install onnx onnxruntime)")
    from workbench.export import export_checkpoint

    checkpoint = train_tiny("classification", "lstm", tmp_path, ("model.sequence_mode=packed",))
    code = main(["export", str(checkpoint), "--format", "onnx", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "architecture 'lstm' with sequence_mode=packed cannot be exported to ONNX" in err
    assert not (tmp_path / "out").exists()
    result = export_checkpoint(checkpoint, "torchscript", tmp_path / "ts", verify=True, limit=64)
    assert result["verify"]["max_abs_diff"] < 1e-4  # TorchScript keeps the packed path


def test_unknown_format_is_one_line() -> None:
    from workbench.export import check_format

    with pytest.raises(WorkbenchError, match="unknown export format 'tflite'"):
        check_format("tflite")


def test_unrolled_model_exports_at_the_length_asked_for(tmp_path: Path) -> None:
    """Elman's loop is Python: the trace is unrolled, so the export takes exactly --length positions."""
    import torch

    from workbench.engine import load_trained
    from workbench.export import export_checkpoint

    checkpoint = train_tiny("classification", "elman", tmp_path)
    result = export_checkpoint(checkpoint, "torchscript", tmp_path / "out", verify=True, length=16, limit=64)
    assert result["fixed_length"] == {"tokens": 16} and result["verify"]["max_abs_diff"] < 1e-4
    info = json.loads((tmp_path / "out" / "model.json").read_text(encoding="utf-8"))
    assert info["inputs"][0]["shape"] == ["batch", 16] and "exactly" in info["exported"]
    module = torch.jit.load(str(tmp_path / "out" / "model.pt"))
    tokens = torch.tensor([[2, 3, 2, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2, 2]])  # 14 real positions
    lengths = torch.tensor([14])
    padded = torch.cat([tokens, torch.zeros(1, 2, dtype=torch.long)], dim=1)
    with torch.no_grad():
        expected = load_trained(checkpoint, device="cpu").model(tokens=tokens, lengths=lengths)
        assert float((module(padded, lengths) - expected).abs().max()) < 1e-4
        with pytest.raises(RuntimeError):  # unpadded, the unrolled graph does not fit
            module(tokens, lengths)


def test_verify_above_tolerance_exits_1_and_keeps_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import workbench.export

    checkpoint = train_tiny("classification", "gru", tmp_path)
    monkeypatch.setattr(workbench.export, "TOLERANCE", -1.0)  # no difference passes: stands in for a bad export
    code = main(["export", str(checkpoint), "--format", "torchscript", "--output", str(tmp_path / "out"), "--verify"])
    out = capsys.readouterr().out
    assert code == 1 and "ABOVE" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.json", "model.pt"]
