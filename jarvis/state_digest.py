"""Per-partition digests of a region's state, kept up to date as objects change (issue 24).

Two regions hold the same state when, partition by partition, their digests are equal
(connectors/regions.py `agreement`, `jarvis regions status`). An object contributes one line,
`object id NUL canonical JSON of its value LF` (the query API's value, keys sorted), as before. A
partition's digest was SHA-256 over its lines in object-id order: exact, but SHA-256 is sequential,
so one changed object meant hashing every line of its partition again, and GET /v1/digest at a
million objects held the fold's event loop for 12-20 s. Now each line is hashed on its own and a
partition's digest is SHA-256 of the number of its objects and the sum of their line hashes modulo
2^256 (a multiset hash, "AdHash"): adding, changing or removing an object is one subtraction and
one addition, and answering is O(partitions).

The digest detects divergence between regions running the same code; it is not an authenticator
(an adversary who controls states could search for a colliding sum; none does here: the states come
from signed, verified operations). Objects are equal when their lines are, as with the old digest.

`full_digests` computes the same values from scratch (the reference the property tests hold the
incremental one to). `ObservedDict` is a dict that tells a `StateDigest` which keys changed: put in
place of a table's storage, it sees every write, whoever makes it (the fold's writes, changelog
recovery, Faust dropping a partition no longer assigned), without the fold knowing.

Pure: hashlib and orjson only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from jarvis.partitioning import murmur2

MODULUS = 1 << 256
VERSION = "v2"  # sum of SHA-256 line hashes; v1 was SHA-256 over the sorted lines


def object_line(object_id: str, value: Any) -> bytes:
    """One object's contribution: its id and its value as canonical JSON."""
    return object_id.encode() + b"\0" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS) + b"\n"


def line_hash(line: bytes) -> int:
    return int.from_bytes(hashlib.sha256(line).digest(), "big")


def partition_digest(count: int, total: int) -> str:
    """The digest of a partition holding `count` objects whose line hashes sum to `total`."""
    return hashlib.sha256(b"jarvis state %s %d " % (VERSION.encode(), count) + total.to_bytes(32, "big")).hexdigest()


def _partition(key: bytes, partitions: int) -> int:
    # jarvis.partitioning.partition_for, from the id's bytes (table keys are bytes)
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def full_digests(objects: Iterable[tuple[str, Any]], partitions: int) -> dict[str, str]:
    """The digest of every partition holding an object, from (object id, value) pairs, from scratch."""
    count = [0] * partitions
    total = [0] * partitions
    for object_id, value in objects:
        p = _partition(object_id.encode(), partitions)
        count[p] += 1
        total[p] = (total[p] + line_hash(object_line(object_id, value))) % MODULUS
    return {str(p): partition_digest(count[p], total[p]) for p in range(partitions) if count[p]}


class StateDigest:
    """The digests of the objects put, kept by partition; `stale` holds keys whose object may have
    changed since it was last put (an ObservedDict fills it), for the owner to refresh."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._hash: dict[bytes, int] = {}  # object id (UTF-8) -> the hash of its line
        self._count = [0] * partitions
        self._total = [0] * partitions
        self.stale: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._hash)

    def __contains__(self, key: bytes) -> bool:
        return key in self._hash

    def put(self, key: bytes, value: Any) -> None:
        """Object `key` (its id, UTF-8) now has `value`."""
        h = line_hash(object_line(key.decode(), value))
        old = self._hash.get(key)
        if old == h:
            return
        p = _partition(key, self.partitions)
        if old is None:
            self._count[p] += 1
            self._total[p] = (self._total[p] + h) % MODULUS
        else:
            self._total[p] = (self._total[p] - old + h) % MODULUS
        self._hash[key] = h

    def discard(self, key: bytes) -> None:
        """Object `key` is no longer held here."""
        old = self._hash.pop(key, None)
        if old is not None:
            p = _partition(key, self.partitions)
            self._count[p] -= 1
            self._total[p] = (self._total[p] - old) % MODULUS

    def clear(self) -> None:
        self._hash.clear()
        self._count = [0] * self.partitions
        self._total = [0] * self.partitions
        self.stale.clear()

    def digests(self) -> dict[str, str]:
        """Per partition holding any object, its digest: O(partitions)."""
        return {
            str(p): partition_digest(self._count[p], self._total[p])
            for p in range(self.partitions)
            if self._count[p]
        }

    def refresh(self, value_of: Callable[[bytes], Any], limit: int | None = None) -> int:
        """Put (or discard, when `value_of` gives None) up to `limit` stale keys; returns how many
        are left. `value_of(key)` is the object's value now, wrapped: (value,) or None."""
        stale = self.stale
        n = len(stale) if limit is None else min(limit, len(stale))
        for _ in range(n):
            key = stale.pop()
            found = value_of(key)
            if found is None:
                self.discard(key)
            else:
                self.put(key, found[0])
        return len(stale)


class ObservedDict(dict):  # type: ignore[type-arg]
    """A dict that adds every key written or removed to `digest.stale` (keys: bytes or str)."""

    __slots__ = ("_stale", "_digest")

    def __init__(self, initial: dict[Any, Any], digest: StateDigest) -> None:
        super().__init__(initial)
        self._digest = digest
        self._stale = digest.stale
        self._stale.update(map(_as_bytes, initial))

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._stale.add(_as_bytes(key))

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._stale.add(_as_bytes(key))

    def pop(self, key: Any, *default: Any) -> Any:
        self._stale.add(_as_bytes(key))
        return super().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        k, v = super().popitem()
        self._stale.add(_as_bytes(k))
        return k, v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._stale.add(_as_bytes(key))
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        add = self._stale.add
        setitem = super().__setitem__
        for k, v in _pairs(*args, **kwargs):
            setitem(k, v)
            add(_as_bytes(k))

    def clear(self) -> None:
        # Everything is gone: every object held is forgotten (and any later write marks its key).
        super().clear()
        self._digest.clear()

    def __ior__(self, other: Any) -> ObservedDict:
        self.update(other)
        return self


def _as_bytes(key: Any) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


def _pairs(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
    if args:
        (other,) = args
        yield from (other.items() if hasattr(other, "items") else other)
    yield from kwargs.items()
