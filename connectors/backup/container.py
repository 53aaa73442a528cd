"""The encrypted backup file: authenticated chunks, so that `verify` names what is wrong.

    MAGIC (8) | header length (4, big-endian) | header (JSON, in the clear: version, created, key id)
    chunk*    : ciphertext length (4) | nonce (12) | AES-256-GCM ciphertext + tag

Each chunk's associated data is SHA-256(header) | chunk index (8) | final flag (1): a chunk moved,
dropped, taken from another backup or from under another header fails its tag; a file cut after a
chunk boundary lacks the chunk flagged final; a file cut inside a chunk ends short. The plaintext of
a chunk is one piece of a named entry: name length (2) | name (UTF-8) | data.

The key is 32 bytes the operator holds (JARVIS_BACKUP_KEY or a key file: 64 hex digits or base64);
the header carries only its id, SHA-256("jarvis-backup-key" | key)[:8], so a wrong key is named as
such before any decryption.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jarvis.errors import JarvisError

MAGIC = b"JVBKP\x00\x01\n"
FORMAT = 1
CHUNK = 1 << 20  # plaintext bytes per chunk (at most)
NONCE = 12
TAG = 16
MAX_HEADER = 1 << 16
MAX_CHUNK = CHUNK + 64 * 1024 + TAG  # ciphertext of one chunk, name included


class BackupError(JarvisError, ValueError):
    """A backup cannot be written, read or trusted; the message says why."""


class BackupCorrupt(BackupError):
    """The backup was altered, cut short or is not a backup: `verify` fails with this reason."""


def parse_key(text: str) -> bytes:
    """32 bytes from 64 hex digits or base64 (standard or URL-safe)."""
    text = text.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        key = base64.b64decode(
            text + "=" * (-len(text) % 4),
            altchars=b"-_" if ("-" in text or "_" in text) else None,
            validate=True,
        )
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise BackupError(
            "a backup key is 32 bytes, written as 64 hex digits or base64 (`jarvis backup keygen` makes one)"
        )
    return key


def new_key() -> str:
    return os.urandom(32).hex()


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"jarvis-backup-key" + key).hexdigest()[:16]


def _aad(header_hash: bytes, index: int, final: bool) -> bytes:
    return header_hash + struct.pack(">QB", index, 1 if final else 0)


class Writer:
    """Writes entries as encrypted chunks to a binary file; `close()` writes the final chunk."""

    def __init__(self, out: IO[bytes], key: bytes, header: dict[str, Any]) -> None:
        self.out = out
        self.aead = AESGCM(key)
        self.header = {**header, "format": FORMAT, "key_id": key_id(key)}
        raw = json.dumps(self.header, sort_keys=True).encode()
        out.write(MAGIC + struct.pack(">I", len(raw)) + raw)
        self.header_hash = hashlib.sha256(raw).digest()
        self.index = 0
        self.bytes_written = len(MAGIC) + 4 + len(raw)

    def _chunk(self, name: str, data: bytes, final: bool = False) -> None:
        encoded = name.encode()
        plain = struct.pack(">H", len(encoded)) + encoded + data
        nonce = os.urandom(NONCE)
        ct = self.aead.encrypt(nonce, plain, _aad(self.header_hash, self.index, final))
        self.out.write(struct.pack(">I", len(ct)) + nonce + ct)
        self.bytes_written += 4 + NONCE + len(ct)
        self.index += 1

    def write(self, name: str, data: bytes) -> None:
        for start in range(0, max(len(data), 1), CHUNK):
            self._chunk(name, data[start : start + CHUNK])

    def close(self, final_name: str, final_data: bytes) -> None:
        """The last entry (the manifest), in the chunk flagged final."""
        if len(final_data) > CHUNK:
            raise BackupError("the final entry must fit one chunk")
        self._chunk(final_name, final_data, final=True)


@dataclass
class Piece:
    index: int
    name: str
    data: bytes
    final: bool


def read_header(f: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupCorrupt("not a jarvis backup (its first bytes are not the backup format's)")
    raw_len = f.read(4)
    if len(raw_len) < 4:
        raise BackupCorrupt("truncated: the file ends inside its header")
    (n,) = struct.unpack(">I", raw_len)
    if n > MAX_HEADER:
        raise BackupCorrupt(f"header length {n} is impossible: the header was altered")
    raw = f.read(n)
    if len(raw) < n:
        raise BackupCorrupt("truncated: the file ends inside its header")
    try:
        header = json.loads(raw)
    except ValueError:
        raise BackupCorrupt("the header is not JSON: it was altered") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupCorrupt(
            f"unknown backup format {header.get('format') if isinstance(header, dict) else '?'}"
        )
    return header, raw


def read_pieces(f: IO[bytes], key: bytes) -> Iterator[Piece]:
    """Every chunk, decrypted and authenticated in order; BackupCorrupt with the reason otherwise.
    The caller must consume it to the end: only then is the final chunk known to be there."""
    header, raw = read_header(f)
    if header.get("key_id") != key_id(key):
        raise BackupError(
            f"this backup was encrypted with key {header.get('key_id')}, not with the key given ({key_id(key)})"
        )
    aead = AESGCM(key)
    header_hash = hashlib.sha256(raw).digest()
    offset = len(MAGIC) + 4 + len(raw)
    index = 0
    while True:
        head = f.read(4)
        if not head:
            raise BackupCorrupt(
                f"truncated: the file ends after chunk {index - 1} at byte {offset}, before the final chunk"
            )
        if len(head) < 4:
            raise BackupCorrupt(f"truncated: the file ends inside chunk {index} (byte {offset})")
        (n,) = struct.unpack(">I", head)
        if n < TAG + 2 or n > MAX_CHUNK:
            raise BackupCorrupt(
                f"chunk {index} at byte {offset} has an impossible length {n}: the backup was altered"
            )
        body = f.read(NONCE + n)
        if len(body) < NONCE + n:
            raise BackupCorrupt(
                f"truncated: the file ends inside chunk {index} (byte {offset}; {NONCE + n - len(body)} bytes missing)"
            )
        nonce, ct = body[:NONCE], body[NONCE:]
        plain = None
        final = False
        for flag in (False, True):
            try:
                plain = aead.decrypt(nonce, ct, _aad(header_hash, index, flag))
                final = flag
                break
            except InvalidTag:
                continue
        if plain is None:
            raise BackupCorrupt(
                f"chunk {index} (bytes {offset}-{offset + 4 + NONCE + n - 1}) failed authentication: "
                "the backup was altered (or its chunks reordered)"
            )
        (name_len,) = struct.unpack(">H", plain[:2])
        name = plain[2 : 2 + name_len].decode()
        offset += 4 + NONCE + n
        if final and f.read(1):
            raise BackupCorrupt(f"bytes after the final chunk (from byte {offset}): the backup was altered")
        yield Piece(index, name, plain[2 + name_len :], final)
        index += 1
        if final:
            return
