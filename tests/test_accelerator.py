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
    config = names_config(registry, shared_data, "batch_size=16", "log_every=20")
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
