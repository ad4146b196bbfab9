"""Training under torchrun: several processes (gloo on this CPU), one run folder, agreed pause and stop.

The slow tests start real ``python -m torch.distributed.run`` processes on the names data; the others
check the pieces of :mod:`workbench.distributed` that need no second process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from workbench import distributed
from workbench.config import plan_run, resolve_config
from workbench.engine import Trainer, load_trained
from workbench.events import StartEvent
from workbench.runs import Run, list_runs, load_checkpoint
from workbench.settings import Launch, Settings

GLOO = torch.distributed.is_available() and torch.distributed.is_gloo_available()
needs_gloo = pytest.mark.skipif(not GLOO, reason="this torch build has no torch.distributed with gloo")

#: Small names runs: 2 processes of batch 64 take the same steps, of the same global batch, as 1 of 128.
SETUP = ["epochs=2", "lr=0.01", "model.hidden_size=32", "model.embedding_dim=16", "log_every=5", "limit=3000"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_train(*settings: str, flags: tuple[str, ...] = ("--quiet",)) -> list[str]:
    return ["-m", "workbench", "train", "--dataset", "names", "--arch", "gru", "--device", "cpu", *flags,
            *(arg for value in settings for arg in ("--set", value))]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def launch_env(shared_data: Path) -> dict[str, str]:
    env = dict(os.environ, WORKBENCH_DATA_DIR=str(shared_data), WORKBENCH_DIST_TIMEOUT="60",
               OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def kill_tree(process: subprocess.Popen[str]) -> None:
    """A torchrun and the workers it started (in sessions of their own, so not its process group)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), 9)
    process.kill()


def finish(processes: list[subprocess.Popen[str]], timeout: float = 240) -> list[tuple[int, str, str]]:
    """Each process's exit code, stdout and stderr; a process still running at ``timeout`` fails the test."""
    outcomes = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in processes:
                kill_tree(other)
            pytest.fail("a distributed run hung")
        outcomes.append((process.returncode, out, err))
    return outcomes


def the_one_run(runs_root: Path) -> Run:
    runs = list_runs(runs_root)
    assert len(runs) == 1, [run.id for run in runs]
    return runs[0]


@pytest.fixture(scope="module")
def one_process_accuracy(registry, shared_data, tmp_path_factory) -> float:
    """Test accuracy of the same setup trained by one process with the same global batch (128)."""
    config = resolve_config(registry, "names", "gru", "cpu", [*SETUP, "batch_size=128"], data_dir=str(shared_data))
    return float(Trainer(config, registry=registry, runs_root=tmp_path_factory.mktemp("single")).train()
                 .metrics["accuracy"])


def check_distributed_run(run: Run, baseline: float) -> None:
    """One events stream with world size 2, one best checkpoint that loads without a process group,
    and accuracy in the single-process band."""
    assert sorted(p.name for p in run.path.iterdir() if p.suffix in (".pt", ".jsonl", ".json")) == [
        "best.pt", "config.json", "events.jsonl", "last.pt", "results.json", "status.json"]
    events = run.events()
    starts = [e for e in events if isinstance(e, StartEvent)]
    assert len(starts) == 1 and starts[0].world_size == 2
    assert [e.kind for e in events].count("epoch") == 2 and events[-1].kind == "end"
    assert run.status()["state"] == "finished"
    # each process trained 1,500 of the 3,000 names per epoch: 24 steps of 64, reported as one run's counts
    assert starts[0].steps_per_epoch == 24 and [e.step for e in events if e.kind == "step"][-1] == 24
    results = json.loads(run.results_path.read_text())
    accuracy = results["metrics"]["accuracy"]
    # measured: 1 process 0.671/0.674, 2 processes 0.666/0.678 (seeds 0/1, limit 6000); the majority class is 0.47
    assert abs(accuracy - baseline) < 0.04, (accuracy, baseline)
    assert accuracy > 0.55
    loaded = load_trained(run.checkpoint_path("best"), device="cpu")  # a plain state dict, no "module." prefix
    assert not any(key.startswith("module.") for key in loaded.payload["model_state"])


