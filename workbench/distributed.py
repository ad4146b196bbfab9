"""Training in several processes under PyTorch's own launcher (``torchrun``), one or many machines.

``torchrun --nproc_per_node N -m workbench train ...`` (or ``torchrun ... $(which workbench) train``)
starts N copies of the same command and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``; read by :mod:`workbench.settings`).
:func:`join` turns that into a :class:`World`: the engine asks it whether this process is the one that
writes (:attr:`World.is_main`), for this process's shard of the training set, to sum metrics over all
processes, and to agree on pause and stop. Without a launcher the world is :class:`SingleProcess`,
whose every method is the identity, so a plain run does exactly what it did before.

The rules the engine follows with a world of several processes:

- each process trains a disjoint shard of the training set (a ``DistributedSampler``, reshuffled each
  epoch with ``set_epoch``), in batches of ``batch_size`` (per process, as in PyTorch's DDP), so one
  optimiser step sees ``batch_size x world_size`` examples; every process takes the same number of steps;
- gradients are averaged by ``DistributedDataParallel``; loss sums, hit counts and sample counts are
  summed over processes, so what rank 0 reports is the whole run's;
- only rank 0 writes the run folder (events, status, checkpoints, results), evaluates, and reads the
  control file; its decision (go on, pause, stop) is agreed by all processes after every step;
- a collective that fails (another process died) or waits longer than ``WORKBENCH_DIST_TIMEOUT``
  seconds ends this process with one line instead of a hang.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.settings import Settings
from workbench.settings import current as current_settings

#: The decisions :meth:`World.agree` passes around, in order of precedence (the largest wins).
DECISIONS: tuple[str | None, ...] = (None, "pause", "stop")


class DistributedError(WorkbenchError):
    """Another process of a distributed run failed, or the processes cannot reach each other."""


class SingleProcess:
    """The world of a run with no launcher: one process, which writes everything."""

    rank = 0
    local_rank = 0
    world_size = 1
    distributed = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder and decides pause and stop."""
        return self.rank == 0

    def device(self, device: Any) -> Any:
        """The device this process trains on, given the one the run asked for."""
        return device

    def wrap(self, model: Any, device: Any) -> Any:
        """The module the training steps call (the model itself in one process)."""
        return model

    def shard(self, examples: Sequence[Any], epoch: int, seed: int) -> Sequence[Any]:
        """The training examples this process sees in ``epoch`` (all of them in one process)."""
        return examples

    def sum(self, values: Mapping[str, Any]) -> dict[str, float]:
        """Each value (a number or a one-element tensor) summed over all processes, as floats."""
        return {name: float(value) for name, value in values.items()}

    def agree(self, decision: str | None) -> str | None:
        """The decision all processes act on: the strongest of theirs (stop over pause over None)."""
        return decision

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object), in every process."""
        return value

    def barrier(self) -> None:
        """Wait until every process gets here."""

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        """Run the block in each machine's first process before the others (downloads into a
        shared cache happen once per machine)."""
        yield

    def close(self) -> None:
        """Leave the process group (nothing to leave in one process)."""

    def lost(self, exc: BaseException) -> WorkbenchError | None:
        """The one-line error for ``exc`` when it means the other processes are gone, else None."""
        return None

    def describe(self) -> str:
        return "1 process"


class ProcessGroup(SingleProcess):
    """One process of a ``torch.distributed`` process group (gloo on CPU, NCCL on CUDA)."""

    distributed = True

    def __init__(self, rank: int, world_size: int, local_rank: int, backend: str, timeout: float) -> None:
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.backend = backend
        self.timeout = timeout
        self._tensor_device: Any = "cpu"

    # -- where and what this process trains ----------------------------------------------------
    def device(self, device: Any) -> Any:
        """``cuda:LOCAL_RANK`` for a CUDA run (each process its own GPU), else the device asked for."""
        import torch

        if device.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise DistributedError(
                    f"{self.describe()} has LOCAL_RANK {self.local_rank} but this machine has "
                    f"{torch.cuda.device_count()} CUDA device(s); start at most that many processes per machine "
                    "(torchrun --nproc_per_node), or train on --device cpu")
            chosen = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(chosen)
            self._tensor_device = chosen
            return chosen
        return device

    def wrap(self, model: Any, device: Any) -> Any:
        """``DistributedDataParallel`` around ``model``: it copies rank 0's weights to every process
        and averages the gradients during ``backward``. The checkpoint keeps ``model`` itself."""
        from torch.nn.parallel import DistributedDataParallel

        # no device_ids: DDP would then move every input to the GPU, and the task contracts keep
        # ``lengths`` on the CPU; the engine has already put each batch where it belongs
        return self._collective("wrapping the model", lambda: DistributedDataParallel(model, device_ids=None))

    def shard(self, examples: Sequence[Any], epoch: int, seed: int) -> Sequence[Any]:
        """This process's part of ``examples`` for ``epoch``: a ``DistributedSampler`` over all of
        them (shuffled anew each epoch, padded by repeating a few so every process gets as many),
        which the task then batches (bucketing by length within the shard) as usual."""
        from torch.utils.data import DistributedSampler

        sampler: DistributedSampler[int] = DistributedSampler(
            _Sized(len(examples)), num_replicas=self.world_size, rank=self.rank,  # type: ignore[arg-type]
            shuffle=True, seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
        return select(examples, list(sampler))

    # -- talking to the other processes ----------------------------------------------------------
    def sum(self, values: Mapping[str, Any]) -> dict[str, float]:
        import torch
        import torch.distributed as dist

        names = list(values)
        packed = torch.tensor([float(values[name]) for name in names], dtype=torch.float64,
                              device=self._tensor_device)
        self._collective("summing metrics", lambda: dist.all_reduce(packed, op=dist.ReduceOp.SUM))
        return dict(zip(names, packed.tolist(), strict=True))

    def agree(self, decision: str | None) -> str | None:
        import torch
        import torch.distributed as dist

        code = torch.tensor([DECISIONS.index(decision)], dtype=torch.int32, device=self._tensor_device)
        self._collective("agreeing on pause and stop", lambda: dist.all_reduce(code, op=dist.ReduceOp.MAX))
        return DECISIONS[int(code.item())]

    def share(self, value: Any) -> Any:
        import torch.distributed as dist

        box = [value if self.rank == 0 else None]
        self._collective("receiving rank 0's results", lambda: dist.broadcast_object_list(box, src=0))
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        self._collective("waiting for the other processes", dist.barrier)

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        if self.local_rank != 0:
            self.barrier()
        yield
        if self.local_rank == 0:
            self.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            with contextlib.suppress(Exception):  # a group a dead peer broke cannot be left politely
                dist.destroy_process_group()

    def describe(self) -> str:
        return f"process {self.rank} of {self.world_size}"

    def lost(self, exc: BaseException, doing: str = "training") -> WorkbenchError | None:
        """A communication failure (torch's ``DistError``, gloo's or NCCL's own errors, raised by a
        collective or by DDP's gradient averaging inside ``backward``) as one line naming this process."""
        import torch.distributed as dist

        text = str(exc)
        if isinstance(exc, WorkbenchError) or not isinstance(exc, RuntimeError):
            return None
        if not isinstance(exc, dist.DistError) and not any(word in text for word in ("gloo", "NCCL", "Connection")):
            return None
        reason = (text.strip().splitlines() or [type(exc).__name__])[0][:200]
        return DistributedError(
            f"{self.describe()} lost the other processes while {doing} ({reason}); another process "
            f"failed or was stopped (see its messages), or took longer than {self.timeout:g} s "
            "(WORKBENCH_DIST_TIMEOUT)")

    def _collective(self, doing: str, call: Any) -> Any:
        """``call()``; a failure (a peer died, or the timeout passed) is one line naming this process."""
        try:
            return call()
        except RuntimeError as exc:  # DistBackendError and gloo's own errors are RuntimeErrors
            raise (self.lost(exc, doing) or exc) from None


class _Sized:
    """What ``DistributedSampler`` needs of a dataset: its length."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


def select(examples: Sequence[Any], indices: list[int]) -> Sequence[Any]:
    """The examples at ``indices``: a list for lists and tuples; other sequences (language-model
    windows) select by a list of indices themselves, without copying their data."""
    if isinstance(examples, (list, tuple)):
        return [examples[i] for i in indices]
    try:
        return examples[indices]  # type: ignore[call-overload]
    except (TypeError, IndexError):
        return [examples[i] for i in indices]


World = SingleProcess

_world: SingleProcess | None = None
#: Whether this process trained in a group of several (a torchrun worker): see :func:`ends_without_shutdown`.
_was_in_group = False


def join(settings: Settings | None = None) -> SingleProcess:
    """The world this process belongs to: a process group when a launcher set ``WORLD_SIZE`` above
    1, else :class:`SingleProcess`. Joins once per process (later calls return the same world)."""
    global _world, _was_in_group
    if _world is not None:
        return _world
    settings = settings or current_settings()
    launch = settings.launch
    if launch.world_size <= 1:
        _world = SingleProcess()
        return _world
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed; run without torchrun")
    # gloo for CPU tensors (and the small messages: decisions, results), NCCL for CUDA ones where present
    cuda = torch.cuda.is_available() and dist.is_nccl_available()
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    if launch.rank is None or launch.master_addr is None or launch.master_port is None:
        raise DistributedError(
            f"WORLD_SIZE={launch.world_size} but RANK, MASTER_ADDR or MASTER_PORT is not set; start "
            "distributed runs with torchrun (e.g. torchrun --nproc_per_node 2 -m workbench train ...)")
    if cuda and launch.local_rank < torch.cuda.device_count():
        torch.cuda.set_device(launch.local_rank)
    try:
        # torchrun's variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE) reach torch through env://
        dist.init_process_group(backend=backend, init_method="env://", rank=launch.rank,
                                world_size=launch.world_size, timeout=timedelta(seconds=settings.dist_timeout))
    except (RuntimeError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DistributedError(f"process {launch.rank} of {launch.world_size} could not join the others at "
                               f"{launch.master_addr}:{launch.master_port} ({reason})") from None
    _world = ProcessGroup(launch.rank, launch.world_size, launch.local_rank, backend, settings.dist_timeout)
    _was_in_group = True
    return _world


def agree_on_plan(world: SingleProcess, make_plan: Callable[[], Any]) -> Any:
    """The run plan (``workbench.config.RunPlan``) every process trains: rank 0 makes it (reading
    files, checking the run is free) and the others take its config and folders, so they never race
    rank 0 for a lock or a fresh folder. A plan rank 0 refuses ends the others with one line."""
    if not world.distributed:
        return make_plan()
    from workbench.config import RunConfig, RunPlan
    from workbench.runs import Run

    if world.is_main:
        try:
            plan = make_plan()
        except WorkbenchError as exc:
            world.share(("refused", str(exc)))
            raise
        world.share(("plan", plan.config.to_dict(), plan.resume and str(plan.resume.path),
                     plan.run and str(plan.run.path)))
        return plan
    answer = world.share(None)
    if answer[0] == "refused":
        raise DistributedError(f"{world.describe()}: rank 0 refused the run ({answer[1]})")
    _, config, resume, run = answer
    return RunPlan(RunConfig.from_dict(config), resume=Run(Path(resume)) if resume else None,
                   run=Run(Path(run)) if run else None)


def leave() -> None:
    """Leave the process group (if any), so the next :func:`join` starts afresh."""
    global _world
    if _world is not None:
        _world.close()
    _world = None


def ends_without_shutdown() -> bool:
    """Whether this process should end with ``os._exit`` once its output is flushed: it trained in a
    group of several. torch's communication threads can still be joinable when the interpreter's C++
    destructors run at exit: a worker that had finished and saved its run then aborted ("terminate
    called without an active exception", SIGABRT or SIGSEGV; 2 of 12 two-machine runs with both cores
    busy, and once in CI), and torchrun reported the whole job failed."""
    return _was_in_group


def current() -> SingleProcess:
    """The world :func:`join` made, or a single process when nothing joined."""
    return _world if _world is not None else SingleProcess()
