"""Export a trained checkpoint as TorchScript or ONNX, for use without workbench.

What is exported is the model's ``forward``: the tensors a task's :class:`~workbench.tasks.base.Batch`
carries as ``inputs`` (in the task's order, passed positionally) -> logits. For seq2seq that is the
teacher-forced forward (source and target so far -> next-token logits at every target position);
the greedy or beam decoding loop stays with the caller. Next to the model, ``model.json`` holds what
a user needs to build those inputs and read the logits: vocabularies, classes or tags, tokenizer and
normalisation settings, the special indices, and the input names, dtypes and shapes.

Both formats are traced: models whose time loop is written in Python (Elman, the equation GRU, the
gated LSTM, the attention decoder) unroll it to a fixed length, so their exports take inputs padded
to exactly ``fixed_length`` positions; the others accept any batch size and length.
"""

from __future__ import annotations

import importlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from workbench.config import RunConfig
from workbench.engine import LoadedModel, load_dataset, load_trained
from workbench.errors import WorkbenchError
from workbench.registry import Registry, get_registry

FORMATS = ("torchscript", "onnx")
MODEL_FILES = {"torchscript": "model.pt", "onnx": "model.onnx"}
METADATA_FILE = "model.json"
ONNX_INSTALL = "pip install onnx onnxruntime (or pip install 'seq-workbench[export]')"
#: The largest logit difference below which :func:`verify_export` counts an export as faithful.
TOLERANCE = 1e-4

#: The axes of each input a task kind's batches carry, in words (also written to model.json).
INPUT_AXES: dict[str, list[str]] = {
    "tokens": ["batch", "time"],
    "lengths": ["batch"],
    "target_in": ["batch", "target_time"],
    "chars": ["batch", "time", "word_width"],
}
LOGITS_AXES = {
    "classification": ["batch", "classes"],
    "language_model": ["batch", "time", "vocab"],
    "tagging": ["batch", "time", "tags"],
    "seq2seq": ["batch", "target_time", "target_vocab"],
}


class PositionalModel(nn.Module):
    """Calls a workbench model, which takes keyword inputs, with positional tensors in a fixed order
    (tracers and ONNX name inputs by position)."""

    def __init__(self, model: nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)

    def forward(self, *inputs: Tensor) -> Tensor:
        output = self.model(**dict(zip(self.input_names, inputs, strict=True)))
        return output[0] if isinstance(output, tuple) else output


@dataclass
class ExportSample:
    """The validation batches an export is traced on and checked against."""

    batches: list[dict[str, Tensor]]
    input_names: list[str]

    def longest(self) -> dict[str, Tensor]:
        return max(self.batches, key=lambda inputs: [int(v.shape[1]) if v.dim() > 1 else 0 for v in inputs.values()])


def check_format(fmt: str) -> None:
    """A one-line error for an unknown format or a missing optional package, before any work."""
    if fmt not in FORMATS:
        raise WorkbenchError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        for module in ("onnx", "onnxruntime"):
            try:
                importlib.import_module(module)
            except ImportError:
                raise WorkbenchError(f"ONNX export needs the {module} package: {ONNX_INSTALL}") from None


def check_exportable(loaded: LoadedModel, fmt: str) -> None:
    """Refuse, in one line naming the architecture, what is known not to export."""
    if fmt == "onnx" and loaded.config.model.get("sequence_mode") == "packed":
        raise WorkbenchError(f"architecture {loaded.config.arch!r} with sequence_mode=packed cannot be exported to "
                             "ONNX: the ONNX exporter has no packed sequences; use --format torchscript, or "
                             "retrain with sequence_mode=padded (same results)")


def check_output(output: Path, force: bool) -> None:
    """Refuse, before any work, to mix an export into a folder that holds something else, unless ``force``."""
    if output.exists() and not output.is_dir():
        raise WorkbenchError(f"--output {output} is a file; give a folder")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise WorkbenchError(f"--output {output} is not empty; choose a new folder, or add --force to write the "
                             "export's files into it (other files there are left alone)")


def prepare_output(output: Path) -> None:
    """Create the folder and clear an earlier export's files (only those: --force never deletes others)."""
    output.mkdir(parents=True, exist_ok=True)
    for name in (*MODEL_FILES.values(), METADATA_FILE):
        (output / name).unlink(missing_ok=True)


