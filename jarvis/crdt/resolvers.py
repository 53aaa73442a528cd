"""Conflict resolvers for the LWW-Register: a total order on writes, so the winner of a merge is
the maximum - which keeps merge commutative, associative and idempotent whatever the resolver.

A resolver maps a write (value, timestamp, node) to a sort key; the larger key wins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Write = tuple[Any, int, str]
Resolver = Callable[[Write], tuple[Any, ...]]

# The seed's semantic example: some categories outrank recency.
CATEGORY_PRIORITY = ("security", "privacy", "performance", "convenience")


def value_key(value: Any) -> str:
    """Last tie-break, so the order is total even for equal keys: merge stays commutative."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def latest(w: Write) -> tuple[Any, ...]:
    """Timestamp-based resolution with node-id tie-breaking (the seed's default)."""
    return (w[1], w[2])


def category_resolver(w: Write) -> tuple[Any, ...]:
    """Category priority security > privacy > performance > convenience > anything else, then latest."""
    value = w[0]
    cat = value.get("category") if isinstance(value, dict) else None
    rank = len(CATEGORY_PRIORITY) - CATEGORY_PRIORITY.index(cat) if cat in CATEGORY_PRIORITY else 0
    return (rank, w[1], w[2])


RESOLVERS: dict[str, Resolver] = {"latest": latest, "category": category_resolver}


def resolver_name(r: Resolver) -> str:
    for name, fn in RESOLVERS.items():
        if fn is r:
            return name
    raise ValueError(f"register resolvers must be registered in RESOLVERS to serialize: {r!r}")
