"""`make demo`: two regions write the same objects concurrently, then agree.

1. an app in eu and an app in us emit a mixed workload (every CRDT type of the seed) on the same
   objects, with a progress bar;
2. the verifiers sign-check and stamp them, MirrorMaker 2 carries them across, each region's fold
   folds local and mirrored operations;
3. the live values are read back over HTTP from both regions, side by side, until they agree;
4. a forged operation is sent, and shown sitting in jarvis.ops.rejected with its reason.
"""

from __future__ import annotations

import random
import time
import uuid

from confluent_kafka import Producer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.kafka_clients import PRODUCER, client_conf
from connectors.kafka_io import tail_consumer
from connectors.regions import agreement, digests
from connectors.sdk import Client
from jarvis import topics
from jarvis.codec import decode_rejected, encode_batch
from jarvis.config import settings
from jarvis.crdt import HLC
from jarvis.ops import Operation, OperationBatch
from jarvis.partitioning import partition_for
from jarvis.replay_cli import Source, run_replay
from jarvis.security.keys import create_key
from jarvis.security.signing import sign_batch
from jarvis.task_cli import summary, task_view
from jarvis.tasks import TERMINAL
from pipelines.apps.demos import list_cases

console = Console()


def workload(client: Client, rng: random.Random, run: str, i: int) -> None:
    who = client.region
    r = rng.random()
    if r < 0.30:
        h = client.counter(f"inventory:{run}-sku-{rng.randint(1, 5)}")
        h.increment(rng.randint(1, 10)) if rng.random() < 0.5 else h.decrement(rng.randint(1, 4))
    elif r < 0.45:
        h = client.orset(f"members:{run}-team")
        person = rng.choice(["ada", "grace", "linus", "barbara", "ken"])
        h.add(person) if rng.random() < 0.65 else h.remove(person)
    elif r < 0.55:
        client.register(f"pricing:{run}-sku-1").write(round(rng.uniform(9, 12), 2))
    elif r < 0.75:
        client.timeseries(f"quality:{run}-line-1").append_data_point(
            time.time() + i / 1000, round(rng.gauss(92, 2), 2), {"region": who}
        )
    elif r < 0.88:
        g = client.graph(f"deps:{run}")
        a, b = rng.sample(["api", "db", "cache", "queue", "auth"], 2)
        g.add_vertex(a)
        g.add_vertex(b)
        g.add_edge(a, b)
    else:
        client.workflow(f"order:{run}-1").transition(
            rng.choice(["picked", "shipped", "delivered", "cancelled"])
        )


def summarize(view: dict | None) -> str:
    if view is None:
        return "-"
    v, t = view["value"], view["type"]
    if t == "timeseries":
        vals = [p["value"] for p in v]
        return f"{len(vals)} points, mean {sum(vals) / len(vals):.2f}" if vals else "0 points"
    if t == "workflow":
        applied = sum(1 for h in v["history"] if h["applied"])
        return f"{v['state']} ({applied}/{len(v['history'])} transitions applied)"
    if t == "graph":
        return f"{len(v['vertices'])} vertices, {len(v['edges'])} edges"
    return str(v)


