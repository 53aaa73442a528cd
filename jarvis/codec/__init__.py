"""Avro codec: single-object encoding resolved from schemas/ by fingerprint (no registry needed)."""

from jarvis.codec.errors import CodecError, NotSingleObject, TooLarge, TruncatedBody, UnknownSchema
from jarvis.codec.records import (
    decode_batch,
    decode_op,
    decode_rejected,
    decode_verified,
    decode_verified_runs,
    encode_batch,
    encode_op,
    encode_rejected,
    encode_verified,
    op_content,
)
from jarvis.codec.single_object import decode, encode
from jarvis.codec.store import SchemaStore, store

__all__ = [
    "CodecError", "NotSingleObject", "TooLarge", "TruncatedBody", "UnknownSchema", "SchemaStore", "store",
    "encode", "decode", "encode_op", "decode_op", "encode_batch", "decode_batch", "encode_verified",
    "decode_verified", "decode_verified_runs", "encode_rejected", "decode_rejected", "op_content",
]  # fmt: skip
