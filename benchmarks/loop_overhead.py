"""What the engine costs per step: workbench's training loop against hand-written PyTorch loops.

On the same model (the names GRU with the dataset's defaults) and the same encoded training names,
one training epoch is timed, interleaved over ``--reps`` rounds, each loop with a fresh model from
the same seed, all on one thread:

- ``engine``: ``workbench.engine.Trainer`` (samples/s of its training epoch, ``_run_epoch``:
  batching, steps, gradient norm, divergence guard, progress events, control polling; not the
  validation pass or the checkpoint write);
- ``hand-bucketed``: a plain batched loop (pad, forward, cross-entropy, backward, ``clip_grad_norm_``
  when the run's ``clip_grad_norm`` is on (it is by default), Adam step, ``running_loss += loss.item()``) over length-bucketed batches (sorted within pools of 50 batches,
  then shuffled, as the engine forms them);
- ``hand-random``: the same loop over batches drawn at random (padding to each batch's longest name);
- ``per-sample``: the classic names tutorial's loop, one name per step with a plain SGD update, on
  the first ``--per-sample-limit`` names (the rate is per name, so it compares).

    python benchmarks/loop_overhead.py --data-dir ../shared/data [--reps 3] [--limit 0] [--clock wall|cpu] [--profile]

``--profile`` adds a cProfile of one engine epoch (top functions by own time). The machine should be
quiet: the ratios are what to read, the absolute rates depend on the CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workbench.config import RunConfig, resolve_config
from workbench.engine import EpochRun, Trainer, build_model, load_dataset
from workbench.registry import Registry, get_registry
from workbench.tasks import task_class
from workbench.tasks.base import Task

Example = tuple[list[int], int]


def bucketed_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffle, sort within pools of 50 batches by length, cut into batches, shuffle the batches."""
    perm = torch.randperm(len(lengths), generator=generator).tolist()
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(perm), pool):
        chunk = sorted(perm[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def random_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    perm = torch.randperm(len(lengths), generator=generator).tolist()
    return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]


def pad(examples: Sequence[Example], indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(examples[i][0]) for i in indices])
    tokens = torch.zeros(len(indices), int(lengths.max()), dtype=torch.long)
    for row, i in enumerate(indices):
        tokens[row, : len(examples[i][0])] = torch.tensor(examples[i][0])
    return tokens, lengths, torch.tensor([examples[i][1] for i in indices])


