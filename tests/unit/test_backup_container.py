"""The backup file format on its own: round trip, and every way a file can be altered or cut is
caught with its reason (the `verify` of a real backup: tests/integration/test_backup.py)."""

from __future__ import annotations

import io
import json
import os
import struct

import pytest

from connectors.backup.backup import Reading
from connectors.backup.container import (
    CHUNK,
    MAGIC,
    BackupCorrupt,
    BackupError,
    Writer,
    key_id,
    new_key,
    parse_key,
    read_pieces,
)
from connectors.backup.stores import FolderStore, open_store

KEY = parse_key(new_key())


def backup_bytes(key: bytes = KEY, entries: dict[str, bytes] | None = None) -> bytes:
    entries = (
        entries if entries is not None else {"schema.json": b"{}", "table/ops": os.urandom(CHUNK + 5000)}
    )
    out = io.BytesIO()
    w = Writer(out, key, {"version": "v1", "created": "now"})
    import hashlib

    manifest = {"entries": {}}
    for name, data in entries.items():
        w.write(name, data)
        if name != "schema.json":
            manifest["entries"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    w.close("manifest.json", json.dumps(manifest).encode())
    return out.getvalue()


def read_all(raw: bytes, key: bytes = KEY) -> dict[str, bytes]:
    r = Reading(io.BytesIO(raw), key, lambda *_: None)
    got: dict[str, bytes] = {}
    for name, data in r.entries():
        got[name] = got.get(name, b"") + data
    assert r.manifest is not None
    return got


def chunk_offsets(raw: bytes) -> list[int]:
    (n,) = struct.unpack(">I", raw[len(MAGIC) : len(MAGIC) + 4])
    pos = len(MAGIC) + 4 + n
    offsets = []
    while pos < len(raw):
        offsets.append(pos)
        (m,) = struct.unpack(">I", raw[pos : pos + 4])
        pos += 4 + 12 + m
    return offsets


def test_round_trip_keeps_every_entry_and_splits_large_ones() -> None:
    data = os.urandom(2 * CHUNK + 17)
    raw = backup_bytes(entries={"schema.json": b"{}", "table/ops": data, "keys/a": b"k"})
    assert read_all(raw) == {"schema.json": b"{}", "table/ops": data, "keys/a": b"k"}
    assert len(chunk_offsets(raw)) == 1 + 3 + 1 + 1  # schema, 3 of ops, a key, the manifest
    assert data[:64] not in raw  # encrypted


def test_keys_parse_from_hex_and_base64_and_nothing_else() -> None:
    key = os.urandom(32)
    import base64

    assert parse_key(key.hex()) == parse_key(base64.b64encode(key).decode()) == key
    assert parse_key(base64.urlsafe_b64encode(key).decode()) == key
    for bad in ("", "abc", key.hex()[:-2], base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(BackupError, match="32 bytes"):
            parse_key(bad)


def test_a_wrong_key_is_named_as_such() -> None:
    other = parse_key(new_key())
    with pytest.raises(BackupError, match=f"encrypted with key {key_id(KEY)}, not with the key given"):
        read_all(backup_bytes(), other)


def test_a_flipped_byte_fails_the_chunk_it_is_in() -> None:
    raw = bytearray(backup_bytes())
    second = chunk_offsets(bytes(raw))[1]
    raw[second + 100] ^= 0x01
    with pytest.raises(
        BackupCorrupt, match=r"chunk 1 \(bytes \d+-\d+\) failed authentication: the backup was altered"
    ):
        read_all(bytes(raw))


def test_an_altered_header_fails_the_first_chunk() -> None:
    raw = backup_bytes().replace(b'"created": "now"', b'"created": "new"')
    with pytest.raises(BackupCorrupt, match="chunk 0 .* failed authentication"):
        read_all(raw)


def test_swapped_chunks_fail() -> None:
    raw = backup_bytes(entries={"schema.json": b"{}", "a": b"x" * 100, "b": b"y" * 100})
    o = chunk_offsets(raw)
    a, b = raw[o[1] : o[2]], raw[o[2] : o[3]]
    swapped = raw[: o[1]] + b + a + raw[o[3] :]
    with pytest.raises(BackupCorrupt, match="chunk 1 .* failed authentication"):
        read_all(swapped)


@pytest.mark.parametrize("where", ["at a chunk boundary", "inside a chunk", "inside the header"])
def test_a_truncated_backup_says_so(where: str) -> None:
    raw = backup_bytes()
    o = chunk_offsets(raw)
    cut = {"at a chunk boundary": o[-1], "inside a chunk": o[1] + 1000, "inside the header": 20}[where]
    with pytest.raises(BackupCorrupt, match="truncated"):
        read_all(raw[:cut])


def test_bytes_after_the_final_chunk_are_caught() -> None:
    with pytest.raises(BackupCorrupt, match="after the final chunk"):
        read_all(backup_bytes() + b"\0")


def test_not_a_backup() -> None:
    with pytest.raises(BackupCorrupt, match="not a jarvis backup"):
        list(read_pieces(io.BytesIO(b"PGDMP" + b"\0" * 100), KEY))


def test_an_entry_that_disagrees_with_the_manifest_is_caught() -> None:
    # Written with the key (so every tag holds) but with a manifest from other data.
    out = io.BytesIO()
    w = Writer(out, KEY, {"version": "v", "created": "c"})
    w.write("schema.json", b"{}")
    w.write("table/ops", b"rows")
    w.close(
        "manifest.json", json.dumps({"entries": {"table/ops": {"bytes": 4, "sha256": "00" * 32}}}).encode()
    )
    with pytest.raises(BackupCorrupt, match="table/ops: 4 bytes, SHA-256 .* differ from the manifest"):
        read_all(out.getvalue())


def test_folder_store_versions_appear_only_when_complete(tmp_path) -> None:
    store = FolderStore(tmp_path / "b")
    with pytest.raises(RuntimeError), store.writer("20260101T000000Z-aaaaaa") as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert store.list() == []
    with store.writer("20260101T000000Z-aaaaaa") as f:
        f.write(b"whole")
    with store.writer("20260102T000000Z-bbbbbb") as f:
        f.write(b"later")
    assert [s.version for s in store.list()] == ["20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb"]
    assert oct((tmp_path / "b" / "20260101T000000Z-aaaaaa.jbk").stat().st_mode & 0o777) == "0o600"


def test_destinations() -> None:
    assert open_store("s3://bucket/some/prefix").where == "s3://bucket/some/prefix"
    for bad in ("s3://", "gs://bucket/x"):
        with pytest.raises(BackupError):
            open_store(bad)
