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
    data: bytes, reader: str | None = None, *, schemas: SchemaStore | None = None, expect: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Decode a message; with `reader`, resolve the writer's schema into that (newer) reader schema.
    With `expect` (a record name), a message of another record is refused before its body is read."""
    st = schemas or store()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:4] == LZ4_MAGIC:
        data = _inflate(data)
    if len(data) < HEADER or data[:2] != MAGIC:
        head = data[:4].hex() or "empty"
        raise NotSingleObject(f"not an Avro single-object message (starts with {head}, expected c301)")
    writer = st.writer(data[2:HEADER])
    if expect is not None and not writer.name.endswith(f".{expect}"):
        raise CodecError(f"expected an {expect}, got a {writer.name}")
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


def _inflate(frame: bytes) -> bytes:
    """The content of an lz4 frame, never more than MAX_DECOMPRESSED bytes of it: a 1 MB frame of
    zeros expands to 250 MB, so the limit is applied while decompressing, not after."""
    d = lz4.frame.LZ4FrameDecompressor()
    try:
        data = d.decompress(frame, max_length=MAX_DECOMPRESSED + 1)
    except RuntimeError as e:
        raise TruncatedBody(f"corrupt lz4 frame: {e}") from None
    if len(data) > MAX_DECOMPRESSED:
        raise TooLarge(f"lz4 frame expands to more than {MAX_DECOMPRESSED} bytes (the limit)")
    if not d.eof:
        raise TruncatedBody("corrupt lz4 frame: it ends before its last block")
    if d.unused_data:
        raise TruncatedBody(f"{len(d.unused_data)} trailing bytes after the lz4 frame")
    return data
