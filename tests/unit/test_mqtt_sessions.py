"""The gateways' MQTT session policy and the reader of Mosquitto's persistence file (pure)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from jarvis import mosquitto_db
from jarvis.mqtt_sessions import (
    Ghost,
    client_id,
    configured_instances,
    ghosts,
    parse_client_id,
    persistent,
    share_group,
    warning,
)
from jarvis.roles import role

# Written by Debian's Mosquitto 2.0.11 (`autosave_interval 1`): persistent sessions
# jarvis-ingest-eu-7 (in $share/jarvis-ingest-eu/telemetry/#, offline, 2 messages queued),
# jarvis-ingest-eu-0 (the same share and plain/#, 2 queued) and jarvis-ingest-us-3 (no user name:
# the broker's wrong user-name length, `other`).
RECORDED = Path(__file__).parent / "data" / "mosquitto-2.0.11.db"


def test_client_ids_round_trip_and_others_are_not_gateways() -> None:
    assert client_id("eu", 7) == "jarvis-ingest-eu-7"
    assert parse_client_id(client_id("eu-west", 12)) == ("eu-west", 12)
    assert share_group("us") == "jarvis-ingest-us"
    for other in ("device-17", "jarvis-ingest-eu", "jarvis-ingest-eu-x", "auto-1B14", "jarvis-ingest--1"):
        assert parse_client_id(other) is None, other


def test_only_configured_instances_keep_a_persistent_session() -> None:
    assert configured_instances() == role("ingest").instances
    assert [persistent(i, 2) for i in (-1, 0, 1, 2, 7)] == [False, True, True, False, False]


def test_ghosts_are_the_regions_unconfigured_gateway_sessions() -> None:
    held = [("jarvis-ingest-eu-0", 5), ("jarvis-ingest-eu-7", 12), ("jarvis-ingest-us-3", 1),
            ("device-17", 4), ("jarvis-ingest-eu-2", 0)]  # fmt: skip
    assert ghosts(held, "eu", 1) == [Ghost("jarvis-ingest-eu-2", "eu", 2, 0), Ghost("jarvis-ingest-eu-7", "eu", 7, 12)]
    assert ghosts(held, "eu", 8) == []
    assert ghosts(held, "us", 1) == [Ghost("jarvis-ingest-us-3", "us", 3, 1)]


def test_the_warning_names_the_session_and_both_ways_out() -> None:
    w = warning(Ghost("jarvis-ingest-eu-7", "eu", 7, 12))
    assert "jarvis-ingest-eu-7 (12 message(s) queued)" in w
    assert "jarvis worker ingest --region eu --instance 7" in w
    assert "jarvis ingest drop-session --region eu --instance 7" in w


def test_a_file_mosquitto_wrote_is_read() -> None:
    held = mosquitto_db.sessions(RECORDED.read_bytes())
    assert {c: (s.queued, s.subscriptions) for c, s in held.items()} == {
        "jarvis-ingest-eu-7": (2, []),  # shared subscriptions are not persisted by 2.0.11
        "jarvis-ingest-eu-0": (2, ["plain/#"]),
        "jarvis-ingest-us-3": (0, ["other"]),
    }
    assert ghosts(((c, s.queued) for c, s in held.items()), "eu", 1) == [Ghost("jarvis-ingest-eu-7", "eu", 7, 2)]


def _chunk(kind: int, body: bytes) -> bytes:
    return struct.pack(">II", kind, len(body)) + body


def _file(*chunks: bytes, version: int = 6) -> bytes:
    return mosquitto_db.MAGIC + struct.pack(">II", 0, version) + b"".join(chunks)


def _client(cid: str) -> bytes:
    return _chunk(6, struct.pack(">qIHHHH4x", 0, 0xFFFFFFFF, 3, len(cid), 11883, 0) + cid.encode())


def _client_msg(cid: str, mid: int, direction: int = 1) -> bytes:
    return _chunk(3, struct.pack(">8sHHBBBB", b"\x05" + bytes(7), mid, len(cid), 1, 11, 0, direction) + cid.encode())


def test_queued_messages_count_only_those_towards_the_client_and_unknown_chunks_are_skipped() -> None:
    data = _file(
        _chunk(1, bytes(16)),  # configuration
        _chunk(2, b"a stored message of any length"),
        _client("jarvis-ingest-eu-7"),
        _client_msg("jarvis-ingest-eu-7", 1),
        _client_msg("jarvis-ingest-eu-7", 2),
        _client_msg("jarvis-ingest-eu-7", 3, direction=0),  # an incoming QoS 2 message: not queued for it
        _chunk(99, b"a chunk of a later format"),
    )
    held = mosquitto_db.sessions(data)
    assert held["jarvis-ingest-eu-7"].queued == 2


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "not a Mosquitto persistence file"),
        (b"SQLite format 3\x00", "not a Mosquitto persistence file"),
        (_file(version=5), "format 5"),
        (_file(_client("jarvis-ingest-eu-7"))[:-3], "cut short"),
        (_file(_chunk(6, struct.pack(">qIHHHH4x", 0, 0, 0, 200, 0, 0) + b"short")), "runs past"),
    ],
)
def test_a_file_it_cannot_read_is_an_error_not_a_guess(data: bytes, says: str) -> None:
    with pytest.raises(mosquitto_db.MosquittoDbError, match=says):
        mosquitto_db.sessions(data)


def test_the_stack_reads_each_regions_broker_file_under_its_home(tmp_path: Path) -> None:
    from jarvis.config import Settings
    from jarvis.stack import mosquitto

    s = Settings(home=tmp_path)
    eu, us = s.region_config("eu"), s.region_config("us")
    assert mosquitto.ghost_sessions(s, eu) == []  # no file yet: the broker has saved nothing
    path = mosquitto.db_path(s, eu)
    path.parent.mkdir(parents=True)
    path.write_bytes(RECORDED.read_bytes())
    assert mosquitto.ghost_sessions(s, eu) == [Ghost("jarvis-ingest-eu-7", "eu", 7, 2)]
    assert mosquitto.ghost_sessions(s, us) == []
    path.write_bytes(b"garbage")
    with pytest.raises(mosquitto_db.MosquittoDbError):
        mosquitto.ghost_sessions(s, eu)
