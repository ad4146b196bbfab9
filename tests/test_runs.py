"""Run folders under faults: damaged files, two processes, killed writers, full and read-only disks."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import FAST
from workbench import cli
from workbench.config import plan_run, resolve_config
from workbench.engine import Trainer
from workbench.errors import WorkbenchError
from workbench.runs import (
    Run,
    RunBusyError,
    RunLock,
    StorageError,
    atomic_write_bytes,
    list_runs,
    load_checkpoint,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def stored_run(registry, folder: Path, *assignments: str, state: str = "finished") -> Run:
    """A run folder as the trainer leaves it (config and status), without training."""
    config = resolve_config(registry, "names", "gru", "cpu", assignments)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
    (folder / "status.json").write_text(json.dumps({"state": state, "pid": None, "epoch": 1,
                                                    "best": {"accuracy": 0.5, "epoch": 1}}), encoding="utf-8")
    return Run(folder)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- 1. any content in a run file ------------------------------------------------------------------
DAMAGED = [
    ("status.json", "[1, 2]", "status.json holds a list"),
    ("status.json", '{"state": "finished", "best": "x"}', 'status.json has best = "x"'),
    ("status.json", '{"state": "running", "pid": "abc"}', 'status.json has pid = "abc"'),
    ("status.json", '{"state": "[/b]"}', "status.json has state"),
    ("status.json", "{not json", "status.json: Expecting property name"),
    ("status.json", "[" * 100_000 + "]" * 100_000, "status.json: nested too deeply"),
    ("status.json", b"\xff\xfe{}", "status.json: 'utf-8' codec can't decode"),
    ("config.json", "[1]", "config.json holds a list"),
    ("config.json", '{"dataset": "names", "arch": "gru", "train": [1]}', "config.json has train = [1]"),
    ("config.json", '{"dataset": 3, "arch": "gru"}', "config.json has no dataset name"),
]


@pytest.mark.parametrize(("name", "content", "reason"), DAMAGED)
def test_a_damaged_run_file_lists_that_run_as_unreadable_and_the_rest_as_usual(registry, tmp_path, capsys,
                                                                              name, content, reason):
    root = tmp_path / "runs"
    good = stored_run(registry, root / "a-good")
    bad = stored_run(registry, root / "b-bad")
    (bad.path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    (bad.path / "results.json").write_text('"not a table"')
    code, out, err = run_cli(capsys, "--runs-dir", str(root), "runs", "--json")
    assert code == 0, err
    listed = {r["id"]: r for r in json.loads(out)["runs"]}
    assert listed["a-good"]["state"] == "finished" and listed["a-good"]["best"]["accuracy"] == 0.5
    assert listed["b-bad"]["state"] == "unreadable" and reason in listed["b-bad"]["reason"]
    code, out, err = run_cli(capsys, "--runs-dir", str(root), "runs")
    assert code == 0 and err == ""
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "finished" in lines["a-good"] and "acc 0.5000 v" in lines["a-good"]
    assert "unreadable" in lines["b-bad"] and reason in lines["b-bad"]
    code, out, err = run_cli(capsys, "--runs-dir", str(root), "runs", "show", "b-bad", "--json")
    assert code == 0 and json.loads(out)["state"] == "unreadable" and json.loads(out)["results"] is None
    assert good.summary()["state"] == "finished"


def test_a_damaged_status_is_replaced_when_the_trainer_writes_it(tmp_path):
    run = Run(tmp_path / "r")
    run.path.mkdir()
    run.status_path.write_text('["not", "a", "status"]')
    run.write_status(state="running", pid=None)
    assert json.loads(run.status_path.read_text())["state"] == "running"


@pytest.mark.slow
async def test_the_runs_screen_shows_a_damaged_run_beside_a_good_one(registry, tmp_path):
    from workbench.tui.app import WorkbenchApp

    root = tmp_path / "runs"
    stored_run(registry, root / "20260101-000000-names-gru")
    bad = stored_run(registry, root / "20260101-000100-names-gru")
    bad.status_path.write_text('{"state": "finished", "best": "x", "started": 1e300}')
    (root / "20260101-000200-[b]names").mkdir()  # a folder name is not markup
    (root / "20260101-000200-[b]names" / "config.json").write_text("[]")
    app = WorkbenchApp(runs_root=root)
    async with app.run_test(size=(110, 30)) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        screen = app.screen
        # oldest first (as `workbench runs`), the cursor on the newest
        assert list(screen.runs) == ["20260101-000000-names-gru", bad.id, "20260101-000200-[b]names"]
        assert "config.json holds a list" in str(screen.query_one("#detail").render())
        await pilot.press("up")
        await pilot.pause()
        assert 'status.json has best = "x"' in str(screen.query_one("#detail").render())
        await pilot.press("up", "r")
        await pilot.pause()
        assert "finished" in str(screen.query_one("#detail").render())


# -- 3. one trainer per run folder ------------------------------------------------------------------
HOLD_LOCK = """
import sys
from pathlib import Path
from workbench.runs import Run, RunLock
lock = RunLock.acquire(Run(Path(sys.argv[1])))
print("locked", flush=True)
sys.stdin.read()
"""


def hold_lock(run: Run) -> subprocess.Popen[str]:
    """Another real process holding ``run``'s lock, as a trainer does."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run.path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_run_locked_by_another_process_is_refused_until_that_process_dies(registry, tmp_path, capsys):
    run = stored_run(registry, tmp_path / "runs" / "r1", state="running")
    config_before = run.config_path.read_bytes()
    (run.path / ".last.pt.abc.tmp").write_bytes(b"being written")
    other = hold_lock(run)
    try:
        # the status pid is dead (or recycled by an unrelated process): the lock decides
        run.write_status(state="running", pid=os.getpid())
        assert run.status()["state"] == "running"
        with pytest.raises(RunBusyError, match=f"run r1 is being trained by process {other.pid}; stop it first"):
            plan_run(registry, resume=str(run.path), assignments=["epochs=3"])
        code, _, err = run_cli(capsys, "train", "--resume", str(run.path), "--set", "epochs=3")
        assert code == 2 and err.count("\n") == 1 and "is being trained by process" in err
        code, _, err = run_cli(capsys, "--runs-dir", str(run.path.parent), "runs", "delete", "r1")
        assert code == 2 and "is being trained by process" in err and run.path.is_dir()
        code, _, err = run_cli(capsys, "train", "--dataset", "names", "--run-dir", str(run.path))
        assert code == 2 and "is being trained by process" in err
        trainer = Trainer(resolve_config(registry, "names", "gru", "cpu", ()), registry=registry, resume=run)
        with pytest.raises(RunBusyError):
            trainer.train()
        assert run.config_path.read_bytes() == config_before
        assert (run.path / ".last.pt.abc.tmp").exists()  # a live writer's file is not touched
    finally:
        other.kill()
        other.wait()
    assert run.status()["state"] == "interrupted"  # a running state whose lock is free
    assert plan_run(registry, resume=str(run.path), assignments=["epochs=3"]).resume == run


