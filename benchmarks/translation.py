"""English -> French: the plain GRU encoder-decoder and the attention model, each trained for the same
number of minutes on one CPU thread; prints held-out corpus BLEU-4 and the course's probe sentences.

Run it through the shared CPU slot:
    python benchmarks/translation.py --data-dir ../shared/data [--minutes 8]
Extra ``--set key=value`` options go to both runs (dataset and model parameters alike).
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench.config import resolve_config
from workbench.engine import train
from workbench.registry import get_registry


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--archs", default="gru-seq2seq,gru-attention")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    registry = get_registry()
    sets = ["threads=1", f"max_minutes={args.minutes}", "epochs=1000", "patience=0", *args.set]
    report = {"command": " ".join(sys.argv), "runs": {}}
    for arch in args.archs.split(","):
        config = resolve_config(registry, "fra-eng", arch, "cpu", sets, data_dir=args.data_dir)
        result = train(config, registry=registry)
        test = result.metrics
        report["runs"][arch] = {
            "run": result.run.id, "data": config.data, "train": config.train, "model": config.model,
            "epochs_completed": result.epochs_completed, "best_epoch": result.best_epoch,
            "seconds": round(result.seconds, 1), "message": result.message,
            "test_bleu": round(test["bleu"], 2), "test_bleu_bp": round(test["bleu_bp"], 3),
            "test_precisions": [round(test[f"bleu_p{n}"], 3) for n in range(1, 5)],
            "test_sentences": test["sentences"], "valid_bleu": round(result.valid_metrics["bleu"], 2),
            "probes": test.get("probes"), "examples": test.get("examples", [])[:4],
        }
        print(json.dumps({arch: report["runs"][arch]}, ensure_ascii=False), file=sys.stderr, flush=True)
    runs = report["runs"]
    if {"gru-seq2seq", "gru-attention"} <= set(runs):
        report["bleu_gain_of_attention"] = round(runs["gru-attention"]["test_bleu"] - runs["gru-seq2seq"]["test_bleu"], 2)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
