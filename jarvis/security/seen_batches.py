"""Re-send protection: which signed batches a region's verifiers accepted, within the replay window.

The fold's dots recognise a Kafka redelivery (same ingress position), but a byte-identical re-send
is a new ingress record with a new position, so it would be counted again. What a re-sender cannot
change without the signer's key is the list of signed operation digests, so that is the batch's
identity here: `batch_key` = the first 16 bytes of SHA-256(op_digests), the value the signature
covers. A batch whose key was accepted at another position, in any partition or region, is a
duplicate; the same position again is the verifier reprocessing its own record after a crash, which
must give the same answer as the first time.

An entry is kept until every operation of its batch has left the replay window (the newest
operation's wall time + the widest window): an older re-send fails the timestamp check anyway. So
memory is bounded by the batches accepted within one window; entries expire in one-minute buckets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

KEY_BYTES = 16
BUCKET_MS = 60_000


def batch_key(op_digests: bytes) -> bytes:
    """The identity of a signed batch: its signed digests, hashed."""
    return hashlib.sha256(op_digests).digest()[:KEY_BYTES]


@dataclass(frozen=True, slots=True)
class Acceptance:
    """Where a region's verifier accepted a batch: the position its dots are made of."""

    region: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.region}/{self.partition}/{self.offset}"


class SeenBatches:
    """Batch keys accepted within the window, each with where it was accepted (usually one place;
    two regions that accepted the same re-send before either heard of the other's make two)."""

    def __init__(self) -> None:
        self._where: dict[bytes, tuple[Acceptance, ...]] = {}
        self._expires: dict[bytes, int] = {}
        self._buckets: dict[int, list[bytes]] = {}  # expiry minute -> keys expiring in it
        self._oldest_bucket: int | None = None

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: bytes) -> bool:
        return key in self._where

    def duplicate_of(self, key: bytes, here: Acceptance, now_ms: int) -> Acceptance | None:
        """The earlier acceptance `key` duplicates, or None if it is new (or is `here` itself)."""
        places = self._where.get(key)
        if places is None or here in places or self._expires[key] <= now_ms:
            return None
        return places[0]

    def record(self, key: bytes, where: Acceptance, expires_ms: int) -> None:
        places = self._where.get(key, ())
        if where not in places:
            self._where[key] = (*places, where)
        if expires_ms > self._expires.get(key, -1):
            self._expires[key] = expires_ms
            bucket = expires_ms // BUCKET_MS + 1  # a key leaves at the end of its minute, never early
            self._buckets.setdefault(bucket, []).append(key)
            if self._oldest_bucket is None or bucket < self._oldest_bucket:
                self._oldest_bucket = bucket

    def expire(self, now_ms: int) -> int:
        """Forget the batches whose operations have all left the window; how many were dropped."""
        if self._oldest_bucket is None or self._oldest_bucket * BUCKET_MS > now_ms:
            return 0
        dropped = 0
        for bucket in sorted(b for b in self._buckets if b * BUCKET_MS <= now_ms):
            for key in self._buckets.pop(bucket):
                # A key recorded again with a later expiry sits in a later bucket as well.
                if key in self._expires and self._expires[key] <= now_ms:
                    del self._expires[key]
                    del self._where[key]
                    dropped += 1
        self._oldest_bucket = min(self._buckets, default=None)
        return dropped

    def items(self) -> Iterator[tuple[bytes, tuple[Acceptance, ...], int]]:
        for key, places in self._where.items():
            yield key, places, self._expires[key]
