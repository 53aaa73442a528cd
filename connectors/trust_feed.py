"""Trust records on Kafka: the verifier's follower of `jarvis.trust` and its mirrors, and publishing.

An admin (`jarvis keys trust|revoke|rotate`, `jarvis stack up`, a development Client) writes
admin-signed records (jarvis/security/trust.py) to its region's compacted `jarvis.trust`; MirrorMaker
2 carries them to every other region as `<region>.jarvis.trust`. A verifier reads all of them from
the beginning before it judges its first message (as it reads jarvis.ops.seen,
connectors/seen_feed.py), then keeps following, so every verifier in every region, on any host,
folds the same records into the same TrustView.

Publishing then producing is a race: a client that writes a grant and, a millisecond later, its
first batch could have the batch judged before the feed's thread has polled the grant. So a
verifier about to reject a message for its key first asks the feed to `sync()`: read every trust
partition up to the end it has now, which holds every record acknowledged before the message was
produced. Syncs coalesce (one at a time, each covering every message produced before it began).
The reading and the sync are connectors/topic_feed.py's, shared with the accepted-batch feed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence

from confluent_kafka import KafkaException, Producer

from connectors.kafka_clients import ADMIN, client_conf
from connectors.topic_feed import TopicFeed
from jarvis import topics
from jarvis.codec.trust import decode_trust, encode_trust
from jarvis.config import Settings
from jarvis.security.keys import admin_public_keys
from jarvis.security.trust import TrustRecord, TrustView
from pipelines.loader import pipelines

log = logging.getLogger(__name__)


def trust_topics(region: str, regions: Sequence[str]) -> list[str]:
    return [topics.TRUST, *(topics.mirrored(r, topics.TRUST) for r in regions if r != region)]


class TrustFeed(TopicFeed[TrustRecord]):
    """Every trust record of `region` (its own and the mirrored ones), read as `principal`; the
    verifier asks for `sync()` before it rejects a message for its key (above)."""

    def __init__(
        self, bootstrap: str, region: str, regions: Sequence[str], settings: Settings | None = None,
        principal: str = ADMIN,
    ) -> None:  # fmt: skip
        super().__init__("trust", bootstrap, region, trust_topics(region, regions), decode_trust, principal, settings)


def new_view(settings: Settings) -> TrustView:
    # Clinical prefixes need a grant naming them: `*` alone does not write patient records.
    return TrustView(admin_public_keys(settings.keys_dir, settings.admin_public_keys), pipelines().clinical_prefixes())


def read_view(settings: Settings, region: str | None = None, timeout: float = 30.0) -> TrustView:
    """Every trust record a region holds now (its own and the mirrored ones), folded: for the CLI."""
    region = region or settings.region
    feed = TrustFeed(settings.bootstrap(region), region, settings.region_names, settings).start()
    try:
        if not feed.wait_caught_up(timeout):
            raise TimeoutError(f"trust topics of {region} not read within {timeout:.0f} s")
        feed.sync(timeout)
        view = new_view(settings)
        view.add_all(feed.drain())
        return view
    finally:
        feed.stop()


class FollowedView:
    """A TrustView kept current by a feed: for long-lived readers (replays in the query API, the
    archiver's snapshots, the verify agent), which ask at any time and in any thread."""

    def __init__(self, settings: Settings, region: str, principal: str = ADMIN, wait_s: float = 30.0) -> None:
        self.view = new_view(settings)
        self.feed = TrustFeed(settings.bootstrap(region), region, settings.region_names, settings, principal).start()
        self._lock = threading.Lock()
        if not self.feed.wait_caught_up(wait_s):
            log.warning("trust feed %s: not caught up within %.0f s; replays may judge keys untrusted", region, wait_s)

    def current(self) -> TrustView:
        if self.feed.pending():
            with self._lock:
                self.view.add_all(self.feed.drain())
        return self.view


_followed: dict[tuple[str, str], FollowedView] = {}
_followed_lock = threading.Lock()


def followed_view(settings: Settings, region: str | None = None, principal: str = ADMIN) -> FollowedView:
    """One followed view per process and region (a feed thread each, started on first use), read
    as `principal` (a worker passes its role's)."""
    region = region or settings.region
    key = (settings.bootstrap(region), str(settings.home))
    with _followed_lock:
        fv = _followed.get(key)
        if fv is None:
            fv = _followed[key] = FollowedView(settings, region, principal)
        return fv


def publish(settings: Settings, records: Iterable[TrustRecord], region: str | None = None, timeout: float = 30.0) -> int:
    """Write records to a region's `jarvis.trust` (MirrorMaker takes them everywhere else); returns
    how many were acknowledged. Raises if Kafka refused any."""
    # As the operator: only an admin (the CLI, the stack, a development Client holding the home's
    # admin key) writes trust records.
    producer = Producer({**client_conf(settings.bootstrap(region or settings.region), ADMIN, settings), "acks": "all"})
    errors: list[str] = []
    n = 0

    def done(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for rec in records:
        producer.produce(topics.TRUST, key=rec.kafka_key, value=encode_trust(rec), on_delivery=done)
        n += 1
    left = producer.flush(timeout)
    if left or errors:
        raise KafkaException(f"trust records not written to {topics.TRUST}: {errors[:3] or f'{left} unacknowledged'}")
    return n