def test_a_lock_is_released_and_taken_again(tmp_path):
    run = Run(tmp_path / "r")
    lock = RunLock.acquire(run)
    with pytest.raises(RunBusyError):
        RunLock.acquire(run)
    lock.release()
    RunLock.acquire(run).release()


@pytest.mark.slow
def test_a_second_trainer_of_a_training_run_is_refused(shared_data, tmp_path, capsys):
    folder = tmp_path / "runs" / "live"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    command = [sys.executable, "-m", "workbench", "train", "--dataset", "names", "--data-dir", str(shared_data),
               "--device", "cpu", "--quiet", "--run-dir", str(folder)]
    sets = [part for item in [*FAST, "epochs=1000", "patience=0", "limit=500"] for part in ("--set", item)]
    first = subprocess.Popen([*command, *sets], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        run = Run(folder)
        deadline = time.monotonic() + 60
        while not (run.status_path.exists() and run.status().get("state") == "running"):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.1)
        # this test's process is the second one: a resume and a new trainer on the same --run-dir
        for second in (["train", "--resume", str(folder)], ["train", "--dataset", "names", "--run-dir", str(folder)]):
            code, _, err = run_cli(capsys, *second)
            assert code == 2 and f"is being trained by process {first.pid}" in err, err
        assert [e.kind for e in run.events()].count("start") == 1
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert run.status()["state"] == "stopped"


