"""API keys, roles and grants: who a caller is and what it may read or write. Pure (no I/O).

A key is `jk_<key id>_<secret>`: 8 hex digits that name the key's record (so a lookup is one dict
access, not a hash of every stored key) and 32 random bytes, URL-safe base64. Only the SHA-256 of
the whole key is stored: a 256-bit random secret needs no slow hash (nothing to brute-force), and a
stored hash that leaks does not let anyone in. Comparison is constant-time.

The MQTT broker checks the same key as a password, in its own password-file format (Mosquitto's
`$7$` PBKDF2-SHA512); that hash is made when the key is created, since the key itself is never kept.

A role grants object-id patterns to read and to write: `*` (everything), `inventory:*` (a prefix),
or an exact id. `admin` is built in and grants everything. The store behind lookups is an interface
(`AuthStore`): the file store (jarvis/security/key_store.py, host-local: the bootstrap admin key)
and the replicated view of the `auth:` objects (connectors/auth_view.py).

Roles and key records are themselves objects of the pipeline, LWW registers under the reserved
prefix `auth:` (`auth:role:<name>`, `auth:key:<key id>`): only an admin role reads or writes them,
whatever its patterns say (a `*` grant does not reach `auth:`), since they hold key hashes and
decide everyone's access.

Clinical objects (the prefixes the pipeline definition marks `clinical: true`, pipelines/default.yaml:
patient records) are read and written only by a role that is clinical (`jarvis auth role set NAME
--clinical`) AND grants the object: neither `admin` nor a `*` grant alone reaches them, so holding
the operator's key is not access to patient data. The denial names the clinical role as what is
missing; every granted read of one is written to the access audit by the service that served it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Protocol

from jarvis.errors import JarvisError

KEY_PREFIX = "jk_"
SECRET_BYTES = 32
KEY_ID_HEX = 8
_KEY = re.compile(r"^jk_([0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
_PATTERN = re.compile(r"^(\*|[a-z0-9_-]+:\*|[a-z0-9_-]+:.+)$")
ROLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
AUTH_PREFIX = "auth:"  # reserved: roles and key records (admin only)
ROLE_OBJECT = AUTH_PREFIX + "role:"
KEY_OBJECT = AUTH_PREFIX + "key:"
MOSQUITTO_ITERATIONS = 101  # mosquitto_passwd's default for $7$


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    tasks: bool = False  # may submit agent tasks
    admin: bool = False  # may change roles, keys and trust
    clinical: bool = False  # may read and write the clinical objects its grants name

    def may_read(self, object_id: str) -> bool:
        if clinical_object(object_id):
            return self.clinical and any_match(self.read, object_id)
        return self.admin or (not reserved(object_id) and any_match(self.read, object_id))

    def may_write(self, object_id: str) -> bool:
        if clinical_object(object_id):
            return self.clinical and any_match(self.write, object_id)
        return self.admin or (not reserved(object_id) and any_match(self.write, object_id))

    @property
    def reads_everything(self) -> bool:
        """Reads every object but the reserved and clinical ones: what a digest needs (it holds only
        hashes of state, the clinical objects' of their ciphertext)."""
        return self.admin or "*" in self.read

    def record(self) -> dict[str, Any]:
        """The value of its `auth:role:<name>` register."""
        return {"read": list(self.read), "write": list(self.write), "tasks": self.tasks, "admin": self.admin,
                "clinical": self.clinical}  # fmt: skip


ADMIN = Role("admin", ("*",), ("*",), tasks=True, admin=True)
BUILTIN_ROLES = {ADMIN.name: ADMIN}


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    name: str  # the principal operations record
    role: str
    sha256: str  # hex SHA-256 of the whole key
    mqtt_hash: str  # the broker's password-file hash of the key
    created_ms: int
    revoked_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_ms is None

    def record(self) -> dict[str, Any]:
        """The value of its `auth:key:<id>` register (the key's hashes, never the key). Times are
        strings: milliseconds since 1970 exceed the pipelines' bound on numbers in args (1e12)."""
        d = asdict(self)
        for k in ("created_ms", "revoked_ms"):
            if d[k] is not None:
                d[k] = str(d[k])
        return d


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    key_id: str
    role: Role = field(default=ADMIN)


class AuthStore(Protocol):
    """Where keys and roles live; the gateway and the query API see only this."""

    def lookup(self, key: str) -> Principal | None:
        """The key's principal; None if unknown, revoked or wrong. Raises AuthNotReady when the
        store cannot tell yet."""
        ...

    def role(self, name: str) -> Role | None: ...


class AuthError(JarvisError, ValueError):
    """A key, role or pattern that is not acceptable; the message says why."""


class AuthNotReady(JarvisError, RuntimeError):
    """The replicated view of roles and keys is not loaded yet: nobody can be let in (fail closed)."""


def reserved(object_id: str) -> bool:
    return object_id.startswith(AUTH_PREFIX)


@cache
def clinical_prefixes() -> frozenset[str]:
    """The prefixes (without ':') the pipeline definition marks `clinical: true`."""
    # Lazy: the pipeline loader reads the configuration, which imports this package.
    from pipelines.loader import pipelines

    return frozenset(pipelines().clinical_prefixes())


def clinical_object(object_id: str) -> bool:
    """Whether the object's prefix is clinical (the same split as Pipelines.rule_for)."""
    prefix, sep, rest = object_id.partition(":")
    return bool(sep and rest) and prefix in clinical_prefixes()


def role_of_record(name: str, value: Any) -> Role | None:
    """A role from its register's value (None if the value is not one: a bad write grants nothing)."""
    if not isinstance(value, dict) or not ROLE_NAME.match(name) or name in BUILTIN_ROLES:
        return None
    try:
        read = tuple(check_pattern(p) for p in value.get("read", ()))
        write = tuple(check_pattern(p) for p in value.get("write", ()))
    except (AuthError, TypeError):
        return None
    return Role(name, read, write, tasks=value.get("tasks") is True, admin=value.get("admin") is True,
                clinical=value.get("clinical") is True)  # fmt: skip


def key_of_record(key_id: str, value: Any) -> KeyRecord | None:
    """A key record from its register's value (None if malformed)."""
    if not isinstance(value, dict):
        return None
    try:
        rec = KeyRecord(
            key_id=key_id, name=str(value["name"]), role=str(value["role"]), sha256=str(value["sha256"]),
            mqtt_hash=str(value.get("mqtt_hash", "")), created_ms=int(value.get("created_ms", 0)),
            revoked_ms=None if value.get("revoked_ms") is None else int(value["revoked_ms"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None
    return rec if re.fullmatch(r"[0-9a-f]{8}", key_id) and re.fullmatch(r"[0-9a-f]{64}", rec.sha256) else None


def new_key(random_bytes: bytes) -> tuple[str, str]:
    """A key from KEY_ID_HEX / 2 + SECRET_BYTES random bytes: (key, key id)."""
    if len(random_bytes) != KEY_ID_HEX // 2 + SECRET_BYTES:
        raise AuthError(f"need {KEY_ID_HEX // 2 + SECRET_BYTES} random bytes")
    key_id = random_bytes[: KEY_ID_HEX // 2].hex()
    secret = base64.urlsafe_b64encode(random_bytes[KEY_ID_HEX // 2 :]).decode().rstrip("=")
    return f"{KEY_PREFIX}{key_id}_{secret}", key_id


def key_id_of(key: str) -> str | None:
    """The record a presented key names, or None if it is not shaped like one of our keys."""
    m = _KEY.match(key)
    return m.group(1) if m else None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def verify_key(key: str, record: KeyRecord) -> bool:
    return record.active and hmac.compare_digest(hash_key(key), record.sha256)


def mosquitto_hash(password: str, salt: bytes, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """Mosquitto's password-file hash ($7$: PBKDF2-HMAC-SHA512, 64-byte digest)."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def bearer_key(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header (None if absent or another scheme)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def matches(pattern: str, object_id: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(":*"):
        return object_id.startswith(pattern[:-1])
    return object_id == pattern


def any_match(patterns: Iterable[str], object_id: str) -> bool:
    return any(matches(p, object_id) for p in patterns)


def scan_prefixes(patterns: Iterable[str], prefix: str) -> list[str] | None:
    """The id prefixes a listing under `prefix` needs to scan for a reader of `patterns`: None when
    `*` makes it the whole of `prefix`, else each grant narrowed to `prefix` (sorted, none inside
    another). A listing then never scans pages of ids the reader may not see (its answer is still
    filtered by `may_read`: an exact-id grant scans that id as a prefix)."""
    pats = list(patterns)
    if "*" in pats:
        return None
    out: set[str] = set()
    for p in pats:
        base = p[:-1] if p.endswith(":*") else p
        if base.startswith(prefix):
            out.add(base)
        elif prefix.startswith(base) and p.endswith(":*"):
            out.add(prefix)
    ordered = sorted(out)
    return [q for i, q in enumerate(ordered) if not any(q.startswith(o) for o in ordered[:i])]


def pages_after(prefixes: list[str], after: str | None) -> list[tuple[str, str | None]]:
    """(prefix, cursor) pairs to continue a listing over sorted `prefixes` after id `after`: a
    prefix wholly before the cursor is done, the one holding it goes on from it, later ones start."""
    out: list[tuple[str, str | None]] = []
    for p in prefixes:
        if after is None or after < p:
            out.append((p, None))
        elif after.startswith(p):
            out.append((p, after))
    return out


def check_pattern(pattern: str) -> str:
    if not _PATTERN.match(pattern):
        raise AuthError(f"grant pattern {pattern!r} must be '*', '<prefix>:*' or an object id")
    return pattern


def make_role(
    name: str, read: Iterable[str], write: Iterable[str], *, tasks: bool, admin: bool, clinical: bool = False
) -> Role:
    if not ROLE_NAME.match(name):
        raise AuthError(f"role name {name!r} must be 1-64 of A-Z a-z 0-9 _ . -")
    if name in BUILTIN_ROLES:
        raise AuthError(f"role {name!r} is built in and cannot be changed")
    return Role(
        name,
        tuple(check_pattern(p) for p in read),
        tuple(check_pattern(p) for p in write),
        tasks=tasks,
        admin=admin,
        clinical=clinical,
    )


def _clinical_reason(role: Role, object_id: str) -> str:
    prefix = object_id.partition(":")[0]
    if role.clinical:
        return f"its clinical role does not grant {prefix}:*"
    return (f"{prefix}: objects are clinical: a clinical role that grants them is needed "
            f"(jarvis auth role set NAME --clinical --read '{prefix}:*'); admin or '*' alone is not")  # fmt: skip


def read_denial(principal: Principal, object_id: str) -> str | None:
    """Why `principal` may not read `object_id` (None: it may). Decided on the id alone, so the
    answer is the same whether the object exists or not."""
    role = principal.role
    if role.may_read(object_id):
        return None
    why = f"{principal.name} (role {role.name}) may not read {object_id[:80]}"
    return f"{why}: {_clinical_reason(role, object_id)}" if clinical_object(object_id) else why


def write_denial(principal: Principal, object_id: str) -> str | None:
    """Why `principal` may not write `object_id` (None: it may)."""
    role = principal.role
    if role.may_write(object_id):
        return None
    why = f"{principal.name} (role {role.name}) may not write {object_id[:80]}"
    return f"{why}: {_clinical_reason(role, object_id)}" if clinical_object(object_id) else why