# -- the pieces --------------------------------------------------------------------------------
def test_without_a_launcher_the_world_is_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    distributed.leave()
    world = distributed.join()
    try:
        assert not world.distributed and world.is_main and world.world_size == 1
        examples = [("a", 1), ("b", 2)]
        assert world.shard(examples, 3, 0) is examples
        assert world.agree("pause") == "pause" and world.share({"x": 1}) == {"x": 1}
        assert world.sum({"loss": torch.tensor(2.5), "units": 4}) == {"loss": 2.5, "units": 4.0}
    finally:
        distributed.leave()


def test_only_a_process_that_trained_in_a_group_ends_without_the_interpreters_shutdown(monkeypatch):
    """A torchrun worker leaves with os._exit (torch's threads aborted it at exit); a single process,
    such as the tests calling the CLI in-process, never does."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    distributed.leave()
    distributed.join()
    assert not distributed.ends_without_shutdown()
    distributed.leave()
    monkeypatch.setattr(distributed, "_was_in_group", True)
    assert distributed.ends_without_shutdown()


def test_the_launcher_placement_is_read_from_the_environment():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29500",
           "WORKBENCH_DIST_TIMEOUT": "45"}
    settings = Settings.from_env(env)
    assert settings.launch == Launch(world_size=4, rank=3, local_rank=1, master_addr="node0", master_port="29500")
    assert settings.dist_timeout == 45
    assert Settings.from_env({}).launch.world_size == 1
    assert Settings.from_env({"WORLD_SIZE": "two", "WORKBENCH_DIST_TIMEOUT": "-1"}).launch.world_size == 1
    assert Settings.from_env({"WORKBENCH_DIST_TIMEOUT": "0"}).dist_timeout == 1800


def test_a_launch_without_a_rendezvous_is_one_line(monkeypatch):
    distributed.leave()
    with pytest.raises(distributed.DistributedError, match="start distributed runs with torchrun"):
        distributed.join(Settings.from_env({"WORLD_SIZE": "2"}))
    distributed.leave()


def test_a_shard_selects_language_model_windows_without_copying_the_text():
    from workbench.tasks.language_model import TextWindows

    windows = TextWindows(torch.arange(100), seq_len=10, stride=10, cover_all=False)
    shard = distributed.select(windows, [4, 0, 7])
    assert isinstance(shard, TextWindows) and shard.ids is windows.ids
    assert [shard[i] for i in range(3)] == [windows[4], windows[0], windows[7]]
    assert distributed.select([10, 11, 12], [2, 0]) == [12, 10]


def test_a_start_event_from_before_world_size_reads_as_one_process():
    raw = {"type": "start", "run": "r", "config": {}, "task": "classification", "main_metric": "accuracy",
           "device": "cpu", "threads": 1, "precision": "fp32", "parameters": 1, "sizes": {}, "steps_per_epoch": 1,
           "dataset_info": {}, "resumed_at_epoch": None, "workbench_version": "0.1"}
    event = StartEvent.parse(raw)
    assert isinstance(event, StartEvent) and event.world_size == 1
    assert StartEvent.parse({**raw, "world_size": 4}).world_size == 4  # type: ignore[union-attr]


# -- real processes ----------------------------------------------------------------------------
@needs_gloo
@pytest.mark.slow
def test_two_processes_under_torchrun_train_one_run(shared_data, isolated_dirs, one_process_accuracy):
    port = free_port()
    process = subprocess.Popen(
        torchrun("--nproc_per_node", "2", "--master-addr", "127.0.0.1", "--master-port", str(port),
                 *cli_train(*SETUP, "batch_size=64", flags=("--json",))),
        env=launch_env(shared_data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    [(code, out, err)] = finish([process])
    assert code == 0, err[-3000:]
    run = the_one_run(isolated_dirs / "runs")
    check_distributed_run(run, one_process_accuracy)
    assert json.loads(out)["run"] == run.id  # rank 0 alone prints the result
    assert f"process 1 of 2 finished with run {run.id}" in err


@needs_gloo
@pytest.mark.slow
def test_two_machines_meet_through_a_c10d_rendezvous(shared_data, isolated_dirs, one_process_accuracy):
    """Two torchrun invocations of one process each, as on two machines (here both on localhost)."""
    endpoint = f"localhost:{free_port()}"
    nodes = [subprocess.Popen(
        torchrun("--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                 "--rdzv-id", "workbench-test", *cli_train(*SETUP, "batch_size=64")),
        env=launch_env(shared_data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = finish(nodes)
    assert [code for code, _, _ in outcomes] == [0, 0], [err[-2000:] for _, _, err in outcomes]
    check_distributed_run(the_one_run(isolated_dirs / "runs"), one_process_accuracy)


@needs_gloo
@pytest.mark.slow
def test_pause_and_stop_reach_every_process_and_the_run_resumes_in_one(registry, shared_data, isolated_dirs):
    runs_root = isolated_dirs / "runs"
    process = subprocess.Popen(
        torchrun("--nproc_per_node", "2", "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
                 *cli_train("epochs=30", "model.hidden_size=32", "model.embedding_dim=16", "log_every=1",
                            "batch_size=32", "limit=3000")),
        env=launch_env(shared_data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for(condition, what: str) -> None:
        deadline = time.monotonic() + 120
        while not condition():
            if process.poll() is not None or time.monotonic() > deadline:
                kill_tree(process)
                pytest.fail(f"never saw {what}: {process.communicate()[1][-3000:]}")
            time.sleep(0.1)

    wait_for(lambda: len(list_runs(runs_root)) == 1 and any(e.kind == "step" for e in list_runs(runs_root)[0].events()),
             "a step")
    run = the_one_run(runs_root)
    run.request("pause")
    wait_for(lambda: run.status().get("state") == "paused", "the pause")
    paused_at = [e.global_step for e in run.events() if e.kind == "step"]
    time.sleep(1.0)
    assert [e.global_step for e in run.events() if e.kind == "step"] == paused_at  # both processes wait
    run.request("resume")
    wait_for(lambda: run.status().get("state") == "running", "the resume")
    run.request("stop")
    [(code, _, err)] = finish([process])
    assert code == 0, err[-3000:]
    assert run.status()["state"] == "stopped" and run.events()[-1].state == "stopped"  # type: ignore[union-attr]
    # both processes stopped after the same step (a process one step ahead would have waited for ever)
    last = load_checkpoint(run.checkpoint_path("last"))
    assert f"process 1 of 2 stopped with run {run.id} at step {last['progress']['global_step']}" in err
    done = last["epoch"]  # the epochs finished before the stop (a partial one is redone on resume)

    # resume with one process (another world size): the checkpoint is the plain model's
    plan = plan_run(registry, resume=run.id, runs_root=runs_root, assignments=[f"epochs={done + 1}"],
                    data_dir=str(shared_data))
    lock = plan.begin()
    result = Trainer(plan.config, registry=registry, resume=plan.resume, lock=lock).train()
    assert result.state == "finished" and result.epochs_completed == done + 1
    starts = [e for e in run.events() if isinstance(e, StartEvent)]
    assert [(s.world_size, s.resumed_at_epoch) for s in starts] == [(2, None), (1, done + 1)]


@needs_gloo
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the processes through Linux's /proc")
def test_a_machine_that_dies_ends_the_other_with_one_line(shared_data, isolated_dirs):
    """Node 2 (its torchrun and its worker) is killed mid-run: node 1's process says so and ends,
    and the run is marked failed with that line, instead of waiting for ever."""
    endpoint = f"localhost:{free_port()}"
    nodes = [subprocess.Popen(
        torchrun("--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                 "--rdzv-id", "workbench-kill", *cli_train("epochs=30", "limit=3000", "log_every=1")),
        env=launch_env(shared_data), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True) for _ in range(2)]
    runs_root = isolated_dirs / "runs"
    deadline = time.monotonic() + 120
    while not (list_runs(runs_root) and any(e.kind == "step" for e in list_runs(runs_root)[0].events())):
        if time.monotonic() > deadline or any(node.poll() is not None for node in nodes):
            for node in nodes:
                kill_tree(node)
            pytest.fail("the run never took a step")
        time.sleep(0.1)
    run = the_one_run(runs_root)
    # whichever node holds rank 0 (the pid in status.json) survives; the other machine "dies"
    rank0 = run.status()["pid"]
    workers = {n.pid: [int(pid) for pid in Path(f"/proc/{n.pid}/task/{n.pid}/children").read_text().split()]
               for n in nodes}
    survivor = next(n for n in nodes if rank0 in workers[n.pid])
    victim = next(n for n in nodes if n is not survivor)
    for pid in workers[victim.pid]:  # torchrun starts its workers in sessions of their own
        os.kill(pid, 9)
    os.killpg(victim.pid, 9)
    # rank 0's own process ends within seconds (torchrun's agent may then wait on its lost rendezvous)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{rank0}").exists() and Path(f"/proc/{rank0}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the surviving process hung"
        time.sleep(0.1)
    status = run.status()
    assert status["state"] == "failed" and "process 0 of 2 lost the other processes" in status["message"]
    survivor.terminate()  # its agent may be waiting on the lost rendezvous
    try:
        _, err = survivor.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(survivor.pid, 9)
        _, err = survivor.communicate(timeout=30)
    victim.wait(timeout=30)
    assert "workbench: error: process 0 of 2 lost the other processes while" in err, err[-3000:]


# -- the app -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_app_starts_a_run_on_every_gpu_through_torchrun(monkeypatch, isolated_dirs):
    """With 2 CUDA devices the setup offers "all GPUs" and the detached child is torchrun with one
    process each; with one there is no such choice. (Devices are faked: no GPU is assumed.)"""
    import asyncio

    from workbench.devices import DeviceInfo
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.launch import train_command

    def devices(gpus: int) -> list[DeviceInfo]:
        return [DeviceInfo("cpu", "CPU", True), *(DeviceInfo(f"cuda:{i}", "GPU", True, 2**34) for i in range(gpus))]

    monkeypatch.setattr("workbench.tui.setup.list_devices", lambda: devices(2))
    started: list[tuple[str, int]] = []
    app = WorkbenchApp(runs_root=isolated_dirs / "runs", keys_file=isolated_dirs / "no-keys.toml")
    monkeypatch.setattr(app, "start_run", lambda config, processes=1: started.append((config.device, processes)))

    def ids() -> list[str]:
        listing = app.screen.query_one("#devices")
        return [listing.get_option_at_index(i).id for i in range(listing.option_count)]

    async def choose() -> tuple[list[str], list[str]]:
        async with app.run_test(size=(80, 24)) as pilot:
            deadline = time.monotonic() + 30
            while len(ids()) != 5:
                assert time.monotonic() < deadline, "the device list never came"
                await pilot.pause(0.1)
            with_two = ids()
            app.screen.query_one("#devices").highlighted = with_two.index("cuda*2")
            await pilot.pause()
            await pilot.press("ctrl+t")
            await pilot.pause()
            app.screen._show_devices(devices(1))
            await pilot.pause()
            return with_two, ids()

    with_two, with_one = asyncio.run(choose())
    assert with_two[-1] == "cuda*2" and started == [("cuda", 2)]
    assert with_one == ["auto", "cpu", "cuda:0"]
    command = train_command(Path("run"), Path("run/setup.toml"), processes=2)
    assert command[1:7] == ["-P", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert command[7:10] == ["-m", "workbench", "train"]
    assert train_command(Path("run"), Path("run/setup.toml"))[1:5] == ["-P", "-m", "workbench", "train"]