# -- 2. what a resume may change, 4. stale temporaries -----------------------------------------------
def test_resume_refuses_an_optimizer_change_and_writes_nothing(registry, tmp_path, capsys):
    run = stored_run(registry, tmp_path / "runs" / "r1", "optimizer=adam")
    before = run.config_path.read_bytes()
    for change, kept in (("optimizer=sgd", "optimizer"), ("schedule=step", "schedule"), ("seed=7", "seed")):
        code, _, err = run_cli(capsys, "train", "--resume", str(run.path), "--set", change)
        assert code == 2 and err.count("\n") == 1, err
        assert f"a resumed run keeps its {kept} (run r1 has {kept}=" in err and "only epochs, lr," in err
    assert run.config_path.read_bytes() == before
    plan = plan_run(registry, resume=str(run.path), assignments=["lr=0.002", "epochs=4", "batch_size=32"])
    assert plan.config.train["lr"] == 0.002


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from workbench.runs import atomic_write_bytes
def hang(fd):
    print("writing", flush=True)
    time.sleep(600)
os.fsync = hang
atomic_write_bytes(Path(sys.argv[1]), b"x" * 5_000_000)
"""


@pytest.mark.slow
def test_resume_trains_with_a_new_lr_and_removes_what_a_killed_writer_left(registry, shared_data, tmp_path):
    config = resolve_config(registry, "names", "gru", "cpu", [*FAST, "lr=0.01", "limit=1000", "schedule=none"],
                            data_dir=str(shared_data))
    first = Trainer(config, registry=registry, runs_root=tmp_path / "runs").train()
    run, last = first.run, first.run.checkpoint_path("last")
    saved = last.read_bytes()
    # kill -9 in the middle of a checkpoint write (held in fsync, after the data is in the temporary)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(last)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = list(run.path.glob(".last.pt.*.tmp"))
    assert len(left) == 1 and left[0].stat().st_size == 5_000_000 and last.read_bytes() == saved
    (run.path / ".status.json.planted.tmp").write_text("{}")

    with pytest.raises(WorkbenchError, match="a resumed run keeps its optimizer"):
        plan_run(registry, resume=str(run.path), assignments=["optimizer=sgd"])
    plan = plan_run(registry, resume=str(run.path), assignments=["epochs=2", "lr=0.001", "weight_decay=0.01"])
    lock = plan.begin()
    resumed = Trainer(plan.config, registry=registry, resume=plan.resume, lock=lock).train()
    assert resumed.state == "finished" and resumed.epochs_completed == 2
    steps = [e for e in run.events() if e.kind == "step"]
    assert {e.lr for e in steps if e.epoch == 1} == {0.01}
    assert {e.lr for e in steps if e.epoch == 2} == {0.001}
    groups = load_checkpoint(last)["optimizer_state"]["param_groups"]
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.001, 0.01)]
    assert not list(run.path.glob("*.tmp")) and not list(run.path.glob(".*.tmp"))


# -- 5. full and read-only disks ------------------------------------------------------------------------
def test_disk_full_at_a_checkpoint_is_one_line_and_the_earlier_checkpoint_is_intact(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, b"epoch 1")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # where a full disk shows at the latest
    with pytest.raises(StorageError) as caught:
        atomic_write_bytes(target, b"epoch 2" * 1000)
    monkeypatch.undo()
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"could not write {target}: No space left on device")
    assert "free some space or choose another --runs-dir" in message
    assert target.read_bytes() == b"epoch 1" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.slow
def test_disk_full_during_training_ends_in_one_line_with_checkpoints_intact(shared_data, tmp_path, monkeypatch,
                                                                             capsys):
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "--runs-dir", str(runs), "train", "--dataset", "names", "--device", "cpu",
                             "--data-dir", str(shared_data), "--quiet", *[p for s in [*FAST, "limit=1000"] for p in ("--set", s)])
    assert code == 0, err
    (run,) = list_runs(runs)
    saved = {name: run.checkpoint_path(name).read_bytes() for name in ("best", "last")}
    real_replace = os.replace

    def full_at_checkpoints(src, dst, *args, **kwargs):
        if str(dst).endswith(".pt"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_at_checkpoints)
    code, out, err = run_cli(capsys, "--runs-dir", str(runs), "train", "--resume", run.id, "--set", "epochs=2",
                             "--quiet")
    monkeypatch.setattr(os, "replace", real_replace)
    assert code == 2 and err.count("\n") == 1, err
    assert f"could not write {run.checkpoint_path('last')}: No space left on device" in err
    assert {name: run.checkpoint_path(name).read_bytes() for name in ("best", "last")} == saved
    assert run.status()["state"] == "failed" and not list(run.path.glob(".*.tmp"))


@pytest.fixture()
def tiny_tmpfs(tmp_path):
    """A real 1 MB file system (root only, where the machine allows mounting)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if not IS_ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                                     capture_output=True).returncode != 0:
        pytest.skip("a real full disk needs a tmpfs, which only root may mount (the injected ENOSPC tests cover it)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_really_full_disk_refuses_a_resume_in_one_line_and_keeps_the_run(registry, tiny_tmpfs, capsys):
    run = stored_run(registry, tiny_tmpfs / "r1")
    run.checkpoint_path("last").write_bytes(b"a checkpoint" * 1000)
    before = {p.name: p.read_bytes() for p in run.path.iterdir()}
    with open(tiny_tmpfs / "filler", "wb") as filler:  # fill the disk to the last byte
        with pytest.raises(OSError, match="No space left"):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
    code, _, err = run_cli(capsys, "train", "--resume", str(run.path), "--set", "epochs=3")
    assert code == 2 and err.count("\n") == 1, err
    assert f"could not write {run.config_path}: No space left on device; free some space" in err
    after = {p.name: p.read_bytes() for p in run.path.iterdir() if p.name != "lock"}
    assert after == before


@pytest.fixture()
def read_only_folder(tmp_path):
    """A folder no one may write: chmod for a normal user; for root (whom chmod does not stop) a
    tmpfs remounted read-only, where the machine allows mounting; else the test is skipped."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if not IS_ROOT:
        yield folder, lambda: folder.chmod(0o555)
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("running as root, where chmod does not stop writes, and mounting a read-only tmpfs is not allowed")
    try:
        yield folder, lambda: subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_read_only_runs_folder_is_one_line_and_its_runs_stay_intact(registry, read_only_folder, capsys):
    folder, make_read_only = read_only_folder
    run = stored_run(registry, folder / "r1")
    run.checkpoint_path("last").write_bytes(b"a checkpoint")
    make_read_only()
    code, _, err = run_cli(capsys, "train", "--resume", str(run.path), "--set", "epochs=3")
    assert code == 2 and err.count("\n") == 1, err
    assert f"could not create the lock file {run.path / 'lock'}" in err and "make the folder writable" in err
    code, _, err = run_cli(capsys, "--runs-dir", str(folder), "train", "--dataset", "names")
    assert code == 2 and err.count("\n") == 1 and "could not create" in err and "make the folder writable" in err
    assert run.checkpoint_path("last").read_bytes() == b"a checkpoint" and run.config()["dataset"] == "names"
    code, out, _ = run_cli(capsys, "--runs-dir", str(folder), "runs", "--json")
    assert code == 0 and json.loads(out)["runs"][0]["state"] == "finished"
