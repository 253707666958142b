"""Grading benchmark: personamath.grading side by side with Math-Verify.

Three measurements (see docs/BENCHMARKS.md, section "Grading", for results):

* ``hard``: accuracy, false positives, errors and per-case time (first call per case,
  or best of ``--repeat``; both graders cache parsed answers) of both graders on a
  catalogue of hard cases (bench/cases/grading_hard_cases.jsonl by default), in one
  run on one machine. A false positive is a case expected ``incorrect`` that a grader
  accepted; an ``error`` verdict counts as a miss (it is never silently correct).
* ``self``: self-agreement on the 5,000 MATH test golds (each gold against itself and
  against its ``\\boxed{}``-wrapped form).
* ``throughput``: cases per second over N (prediction, gold) pairs built from the MATH
  test golds (right answers, wrong answers, whole responses), with ``--workers`` processes.

Math-Verify (``math-verify[antlr4_13_2]``) is a bench-only dependency; it is imported
lazily and called the way its README shows: ``verify(parse(gold), parse(pred))``, with
the gold wrapped in ``$...$`` and a bare prediction wrapped too when it finds nothing.

Usage::

    python bench/bench_grading.py hard [--cases FILE] [--repeat 1] [--show-misses]
    python bench/bench_grading.py self [--math-verify]
    python bench/bench_grading.py throughput [--n 100000] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from personamath.grading import GRADER_VERSION, verify  # noqa: E402

HARD_CASES = ROOT / "bench" / "cases" / "grading_hard_cases.jsonl"
MATH_GOLDS = ROOT / "tests" / "fixtures" / "math_test_golds.jsonl"

Grader = Callable[[str, str], str]


def ours(gold: str, pred: str) -> str:
    """This project's grader: verdict status."""
    return verify(gold, pred).status


def math_verify_grader() -> Grader:
    """Math-Verify as a (gold, pred) -> status function."""
    from math_verify import parse
    from math_verify import verify as mv_verify

    def grade(gold: str, pred: str) -> str:
        g = parse(f"${gold}$")
        # A bare LaTeX answer ("\\pm 2, 3") has no delimiters for Math-Verify to find;
        # give it the same $...$ wrapping as the gold rather than count an error.
        p = parse(pred) or parse(f"${pred}$")
        if not g or not p:
            return "error"
        return "correct" if mv_verify(g, p) else "incorrect"

    return grade


def _load(path: Path) -> list[dict[str, str]]:
    """Cases in either format: ``expected: "correct"|"incorrect"`` with an ``id`` (the
    hard catalogue) or ``expect: true|false`` (the red-team files, as for
    ``personamath grade --cases``)."""
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for n, case in enumerate(cases, 1):
        if "expect" in case and "expected" not in case:
            case["expected"] = "correct" if case["expect"] else "incorrect"
            case.setdefault("id", f"{case.get('category', 'case')}-{n:03d}")
    return cases


def _time_cases(
    grader: Grader, cases: list[dict[str, str]], repeat: int
) -> tuple[list[str], list[float]]:
    """Verdicts and per-case best-of-``repeat`` times (seconds)."""
    verdicts: list[str] = []
    times: list[float] = []
    for case in cases:
        best = float("inf")
        verdict = "error"
        for _ in range(repeat):
            start = time.perf_counter()
            try:
                verdict = grader(case["gold"], case["pred"])
            except Exception:  # noqa: BLE001 - a crash is an error verdict
                verdict = "error"
            best = min(best, time.perf_counter() - start)
        verdicts.append(verdict)
        times.append(best)
    return verdicts, times


def _score(cases: list[dict[str, str]], verdicts: list[str]) -> dict[str, float]:
    right = sum((v == "correct") == (c["expected"] == "correct") and v != "error"
                for c, v in zip(cases, verdicts, strict=True))  # fmt: skip
    fp = sum(
        v == "correct" and c["expected"] != "correct" for c, v in zip(cases, verdicts, strict=True)
    )
    errors = sum(v == "error" for v in verdicts)
    return {"accuracy": 100 * right / len(cases), "false_positives": fp, "errors": errors}


