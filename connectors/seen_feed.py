"""The verifier's view of every region's accepted batches: jarvis.ops.seen and its mirrors.

Each verifier writes a SeenBatch record for every batch it accepts; MirrorMaker 2 carries them to
the other regions as `<region>.jarvis.ops.seen`. This reader follows all of them, from the oldest
record each topic keeps (its retention covers the replay window), so a verifier that restarts or
takes over a partition knows every acceptance of the window before it judges a message: the store
lives in Kafka, and each worker's memory holds only what is still inside the window.

The reading is connectors/topic_feed.py's (every partition, no group, in its own thread); the
verifier drains the records before each check, so the store itself needs no lock.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.topic_feed import TopicFeed
from jarvis import topics
from jarvis.codec.seen import SeenRecord, decode_seen
from jarvis.config import Settings


def seen_topics(region: str, regions: Sequence[str]) -> list[str]:
    return [topics.SEEN, *(topics.mirrored(r, topics.SEEN) for r in regions if r != region)]


class SeenFeed(TopicFeed[SeenRecord]):
    def __init__(self, bootstrap: str, region: str, regions: Sequence[str], settings: Settings | None = None) -> None:
        super().__init__("seen", bootstrap, region, seen_topics(region, regions), decode_seen, "verifier", settings)
