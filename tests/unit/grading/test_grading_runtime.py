"""Time limits, thread safety, caching and the batch CLI."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from personamath.grading import GRADER_VERSION, Verdict, verify
from personamath.grading.batch import grade_cases_cli
from personamath.grading.deadline import GradingTimeout, check_deadline, run_with_deadline


def test_public_interface() -> None:
    v = verify("72", "So 48 + 24 = 72.\n#### 72", "gsm8k")
    assert isinstance(v, Verdict) and v.correct and v.extracted == "72"
    assert v.gold_parsed == "72" and v.pred_parsed == "72"
    assert GRADER_VERSION.startswith("grader-")
    with pytest.raises(AttributeError):
        v.status = "incorrect"  # type: ignore[misc]


def test_deadline_gives_up_on_a_hung_function() -> None:
    def hang() -> int:
        time.sleep(3)
        return 1

    start = time.monotonic()
    with pytest.raises(GradingTimeout):
        run_with_deadline(hang, 0.2)
    assert time.monotonic() - start < 1.0


def test_cooperative_deadline_stops_the_worker() -> None:
    stopped = threading.Event()

    def spin() -> None:
        try:
            while True:
                check_deadline()
                time.sleep(0.01)
        except GradingTimeout:
            stopped.set()
            raise

    with pytest.raises(GradingTimeout):
        run_with_deadline(spin, 0.1)
    assert stopped.wait(1.0)


def test_workers_are_reused_and_abandoned_on_timeout() -> None:
    names: set[int] = set()
    for _ in range(5):
        names.add(run_with_deadline(threading.get_ident, 1.0))
    assert len(names) == 1  # one idle worker served every call
    hung: list[int] = []

    def slow() -> None:
        hung.append(threading.get_ident())
        time.sleep(0.5)

    with pytest.raises(GradingTimeout):
        run_with_deadline(slow, 0.05)
    assert run_with_deadline(threading.get_ident, 1.0) != hung[0]  # never reused


def test_errors_propagate_from_the_worker() -> None:
    with pytest.raises(ZeroDivisionError):
        run_with_deadline(lambda: 1 / 0, 1.0)


@pytest.mark.parametrize(
    "pred",
    [
        "2^{10^{10^{10}}}",
        "(" * 3000 + "1" + ")" * 3000,
        "\\frac{" * 500 + "1" + "}{2}" * 500,
        "x^{x^{x^{x^{x^{x^{x^{x}}}}}}} + " * 20,
        "9" * 50000,
    ],
)
def test_pathological_inputs_return_quickly(pred: str) -> None:
    start = time.monotonic()
    verdict = verify("\\sqrt{2}", pred, timeout_s=1.0)
    assert verdict.status in ("error", "incorrect")
    assert time.monotonic() - start < 2.5


def test_verify_inside_worker_threads() -> None:
    cases = [("\\frac{1}{2}", "0.5"), ("x^2+2x+1", "(x+1)^2"), ("[2,5)", "(2,5)")] * 20
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(lambda c: verify(*c), cases))
    assert [v.status for v in verdicts[:3]] == ["correct", "correct", "incorrect"]
    assert len({(v.status, v.reason) for v in verdicts}) == 3


def _write_cases(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_batch_cli_in_order_with_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps({"pred": "The answer is \\boxed{\\frac12}", "gold": "0.5"}),
        "this is not json",
        json.dumps({"pred": "#### 7", "gold": "8", "dataset": "gsm8k"}),
        json.dumps({"gold": "1"}),
        json.dumps({"pred": "", "gold": "1"}),
    ]
    code = grade_cases_cli(_write_cases(tmp_path / "cases.jsonl", lines))
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [r["verdict"] for r in rows] == ["correct", "error", "incorrect", "error", "error"]
    assert rows[0] == {"verdict": "correct", "correct": True, "reason": rows[0]["reason"],
                       "extracted": "\\frac12"}  # fmt: skip
    assert "line 2" in rows[1]["reason"] and "line 4" in rows[3]["reason"]
    assert rows[2]["correct"] is False and rows[2]["extracted"] == "7"


def test_batch_cli_parallel_matches_serial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Populate the parent's idle worker pool first: forked children must not use it.
    assert verify("x^2 - 1", "(x-1)(x+1)").correct
    golds = ["\\frac{1}{2}", "[2,5)", "3", "x=2", "\\text{(C)}"]
    preds = ["0.5", "(2,5)", "\\boxed{3}", "y=2", "C"]
    lines = [json.dumps({"pred": preds[i % 5], "gold": golds[i % 5]}) for i in range(600)]
    path = _write_cases(tmp_path / "many.jsonl", lines)
    assert grade_cases_cli(path, workers=1) == 0
    serial = capsys.readouterr().out
    assert grade_cases_cli(path, workers=2) == 0
    parallel = capsys.readouterr().out
    assert serial == parallel and len(serial.splitlines()) == 600


def test_batch_cli_missing_file(tmp_path: Path) -> None:
    assert grade_cases_cli(tmp_path / "nope.jsonl") == 2


def test_missing_inputs_are_errors() -> None:
    assert verify("5", None).status == "error"  # type: ignore[arg-type]
    assert verify(None, "5").status == "error"  # type: ignore[arg-type]
    assert verify(18, "#### 18", "gsm8k").correct  # type: ignore[arg-type]
