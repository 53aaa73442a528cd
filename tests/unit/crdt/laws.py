"""The CRDT laws as one check, for the types whose traces are built in their own test modules.

Given replicas that ran a random trace (with gossip) and the deltas their mutators returned: merge is
commutative, associative and idempotent; every delta delivered in any order, with duplicates, gives
the state of the full merge; and the plain data round-trips. test_laws.py checks the same for the
seed's types.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any


def merged(fresh: Callable[[str], Any], states: list[Any]) -> Any:
    out = fresh("z")
    for s in states:
        out.merge(s.copy())
    return out


def check_laws(
    fresh: Callable[[str], Any], replicas: list[Any], deltas: list[Any], rng: random.Random
) -> Any:
    """Assert the laws; returns the full merge."""
    a, b, c = replicas
    ab, ba = a.copy(), b.copy()
    ab.merge(b.copy())
    ba.merge(a.copy())
    assert ab == ba
    assert ab.value() == ba.value()
    left = a.copy()
    left.merge(b.copy())
    left.merge(c.copy())
    bc = b.copy()
    bc.merge(c.copy())
    right = a.copy()
    right.merge(bc)
    assert left == right and left.value() == right.value()
    again = left.copy()
    again.merge(left.copy())
    assert again == left
    full = merged(fresh, replicas)
    shuffled = deltas + rng.sample(deltas, k=len(deltas) // 2)
    rng.shuffle(shuffled)
    via_deltas = fresh("z")
    for d in shuffled:
        via_deltas.merge(d.copy())
    assert via_deltas.value() == full.value()
    assert via_deltas == full
    restored = type(full).from_dict(full.to_dict())
    assert restored == full and restored.value() == full.value()
    return full
