"""The file-backed AuthStore: API keys and roles under JARVIS_HOME/auth (hashes only, 0600).

  auth/keys.json    key id -> KeyRecord fields (SHA-256 of the key, the broker's hash, role, name)
  auth/roles.json   role name -> read / write patterns, tasks, admin

Readers reload a file when its mtime changes, so a running gateway sees a key created or revoked a
moment ago. Writers take a lock and replace the file atomically (as the trust store does).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jarvis.security.apikeys import (
    BUILTIN_ROLES,
    KEY_ID_HEX,
    ROLE_NAME,
    SECRET_BYTES,
    AuthError,
    KeyRecord,
    Principal,
    Role,
    hash_key,
    key_id_of,
    make_role,
    mosquitto_hash,
    new_key,
    verify_key,
)


def new_key_record(role: str, name: str | None = None) -> tuple[str, KeyRecord]:
    """A fresh key for `role` and its record (hashes only): (the key, shown once, the record)."""
    key, kid = new_key(secrets.token_bytes(KEY_ID_HEX // 2 + SECRET_BYTES))
    name = name or f"key-{kid}"
    if not ROLE_NAME.match(name):
        raise AuthError(f"key name {name!r} must be 1-64 of A-Z a-z 0-9 _ . - (it is the MQTT user name)")
    record = KeyRecord(
        kid, name, role, hash_key(key), mosquitto_hash(key, secrets.token_bytes(12)), int(time.time() * 1000)
    )
    return key, record


class FileAuthStore:
    def __init__(self, home: Path) -> None:
        self.dir = home / "auth"
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    # -- AuthStore --------------------------------------------------------------------------------
    def lookup(self, key: str) -> Principal | None:
        kid = key_id_of(key)
        if kid is None:
            return None
        raw = self._load("keys").get(kid)
        if raw is None:
            return None
        record = KeyRecord(**raw)
        if not verify_key(key, record):
            return None
        role = self.role(record.role)
        if role is None:  # its role was deleted: a key without grants grants nothing
            role = Role(record.role)
        return Principal(record.name, kid, role)

    def record(self, key_id: str) -> KeyRecord | None:
        raw = self._load("keys").get(key_id)
        return None if raw is None else KeyRecord(**raw)

    def role(self, name: str) -> Role | None:
        if name in BUILTIN_ROLES:
            return BUILTIN_ROLES[name]
        raw = self._load("roles").get(name)
        if raw is None:
            return None
        return Role(name, tuple(raw["read"]), tuple(raw["write"]), raw["tasks"], raw["admin"],
                    raw.get("clinical") is True)  # fmt: skip

    # -- administration ---------------------------------------------------------------------------
    def create_key(self, role: str, name: str | None = None) -> tuple[str, KeyRecord]:
        """A new key for `role`; returns (the key, shown once, its record)."""
        if self.role(role) is None:
            raise AuthError(f"no role {role!r}: create it with `jarvis auth role set {role} ...`")
        key, record = new_key_record(role, name)
        with self._editing("keys") as keys:
            if record.key_id in keys:  # 1 in 4 billion; a fresh draw is simpler than reasoning about it
                raise AuthError("key id collision, try again")
            if any(k["name"] == record.name and k["revoked_ms"] is None for k in keys.values()):
                raise AuthError(f"an active key is named {record.name!r} already")
            keys[record.key_id] = asdict(record)
        return key, record

    def revoke(self, key_id_or_name: str) -> KeyRecord:
        with self._editing("keys") as keys:
            for kid, raw in keys.items():
                if (kid == key_id_or_name or raw["name"] == key_id_or_name) and raw["revoked_ms"] is None:
                    raw["revoked_ms"] = int(time.time() * 1000)
                    return KeyRecord(**raw)
        raise AuthError(f"no active key {key_id_or_name!r}")

    def list_keys(self) -> list[KeyRecord]:
        return sorted((KeyRecord(**r) for r in self._load("keys").values()), key=lambda r: r.created_ms)

    def set_role(
        self, name: str, read: list[str], write: list[str], *, tasks: bool, admin: bool, clinical: bool = False
    ) -> Role:
        role = make_role(name, read, write, tasks=tasks, admin=admin, clinical=clinical)
        with self._editing("roles") as roles:
            roles[name] = role.record()
        return role

    def roles(self) -> list[Role]:
        names = [*BUILTIN_ROLES, *sorted(self._load("roles"))]
        return [r for n in names if (r := self.role(n)) is not None]

    # -- files ------------------------------------------------------------------------------------
    def _path(self, what: str) -> Path:
        return self.dir / f"{what}.json"

    def _load(self, what: str) -> dict[str, Any]:
        path = self._path(what)
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        cached = self._cache.get(what)
        if cached and cached[0] == mtime:
            return cached[1]
        data = json.loads(path.read_text())
        self._cache[what] = (mtime, data)
        return data

    @contextlib.contextmanager
    def _editing(self, what: str) -> Iterator[dict[str, Any]]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(what)
        with open(self.dir / f".{what}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._cache.pop(what, None)
            data = json.loads(json.dumps(self._load(what)))  # a copy: the cache stays what is on disk
            yield data
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
            tmp.replace(path)
        self._cache.pop(what, None)


def mosquitto_password_lines(records: list[KeyRecord], extra: dict[str, str] | None = None) -> list[str]:
    """The broker's password file: one `name:hash` per active key (plus `extra` users)."""
    lines = [f"{r.name}:{r.mqtt_hash}" for r in records if r.active]
    lines += [f"{user}:{h}" for user, h in (extra or {}).items()]
    return lines



ADMIN_KEY_NAME = "stack-admin"


def ensure_admin_key(home: Path, path: Path | None = None) -> tuple[str, bool]:
    """The host's bootstrap admin key at `path` (default JARVIS_HOME/auth/admin.key, 0600), made if
    missing or no longer valid in the file store: (the key, whether it was made now)."""
    store = FileAuthStore(home)
    path = path or store.dir / "admin.key"
    if path.exists():
        key = path.read_text().strip()
        if store.lookup(key) is not None:
            return key, False
    taken = any(r.name == ADMIN_KEY_NAME and r.active for r in store.list_keys())
    key, _ = store.create_key("admin", None if taken else ADMIN_KEY_NAME)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    tmp.replace(path)
    return key, True
