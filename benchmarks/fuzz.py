"""Fuzzing the verifier's gate at scale (issue 19, item 6): a million random and mutated messages.

The generator and the oracle are tests/unit/test_gate_fuzz.py's (tests/fuzz_messages.py): random
bytes, byte-level mutations of signed batches (bit flips, truncation, extension, foreign schema
fingerprints, huge counts and lengths, bad UTF-8, lz4 frames, splices), fresh batches of nonsense
fields signed by a trusted key, re-sends. Each message is judged by a real Gate (the built-in
verifiers, a TrustStore on disk, re-send protection on) and held to its contract: judged with a
reason, never an exception, never a hang, every accepted operation obeying every rule and folding.
The run fails (exit 1) on any violation.

Printed: messages/s of the fuzz (gate and oracle, and the gate alone), the count per verdict class,
the slowest message, and two baselines measured in the same run on the same machine: the gate on
valid SDK-shaped batches, and decoding alone (the Avro decode of those batches, which every message
pays before anything else). Work is split over processes (--procs, default: every core), each with
its own seed, so a run is reproducible from --seed.

    python -m benchmarks.fuzz                  # 1,000,000 messages
    python -m benchmarks.fuzz --messages 100000 --procs 1
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from jarvis.codec.records import decode_batch_record
from jarvis.gate import Gate
from jarvis.security.keys import ensure_node_key
from jarvis.security.seen_batches import SeenBatches
from pipelines.loader import pipelines
from tests.fuzz_messages import NODE, Fuzzer, verdict_class, violations
from tests.trust_helpers import view_trusting

POOL = 2_000  # signed batches per process, half valid, to mutate from


def _setup(seed: int, keys: Path, seen: bool) -> tuple[Gate, Fuzzer, Any]:
    signer = ensure_node_key(NODE, keys_dir=keys)
    stranger = ensure_node_key(NODE, keys_dir=keys / "elsewhere")
    now_ms = int(time.time() * 1000)
    gate = Gate("eu", pipelines(), view_trusting(signer), seen=SeenBatches() if seen else None)
    fuzzer = Fuzzer(signer, stranger, pipelines(), now_ms, random.Random(seed))
    return gate, fuzzer, signer


def fuzz_worker(args: tuple[int, int]) -> dict[str, Any]:
    seed, n = args
    with tempfile.TemporaryDirectory() as tmp:
        gate, fuzzer, signer = _setup(seed, Path(tmp), seen=True)
        fuzzer.fill_pool(POOL)
        now_ms = fuzzer.now_ms
        verdicts: Counter[str] = Counter()
        sources: Counter[str] = Counter()
        bad: Counter[str] = Counter()
        examples: dict[str, str] = {}
        gate_s = 0.0
        slowest = (0.0, "")
        started = time.perf_counter()
        for i in range(n):
            how, data = fuzzer.message()
            sources[how] += 1
            t0 = time.perf_counter()
            try:
                result = gate.check(data, i % 6, i, now_ms)
            except Exception as e:  # noqa: BLE001 - counted: the contract is that this never happens
                took = time.perf_counter() - t0
                key = f"exception {type(e).__name__}: {str(e)[:80]}"
                bad[key] += 1
                examples.setdefault(key, data[:400].hex())
                continue
            took = time.perf_counter() - t0
            gate_s += took
            if took > slowest[0]:
                slowest = (took, how)
            verdicts[verdict_class(result)] += 1
            for v in violations(gate, data, result, now_ms, signer):
                bad[v[:120]] += 1
                examples.setdefault(v[:120], data[:400].hex())
        return {
            "n": n, "wall_s": time.perf_counter() - started, "gate_s": gate_s, "verdicts": verdicts,
            "sources": sources, "bad": bad, "examples": examples, "slowest": slowest,
        }  # fmt: skip


def baseline_worker(args: tuple[int, int]) -> dict[str, Any]:
    """The gate, and decoding alone, on valid signed batches like the SDK's (no mutation, no oracle)."""
    seed, n = args
    with tempfile.TemporaryDirectory() as tmp:
        gate, fuzzer, _ = _setup(seed, Path(tmp), seen=False)
        valid = [fuzzer.batch(nonsense=0.0) for _ in range(POOL)]
        valid = [m for m in valid if gate.check(m, 0, 0, fuzzer.now_ms).accepted]
        ops = sum(len(gate.check(m, 0, 0, fuzzer.now_ms).accepted) for m in valid)
        t0 = time.perf_counter()
        for i in range(n):
            gate.check(valid[i % len(valid)], 0, i, fuzzer.now_ms)
        gate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n):
            decode_batch_record(valid[i % len(valid)])
        decode_s = time.perf_counter() - t0
        return {"n": n, "gate_s": gate_s, "decode_s": decode_s, "ops_per_msg": ops / len(valid)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--baseline", type=int, default=50_000, help="valid messages for the baselines, per process")
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=19)
    a = p.parse_args()

    per = [a.messages // a.procs + (1 if i < a.messages % a.procs else 0) for i in range(a.procs)]
    started = time.perf_counter()
    with mp.get_context("spawn").Pool(a.procs) as pool:
        base = pool.map(baseline_worker, [(a.seed + 1000 + i, a.baseline) for i in range(a.procs)])
        runs = pool.map(fuzz_worker, [(a.seed + i, n) for i, n in enumerate(per)])
    wall = time.perf_counter() - started

    n = sum(r["n"] for r in runs)
    fuzz_wall = max(r["wall_s"] for r in runs)
    gate_s = sum(r["gate_s"] for r in runs)
    verdicts: Counter[str] = sum((r["verdicts"] for r in runs), Counter())
    sources: Counter[str] = sum((r["sources"] for r in runs), Counter())
    bad: Counter[str] = sum((r["bad"] for r in runs), Counter())
    slowest = max(r["slowest"] for r in runs)
    bn = sum(b["n"] for b in base)
    b_gate = bn / sum(b["gate_s"] for b in base) * a.procs
    b_decode = bn / sum(b["decode_s"] for b in base) * a.procs
    ops_per_msg = sum(b["ops_per_msg"] for b in base) / len(base)

    print(f"gate fuzz: {n:,} messages over {a.procs} processes, seed {a.seed} ({wall:.0f} s in all)")
    print("  made of: " + ", ".join(f"{k} {v:,}" for k, v in sources.most_common()))
    print(f"  fuzz, gate + oracle:     {n / fuzz_wall:>10,.0f} messages/s")
    print(f"  fuzz, gate alone:        {n / gate_s * a.procs:>10,.0f} messages/s")
    print(f"  baseline, gate on valid: {b_gate:>10,.0f} messages/s ({ops_per_msg:.1f} ops each), same run")
    print(f"  baseline, decode alone:  {b_decode:>10,.0f} messages/s, same run")
    print(f"  fuzzed / valid (gate):   {n / gate_s * a.procs / b_gate:>10.2f}x")
    print(f"  slowest message: {slowest[0] * 1000:.1f} ms ({slowest[1]})")
    print("verdicts (first reason of the first rejection, names and numbers elided):")
    for k, v in verdicts.most_common(30):
        print(f"  {v:>9,}  {k}")
    if len(verdicts) > 30:
        print(f"  {sum(v for _, v in verdicts.most_common()[30:]):>9,}  ({len(verdicts) - 30} more classes)")
    if bad:
        print(f"VIOLATIONS: {sum(bad.values()):,}")
        examples = {k: v for r in runs for k, v in r["examples"].items()}
        for k, v in bad.most_common(20):
            print(f"  {v:>7,}  {k}\n           {examples.get(k, '')[:160]}")
        return 1
    print("violations: 0 (no exception, no hang, no accepted operation breaking a rule)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