class Bench:
    """The names data, the run config and a fresh model on demand."""

    def __init__(self, data_dir: str, limit: int, batch_size: int, seed: int, extra: list[str],
                 clock: Callable[[], float]) -> None:
        self.clock = clock
        self.registry: Registry = get_registry()
        self.config: RunConfig = resolve_config(
            self.registry, "names", "gru", "cpu",
            ["train.threads=1", "train.epochs=1", f"train.limit={limit}", f"train.batch_size={batch_size}",
             f"train.seed={seed}", "train.patience=0", *extra],
            data_dir=data_dir)
        data = load_dataset(self.config, self.registry)
        self.task: Task = task_class("classification").from_data(data)
        train_set = self.task.encode(data)["train"]
        self.examples: list[Example] = list(train_set[:limit] if limit else train_set)
        self.lengths = [len(ids) for ids, _ in self.examples]
        self.batch_size, self.seed = batch_size, seed
        self.lr = float(self.config.train["lr"])
        self.clip = float(self.config.train["clip_grad_norm"])

    def fresh_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        return build_model(self.config, self.task, self.registry).train()

    def hand_loop(self, make_batches: Callable[..., list[list[int]]]) -> float:
        model = self.fresh_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)
        running_loss = 0.0
        started = self.clock()
        for indices in make_batches(self.lengths, self.batch_size, generator):
            tokens, lengths, targets = pad(self.examples, indices)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(tokens=tokens, lengths=lengths), targets)
            loss.backward()
            if self.clip > 0:  # the recipe the engine follows: the dataset's settings clip the gradient norm
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip)
            optimizer.step()
            running_loss += loss.item()
        return len(self.examples) / (self.clock() - started)

    def per_sample_loop(self, count: int) -> float:
        """The classic tutorial: one name a step, ``p -= lr * grad``, the loss read every step."""
        model = self.fresh_model()
        lr = 0.005  # the tutorial's learning rate for its SGD updates
        examples = self.examples[:count]
        started = self.clock()
        running_loss = 0.0
        for ids, label in examples:
            model.zero_grad(set_to_none=True)
            logits = model(tokens=torch.tensor([ids]), lengths=torch.tensor([len(ids)]))
            loss = F.cross_entropy(logits, torch.tensor([label]))
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-lr)
            running_loss += loss.item()
        return len(examples) / (self.clock() - started)

    def engine(self, profile: cProfile.Profile | None = None) -> float:
        """Samples/s of the engine's training epoch (on ``self.clock``, like the hand loops)."""
        clock = self.clock
        timed: list[tuple[int, float]] = []

        class TimedTrainer(Trainer):
            def _run_epoch(self, *args: Any, **kwargs: Any) -> EpochRun:
                started = clock()
                trained = super()._run_epoch(*args, **kwargs)
                timed.append((trained.samples, clock() - started))
                return trained

        with tempfile.TemporaryDirectory() as runs:
            if profile is not None:
                profile.enable()
            TimedTrainer(self.config, registry=self.registry, runs_root=Path(runs)).train()
            if profile is not None:
                profile.disable()
        samples, seconds = timed[-1]
        return samples / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding names/ (e.g. ../shared/data)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N names (0: all, ~14.4k)")
    parser.add_argument("--per-sample-limit", type=int, default=1500, help="names the per-sample loop trains on")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="extra engine/model key=value (both loops)")
    parser.add_argument("--skip", default="", help="comma-separated loops to leave out (e.g. per-sample)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one engine epoch")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time each epoch by the wall clock (default) or by this process's CPU time (steadier "
                             "on a machine other work shares)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    bench = Bench(args.data_dir, args.limit, args.batch_size, args.seed, args.set, clock)
    loops: dict[str, Callable[[], float]] = {
        "engine": bench.engine,
        "hand-bucketed": lambda: bench.hand_loop(bucketed_batches),
        "hand-random": lambda: bench.hand_loop(random_batches),
        "per-sample": lambda: bench.per_sample_loop(args.per_sample_limit),
    }
    for name in filter(None, args.skip.split(",")):
        loops.pop(name.strip(), None)
    print(f"names GRU ({bench.config.model}), {len(bench.examples):,} training names, batch {args.batch_size}, "
          f"clip_grad_norm {bench.clip:g}, "
          f"1 thread, torch {torch.__version__}, {args.reps} interleaved reps, {args.clock} clock")
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for rep in range(1, args.reps + 1):
        for name, run in loops.items():
            rates[name].append(run())
        print(f"rep {rep}: " + ", ".join(f"{name} {values[-1]:,.0f}" for name, values in rates.items()), flush=True)

    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"\n{'loop':<14} {'samples/s (median)':>19} {'min':>8} {'max':>8}")
    for name, values in rates.items():
        print(f"{name:<14} {median[name]:>19,.0f} {min(values):>8,.0f} {max(values):>8,.0f}")
    print()
    for a, b in (("engine", "hand-bucketed"), ("engine", "hand-random"), ("hand-bucketed", "hand-random"),
                 ("engine", "per-sample")):
        if a in median and b in median:
            per_rep = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
            print(f"{a} / {b}: {median[a] / median[b]:.3f} (per rep {', '.join(f'{r:.3f}' for r in per_rep)})")

    if args.profile:
        profile = cProfile.Profile()
        bench.engine(profile)
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print("\ncProfile of one engine run (training, evaluation and checkpoints), by own time:")
        print(out.getvalue())


if __name__ == "__main__":
    main()