def main() -> None:
    s = settings()
    console.rule("[bold]Jarvis Streams: two regions, same objects, no coordination")
    run = uuid.uuid4().hex[:6]
    apps = {r: Client(region=r, node_id=f"demo-app-{r}", dev_trust=True) for r in s.region_names[:2]}
    n = 20_000
    rng = random.Random(7)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("writing in " + " and ".join(apps), total=n)
        for i in range(n):
            workload(apps[s.region_names[i % 2]], rng, run, i)
            if i % 500 == 0:
                progress.update(task, completed=i)
        for c in apps.values():
            c.flush()
        progress.update(task, completed=n)

    objects = [f"inventory:{run}-sku-{k}" for k in range(1, 6)] + [
        f"members:{run}-team", f"pricing:{run}-sku-1", f"quality:{run}-line-1", f"deps:{run}", f"order:{run}-1",
    ]  # fmt: skip
    eu, us = s.region_names[0], s.region_names[1]
    t0 = time.monotonic()
    views: dict[str, dict[str, dict | None]] = {}
    while time.monotonic() - t0 < 120:
        views = {r: {o: apps[r].read(o) for o in objects} for r in (eu, us)}
        if all(
            views[eu][o]
            and views[us][o]
            and views[eu][o]["value"] == views[us][o]["value"]
            and views[eu][o]["ops"] == views[us][o]["ops"]
            for o in objects
        ):
            break
        time.sleep(0.5)
    waited = time.monotonic() - t0
    table = Table(title=f"live values over HTTP ({waited:.1f} s after the last write)")
    table.add_column("object")
    table.add_column(f"{eu} ({s.region_config(eu).query_url})")
    table.add_column(f"{us} ({s.region_config(us).query_url})")
    table.add_column("ops")
    table.add_column("agree")
    for o in objects:
        a, b = views[eu].get(o), views[us].get(o)
        same = bool(a and b and a["value"] == b["value"])
        table.add_row(
            o,
            summarize(a),
            summarize(b),
            str(a["ops"] if a else "-"),
            "[green]yes[/]" if same else "[red]no[/]",
        )
    console.print(table)
    agree, differing = agreement(digests(s))
    console.print(
        "[bold green]state digests of every partition agree across regions[/]"
        if agree
        else f"[yellow]regions still converging (partitions {differing})[/]"
    )
    show_rejection(s, run)
    show_audit(apps[eu], run)
    list_cases(console)  # the other scenarios: `jarvis demo <case>`


def show_audit(app: Client, run: str) -> None:
    """Replay one object from the archive (signatures re-checked) and ask an agent to summarise another."""
    oid = f"inventory:{run}-sku-1"
    report = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the archivers trail the folds by a moment
        report = run_replay(oid, None, Source.archive, app.region)
        if not report.differences():
            break
        time.sleep(1)
    assert report is not None
    verdict = (
        "[green]equals the live value[/]" if not report.differences() else f"[red]{report.differences()}[/]"
    )
    console.print(
        f"[bold]audit:[/] replayed {oid} from PostgreSQL: {report.ops_folded} operations, "
        f"{len(report.failures)} signature failures, value {report.value} {verdict}"
    )
    task_id = app.tasks.submit("summarise", {"object_id": f"quality:{run}-line-1"})
    app.flush()
    deadline = time.monotonic() + 60
    view = None
    while time.monotonic() < deadline:
        view = task_view(task_id, app.region)
        if view and view["value"]["state"] in TERMINAL:
            break
        time.sleep(0.5)
    info = summary(view) if view else {"state": "unknown", "result": None, "workers": []}
    console.print(
        f"[bold]agent task[/] summarise quality:{run}-line-1 -> {info['state']} on {', '.join(info['workers'])}: "
        f"{info['result']}"
    )


def show_rejection(s, run: str) -> None:
    """A forged operation: signed by a key no region trusts. It is rejected, with its reason."""
    bootstrap = s.bootstrap(s.region_names[0])
    consumer = tail_consumer(bootstrap, topics.REJECTED)
    forger = create_key(s.home / "demo-untrusted-keys", "demo-app-eu")
    oid = f"inventory:{run}-sku-1"
    op = Operation(
        uuid.uuid4().hex, oid, "pncounter", "increment", {"n": 1_000_000}, "demo-app-eu", "eu", HLC("x").now()
    )
    digests_, sig = sign_batch([op], forger)
    value = encode_batch(
        OperationBatch(uuid.uuid4().hex, "demo-app-eu", forger.key_id, "eu", op.hlc, [op], digests_, sig)
    )
    # As any producer could: the forgery is caught by the verifier's signature check, not by an ACL.
    p = Producer(client_conf(bootstrap, PRODUCER, s))
    p.produce(topics.INGRESS, key=oid.encode(), value=value, partition=partition_for(oid, s.partitions))
    p.flush(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            rec = decode_rejected(msg.value())
            if rec.op_id == op.op_id:
                console.print(
                    f"[bold]forged +1,000,000 on {oid}[/] -> {topics.REJECTED}: [red]{'; '.join(rec.reasons)}[/]"
                )
                break
    consumer.close()


if __name__ == "__main__":
    main()
