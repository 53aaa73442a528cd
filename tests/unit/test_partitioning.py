from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from jarvis.partitioning import murmur2, partition_for


@given(st.binary(max_size=64))
def test_murmur2_matches_aiokafka(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data) & 0xFFFFFFFF


@given(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=64))
def test_partition_matches_faust_router(object_id: str, n: int) -> None:
    # Faust routes table keys with aiokafka's DefaultPartitioner; we must agree with it.
    expected = DefaultPartitioner()(object_id.encode(), list(range(n)), list(range(n)))
    assert partition_for(object_id, n) == expected


def test_known_vector_from_kafka_java_client() -> None:
    # Utils.murmur2("21".getBytes()) in Kafka's own tests is -973932308.
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF
