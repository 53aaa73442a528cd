"""The cyclic garbage collector's settings for a worker process, in one place: the worker
(jarvis/worker_cli.py) applies them, and the benchmarks that describe a worker (benchmarks/scale.py)
run under the same ones.

Every operation decoded allocates a handful of containers that die young; with CPython's default
thresholds the collector ran often enough to cost ~20% of the decode and fold loop (gc disabled vs
enabled over the same batches). What is alive when a worker starts (its imports) lives as long as the
process: frozen, so no full pass walks it again. docs/scale.md has the pauses measured under them.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 20)  # CPython's default: (700, 10, 10)


def tune() -> None:
    """Freeze everything alive now out of the collector's reach and set THRESHOLDS."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
