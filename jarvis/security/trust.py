"""Trust in node keys as admin-signed records, folded into a view every verifier shares. Pure.

A node key is trusted when an admin key (Ed25519, JARVIS_ADMIN_PUBLIC_KEYS and/or
JARVIS_HOME/keys/admin) signs a *grant* for it: node id, key id, public key, the object-id patterns
the node may write (`*`, `inventory:*`, an exact id), the regions (none: every region) and when it
takes effect. A *revocation* names a key and the time from which it is no longer trusted. The
records travel on the compacted, mirrored `jarvis.trust` topic (connectors/trust_feed.py); any
region accepts any region's records because the admin signature, not the transport, makes them count.

The fold (TrustView) is a grow-only set of valid records, so it is idempotent and order-independent.
What a key is at time T: among its records in effect at T (grant: valid_from <= T, revocation:
at <= T), the one issued last wins; at equal issue times a revocation beats a grant. So a
revocation wins over every grant issued before it, whatever order they arrive in, and a re-grant
needs a newer record. Because the whole history is kept, an operation signed before a revocation
still verifies in a replay judged at its own time, while the live verifier judges at `now`.

`*` does not cover the reserved prefix `auth:` (roles and API keys as objects): writing there needs
an explicit `auth:*` (or exact `auth:...`) grant. Nor does it cover the clinical prefixes (patient
records, `clinical: true` in the pipeline definition, which the view is given): a node key is
clinical when an admin grants it the clinical prefix by name (`--write 'ehr:*'`), as a role is
clinical when marked so (jarvis/security/apikeys.py).
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jarvis.errors import JarvisError
from jarvis.security.apikeys import AUTH_PREFIX, AuthError, check_pattern
from jarvis.security.keys import key_id_of, public_b64

log = logging.getLogger(__name__)

RESERVED_PREFIX = AUTH_PREFIX
_NUL_RESERVED = "\0" + RESERVED_PREFIX
GRANT = "grant"
REVOKE = "revoke"
_DOMAIN = b"jarvis-trust-v1\n"  # a trust signature can never be mistaken for a batch signature
FOREVER_MS = 2**62


class TrustError(JarvisError, ValueError):
    """A trust record that cannot be made as asked; the message says why."""


def iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class TrustRecord:
    kind: str  # GRANT or REVOKE
    key_id: str
    node_id: str  # a revocation may leave it empty
    public_key: bytes  # raw Ed25519 (32 bytes); empty in a revocation
    write: tuple[str, ...]
    regions: tuple[str, ...]  # empty: every region
    effective_ms: int  # grant: valid from; revocation: not trusted from
    issued_ms: int  # when the admin signed it: orders the records of one key
    note: str
    admin_key_id: str
    signature: bytes = b""

    def payload(self) -> bytes:
        """What the admin signs: every field but the signature, canonical JSON."""
        body = {
            "kind": self.kind, "key_id": self.key_id, "node_id": self.node_id,
            "public_key": base64.b64encode(self.public_key).decode(), "write": list(self.write),
            "regions": list(self.regions), "effective_ms": self.effective_ms, "issued_ms": self.issued_ms,
            "note": self.note, "admin_key_id": self.admin_key_id,
        }  # fmt: skip
        return _DOMAIN + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.payload() + self.signature).hexdigest()[:32]

    @property
    def kafka_key(self) -> bytes:
        # Unique per content: compaction folds only identical re-publications (a dev client or
        # `stack up` granting the same key again), never a history the replay needs.
        return f"{self.kind}:{self.key_id}:{self.digest}".encode()

    @property
    def rank(self) -> tuple[int, int, str]:
        return (self.issued_ms, 1 if self.kind == REVOKE else 0, self.digest)

    def describe(self) -> str:
        what = f"{self.kind} of key {self.key_id}" + (f" (node {self.node_id})" if self.node_id else "")
        return f"{what} issued {iso_ms(self.issued_ms)} by admin key {self.admin_key_id}"


def _sign(record: TrustRecord, admin: Ed25519PrivateKey) -> TrustRecord:
    record = replace(record, admin_key_id=key_id_of(admin.public_key()), signature=b"")
    return replace(record, signature=admin.sign(record.payload()))


def make_grant(
    admin: Ed25519PrivateKey,
    node_id: str,
    public_key: Ed25519PublicKey | str,
    write: Iterable[str] = ("*",),
    *,
    regions: Iterable[str] = (),
    valid_from_ms: int = 0,
    issued_ms: int,
    note: str = "",
) -> TrustRecord:
    public = public_from(public_key)
    if not node_id:
        raise TrustError("a grant needs a node id")
    patterns = check_patterns(write)
    raw = base64.b64decode(public_b64(public))
    rec = TrustRecord(
        GRANT, key_id_of(public), node_id, raw, patterns, tuple(sorted(set(regions))), valid_from_ms,
        issued_ms, note, "",
    )  # fmt: skip
    return _sign(rec, admin)


def make_revocation(
    admin: Ed25519PrivateKey, key_id: str, *, at_ms: int, issued_ms: int, node_id: str = "", note: str = ""
) -> TrustRecord:
    if not key_id:
        raise TrustError("a revocation needs a key id")
    return _sign(TrustRecord(REVOKE, key_id, node_id, b"", (), (), at_ms, issued_ms, note, ""), admin)


def public_from(key: Ed25519PublicKey | str) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(key, validate=True))
    except (ValueError, TypeError) as e:
        raise TrustError(f"not a base64 Ed25519 public key (32 raw bytes): {e}") from None


def check_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    out = []
    for p in patterns:
        try:
            out.append(check_pattern(p))
        except AuthError as e:
            raise TrustError(str(e)) from None
    if not out:
        raise TrustError("a grant needs at least one write pattern ('*', '<prefix>:*' or an object id)")
    return tuple(sorted(set(out)))


class WriteScope:
    """The object ids a grant lets its node write, checked with one or two C-level calls per id."""

    __slots__ = ("patterns", "_all", "_prefixes", "_exact", "_text", "_clinical", "_nul_clinical")

    def __init__(self, patterns: Sequence[str], clinical: Iterable[str] = ()) -> None:
        self.patterns = tuple(patterns)
        # Id prefixes ("ehr:") `*` stops short of, like the reserved one.
        self._clinical = tuple(sorted(f"{p}:" for p in clinical))
        self._nul_clinical = tuple("\0" + c for c in self._clinical)
        self._all = "*" in self.patterns
        self._prefixes = tuple(p[:-1] for p in self.patterns if p.endswith(":*"))
        self._exact = frozenset(p for p in self.patterns if p != "*" and not p.endswith(":*"))
        self._text = ", ".join(self.patterns)

    def allows(self, object_id: str) -> bool:
        if object_id.startswith(RESERVED_PREFIX) or (self._clinical and object_id.startswith(self._clinical)):
            # `*` stops short of roles and API keys, and of patient records
            return object_id.startswith(self._prefixes) or object_id in self._exact
        return self._all or object_id.startswith(self._prefixes) or object_id in self._exact

    def denied(self, object_ids: Sequence[str]) -> list[int]:
        """Indexes of the ids this scope does not cover (usually none).

        The verifier runs this on every batch, so the usual outcome (all covered) is decided with
        C-level calls only: for `*`, one join and one substring search for the reserved prefix (an
        id holding NUL may make it look present, which only sends the batch the exact way); for
        prefix grants, str.startswith mapped over the ids."""
        if self._all:
            blob = "\0".join(object_ids)
            if not (blob.startswith(RESERVED_PREFIX) or _NUL_RESERVED in blob) and not (
                self._clinical and (blob.startswith(self._clinical) or any(c in blob for c in self._nul_clinical))
            ):
                return []
        elif self._prefixes and all(map(str.startswith, object_ids, repeat(self._prefixes))):
            return []
        allows = self.allows
        return [i for i, o in enumerate(object_ids) if not allows(o)]

    def denial(self, node_id: str, object_id: str) -> str:
        why = f"node {node_id} may not write {object_id[:120]} (grants: {self._text})"
        if self._clinical and object_id.startswith(self._clinical):
            prefix = object_id.partition(":")[0]
            why += f": {prefix}: objects are clinical: the node needs an admin grant naming {prefix}:*"
        return why


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """What a key may do at one moment: its public key and scope, or why it is not trusted."""

    public_key: Ed25519PublicKey | None
    scope: WriteScope | None
    reason: str | None
    node_id: str = ""

    @property
    def trusted(self) -> bool:
        return self.reason is None


@dataclass(slots=True)
class _KeyHistory:
    records: dict[str, TrustRecord] = field(default_factory=dict)  # by digest
    effects: list[int] = field(default_factory=list)  # sorted effective times
    winners: list[TrustRecord] = field(default_factory=list)  # the winner once effects[i] is reached
    public: Ed25519PublicKey | None = None
    scopes: dict[tuple[str, ...], WriteScope] = field(default_factory=dict)

    def add(self, rec: TrustRecord) -> bool:
        if rec.digest in self.records:
            return False
        self.records[rec.digest] = rec
        ordered = sorted(self.records.values(), key=lambda r: (r.effective_ms, r.rank))
        self.effects, self.winners = [], []
        best: TrustRecord | None = None
        for r in ordered:
            if best is None or r.rank > best.rank:
                best = r
            self.effects.append(r.effective_ms)
            self.winners.append(best)
        if rec.kind == GRANT and self.public is None:
            self.public = Ed25519PublicKey.from_public_bytes(rec.public_key)
        return True

    def at(self, t_ms: int) -> tuple[TrustRecord | None, int, int]:
        """The winning record at t, and the span [from, until) over which it stays the winner."""
        i = bisect.bisect_right(self.effects, t_ms) - 1
        until = self.effects[i + 1] if i + 1 < len(self.effects) else FOREVER_MS
        if i < 0:
            return None, -FOREVER_MS, until
        return self.winners[i], self.effects[i], until

    def scope(self, patterns: tuple[str, ...], clinical: tuple[str, ...]) -> WriteScope:
        s = self.scopes.get(patterns)
        if s is None:
            s = self.scopes[patterns] = WriteScope(patterns, clinical)
        return s


class TrustView:
    """Every valid trust record this process has read, and what they say at any time."""

    def __init__(self, admin_keys: Iterable[Ed25519PublicKey | str], clinical: Iterable[str] = ()) -> None:
        self.clinical = tuple(sorted(clinical))  # prefixes `*` does not reach (pipelines' `clinical: true`)
        self.admins: dict[str, Ed25519PublicKey] = {}
        for k in admin_keys:
            pub = public_from(k)
            self.admins[key_id_of(pub)] = pub
        self._keys: dict[str, _KeyHistory] = {}
        self.ignored: list[str] = []  # why records were not taken (the last 100)
        self.version = 0  # bumped by every record that changes the view
        # (region, node, key) -> (verdict, from, until): the live verifier asks about the same few
        # keys at ever later times, which is a dict lookup and two comparisons.
        self._cache: dict[tuple[str, str, str], tuple[KeyVerdict, int, int]] = {}

    # -- folding ----------------------------------------------------------------------------------
    def add(self, rec: TrustRecord) -> str | None:
        """Take a record; None if taken (or already known), else why it was ignored (also logged)."""
        why = self._invalid(rec)
        if why is not None:
            why = f"trust record ignored ({rec.describe()}): {why}"
            log.warning("%s", why)
            self.ignored = [*self.ignored[-99:], why]
            return why
        hist = self._keys.get(rec.key_id)
        if hist is None:
            hist = self._keys[rec.key_id] = _KeyHistory()
        if hist.add(rec):
            self.version += 1
            self._cache.clear()
        return None

    def add_all(self, records: Iterable[TrustRecord]) -> list[str]:
        return [why for r in records if (why := self.add(r)) is not None]

    def _invalid(self, rec: TrustRecord) -> str | None:
        admin = self.admins.get(rec.admin_key_id)
        if admin is None:
            return f"admin key {rec.admin_key_id!r} is not a known admin key"
        try:
            admin.verify(rec.signature, rec.payload())
        except InvalidSignature:
            return "the admin signature does not verify (altered or forged)"
        if rec.kind == GRANT:
            if len(rec.public_key) != 32:
                return f"public key of {len(rec.public_key)} bytes, expected 32"
            if key_id_of(Ed25519PublicKey.from_public_bytes(rec.public_key)) != rec.key_id:
                return "key id does not match the public key"
            if not rec.node_id:
                return "grant without a node id"
            try:
                check_patterns(rec.write)
            except TrustError as e:
                return str(e)
        elif rec.kind != REVOKE:
            return f"unknown record kind {rec.kind!r}"
        return None

    # -- questions --------------------------------------------------------------------------------
    def records(self) -> list[TrustRecord]:
        return sorted((r for h in self._keys.values() for r in h.records.values()), key=lambda r: r.rank)

    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def current(self, key_id: str, at_ms: int) -> TrustRecord | None:
        """The record that decides about the key at that time (None: nothing in effect yet)."""
        hist = self._keys.get(key_id)
        return hist.at(at_ms)[0] if hist else None

    def latest_grant(self, key_id: str) -> TrustRecord | None:
        hist = self._keys.get(key_id)
        grants = [r for r in hist.records.values() if r.kind == GRANT] if hist else []
        return max(grants, key=lambda r: r.rank) if grants else None

    def public_key(self, key_id: str) -> Ed25519PublicKey | None:
        hist = self._keys.get(key_id)
        return hist.public if hist else None

    def key(self, region: str, node_id: str, key_id: str, at_ms: int) -> KeyVerdict:
        """Whether `node_id` may sign with `key_id` in `region` at `at_ms`, with the reason if not."""
        ck = (region, node_id, key_id)
        cached = self._cache.get(ck)
        if cached is not None and cached[1] <= at_ms < cached[2]:
            return cached[0]
        verdict, since, until = self._judge(region, node_id, key_id, at_ms)
        if len(self._cache) > 10_000:  # keys from a flood of strangers: keep memory bounded
            self._cache.clear()
        self._cache[ck] = (verdict, since, until)
        return verdict

    def _judge(self, region: str, node_id: str, key_id: str, at_ms: int) -> tuple[KeyVerdict, int, int]:
        hist = self._keys.get(key_id)
        if hist is None:
            return _untrusted(key_id, node_id, region), -FOREVER_MS, FOREVER_MS
        rec, since, until = hist.at(at_ms)
        if rec is None:
            return _untrusted(key_id, node_id, region), since, until
        if rec.kind == REVOKE:
            owner = node_id or rec.node_id
            why = f"key {key_id} of node {owner} revoked at {iso_ms(rec.effective_ms)}"
            return KeyVerdict(None, None, why, owner), since, until
        if rec.node_id != node_id:
            why = f"key {key_id} is granted to node {rec.node_id}, not to node {node_id}"
            return KeyVerdict(None, None, why, rec.node_id), since, until
        if rec.regions and region not in rec.regions:
            why = f"key {key_id} of node {node_id} is not trusted in {region} (only in {', '.join(rec.regions)})"
            return KeyVerdict(None, None, why, node_id), since, until
        return KeyVerdict(hist.public, hist.scope(rec.write, self.clinical), None, node_id), since, until

    def op(self, region: str, node_id: str, key_id: str, object_id: str, at_ms: int) -> str | None:
        """Why an operation on `object_id` signed with the key at `at_ms` is not trusted (None: it is)."""
        v = self.key(region, node_id, key_id, at_ms)
        if v.reason is not None:
            return v.reason
        assert v.scope is not None
        return None if v.scope.allows(object_id) else v.scope.denial(node_id, object_id)


def _untrusted(key_id: str, node_id: str, region: str) -> KeyVerdict:
    return KeyVerdict(None, None, f"key {key_id} of node {node_id} is not trusted in {region}", node_id)


