"""Acceptance measurement: the untrained SmolLM2-135M-Instruct on GSM8K test.

Evaluates, then evaluates again, and prints accuracy, wall time and how many
generations each run made (the second must make none). Results go to
docs/BENCHMARKS.md ("## Evaluation").

    python bench/eval_smollm2.py --limit 100 --backend llamacpp --max-new-tokens 512
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from personamath.train.evaluate import run_evaluation
    from personamath.train.settings import EvalSettings

    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--benchmark", action="append", default=None)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--store", default="file://./artifacts/bench-eval")
    args = ap.parse_args()
    settings = EvalSettings(model="smollm2", backend=args.backend, limit=args.limit,
                            benchmarks=args.benchmark or ["gsm8k"], store=args.store,
                            max_new_tokens=args.max_new_tokens)
    for run in (1, 2):
        t = time.monotonic()
        r = run_evaluation(settings)
        print(json.dumps({"run": run, "wall_s": round(time.monotonic() - t, 1),
                          "questions": r.questions, "generated": r.generated,
                          "reused": r.reused, "accuracy": r.accuracy,
                          "overall": r.metrics["overall"], "results": r.results_uri}))


if __name__ == "__main__":
    main()
