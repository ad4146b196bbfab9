"""Training samples/s of every built-in architecture on the CPU, in fp32 and in bf16 autocast.

Each architecture trains one epoch on the first ``--limit`` examples of a real dataset of its task
(names, tiny Shakespeare, UD English EWT, fra-eng) with its dataset's defaults, on ``--threads``
threads; the rate is the engine's own (its epoch event: training steps only). bf16 runs only where
this CPU runs bf16 autocast (the engine's trial step decides; otherwise the column says why not).
Interleaved over ``--reps`` rounds; the median is printed.

    python benchmarks/arch_throughput.py --data-dir ../shared/data [--limit 512] [--reps 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from workbench.config import resolve_config
from workbench.engine import train
from workbench.errors import WorkbenchError
from workbench.events import EpochEvent, Event, StartEvent
from workbench.registry import get_registry

#: Built-in architecture -> the dataset it is measured on.
ARCHITECTURES = {
    "elman": "names", "rnn": "names", "lstm": "names", "gru": "names", "gru-eq": "names",
    "lstm-attention": "names", "gated-lstm": "names",
    "char-rnn": "tinyshakespeare", "char-lstm": "tinyshakespeare", "char-gru": "tinyshakespeare",
    "char-gru-eq": "tinyshakespeare",
    "lstm-tagger": "ud-ewt", "bilstm-tagger": "ud-ewt", "char-bilstm-tagger": "ud-ewt",
    "gru-seq2seq": "fra-eng", "gru-attention": "fra-eng",
}


def measure(registry, arch: str, dataset: str, data_dir: str, precision: str, args) -> tuple[float, int]:
    """Samples/s of one epoch and the parameter count."""
    config = resolve_config(registry, dataset, arch, "cpu",
                            ["epochs=1", f"limit={args.limit}", f"threads={args.threads}", f"precision={precision}",
                             "patience=0", "max_minutes=0", *args.set], data_dir=data_dir)
    seen: list[Event] = []
    with tempfile.TemporaryDirectory() as runs:
        train(config, registry=registry, runs_root=Path(runs), on_event=seen.append)
    start = next(e for e in seen if isinstance(e, StartEvent))
    if start.precision != precision:
        raise WorkbenchError(f"ran in {start.precision}")
    epoch = next(e for e in seen if isinstance(e, EpochEvent))
    return float(epoch.samples_per_s), start.parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the folder of the datasets (e.g. ../shared/data)")
    parser.add_argument("--limit", type=int, default=512, help="training examples per run (default 512)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--archs", default=",".join(ARCHITECTURES))
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--set", action="append", default=[], help="extra key=value for every run")
    args = parser.parse_args()
    registry = get_registry()
    archs = [a for a in args.archs.split(",") if a]
    precisions = [p for p in args.precisions.split(",") if p]
    rates: dict[tuple[str, str], list[float]] = {}
    problems: dict[tuple[str, str], str] = {}
    parameters: dict[str, int] = {}
    for _ in range(args.reps):
        for arch in archs:
            for precision in precisions:
                key = (arch, precision)
                if key in problems:
                    continue
                try:
                    rate, parameters[arch] = measure(registry, arch, ARCHITECTURES[arch], args.data_dir, precision,
                                                     args)
                except WorkbenchError as exc:
                    problems[key] = str(exc).split(" (")[0][:60]
                    continue
                rates.setdefault(key, []).append(rate)
    print(f"CPU training samples/s, {args.limit} examples per epoch, {args.threads} thread(s), "
          f"torch {torch.__version__}, median of {args.reps}")
    header = f"{'architecture':<20} {'dataset':<16} {'parameters':>10} " + " ".join(f"{p:>10}" for p in precisions)
    if len(precisions) == 2:
        header += f" {precisions[1] + '/' + precisions[0]:>10}"
    print(header)
    for arch in archs:
        cells = []
        for precision in precisions:
            values = rates.get((arch, precision))
            cells.append(f"{statistics.median(values):>10,.0f}" if values else f"{'n/a':>10}")
        line = f"{arch:<20} {ARCHITECTURES[arch]:<16} {parameters.get(arch, 0):>10,} " + " ".join(cells)
        both = [rates.get((arch, p)) for p in precisions]
        if len(precisions) == 2 and all(both):
            line += f" {statistics.median(both[1]) / statistics.median(both[0]):>10.2f}"
        print(line)
    for (arch, precision), problem in problems.items():
        print(f"  {arch} {precision}: {problem}")


if __name__ == "__main__":
    main()
