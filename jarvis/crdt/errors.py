"""Errors of the new CRDT types: each says what was wrong in words a caller can act on.

They derive from ValueError as well as the project's root error, because the fold and the verifier
already catch ValueError as "this operation cannot be applied" and route it to jarvis.ops.rejected
with its message.
"""

from __future__ import annotations

from jarvis.errors import JarvisError


class CrdtError(JarvisError, ValueError):
    """An operation or a state that a CRDT type cannot take."""


class BoundedCounterError(CrdtError):
    """A bounded-counter amount that is not a non-negative integer, a decrement or transfer beyond
    the rights held, or two counters with different bounds."""


class TextUpdateError(CrdtError):
    """Bytes that are not a Yrs (v1) update: malformed, truncated, or not base64."""


class MapError(CrdtError):
    """A map operation naming an unknown nested type or kind, or a key whose nested type differs."""
