"""CRC-64-AVRO, the fingerprint of the Avro specification's single-object encoding.

Implemented from the specification's reference algorithm (the empty-string fingerprint
0xc15d213aa4d7a795 is its polynomial), so we depend on no library's reading of byte order.
"""

from __future__ import annotations

EMPTY = 0xC15D213AA4D7A795


def _table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
        table.append(fp & 0xFFFFFFFFFFFFFFFF)
    return table


_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    fp = EMPTY
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp
