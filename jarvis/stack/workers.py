"""The pipeline's worker processes that `jarvis stack up` starts per region (jarvis/roles.py lists
the roles, their start order and instance counts); `--no-workers` leaves them all out.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from connectors.http_tls import client_context
from jarvis import roles
from jarvis.config import Settings
from jarvis.stack import schema_registry
from jarvis.stack.procs import Proc


def worker_proc(settings: Settings, role: str, region: str, instance: int = 0) -> Proc:
    argv = [
        sys.executable,
        "-m",
        "jarvis.cli",
        "worker",
        role,
        "--region",
        region,
        "--loglevel",
        settings.worker_loglevel,
    ]
    name = f"worker-{role}-{region}" + (f"-{instance}" if instance else "")
    # A worker authenticates to Kafka as its role (connectors/kafka_clients.py), never as whoever
    # started the stack: blank any explicit Kafka user the caller's environment names.
    env = {
        "JARVIS_REGION": region, "JARVIS_WORKER_INSTANCE": str(instance),
        "JARVIS_KAFKA_USERNAME": "", "JARVIS_KAFKA_PASSWORD": "",
    }  # fmt: skip
    url = settings.schema_registry_url
    if url is None and Proc(name=schema_registry.NAME, run_dir=settings.home).running():
        # The stack's own registry, while it runs: whoever (re)starts a worker, from whatever
        # environment, the verifier keeps reading the messages framed with its schema ids.
        url = settings.local_schema_registry_url
    if url:
        env["JARVIS_SCHEMA_REGISTRY_URL"] = url
    return Proc(name=name, run_dir=settings.home, argv=argv, env=env, supervised=True)


def worker_procs(settings: Settings) -> list[Proc]:
    return [
        worker_proc(settings, role.name, r.name, i)
        for r in settings.regions
        for role in roles.ROLES
        for i in range(role.instances)
    ]


def start_workers(settings: Settings, report: Callable[[str], None]) -> None:
    for proc in worker_procs(settings):
        if not proc.running():
            proc.start()
            report(f"started {proc.name}")


def query_ready(query_url: str, settings: Settings) -> tuple[bool, str]:
    """Whether the fold serves reads of every object: /readyz answers 200 once every partition
    assigned to it is recovered and reads can be routed (live, /healthz, comes much earlier: with
    many objects held, table recovery takes minutes, and every read meanwhile answers 503)."""
    try:
        with urllib.request.urlopen(f"{query_url}/readyz", timeout=2, context=client_context(settings)) as r:
            return r.status == 200, "ready"
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read() or b"{}")
        except ValueError:
            return False, f"HTTP {e.code}"
        recovering = body.get("recovering") or []
        if recovering:
            return False, f"recovering partitions {recovering}"
        return False, str(body.get("routing", f"HTTP {e.code}"))
    except (urllib.error.URLError, OSError):
        return False, "not answering yet"


def wait_for_queries(settings: Settings, report: Callable[[str], None], timeout: float = 600) -> None:
    """Block until every region's query API is ready (partitions assigned and recovered, reads
    routable), saying every 15 s what it still waits for."""
    deadline = time.monotonic() + timeout
    for region in settings.regions:
        next_report = time.monotonic() + 15
        while True:
            ready, why = query_ready(region.query_url, settings)
            if ready:
                break
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(
                    f"the fold worker of {region.name} was not ready at {region.query_url} in {timeout:.0f} s "
                    f"({why}); see {settings.home / 'logs' / f'worker-fold-{region.name}.log'}"
                )
            if now > next_report:
                report(f"query API of {region.name} not ready yet: {why}")
                next_report = now + 15
            time.sleep(0.25)
        report(f"query API of {region.name} ready at {region.query_url}")


def ingest_ready(url: str, settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2, context=client_context(settings)) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_for_ingest(settings: Settings, report: Callable[[str], None], timeout: float = 60) -> None:
    """Block until every region's ingest gateway answers (HTTP; its MQTT bridge connects on its own)."""
    deadline = time.monotonic() + timeout
    for region in settings.regions:
        url = settings.http_url(roles.web_port(settings, "ingest", region.name), region.host)
        while not ingest_ready(url, settings):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the ingest gateway of {region.name} did not answer {url} in {timeout:.0f} s; "
                    f"see {settings.home / 'logs' / f'worker-ingest-{region.name}.log'}"
                )
            time.sleep(0.25)
        report(f"ingest gateway of {region.name} ready at {url}")
