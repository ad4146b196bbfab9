"""What an intervention costs in generation: characters per second of plain generation (the fused
kernels and the character model's one-token fast path) against generation with an intervention set
(every step through the inspector's equation cells, workbench.intervened_generation).

Run (single-threaded):
    python benchmarks/intervened_generation.py [--arch char-lstm] [--length 1000] [--repeats 3]

Builds the architecture at its default size on a 65-character vocabulary (tiny Shakespeare's size)
with fixed random weights (speed does not depend on training), then times plain and intervened
generation of the same length, interleaved, and prints the median characters per second of each
and their ratio. The intervention is a gate forced at the last step the model reads, so both runs
produce the same text (checked) and differ only in the path the steps take.
"""

from __future__ import annotations

import argparse
import json
import statistics
import string
import time

import torch

from workbench.api import LanguageModelData
from workbench.config import resolve_config
from workbench.engine import build_model
from workbench.intervened_generation import generate
from workbench.interventions import parse_intervention
from workbench.registry import get_registry
from workbench.tasks.language_model import LanguageModelTask

PRIME = "ROMEO:\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="char-lstm")
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = get_registry()
    alphabet = (string.ascii_letters + " \n.,;:!?'-&$3")[:65]
    task = LanguageModelTask.from_data(LanguageModelData(alphabet * 20 + PRIME, seq_len=32))
    config = resolve_config(registry, "tinyshakespeare", args.arch, "cpu", [])
    torch.manual_seed(0)
    model = build_model(config, task, registry).eval()
    gate = "forget" if "lstm" in args.arch else "update" if "gru" in args.arch else None
    last = len(PRIME) + args.length - 1
    spec = f"{gate}=0@{last}" if gate else f"1:0@{last}"
    intervention = [parse_intervention(spec)]
    device = torch.device("cpu")

    def timed(interventions: list) -> tuple[float, str]:
        start = time.perf_counter()
        text = "".join(generate(task, model, PRIME, args.length, device, interventions, seed=1))
        return args.length / (time.perf_counter() - start), text

    plain, intervened = [], []
    for _ in range(args.repeats):
        speed, plain_text = timed([])
        plain.append(speed)
        speed, intervened_text = timed(intervention)
        intervened.append(speed)
        assert intervened_text == plain_text, "the equation path changed the text"
    summary = {"arch": args.arch, "length": args.length, "repeats": args.repeats, "intervention": spec,
               "plain_chars_per_s": round(statistics.median(plain), 1),
               "intervened_chars_per_s": round(statistics.median(intervened), 1),
               "slowdown": round(statistics.median(plain) / statistics.median(intervened), 2)}
    print(f"{args.arch}: plain {summary['plain_chars_per_s']:.0f} chars/s, with an intervention "
          f"{summary['intervened_chars_per_s']:.0f} chars/s ({summary['slowdown']:.1f}x slower); same text")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
