"""The engine on one device: no device sync per step, the divergence guard, precisions, determinism,
compile, and checkpoints that load on another device."""

from __future__ import annotations

import sys

import pytest
import torch

from helpers import FAST
from workbench.config import resolve_config
from workbench.engine import Trainer, train
from workbench.errors import WorkbenchError
from workbench.step_stats import StepWindow, gradient_norm
from workbench.tasks.classification import ClassificationTask


def names_config(registry, shared_data, *extra):
    return resolve_config(registry, "names", None, "cpu", [*FAST, "limit=1200", *extra], data_dir=str(shared_data))


class SyncCounter:
    """Counts the calls from the training loop's own code (workbench/engine.py, step_stats.py) that
    make the host wait for a tensor's value (bool/float/int/item/tolist). The optimiser's step
    counter and the batching's host tensors are not device values; they are left out."""

    LOOP_FILES = ("engine.py", "step_stats.py")

    NAMES = ("__bool__", "__float__", "__int__", "item", "tolist")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.counting = False
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counted(original))

    def _counted(self, original):
        def call(tensor, *args, **kwargs):
            if self.counting and sys._getframe(1).f_code.co_filename.endswith(self.LOOP_FILES):
                self.count += 1
            return original(tensor, *args, **kwargs)
        return call


@pytest.mark.slow
def test_a_training_epoch_reads_values_once_per_progress_window_not_every_step(registry, shared_data, monkeypatch):
    counter = SyncCounter(monkeypatch)
    steps: list[int] = []

    class CountingTrainer(Trainer):
        def _run_epoch(self, *args, **kwargs):
            counter.counting = True
            try:
                return super()._run_epoch(*args, **kwargs)
            finally:
                counter.counting = False

    config = names_config(registry, shared_data, "batch_size=16", "log_every=25")
    result = CountingTrainer(config, registry=registry, on_event=lambda e: steps.append(e.kind == "step")).train()
    assert result.state == "finished"
    batches = -(-1200 // 16)  # 75 steps, 3 progress windows
    assert sum(steps) == 3
    # the first step's loss (the loss watch's reference) and a few values per window
    assert counter.count <= 1 + 3 * 3 < batches


def test_a_non_finite_loss_ends_the_run_naming_its_step(registry, shared_data, monkeypatch):
    calls = {"n": 0}
    loss = ClassificationTask.loss

    def poisoned(self, model, batch):
        value, correct = loss(self, model, batch)
        calls["n"] += 1
        return (value * float("nan") if calls["n"] == 7 else value), correct

    monkeypatch.setattr(ClassificationTask, "loss", poisoned)
    config = names_config(registry, shared_data, "batch_size=16", "log_every=20", "memory_every=0")
    trainer = Trainer(config, registry=registry)
    with pytest.raises(WorkbenchError, match=r"training diverged at epoch 1, step 7: the loss is nan; lower lr"):
        trainer.train()
    assert trainer.run.status()["state"] == "failed"
    assert not trainer.run.checkpoint_path("last").exists()  # no weights of a diverged step were saved


def test_the_gradient_norm_without_clipping_equals_clip_grad_norm_s_and_leaves_the_gradients():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    for p in params:
        p.grad = torch.randn_like(p) * 10
    before = [p.grad.clone() for p in params]
    expected = torch.nn.utils.get_total_norm([p.grad for p in params])
    assert float(gradient_norm(params, 0.0)) == pytest.approx(float(expected), rel=1e-6)
    assert all(torch.equal(p.grad, b) for p, b in zip(params, before, strict=True))
    clipped = gradient_norm(params, 1.0)  # clipping: the norm before, gradients scaled to 1
    assert float(clipped) == pytest.approx(float(expected), rel=1e-6)
    assert float(torch.nn.utils.get_total_norm([p.grad for p in params])) == pytest.approx(1.0, rel=1e-4)


def test_a_window_reduces_to_the_mean_loss_largest_norm_and_hits():
    window = StepWindow()
    window.reset(0.0, 1)
    for loss, norm, hits, units in ((2.0, 1.0, 3, 4), (4.0, 5.0, 1, 2)):
        window.add(torch.tensor(loss), torch.tensor(norm), torch.tensor(hits), units, units)
    sums = window.close(1.0)
    assert (sums.steps, sums.samples, sums.units, sums.correct) == (2, 6, 6, 4)
    assert sums.loss_sum == 6.0 and sums.weighted_loss == 2.0 * 4 + 4.0 * 2 and sums.max_grad_norm == 5.0
    assert window.steps == 0 and window.first_step == 3


@pytest.mark.slow
def test_the_epoch_loss_is_the_same_whatever_the_window(registry, shared_data):
    """The epoch's loss is the unit-weighted mean of every step, however the windows cut it."""
    a = train(names_config(registry, shared_data, "seed=4", "log_every=1"), registry=registry)
    b = train(names_config(registry, shared_data, "seed=4", "log_every=7"), registry=registry)
    assert a.history[0]["train"]["loss"] == pytest.approx(b.history[0]["train"]["loss"], rel=1e-6)
    assert a.history[0]["train"]["accuracy"] == b.history[0]["train"]["accuracy"]


# -- precision ---------------------------------------------------------------------------------
def _cpu_fp16_reason() -> str | None:
    """Why fp16 training cannot be tested on this CPU (None when it can)."""
    try:
        scaler = torch.amp.GradScaler("cpu")
        weight = torch.nn.Parameter(torch.randn(4, 4))
        with torch.autocast("cpu", dtype=torch.float16):
            loss = (torch.randn(2, 4) @ weight).float().sum()
        scaler.scale(loss).backward()
        scaler.unscale_(torch.optim.SGD([weight], lr=0.0))
    except (AttributeError, RuntimeError, TypeError, ValueError) as exc:
        return f"fp16 autocast with a gradient scaler does not run on this CPU/torch: {exc}"
    return None


def test_auto_precision_picks_what_each_device_does_natively(monkeypatch):
    from workbench.precision import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("mps")) == "fp16"
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    assert [resolve_precision(p, torch.device("cpu")) for p in ("fp32", "bf16", "fp16")] == ["fp32", "bf16", "fp16"]


