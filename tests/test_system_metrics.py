"""System metrics: CPU and memory of the training process (and its GPUs) in the event stream, read
back by older and newer readers, and shown on the app's Train screen."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from test_tui import fixed_devices, make_app, plain, wait_for, write_run  # noqa: F401  (fixed_devices: autouse)

from workbench import system_metrics
from workbench.config import resolve_config
from workbench.engine import Trainer
from workbench.events import SystemEvent, format_system, parse_event
from workbench.runs import EventWriter, RunLock, atomic_write_json
from workbench.system_metrics import SystemSampler
from workbench.tui.monitor import RunMonitor

GIB = 2**30


@pytest.fixture()
def runs_root(isolated_dirs):
    root = isolated_dirs / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.mark.slow
def test_a_real_run_sends_sane_system_samples(registry):
    config = resolve_config(registry, "synthetic-text", "char-gru", "cpu",
                            ["chars=6000", "epochs=2", "batch_size=16", "log_every=5", "threads=1",
                             "model.hidden_size=16", "model.embedding_dim=8"])
    seen: list[object] = []
    trainer = Trainer(config, registry=registry, on_event=seen.append)
    trainer.system.every = 0.0  # a sample every step, so a run of a second has several
    result = trainer.train()
    assert result.state == "finished"
    samples = [e for e in seen if isinstance(e, SystemEvent)]
    assert len(samples) >= 3
    for sample in samples:
        assert 0.0 <= sample.cpu_percent <= 100.0 * sample.cpus * 1.5
        assert sample.rss_bytes is not None and 20 * 2**20 < sample.rss_bytes < 64 * GIB
        assert sample.peak_rss_bytes is not None and sample.peak_rss_bytes >= sample.rss_bytes * 0.95
        assert sample.cpus == os.cpu_count() and sample.gpus == ()
    assert any(sample.cpu_percent > 1.0 for sample in samples)  # training does use the CPU
    lines = [json.loads(line) for line in open(trainer.run.events_path, encoding="utf-8")]
    written = [parse_event(line) for line in lines if line["type"] == "system"]
    assert written == [e for e in samples]  # the stream holds them, and reads back as they were sent


def test_samples_come_at_the_first_step_then_every_few_seconds():
    sampler = SystemSampler(torch.device("cpu"), every=3600.0)
    assert isinstance(sampler.due(), SystemEvent)
    assert sampler.due() is None and sampler.due() is None
    assert system_metrics.SAMPLE_SECONDS <= 10.0


def test_cpu_use_follows_the_work_done():
    sampler = SystemSampler(torch.device("cpu"))
    time.sleep(0.2)
    idle = sampler.sample().cpu_percent
    began = time.process_time()
    while time.process_time() - began < 0.1:
        sum(range(1000))
    busy = sampler.sample().cpu_percent
    assert 0.0 <= idle < 20.0 and busy > idle


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_memory_from_torch():
    device = torch.device("cuda")
    held = torch.empty(64 * 2**20, dtype=torch.uint8, device=device)
    sample = SystemSampler(device).sample()
    gpu = sample.gpus[0]
    assert gpu["allocated_bytes"] >= held.numel() and gpu["total_bytes"] > gpu["allocated_bytes"]
    assert gpu["max_reserved_bytes"] >= gpu["allocated_bytes"]
    assert "gpu0" in format_system(sample) or f"gpu{gpu['index']}" in format_system(sample)


def test_older_and_partial_lines_still_read():
    bare = parse_event({"type": "system", "time": 1.0})
    assert isinstance(bare, SystemEvent) and bare.rss_bytes is None and bare.gpus == () and format_system(bare) == ""
    partial = parse_event({"type": "system", "cpu_percent": 150, "rss_bytes": "lots"})
    assert isinstance(partial, SystemEvent) and partial.cpu_percent == 150.0 and partial.rss_bytes is None
    assert format_system(partial) == "cpu 150%"


def test_the_compact_line():
    sample = SystemEvent(cpu_percent=183.4, rss_bytes=512 * 2**20, peak_rss_bytes=600 * 2**20, cpus=16,
                         gpus=({"index": 0, "utilization": 45.0, "allocated_bytes": int(1.2 * GIB),
                                "total_bytes": 80 * GIB}, {"index": 1, "used_bytes": 3 * GIB}))
    assert format_system(sample) == "cpu 183% mem 512M gpu0 45% 1.2G/80G gpu1 3.0G"


@pytest.mark.slow
async def test_the_train_screen_shows_cpu_and_memory_of_a_running_run(runs_root):
    run = write_run(runs_root, "20260101-000000-names-gru", epochs=4, state="running")
    writer = EventWriter(run.events_path)
    writer.write(SystemEvent(cpu_percent=97.0, rss_bytes=700 * 2**20, peak_rss_bytes=710 * 2**20, cpus=2,
                             time=time.time()))
    writer.close()
    lock = RunLock.acquire(run)  # this process "trains" it, so the run reads as running
    atomic_write_json(run.status_path, {"state": "running", "pid": os.getpid(), "epoch": 2, "message": "",
                                        "started": 1764340000.0, "updated": 1764340100.0})
    try:
        app = make_app(runs_root)
        async with app.run_test(size=(80, 24)) as pilot:
            app.watch_run(run, make_current=True)
            await pilot.press("f3")
            shown = app.screen.query_one("#system")
            await wait_for(pilot, lambda: "cpu 97%" in plain(shown), timeout=10)
            assert "mem 700M" in plain(shown)
            row = app.screen.query_one("#progress-row")
            assert shown.region.right <= row.region.right and app.screen.query_one("#progress").size.width >= 20
    finally:
        lock.release()
    monitor = RunMonitor(write_run(runs_root, "20260101-000001-names-gru"))
    monitor.poll()
    assert monitor.system is None  # a run written before system events: nothing to show
