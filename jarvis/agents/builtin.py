"""Built-in handlers: no-op, data verification, telemetry summary, an LLM call, and a flaky one.

`noop` and `flaky` exist for benchmarks, tests and demos (a handler that fails its first N
attempts shows retries, backoff and the dead-letter topic working).
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from connectors import api_client
from connectors.replay_sources import live_view
from connectors.replayer import Replayer
from jarvis.agents import HandlerError, TaskContext


class Noop:
    name = "noop"
    capabilities = frozenset({"noop"})

    def run(self, ctx: TaskContext) -> Any:
        if ctx.payload.get("sleep_s"):
            time.sleep(float(ctx.payload["sleep_s"]))  # simulated work: deadlines, kill tests
        return {"echo": ctx.payload, "worker": ctx.worker}


class Flaky:
    name = "flaky"
    capabilities = frozenset({"noop"})

    def run(self, ctx: TaskContext) -> Any:
        fail_times = int(ctx.payload.get("fail_times", 1))
        if ctx.attempt < fail_times:
            raise HandlerError(f"planned failure {ctx.attempt + 1} of {fail_times}")
        return {"succeeded_on_attempt": ctx.attempt, "worker": ctx.worker}


class DataVerification:
    """Re-verifies an object's archived operations: signatures, and replayed state against live."""

    name = "verify"
    capabilities = frozenset({"verify"})

    def run(self, ctx: TaskContext) -> Any:
        oid = ctx.payload.get("object_id")
        if not oid:
            raise HandlerError("payload needs object_id", retryable=False)
        s = ctx.settings
        report = Replayer.from_settings(s, "agent").from_archive(oid)
        report.live = live_view(s, ctx.payload.get("region", s.region), oid) or {}
        return {
            "object_id": oid,
            "ops_verified": report.ops_folded,
            "signature_failures": [e.as_dict() for e in report.failures],
            "differences_from_live": report.differences(),
            "ok": not report.failures and not report.differences(),
        }


class TelemetrySummary:
    """Summarises a time-series object over a window: count, mean, min, max, stdev, p95."""

    name = "summarise"
    capabilities = frozenset({"telemetry"})

    def run(self, ctx: TaskContext) -> Any:
        oid = ctx.payload.get("object_id")
        if not oid:
            raise HandlerError("payload needs object_id", retryable=False)
        q = {k: ctx.payload[k] for k in ("from", "to") if k in ctx.payload}
        region = ctx.payload.get("region", ctx.settings.region)
        url = (
            f"{ctx.settings.region_config(region).query_url}/v1/objects/{urllib.parse.quote(oid, safe='')}/range"
            + (f"?{urllib.parse.urlencode(q)}" if q else "")
        )
        try:
            with api_client.urlopen(url, 10, settings=ctx.settings) as r:
                points = json.loads(r.read())["points"]
        except urllib.error.HTTPError as e:
            raise HandlerError(f"{oid}: query API answered {e.code}", retryable=e.code >= 500) from None
        values = sorted(float(p["value"]) for p in points)
        if not values:
            return {"object_id": oid, "count": 0}
        return {
            "object_id": oid,
            "count": len(values),
            "mean": statistics.fmean(values),
            "min": values[0],
            "max": values[-1],
            "stdev": statistics.pstdev(values),
            "p95": values[min(len(values) - 1, int(0.95 * len(values)))],
        }


class LLM:
    """Calls an OpenAI-compatible chat endpoint (JARVIS_LLM_URL); disabled, with a clear message, without."""

    name = "llm"
    capabilities = frozenset({"llm"})

    def run(self, ctx: TaskContext) -> Any:
        url = ctx.settings.llm_url
        if not url:
            raise HandlerError(
                "the LLM agent is disabled: set JARVIS_LLM_URL to an OpenAI-compatible endpoint "
                "(e.g. http://localhost:8000/v1)",
                retryable=False,
            )
        body = {
            "model": ctx.payload.get("model", "default"),
            "messages": ctx.payload.get("messages")
            or [{"role": "user", "content": str(ctx.payload.get("prompt", ""))}],
        }
        req = urllib.request.Request(
            url.rstrip("/") + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": ctx.idempotency_key},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                reply = json.loads(r.read())
        except (urllib.error.URLError, TimeoutError) as e:
            raise HandlerError(f"LLM endpoint {url}: {e}") from None
        return {"reply": reply["choices"][0]["message"]["content"], "model": reply.get("model")}
