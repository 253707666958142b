"""Pipeline throughput and overhead against the fake teacher (no model cost).

Runs the whole pipeline (real flows, tasks, store, engine, ledger) on N GSM8K training
questions from the test fixtures' source file, with a fixed per-request latency at the
fake, and reports wall time, requests per second and peak memory. It measures what the
orchestration and bookkeeping cost around the teacher, which is what a user can tune
(shard size, concurrency).

    python bench/bench_pipeline.py --questions 30 --latency 0.2 --concurrency 8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=30)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--shard-size", type=int, default=10)
    ap.add_argument("--store", default=None, help="file:// or s3:// (default: a temp dir)")
    args = ap.parse_args()

    from flows.pipeline import pipeline_flow
    from personamath.settings import build_settings
    from personamath.sources import load_questions
    from tests.fakes.fake_teacher import FakeTeacher
    from tests.fakes.math_teacher import Behaviour, MathTeacher, Plan

    src = ROOT / "tests/fixtures/gsm8k_train_30.jsonl"
    qs = load_questions("gsm8k", str(src), limit=args.questions).questions
    kinds = [Behaviour("right"), Behaviour("wrong", "right"), Behaviour("wrong", "wrong")]
    teacher = MathTeacher([Plan(q.question, q.gold, kinds[i % 3]) for i, q in enumerate(qs)])
    store = args.store or f"file://{tempfile.mkdtemp(prefix='pm-bench-')}"
    with FakeTeacher(teacher) as fake:
        fake.add_fault("latency", delay=args.latency)
        s = build_settings({
            "sources": [{"dataset": "gsm8k", "uri": str(src), "limit": args.questions}],
            "teacher": {"provider": "openai", "base_url": fake.base_url_openai, "model": "m",
                        "concurrency": args.concurrency},
            "k1": 3, "k2": 5, "shard_size": args.shard_size, "store": store,
        })
        t0 = time.perf_counter()
        summary = pipeline_flow(settings=s)
        first = time.perf_counter() - t0
        requests = fake.count()
        t1 = time.perf_counter()
        pipeline_flow(settings=s)
        rerun = time.perf_counter() - t1
    result = {
        "questions": args.questions, "shards": -(-args.questions // args.shard_size),
        "latency_s": args.latency, "concurrency": args.concurrency,
        "requests": requests, "rows": summary["build"]["rows_out"],
        "wall_s": round(first, 2), "requests_per_s": round(requests / first, 2),
        "ideal_wall_s": round(requests * args.latency / args.concurrency, 2),
        "rerun_wall_s": round(rerun, 2), "rerun_requests": fake.count() - requests,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
