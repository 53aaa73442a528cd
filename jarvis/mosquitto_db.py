"""Read Mosquitto 2.0's persistence file (`mosquitto.db`, format version 6), pure: which persistent
sessions the broker holds and how many messages it has queued for each.

This is the broker's own record of its sessions, written every `autosave_interval` and at shutdown
(atomically: a `.new` file renamed), so it needs no client connection and no log parsing. It does
not hold shared subscriptions: Mosquitto 2.0.11 persists only plain ones (checked against the
Debian package), so a session's share-group membership is inferred from its client id
(jarvis/mqtt_sessions.py).

Layout (mosquitto's src/persist.h): a 15-byte magic, a uint32 CRC (unused, 0) and a uint32 version,
then chunks, each a big-endian uint32 type and uint32 length followed by that many bytes. The chunks
read here:
  DB_CHUNK_CLIENT (6):     int64 expiry time, uint32 expiry interval, uint16 last mid, uint16 id
                           length, uint16 listener port, uint16 username length, 4 padding bytes;
                           the client id, the user name (not read: for a client without one,
                           2.0.11 writes a wrong length and that many bytes of its memory)
  DB_CHUNK_CLIENT_MSG (3): 8-byte store id, uint16 mid, uint16 id length, uint8 qos, state,
                           retain/dup, direction; the client id
  DB_CHUNK_SUB (5):        uint32 identifier, uint16 id length, uint16 topic length, uint8 qos,
                           options, 2 padding bytes; the client id, the topic
Every other chunk (configuration, message store, retained) is skipped by its length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from jarvis.errors import JarvisError

MAGIC = b"\x00\xb5\x00mosquitto db"
VERSION = 6
CHUNK_CLIENT_MSG, CHUNK_SUB, CHUNK_CLIENT = 3, 5, 6
DIRECTION_OUT = 1  # a message queued or in flight towards the client (0: an incoming QoS 2 one)

_HEADER = struct.Struct(">II")
_CLIENT = struct.Struct(">qIHHHH4x")
_CLIENT_MSG = struct.Struct(">8xHHBBBB")
_SUB = struct.Struct(">IHHBB2x")


class MosquittoDbError(JarvisError, ValueError):
    """A file this reader cannot take for a Mosquitto 2.0 persistence file."""


@dataclass(slots=True)
class Session:
    client_id: str
    queued: int = 0  # outgoing messages held for it (queued or in flight, unacknowledged)
    subscriptions: list[str] = field(default_factory=list)  # plain ones only (see the module doc)


def sessions(data: bytes) -> dict[str, Session]:
    """The persistent sessions a persistence file holds, by client id."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise MosquittoDbError("not a Mosquitto persistence file")
    (version,) = struct.unpack_from(">I", data, len(MAGIC) + 4)
    if version != VERSION:
        raise MosquittoDbError(f"Mosquitto persistence format {version}, not {VERSION} (Mosquitto 2.0)")
    out: dict[str, Session] = {}
    pos = len(MAGIC) + 8
    while pos + _HEADER.size <= len(data):
        kind, length = _HEADER.unpack_from(data, pos)
        body = data[pos + _HEADER.size : pos + _HEADER.size + length]
        if len(body) < length:
            raise MosquittoDbError(f"a chunk at byte {pos} is cut short")
        pos += _HEADER.size + length
        if kind == CHUNK_CLIENT:
            id_len = _CLIENT.unpack_from(body)[3]
            cid = _text(body, _CLIENT.size, id_len)
            out.setdefault(cid, Session(cid))
        elif kind == CHUNK_CLIENT_MSG:
            _, id_len, _, _, _, direction = _CLIENT_MSG.unpack_from(body)
            if direction == DIRECTION_OUT:
                out.setdefault(cid := _text(body, _CLIENT_MSG.size, id_len), Session(cid)).queued += 1
        elif kind == CHUNK_SUB:
            _, id_len, topic_len, _, _ = _SUB.unpack_from(body)
            cid = _text(body, _SUB.size, id_len)
            out.setdefault(cid, Session(cid)).subscriptions.append(_text(body, _SUB.size + id_len, topic_len))
    return out


def _text(body: bytes, start: int, n: int) -> str:
    if start + n > len(body):
        raise MosquittoDbError("a chunk's string runs past its end")
    return body[start : start + n].decode("utf-8", "replace")
