"""Limits of the operation model that every edge enforces (SDK, verifier)."""

from __future__ import annotations

import pytest

from jarvis.ops import MAX_OBJECT_ID_BYTES, SURELY_SHORT_OBJECT_ID_CHARS, object_id_too_long


@pytest.mark.parametrize(
    ("object_id", "size"),
    [
        ("ctr:1", None),
        ("ctr:" + "x" * (MAX_OBJECT_ID_BYTES - 4), None),
        ("ctr:" + "x" * (MAX_OBJECT_ID_BYTES - 3), 1025),
        ("ctr:" + "ß" * 510, None),  # 514 characters, 1,024 bytes
        ("ctr:" + "ß" * 511, 1026),
        ("ctr:" + "😀" * 255, None),  # 259 characters of 4 bytes but the prefix: 1,024 bytes
        ("ctr:" + "😀" * 256, 1028),
    ],
)
def test_object_id_limit_counts_utf8_bytes(object_id: str, size: int | None) -> None:
    why = object_id_too_long(object_id)
    if size is None:
        assert why is None
    else:
        assert why == f"object id of {size} bytes exceeds the limit of 1024 bytes (UTF-8)"


def test_the_cheap_character_bound_never_lets_a_long_id_through() -> None:
    worst = "😀" * SURELY_SHORT_OBJECT_ID_CHARS  # every character at the 4-byte maximum
    assert len(worst.encode()) <= MAX_OBJECT_ID_BYTES and object_id_too_long(worst) is None
