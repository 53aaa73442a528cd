"""Avro single-object encoding (0xC3 0x01 + 8-byte CRC-64-AVRO fingerprint + body), with an
optional lz4 frame around it for large batches.

A Kafka value is either a single-object message (first bytes C3 01) or an lz4 frame (first bytes
04 22 4D 18, lz4's frame magic) whose content is a single-object message; the two markers cannot
collide, so no extra flag byte is needed and uncompressed messages stay readable by any decoder
that implements the specification.
"""

from __future__ import annotations

import io
from typing import Any

import lz4.frame
from fastavro import schemaless_reader, schemaless_writer

from jarvis.codec.errors import CodecError, NotSingleObject, TooLarge, TruncatedBody
from jarvis.codec.store import SchemaStore, store

MAGIC = b"\xc3\x01"
LZ4_MAGIC = b"\x04\x22\x4d\x18"
HEADER = 10
MAX_DECOMPRESSED = 64 * 1024 * 1024


def encode(
    name: str, record: dict[str, Any], *, compress: bool = False, schemas: SchemaStore | None = None
) -> bytes:
    s = (schemas or store()).schema(name)
    buf = io.BytesIO()
    buf.write(MAGIC)
    buf.write(s.fingerprint)
    schemaless_writer(buf, s.parsed, record)
    data = buf.getvalue()
    return lz4.frame.compress(data) if compress else data


def decode(
    data: bytes, reader: str | None = None, *, schemas: SchemaStore | None = None
) -> tuple[str, dict[str, Any]]:
    """Decode a message; with `reader`, resolve the writer's schema into that (newer) reader schema."""
    st = schemas or store()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:4] == LZ4_MAGIC:
        try:
            data = lz4.frame.decompress(data)
        except RuntimeError as e:
            raise TruncatedBody(f"corrupt lz4 frame: {e}") from None
        if len(data) > MAX_DECOMPRESSED:
            raise TooLarge(f"lz4 frame expands to {len(data)} bytes (limit {MAX_DECOMPRESSED})")
    if len(data) < HEADER or data[:2] != MAGIC:
        head = data[:4].hex() or "empty"
        raise NotSingleObject(f"not an Avro single-object message (starts with {head}, expected c301)")
    writer = st.writer(data[2:HEADER])
    reader_schema = st.schema(reader).parsed if reader else writer.parsed
    body = io.BytesIO(data)
    body.seek(HEADER)
    try:
        record = schemaless_reader(body, writer.parsed, reader_schema)
    except (EOFError, IndexError, ValueError, TypeError, UnicodeDecodeError, OverflowError, MemoryError) as e:
        raise TruncatedBody(f"malformed {writer.name} body: {type(e).__name__}: {e}") from None
    if body.tell() != len(data):
        raise TruncatedBody(f"{len(data) - body.tell()} trailing bytes after the {writer.name} record")
    name = reader_schema["name"] if isinstance(reader_schema, dict) else writer.name
    return name, record