def validation_sample(loaded: LoadedModel, registry: Registry, limit: int, batch_size: int,
                      data_dir: str | None = None) -> ExportSample:
    """Up to ``limit`` validation examples, batched as the task batches them for evaluation."""
    config = loaded.config
    if data_dir is not None:  # the data has moved since training (as ``workbench eval --data-dir``)
        config = RunConfig.from_dict({**config.to_dict(), "data_dir": data_dir})
    data = load_dataset(config, registry)
    loaded.task.check_data(data)
    splits = loaded.task.encode(data)
    examples: Any = splits.get("valid") or splits.get("test")
    if not examples:
        raise WorkbenchError(f"dataset {loaded.config.dataset!r} has no validation or test examples to export with")
    examples = examples[: max(1, limit)]
    batches = [batch.inputs for batch in loaded.task.batches(examples, batch_size, False, None)]
    return ExportSample(batches, list(batches[0]))


def pad_time(inputs: dict[str, Tensor], lengths: dict[str, int], pad_index: int) -> dict[str, Tensor]:
    """Each sequence input padded on the right (axis 1) to the length ``lengths`` gives it."""
    padded = {}
    for name, value in inputs.items():
        want = lengths.get(name, 0)
        if value.dim() < 2 or value.size(1) >= want:
            padded[name] = value
            continue
        shape = list(value.shape)
        shape[1] = want - value.size(1)
        padded[name] = torch.cat([value, value.new_full(shape, pad_index)], dim=1)
    return padded


def time_lengths(inputs: dict[str, Tensor], extra: int = 0) -> dict[str, int]:
    return {name: int(value.size(1)) + extra for name, value in inputs.items() if value.dim() >= 2}


def shorten(inputs: dict[str, Tensor], by: int) -> dict[str, Tensor]:
    """The batch with every sequence cut by ``by`` positions (lengths clamped to match): a real input
    of another length, on which a trace that unrolled its time loop fails or differs."""
    shorter = {}
    for name, value in inputs.items():
        if value.dim() >= 2:
            shorter[name] = value[:, : max(1, value.size(1) - by)]
    limit = int(shorter["tokens"].size(1)) if "tokens" in shorter else None
    for name, value in inputs.items():
        if value.dim() < 2:
            shorter[name] = value.clamp(min=1, max=limit) if name == "lengths" and limit else value
    return shorter


def _eager(model: nn.Module, input_names: list[str], inputs: dict[str, Tensor]) -> Tensor:
    with torch.no_grad():
        return PositionalModel(model, input_names)(*[inputs[name] for name in input_names])


def difference(expected: Tensor, got: Tensor) -> float:
    """The largest absolute difference, over the positions ``expected`` has (``got`` may carry padding
    positions after them); infinite when the shapes do not line up."""
    if got.dim() >= 3 and got.size(1) > expected.size(1):
        got = got[:, : expected.size(1)]
    if got.shape != expected.shape:
        return float("inf")
    return float((got.float() - expected.float()).abs().max()) if expected.numel() else 0.0


@dataclass
class Traced:
    """A traced model, the inputs it was traced on, and (for an unrolled time loop) the fixed lengths."""

    module: torch.jit.ScriptModule
    example: dict[str, Tensor]
    fixed: dict[str, int] | None


def trace(loaded: LoadedModel, sample: ExportSample, length: int = 0) -> Traced:
    """Trace on the longest validation batch, then run the trace on a shorter one: if it reproduces the
    eager model there it is length-independent; else the time loop was unrolled, and it is traced
    again on that batch padded to ``length`` (when longer), the length every input must then have."""
    names = sample.input_names
    example = sample.longest()
    traced = _trace_on(loaded, names, example)
    probe = shorten(example, 2)
    try:
        with torch.no_grad():
            got = traced(*[probe[name] for name in names])
        dynamic = difference(_eager(loaded.model, names, probe), got) < TOLERANCE
    except RuntimeError:
        dynamic = False
    if dynamic:
        return Traced(traced, example, None)
    lengths = {name: max(size, length) for name, size in time_lengths(example).items()}
    if lengths != time_lengths(example):
        example = pad_time(example, lengths, loaded.task.model_context().pad_index)
        traced = _trace_on(loaded, names, example)
    return Traced(traced, example, lengths)