@pytest.mark.slow
def test_fp16_trains_with_a_scaler_whose_state_a_resume_restores(registry, shared_data):
    reason = _cpu_fp16_reason()
    if reason:
        pytest.skip(reason)
    from workbench.runs import load_checkpoint, save_checkpoint

    config = names_config(registry, shared_data, "precision=fp16", "epochs=1", "limit=400")
    first = train(config, registry=registry)
    starts = [e for e in first.run.events() if e.kind == "start"]
    assert starts[0].precision == "fp16" and first.state == "finished"
    last_path = first.run.checkpoint_path("last")
    payload = load_checkpoint(last_path)
    assert payload["scaler_state"]["scale"] > 0
    payload["scaler_state"]["scale"] = 1024.0  # a scale the run could not reach by itself in a few steps
    save_checkpoint(last_path, {k: v for k, v in payload.items() if k not in ("format", "version")})
    config.train["epochs"] = 2
    resumed = Trainer(config, registry=registry, resume=first.run).train()
    assert resumed.state == "finished"
    scale = load_checkpoint(last_path)["scaler_state"]["scale"]
    assert 0 < scale <= 1024.0  # continued from the restored scale (growth needs 2000 clean steps)


def test_fp16_the_hardware_cannot_run_is_one_line(registry, shared_data, monkeypatch):
    from workbench import engine

    def broken(*args, **kwargs):
        raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'")

    monkeypatch.setattr(engine, "trial_step", broken)
    with pytest.raises(WorkbenchError) as caught:
        train(names_config(registry, shared_data, "precision=fp16", "limit=100"), registry=registry)
    assert str(caught.value) == ("precision=fp16 is not supported on this CPU (\"addmm_impl_cpu_\" not implemented "
                                 "for 'Half'); use precision=fp32")


# -- flattening, determinism, compile ---------------------------------------------------------
def test_the_engine_flattens_recurrent_weights_after_moving_the_model(registry, shared_data, monkeypatch):
    from workbench import accelerate, engine

    flattened: list[int] = []
    original = torch.nn.RNNBase.flatten_parameters

    def spy(self):
        flattened.append(id(self))
        return original(self)

    moved: list[str] = []

    def flatten_after_move(model):
        moved.append(str(next(model.parameters()).device))
        return accelerate.flatten_recurrent_weights(model)

    monkeypatch.setattr(engine, "flatten_recurrent_weights", flatten_after_move)
    trainer = Trainer(names_config(registry, shared_data, "limit=64", "batch_size=32"), registry=registry)
    prepared = trainer._prepare(trainer.options, torch.Generator(), None)
    assert moved == ["cpu"]
    monkeypatch.setattr(torch.nn.RNNBase, "flatten_parameters", spy)
    layers = [id(m) for m in prepared.model.modules() if isinstance(m, torch.nn.RNNBase)]
    assert accelerate.flatten_recurrent_weights(prepared.model) == len(layers) > 0
    assert sorted(flattened) == sorted(layers)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (cuDNN's fused RNN kernels)")
def test_no_contiguous_chunk_warning_during_a_cuda_run(registry, shared_data, recwarn):
    config = resolve_config(registry, "names", None, "cuda", [*FAST, "limit=1200"], data_dir=str(shared_data))
    train(config, registry=registry)
    assert not [w for w in recwarn if "contiguous chunk of memory" in str(w.message)]


@pytest.mark.slow
def test_deterministic_runs_are_identical_and_the_switch_is_only_on_during_the_run(registry, shared_data,
                                                                                  monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen: list[tuple[bool, bool, str | None]] = []

    def watch(event):
        import os
        if event.kind == "step":
            seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                         os.environ.get("CUBLAS_WORKSPACE_CONFIG")))

    def run():
        steps: list = []
        result = train(names_config(registry, shared_data, "deterministic=true", "seed=5", "log_every=3"),
                       registry=registry, on_event=lambda e: (watch(e), steps.append(e)))
        weights = torch.load(result.run.checkpoint_path("last"), weights_only=True)["model_state"]
        losses = [(e.loss, e.grad_norm, e.metric) for e in steps if e.kind == "step"]
        return result, weights, losses

    first, first_weights, first_losses = run()
    second, second_weights, second_losses = run()
    assert first_losses == second_losses and first.metrics["loss"] == second.metrics["loss"]
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    assert seen and all(s == (True, True, ":4096:8") for s in seen)
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run


