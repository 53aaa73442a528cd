"""`make demo`: the main job, end to end on the local stack, with a readable summary."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from connectors.kafka_io import tail_consumer
from jarvis import topics
from jarvis.config import settings

console = Console()




def mirror_round_trip() -> None:
    s = settings()
    table = Table(title="one event per region, and its mirrored copy")
    for col in ("written in", "topic", "read in", "mirrored topic", "delay ms"):
        table.add_column(col)
    for src in s.regions:
        for dst in s.regions:
            if src.name == dst.name:
                continue
            consumer = tail_consumer(dst.bootstrap, topics.mirrored(src.name))
            key = f"demo:{uuid.uuid4().hex[:8]}".encode()
            p = Producer({"bootstrap.servers": src.bootstrap, "linger.ms": 0})
            t0 = time.perf_counter()
            p.produce(topics.OPS, key=key, value=f"hello from {src.name}".encode())
            p.flush(10)
            delay = "not seen"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error() and msg.key() == key:
                    delay = f"{(time.perf_counter() - t0) * 1000:.1f}"
                    break
            consumer.close()
            table.add_row(src.name, topics.OPS, dst.name, topics.mirrored(src.name), delay)
    console.print(table)


def main() -> None:
    console.rule("[bold]Jarvis Streams demo")
    mirror_round_trip()


if __name__ == "__main__":
    main()