def _trace_on(loaded: LoadedModel, names: list[str], example: dict[str, Tensor]) -> torch.jit.ScriptModule:
    wrapper = PositionalModel(loaded.model, names).eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow: trace() checks
            return torch.jit.trace(wrapper, tuple(example[name] for name in names), check_trace=False)
    except Exception as exc:  # a plugin model the tracer cannot follow: name it, in one line
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise WorkbenchError(f"architecture {loaded.config.arch!r} cannot be exported: tracing its forward "
                             f"failed ({reason})") from None


Runner = Callable[[dict[str, Tensor]], Tensor]


def torchscript_runner(path: Path, names: list[str]) -> Runner:
    module = torch.jit.load(str(path), map_location="cpu")

    def run(inputs: dict[str, Tensor]) -> Tensor:
        with torch.no_grad():
            return module(*[inputs[name] for name in names])
    return run


def onnx_runner(path: Path, names: list[str]) -> Runner:
    import onnxruntime  # type: ignore[import-untyped, import-not-found, unused-ignore]

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}  # unused inputs (lengths in some graphs) are dropped

    def run(inputs: dict[str, Tensor]) -> Tensor:
        feed = {name: inputs[name].numpy() for name in names if name in wanted}
        return torch.from_numpy(session.run(["logits"], feed)[0])
    return run


def export_onnx(loaded: LoadedModel, names: list[str], traced: Traced, path: Path) -> None:
    example, fixed = traced.example, traced.fixed
    dynamic_axes: dict[str, dict[int, str]] = {}
    for name in names:
        axes = INPUT_AXES.get(name, ["batch"] + [f"{name}_axis{i}" for i in range(1, example[name].dim())])
        dynamic_axes[name] = {i: axis for i, axis in enumerate(axes) if i == 0 or fixed is None}
    out_axes = LOGITS_AXES.get(loaded.task.kind, ["batch"])
    dynamic_axes["logits"] = {i: axis for i, axis in enumerate(out_axes)
                              if i == 0 or (fixed is None and "time" in axis)}
    wrapper = PositionalModel(loaded.model, names).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, tuple(example[name] for name in names), str(path), dynamo=False,
                          input_names=names, output_names=["logits"], dynamic_axes=dynamic_axes,
                          opset_version=17)


def verify_export(loaded: LoadedModel, sample: ExportSample, fixed: dict[str, int] | None,
                  run: Runner) -> dict[str, Any]:
    """Checkpoint and export on the same validation batches: the largest absolute logit difference."""
    pad_index = loaded.task.model_context().pad_index
    worst = 0.0
    batches = sample.batches if fixed is not None else [*sample.batches, shorten(sample.longest(), 2)]
    for inputs in batches:  # a dynamic export is also run on a shorter batch than it was traced on
        expected = _eager(loaded.model, sample.input_names, inputs)
        feed = inputs if fixed is None else pad_time(inputs, fixed, pad_index)
        worst = max(worst, difference(expected, run(feed)))
    examples = sum(int(next(iter(inputs.values())).size(0)) for inputs in sample.batches)
    return {"examples": examples, "batches": len(sample.batches), "shorter_batch_checked": fixed is None,
            "max_abs_diff": worst, "tolerance": TOLERANCE, "ok": worst < TOLERANCE}