def test_a_model_without_deterministic_kernels_is_refused_in_one_line(registry, shared_data, monkeypatch):
    from workbench import engine

    def no_kernel(*args, **kwargs):
        raise RuntimeError("embedding_dense_backward_cuda does not have a deterministic implementation, but you set "
                           "'torch.use_deterministic_algorithms(True)'")

    monkeypatch.setattr(engine, "trial_step", no_kernel)
    with pytest.raises(WorkbenchError, match=r"^deterministic=true cannot train this model on CPU \(embedding_dense"
                                             r".*\); set deterministic=false$"):
        train(names_config(registry, shared_data, "deterministic=true", "limit=100"), registry=registry)


def test_compile_that_fails_falls_back_to_eager_with_one_line(registry, shared_data, monkeypatch):
    def broken_compile(model, *args, **kwargs):
        raise RuntimeError("InductorError: CppCompileError: C++ compile error\nlong details")

    monkeypatch.setattr(torch, "compile", broken_compile)
    events: list = []
    result = train(names_config(registry, shared_data, "compile=true", "limit=200"), registry=registry,
                   on_event=events.append)
    assert result.state == "finished"
    lines = [e.message for e in events if e.kind == "status" and "compile=true" in e.message]
    assert lines == ["compile=true: torch.compile failed here (RuntimeError: InductorError: CppCompileError: C++ "
                     "compile error); training without it"]


@pytest.mark.slow
def test_compile_trains_through_the_compiled_model_and_saves_plain_weights(registry, shared_data, monkeypatch):
    calls = {"n": 0}

    class Counting(torch.nn.Module):  # stands in for torch.compile's wrapper: same weights, counts the calls
        def __init__(self, model):
            super().__init__()
            self._orig_mod = model

        def forward(self, *args, **kwargs):
            calls["n"] += 1
            return self._orig_mod(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", lambda model, *a, **k: Counting(model))
    result = train(names_config(registry, shared_data, "compile=true", "limit=256", "batch_size=64"),
                   registry=registry)
    assert calls["n"] == 1 + 4  # the trial step, then every training step
    weights = torch.load(result.run.checkpoint_path("best"), weights_only=True)["model_state"]
    assert not any(k.startswith("_orig_mod") for k in weights)


# -- a checkpoint from a GPU on a CPU ------------------------------------------------------------
def claim_cuda(path):
    """Rewrite a checkpoint so every tensor in it says it lives on cuda:0, as one saved on a GPU does."""
    import io

    payload = torch.load(path, weights_only=True)
    buffer = io.BytesIO()
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(payload, buffer)
    finally:
        torch.serialization.location_tag = original
    path.write_bytes(buffer.getvalue())


@pytest.mark.slow
def test_a_checkpoint_saved_on_a_gpu_loads_samples_and_resumes_on_a_cpu(registry):
    from workbench.engine import evaluate_checkpoint, load_trained

    config = resolve_config(registry, "synthetic-text", None, "cpu",
                            ["chars=3000", "epochs=1", "batch_size=16", "seq_len=32", "model.hidden_size=32"])
    first = train(config, registry=registry)
    for name in ("best", "last"):
        claim_cuda(first.run.checkpoint_path(name))
    if not torch.cuda.is_available():  # the file really says cuda: a plain torch.load cannot read it here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(first.run.checkpoint_path("best"), weights_only=True)

    loaded = load_trained(first.run.checkpoint_path("best"), registry, "cpu")
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
    text = "".join(loaded.task.generate(loaded.model, "ab", 20, loaded.device, seed=1))
    assert len(text) >= 20
    assert evaluate_checkpoint(loaded, registry, "valid")["loss"] > 0

    config.train["epochs"] = 2  # resume on the CPU from a last.pt written on a GPU (optimizer state included)
    resumed = Trainer(config, registry=registry, resume=first.run).train()
    assert resumed.state == "finished" and resumed.epochs_completed == 2