def cmd_hard(args: argparse.Namespace) -> None:
    cases = _load(Path(args.cases))
    negatives = sum(c["expected"] != "correct" for c in cases)
    print(f"{len(cases)} cases ({negatives} near-miss negatives) from {args.cases}")
    graders = {f"personamath ({GRADER_VERSION})": ours, "math-verify": math_verify_grader()}
    for grader in graders.values():  # warm-up: imports, caches that any real run has
        grader("1", "1")
    rows = []
    for name, grader in graders.items():
        verdicts, times = _time_cases(grader, cases, args.repeat)
        score = _score(cases, verdicts)
        ms = sorted(t * 1000 for t in times)
        rows.append((name, score, statistics.median(ms), ms[int(0.9 * (len(ms) - 1))], max(ms)))
        if args.show_misses:
            for case, verdict in zip(cases, verdicts, strict=True):
                if (verdict == "correct") != (case["expected"] == "correct") or verdict == "error":
                    print(f"  [{name}] {case['id']}: expected {case['expected']}, got {verdict}")
    print("| grader | accuracy | false positives | errors | median ms/case | p90 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for name, score, med, p90, mx in rows:
        print(f"| {name} | {score['accuracy']:.1f}% | {score['false_positives']} | "
              f"{score['errors']} | {med:.3f} | {p90:.3f} | {mx:.1f} |")  # fmt: skip


def _golds() -> list[str]:
    return [row["answer"] for row in _load(MATH_GOLDS)]


def cmd_self(args: argparse.Namespace) -> None:
    golds = _golds()
    # Math-Verify reads LaTeX only inside delimiters, so its bare form is "$gold$".
    graders: dict[str, tuple[Grader, str]] = {f"personamath ({GRADER_VERSION})": (ours, "{}")}
    if args.math_verify:
        graders["math-verify"] = (math_verify_grader(), "${}$")
    for name, (grader, bare) in graders.items():
        start = time.perf_counter()
        agree = 0
        for gold in golds:
            boxed = f"So the final answer is $\\boxed{{{gold}}}$."
            with contextlib.suppress(Exception):  # a crash is a disagreement
                both = grader(gold, bare.format(gold)), grader(gold, boxed)
                agree += both == ("correct", "correct")
        elapsed = time.perf_counter() - start
        print(f"{name} self-agreement: {agree}/{len(golds)} golds "
              f"({100 * agree / len(golds):.2f}%) in {elapsed:.1f}s")  # fmt: skip


def build_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(prediction, gold) pairs from the MATH golds: right, wrong and whole responses."""
    golds = _golds()
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        gold = golds[i % len(golds)]
        kind = rng.random()
        if kind < 0.4:
            pred = f"We simplify step by step.\n\nThus the answer is $\\boxed{{{gold}}}$."
        elif kind < 0.7:
            pred = f"After checking, the result is $\\boxed{{{rng.choice(golds)}}}$."
        elif kind < 0.85:
            pred = gold
        else:
            pred = f"Final Answer: The final answer is ${rng.choice(golds)}$. I hope it is correct."
        pairs.append((pred, gold))
    return pairs


def _grade_chunk(chunk: list[tuple[str, str]]) -> list[str]:
    return [verify(gold, pred).status for pred, gold in chunk]


def cmd_throughput(args: argparse.Namespace) -> None:
    pairs = build_pairs(args.n)
    chunks = [pairs[i : i + 1000] for i in range(0, len(pairs), 1000)]
    start = time.perf_counter()
    if args.workers <= 1:
        results = [s for chunk in chunks for s in _grade_chunk(chunk)]
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            results = [s for part in pool.map(_grade_chunk, chunks) for s in part]
    elapsed = time.perf_counter() - start
    counts = {k: results.count(k) for k in ("correct", "incorrect", "error")}
    print(f"{len(pairs)} pairs, {args.workers} worker(s): {elapsed:.1f}s, "
          f"{len(pairs) / elapsed:,.0f} pairs/s; verdicts {counts}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    hard = sub.add_parser("hard")
    hard.add_argument("--cases", default=str(HARD_CASES))
    hard.add_argument("--repeat", type=int, default=1)
    hard.add_argument("--show-misses", action="store_true")
    self_cmd = sub.add_parser("self")
    self_cmd.add_argument("--math-verify", action="store_true", help="also run Math-Verify")
    tp = sub.add_parser("throughput")
    tp.add_argument("--n", type=int, default=100_000)
    tp.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    {"hard": cmd_hard, "self": cmd_self, "throughput": cmd_throughput}[args.cmd](args)


if __name__ == "__main__":
    main()
