"""API keys, grants and the file store (jarvis/security/apikeys.py, key_store.py)."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jarvis.security.apikeys import (
    ADMIN,
    AuthError,
    Principal,
    Role,
    bearer_key,
    check_pattern,
    key_id_of,
    matches,
    mosquitto_hash,
    new_key,
    pages_after,
    scan_prefixes,
    write_denial,
)
from jarvis.security.key_store import FileAuthStore, mosquitto_password_lines


def test_a_key_names_its_record_and_carries_32_random_bytes() -> None:
    key, kid = new_key(bytes(range(36)))
    assert kid == "00010203"
    assert key.startswith("jk_00010203_")
    assert base64.urlsafe_b64decode(key.rsplit("_", 1)[1] + "=") == bytes(range(4, 36))
    assert key_id_of(key) == kid
    assert key_id_of("jk_0001020_x") is None and key_id_of("Bearer x") is None
    with pytest.raises(AuthError):
        new_key(b"short")


def test_patterns() -> None:
    assert matches("*", "patient:1")
    assert matches("inventory:*", "inventory:sku-1")
    assert not matches("inventory:*", "inventoryx:sku-1")
    assert not matches("inventory:*", "patient:1")
    assert matches("ctr:a", "ctr:a") and not matches("ctr:a", "ctr:ab")
    for bad in ("inv*", "", "a b:*", "*:*"):
        with pytest.raises(AuthError):
            check_pattern(bad)


def test_grants() -> None:
    reader = Principal("dash", "k1", Role("reader", read=("inventory:*",)))
    writer = Principal("device-17", "k2", Role("telemetry", read=(), write=("quality:*", "ctr:a")))
    assert reader.role.may_read("inventory:x") and not reader.role.may_read("patient:1")
    assert write_denial(reader, "inventory:x") == "dash (role reader) may not write inventory:x"
    assert write_denial(writer, "quality:line-1") is None and write_denial(writer, "ctr:a") is None
    assert write_denial(writer, "ctr:b") is not None
    assert ADMIN.may_write("anything:1") and ADMIN.may_read("x:y")


def test_bearer_header() -> None:
    assert bearer_key("Bearer jk_x") == "jk_x"
    assert bearer_key("bearer  jk_x ") == "jk_x"
    assert bearer_key("Basic abc") is None and bearer_key(None) is None and bearer_key("Bearer ") is None


def test_mosquitto_hash_is_pbkdf2_sha512_in_its_file_format() -> None:
    salt = b"0123456789ab"
    h = mosquitto_hash("secret", salt, 101)
    _, seven, it, s, d = h.split("$")
    assert (seven, it, base64.b64decode(s)) == ("7", "101", salt)
    assert base64.b64decode(d) == hashlib.pbkdf2_hmac("sha512", b"secret", salt, 101, 64)


def test_file_store_keeps_only_hashes_and_finds_the_principal(tmp_path: Path) -> None:
    store = FileAuthStore(tmp_path)
    with pytest.raises(AuthError, match="no role 'telemetry'"):
        store.create_key("telemetry")
    store.set_role("telemetry", ["quality:*"], ["quality:*"], tasks=False, admin=False)
    key, rec = store.create_key("telemetry", "device-17")
    raw = (tmp_path / "auth" / "keys.json").read_text()
    assert key not in raw and key.rsplit("_", 1)[1] not in raw
    assert stat.S_IMODE(os.stat(tmp_path / "auth" / "keys.json").st_mode) == 0o600
    p = store.lookup(key)
    assert p is not None and (p.name, p.key_id, p.role.write) == ("device-17", rec.key_id, ("quality:*",))
    # Another process (a running gateway) sees the change without restarting.
    other = FileAuthStore(tmp_path)
    assert other.lookup(key) is not None
    assert other.lookup(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert other.lookup("jk_ffffffff_" + "A" * 43) is None
    with pytest.raises(AuthError, match="named 'device-17' already"):
        store.create_key("telemetry", "device-17")
    store.revoke("device-17")
    assert other.lookup(key) is None
    assert mosquitto_password_lines(store.list_keys()) == []
    admin_key, _ = store.create_key("admin")
    assert store.lookup(admin_key).role is ADMIN  # type: ignore[union-attr]
    with pytest.raises(AuthError, match="built in"):
        store.set_role("admin", [], [], tasks=False, admin=False)
    assert [r.name for r in store.roles()] == ["admin", "telemetry"]


def test_a_key_record_passes_the_verifiers_rules_and_reads_back() -> None:
    """The record `jarvis auth key create` writes to auth:key:<id> must pass the gate: times in ms
    (1.7e12) are over the pipelines' number bound, so they travel as strings."""
    import time

    from jarvis.gate import RuleVerifier
    from jarvis.ops import Operation
    from jarvis.security.apikeys import KeyRecord, key_of_record
    from pipelines.loader import pipelines

    now = int(time.time() * 1000)
    rec = KeyRecord("0a1b2c3d", "ops-bot", "reader", "ab" * 32, "$7$x", now, now + 5)
    oid = "auth:key:0a1b2c3d"
    rule = pipelines().rule_for(oid)
    assert rule is not None
    op = Operation("op-1", oid, rule.crdt_type, "write", {"value": rec.record()}, "n", "eu", 1, {}, [])
    reasons, _ = RuleVerifier().check(op, rule)
    assert reasons == []
    assert key_of_record("0a1b2c3d", rec.record()) == rec


_IDS = st.lists(st.builds(lambda p, r: f"{p}:{r}", st.sampled_from(["ctr", "inv", "inventory", "patient"]),
                          st.text(alphabet="ab1é", max_size=3)), max_size=30, unique=True)  # fmt: skip
_PATTERNS = st.lists(st.sampled_from(["*", "ctr:*", "inv:*", "inventory:*", "patient:1", "ctr:a", "auth:*"]), max_size=3)


@given(ids=_IDS, patterns=_PATTERNS, prefix=st.sampled_from(["", "c", "ctr:", "ctr:a", "inv", "inventory:", "p"]),
       limit=st.integers(1, 5))  # fmt: skip
def test_a_listing_by_scan_prefixes_pages_over_exactly_what_the_grants_read(ids, patterns, prefix, limit) -> None:
    role = Role("r", tuple(patterns))
    store = sorted(ids)

    def list_ids(p: str, after: str | None, n: int) -> list[str]:  # what the cache does
        return [i for i in store if i.startswith(p) and (after is None or i > after)][:n]

    def page(after: str | None) -> tuple[list[str], str | None]:
        scans = scan_prefixes(role.read, prefix)
        got: list[str] = []
        for p, cursor in pages_after([prefix] if scans is None else scans, after):
            got += list_ids(p, cursor, limit - len(got))
            if len(got) == limit:
                return got, got[-1]
        return got, None

    listed: list[str] = []
    after = None
    for _ in range(100):
        got, after = page(after)
        listed += [i for i in got if role.may_read(i)]
        if after is None:
            break
    assert listed == [i for i in store if i.startswith(prefix) and role.may_read(i)]
