"""Prefect results live on the pipeline's store (S3 here), and a second run of a step
whose first run failed on one shard shows the finished shards as Cached and re-executes
only the failed one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.stage1 import stage1_flow
from personamath.settings import build_settings
from personamath.sources import load_questions
from tests.fakes.fake_teacher import FakeTeacher
from tests.fakes.math_teacher import Behaviour, MathTeacher, Plan

pytestmark = [pytest.mark.s3, pytest.mark.slow]
FIX = Path(__file__).parent.parent / "fixtures"


async def _task_states(flow_run_id, n: int) -> dict[str, str]:
    """Final states of the shard task runs (task runs reach the API through events,
    so poll briefly until all of them are there and finished)."""
    states: dict[str, str] = {}
    async with get_client() as client:
        for _ in range(60):
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            states = {r.name: r.state.name for r in runs
                      if r.name.startswith("stage1 shard") and r.state and r.state.is_final()}
            if len(states) == n:
                break
            await asyncio.sleep(0.5)
    return states


def test_failed_shard_rerun_shows_others_cached(s3_bucket) -> None:
    qs = load_questions("gsm8k", str(FIX / "gsm8k_train_30.jsonl"), limit=6).questions
    teacher = MathTeacher([Plan(q.question, q.gold, Behaviour("right")) for q in qs])
    with FakeTeacher(teacher) as fake:
        s = build_settings({
            "sources": [{"dataset": "gsm8k", "uri": str(FIX / "gsm8k_train_30.jsonl"),
                         "limit": 6}],
            "teacher": {"provider": "openai", "base_url": fake.base_url_openai,
                        "model": "m", "max_retries": 0},
            "k1": 0, "shard_size": 2, "store": s3_bucket.uri("results"),
        })
        ordered = sorted(qs, key=lambda q: q.id)
        fake.fail(500, contains=ordered[3].question[:40])  # shard 1
        state = stage1_flow(settings=s, return_state=True)
        assert state.is_failed()
        assert "stage1 shard 00001" in state.message or "00001" in str(
            state.result(raise_on_failure=False))
        fake.heal()
        fake.reset_counts()
        again = stage1_flow(settings=s, return_state=True)
        assert again.is_completed()
        states = asyncio.run(_task_states(again.state_details.flow_run_id, 3))
    assert states == {"stage1 shard 0": "Cached", "stage1 shard 1": "Completed",
                      "stage1 shard 2": "Cached"}
    assert fake.count() == 1  # the healed question only (k1 = 0); its shard's others replayed
    keys = [o["Key"] for o in s3_bucket.server.client().list_objects_v2(
        Bucket=s3_bucket.name, Prefix="results/prefect-results/").get("Contents", [])]
    assert len(keys) >= 3
