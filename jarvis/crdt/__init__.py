"""Pure CRDTs: the seed's types, each a join-semilattice with delta-returning mutators.

No I/O here: this package imports only the standard library and pycrdt (Text's Yrs documents, a pure
CRDT library), so every law is testable in isolation.
"""

from jarvis.crdt.bcounter import BoundedCounter, judge_decrement, judge_transfer
from jarvis.crdt.clocks import HLC, VectorClock, hlc_pack, hlc_unpack
from jarvis.crdt.counters import GCounter, PNCounter
from jarvis.crdt.graph import Graph
from jarvis.crdt.gset import GSet
from jarvis.crdt.map import Map
from jarvis.crdt.orset import ORSet
from jarvis.crdt.register import LWWRegister
from jarvis.crdt.resolvers import CATEGORY_PRIORITY, RESOLVERS, category_resolver, latest
from jarvis.crdt.text import Text
from jarvis.crdt.timeseries import TimeSeries
from jarvis.crdt.workflow import GUARDS, Workflow

# Registering the built-in types on first import of the package: every user of jarvis.crdt.registry
# imports this package first, so the registry is never seen without them.
from jarvis.crdt import builtin_types as _builtin_types  # noqa: E402, F401  isort: skip
from jarvis.crdt import bcounter_spec as _bcounter_spec  # noqa: E402, F401  isort: skip
from jarvis.crdt import map_spec as _map_spec  # noqa: E402, F401  isort: skip
from jarvis.crdt import text_spec as _text_spec  # noqa: E402, F401  isort: skip

__all__ = [
    "HLC", "VectorClock", "hlc_pack", "hlc_unpack", "GCounter", "PNCounter", "GSet", "ORSet", "LWWRegister",
    "TimeSeries", "Graph", "Workflow", "GUARDS", "RESOLVERS", "CATEGORY_PRIORITY", "category_resolver", "latest",
    "BoundedCounter", "judge_decrement", "judge_transfer", "Text", "Map",
]  # fmt: skip