def metadata(loaded: LoadedModel, fmt: str, sample: ExportSample, fixed: dict[str, int] | None) -> dict[str, Any]:
    """What a user needs to build the inputs and read the logits without workbench."""
    context = loaded.task.model_context()
    example = sample.batches[0]
    inputs = []
    for name in sample.input_names:
        axes = INPUT_AXES.get(name, ["batch"] + [f"axis{i}" for i in range(1, example[name].dim())])
        shape: list[Any] = list(axes)
        if fixed is not None and name in fixed:
            shape[1] = fixed[name]
        inputs.append({"name": name, "dtype": str(example[name].dtype).removeprefix("torch."), "shape": shape})
    return {
        "format": fmt,
        "file": MODEL_FILES[fmt],
        "architecture": loaded.config.arch,
        "task": loaded.task.kind,
        "dataset": loaded.config.dataset,
        "model_params": dict(loaded.config.model),
        "inputs": inputs,
        "input_order": sample.input_names,
        "outputs": [{"name": "logits", "dtype": "float32", "shape": LOGITS_AXES.get(loaded.task.kind, ["batch"])}],
        "fixed_length": fixed,
        "special_indices": {"pad": context.pad_index,
                            **{key: value for key, value in context.extra.items() if key.endswith("_index")}},
        "task_state": loaded.task.state(),
        "exported": _what_is_exported(loaded.task.kind, fixed),
        "checkpoint": str(loaded.path),
        "torch_version": torch.__version__,
    }


def _what_is_exported(kind: str, fixed: dict[str, int] | None) -> str:
    what = {
        "classification": "forward(tokens, lengths) -> class logits; softmax gives probabilities",
        "language_model": "forward(tokens, lengths) -> next-token logits at every position (no carried state; "
                          "to generate, feed the whole text so far each step)",
        "tagging": "forward(tokens, lengths, chars) -> tag logits per word",
        "seq2seq": "teacher-forced forward(tokens, lengths, target_in) -> next-token logits at every target "
                   "position; target_in starts with bos; decode greedily by appending the argmax of the last "
                   "position until eos (the checkpoint's beam search is not exported)",
    }.get(kind, "forward(inputs) -> logits")
    if fixed:
        what += (f"; the time loop is unrolled, so sequence inputs must be padded with the pad index to "
                 f"exactly {fixed} positions (lengths still give the real lengths; longer inputs must be cut)")
    return what


def _drop_unused_inputs(info: dict[str, Any], model_path: Path) -> None:
    """The ONNX graph leaves out inputs the model never reads (``lengths`` of a language model): list
    only those a runtime must be fed, and say which were left out."""
    import onnx

    used = {value.name for value in onnx.load(str(model_path), load_external_data=False).graph.input}
    info["dropped_inputs"] = [name for name in info["input_order"] if name not in used]
    info["inputs"] = [entry for entry in info["inputs"] if entry["name"] in used]
    info["input_order"] = [name for name in info["input_order"] if name in used]


def export_checkpoint(checkpoint: Path, fmt: str, output: Path, *, verify: bool = False, force: bool = False,
                      limit: int = 512, batch_size: int = 64, length: int = 0, data_dir: str | None = None,
                      registry: Registry | None = None) -> dict[str, Any]:
    """Export ``checkpoint`` into ``output`` (model file + model.json); with ``verify``, compare the
    checkpoint and the export on up to ``limit`` validation examples. ``length``: the fixed length of
    an unrolled export, when longer than the longest validation example."""
    check_format(fmt)
    check_output(output, force)
    registry = registry or get_registry()
    loaded = load_trained(checkpoint, registry, device="cpu")
    check_exportable(loaded, fmt)
    sample = validation_sample(loaded, registry, limit, batch_size, data_dir)
    traced = trace(loaded, sample, length)
    fixed = traced.fixed
    prepare_output(output)
    model_path = output / MODEL_FILES[fmt]
    if fmt == "torchscript":
        traced.module.save(str(model_path))
        run = torchscript_runner(model_path, sample.input_names)
    else:
        try:
            export_onnx(loaded, sample.input_names, traced, model_path)
        except Exception as exc:  # the exporter's errors are many and internal: one line names them
            raise WorkbenchError(f"architecture {loaded.config.arch!r}: ONNX export failed: "
                                 f"{str(exc).splitlines()[0][:200]}") from None
        run = onnx_runner(model_path, sample.input_names)
    info = metadata(loaded, fmt, sample, fixed)
    if fmt == "onnx":
        _drop_unused_inputs(info, model_path)
    (output / METADATA_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "format": fmt, "model": str(model_path),
                              "metadata": str(output / METADATA_FILE), "architecture": loaded.config.arch,
                              "task": loaded.task.kind, "input_order": info["input_order"], "fixed_length": fixed}
    if verify:
        result["verify"] = verify_export(loaded, sample, fixed, run)
    return result
