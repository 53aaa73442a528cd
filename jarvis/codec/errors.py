"""Codec errors: every way bytes can fail to be an event, each with a message a human can act on."""

from __future__ import annotations

from jarvis.errors import JarvisError


class CodecError(JarvisError, ValueError):
    """The bytes are not a valid Jarvis event."""


class NotSingleObject(CodecError):
    """Missing the Avro single-object marker (0xC3 0x01)."""


class UnknownSchema(CodecError):
    """The fingerprint names no schema in schemas/."""


class TruncatedBody(CodecError):
    """The body ends before the record does, or is otherwise malformed Avro."""


class TooLarge(CodecError):
    """A compressed frame expands beyond the allowed size."""
