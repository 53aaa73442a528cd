"""Which partition an object lives in: Kafka's default (murmur2) partitioner, computed by us.

Every topic of the pipeline has the same partition count and every operation of an object goes to
partition murmur2(object_id) % n in ingress, in jarvis.ops and (MirrorMaker keeps partition numbers)
in every mirrored topic. Using the Java client's murmur2 means Faust's table router (aiokafka's
DefaultPartitioner) agrees with us on which worker owns an object.
"""

from __future__ import annotations


def murmur2(data: bytes) -> int:
    """The 32-bit murmur2 hash exactly as Kafka's Java client computes it (seed 0x9747b28c)."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    idx = length & ~3
    if extra == 3:
        h ^= data[idx + 2] << 16
    if extra >= 2:
        h ^= data[idx + 1] << 8
    if extra >= 1:
        h ^= data[idx]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(object_id: str, partitions: int) -> int:
    return (murmur2(object_id.encode()) & 0x7FFFFFFF) % partitions
