"""Exit codes and verdicts that tell the truth, and no 5xx from hostile range arguments (issue 17,
items 6 and 7), on the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from connectors.sdk import Client, ObjectError, RejectedError
from tests.integration.pipeline_helpers import get_json, object_url, wait_until

pytestmark = pytest.mark.integration


def jarvis(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jarvis.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def lines(path: Path, ops: list[dict]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in ops))
    return path


def test_produce_wait_names_every_refusal_and_exits_1(stack, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    bad = lines(
        tmp_path / "bad.jsonl",
        [
            {"object_id": f"ctr:{run}", "kind": "increment", "args": {"n": 2}},
            {"object_id": f"ctr:{run}", "kind": "increment", "args": {"n": -1}},  # verifier: step < 0
            {"object_id": f"ctr:{run}", "kind": "increment", "args": {"n": 1e13}},  # verifier: range
            {"object_id": f"wf:{run}", "kind": "transition", "args": {"to_state": "approved"}},  # not applied
            {"object_id": "ctr:" + "x" * 2000, "kind": "increment", "args": {"n": 1}},  # SDK: id > 1 KB
        ],
    )
    before = time.monotonic()
    r = jarvis("produce", str(bad), "--region", "eu", "--wait", "--timeout", "60")
    assert r.returncode == 1, r.stderr
    err = " ".join(r.stderr.split())
    assert "1 accepted, 3 refused" in err, r.stderr
    assert "counter step must be a non-negative integer" in err
    assert "out of range" in err
    assert "transition not applied: draft -> approved" in err
    assert "object id of 2004 bytes exceeds the limit of 1024 bytes" in err
    assert time.monotonic() - before < 60

    plain = jarvis("produce", str(bad), "--region", "eu")
    assert plain.returncode == 0  # without --wait it says only what was sent, and says so
    assert "not yet verified" in " ".join(plain.stderr.split())


def test_produce_wait_of_a_good_file_exits_0(stack, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    good = lines(
        tmp_path / "good.jsonl",
        [{"object_id": f"ctr:{run}-{i % 3}", "kind": "increment", "args": {"n": i}} for i in range(30)]
        + [{"object_id": f"wf:{run}", "kind": "transition", "args": {"to_state": "submitted"}}],
    )
    r = jarvis("produce", str(good), "--region", "eu", "--wait")
    assert r.returncode == 0, r.stderr
    assert "31 accepted, 0 refused" in " ".join(r.stderr.split())


def test_sdk_verdicts_accepted_rejected_and_not_applied(stack) -> None:
    run = uuid.uuid4().hex[:8]
    c = Client(region="eu", node_id="verdict-test", track_verdicts=True, dev_trust=True)
    ok = c.counter(f"ctr:{run}").increment(5)
    neg = c.counter(f"ctr:{run}").increment(-3)
    wf = c.workflow(f"wf:{run}")
    first = wf.transition("submitted")
    skipped = wf.transition("draft")  # submitted -> draft is not in the approval workflow
    report = c.verdicts(60)
    assert report.of(ok).accepted and report.of(ok).ok and report.of(ok).dot[0] == "eu"
    assert not report.of(neg).accepted
    assert any("counter step must be a non-negative integer" in r for r in report.of(neg).reasons)
    assert report.of(first).applied is True
    assert report.of(skipped).accepted and report.of(skipped).applied is False
    assert "transition not applied: submitted -> draft" in report.of(skipped).reasons[0]
    assert {v.op_id for v in report.refused} == {neg, skipped}

    # A future per batch of sends; flush(wait=True) raises with the report.
    good = c.counter(f"ctr:{run}").increment(1)
    future = c.verdicts_async(60)
    assert future.result(90).of(good).ok
    c.counter(f"ctr:{run}").increment(1e13)  # type: ignore[arg-type]
    with pytest.raises(RejectedError, match="out of range"):
        c.flush(timeout=60, wait=True)
    with pytest.raises(ObjectError, match="exceeds the limit of 1024 bytes"):
        c.counter("ctr:" + "é" * 600).increment(1)
    assert wait_until(lambda: c.value(f"ctr:{run}") == 6, 30)


@pytest.mark.parametrize(
    "query",
    [
        "window=1e-300",
        "window=inf",
        "window=-inf",
        "window=nan",
        "window=-1",
        "window=0",
        "window=abc",
        "window=",
        "window=1e-9&agg=mean",
        "from=nan",
        "to=nan",
        "from=abc",
        "from=5e9&to=1",
        "agg=median",
        "from=-1&to=1e400&window=1e-5",
    ],
)
def test_hostile_range_arguments_answer_4xx_with_a_reason(stack, query: str) -> None:
    oid = "ts:hostile-range"
    with Client(region="eu", node_id="range-test", dev_trust=True) as c:
        for i in range(5):
            c.timeseries(oid).append_data_point(1_732_520_000.0 + i * 3600, float(i))
    url = stack.settings.region_config("eu").query_url
    assert wait_until(lambda: get_json(object_url(url, oid))[0] == 200, 60)
    status, body = get_json(f"{object_url(url, oid)}/range?{query}")
    assert 400 <= status < 500, (status, body)
    assert body and body.get("error"), body


def test_sane_range_arguments_still_answer(stack) -> None:
    oid = "ts:hostile-range"
    url = stack.settings.region_config("eu").query_url
    with Client(region="eu", node_id="range-test", dev_trust=True) as c:
        c.timeseries(oid).append_data_point(1_732_520_000.0, 1.0)
    assert wait_until(lambda: get_json(object_url(url, oid))[0] == 200, 60)
    status, body = get_json(f"{object_url(url, oid)}/range?window=1e308&agg=count")
    assert status == 200 and body["buckets"][0]["start"] == 0.0
    q = urllib.parse.urlencode({"from": "1732520000", "to": "1732530000", "window": "3600", "agg": "max"})
    assert get_json(f"{object_url(url, oid)}/range?{q}")[0] == 200


def test_regions_status_exit_codes(stack) -> None:
    def agreed() -> bool:
        return jarvis("regions", "status", "--json").returncode == 0

    assert wait_until(agreed, 120, interval=3)
    # A third region nobody runs: its Kafka and query API do not answer.
    r = jarvis("regions", "status", "--json", env={"JARVIS_REGIONS": "eu,us,zz"})
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "zz" in json.loads(r.stdout)["unanswered"]


def test_task_get_of_a_dead_task_exits_1(stack) -> None:
    # Without JARVIS_LLM_URL the llm handler fails at once and the task goes dead (test_agents.py).
    submitted = jarvis("task", "submit", "llm", "--payload", '{"prompt": "hi"}', "--max-attempts", "1", "--wait")
    assert submitted.returncode == 1, (submitted.stdout, submitted.stderr)
    task_id = submitted.stdout.split()[0]
    got = jarvis("task", "get", task_id, "--json")
    assert got.returncode == 1 and json.loads(got.stdout)["state"] == "dead"
