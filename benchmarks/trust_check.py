"""The verifier's per-batch trust check: the replicated TrustView beside the old file trust store.

    PYTHONPATH=. .venv/bin/python benchmarks/trust_check.py [--batch 500] [--rounds 20000]

Before issue 19 the gate asked a file-backed TrustStore (keys/trust-<region>.json, re-read when its
mtime changed) two questions per batch: the key's public key and whether the region trusts it for
the node; that class is copied here unchanged as the baseline. Now it asks the TrustView for the
key's verdict at `now` (a cached dict lookup while nothing changes) and runs the grant's write scope
over the batch's object ids. Both run in this invocation, on the same batches; the figures are ns
per operation amortized over a batch, and the ratio new/old.

Cases: a `*` grant (the usual one: only the reserved auth: prefix is looked for), a prefix grant
(`inventory:*`, `ctr:*`: one C-level startswith per id), and a one-operation batch (the fixed cost).
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jarvis.security.keys import key_id_of, public_b64, public_from_b64
from jarvis.security.trust import TrustView, make_grant


class OldTrustStore:
    """jarvis/security/keys.py's TrustStore before issue 19 (reading side), for the baseline."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def _load(self, region: str) -> dict[str, Any]:
        path = self.keys_dir / f"trust-{region}.json"
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return {"keys": {}}
        cached = self._cache.get(region)
        if cached and cached[0] == mtime:
            return cached[1]
        data = json.loads(path.read_text())
        self._cache[region] = (mtime, data)
        return data

    def is_trusted(self, region: str, node_id: str, key_id: str) -> bool:
        entry = self._load(region)["keys"].get(key_id)
        return entry is not None and entry["node_id"] == node_id

    def public_key(self, key_id: str, region: str | None = None) -> Ed25519PublicKey | None:
        regions = [region] if region else [p.stem.removeprefix("trust-") for p in self.keys_dir.glob("trust-*.json")]
        for r in regions:
            entry = self._load(r)["keys"].get(key_id)
            if entry:
                return public_from_b64(entry["public_key"])
        return None


def timed(fn: Callable[[], object], rounds: int) -> float:
    """Seconds per call, best of three runs of `rounds` calls."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - t0) / rounds)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=500, help="operations per batch (the SDK's default)")
    ap.add_argument("--rounds", type=int, default=20_000)
    a = ap.parse_args()

    admin = Ed25519PrivateKey.generate()
    node_key = Ed25519PrivateKey.generate().public_key()
    kid = key_id_of(node_key)
    with tempfile.TemporaryDirectory() as tmp:
        keys_dir = Path(tmp)
        entries = {kid: {"node_id": "app-1", "public_key": public_b64(node_key)}}
        for _ in range(50):  # a stack's worth of other trusted keys
            other = Ed25519PrivateKey.generate().public_key()
            entries[key_id_of(other)] = {"node_id": "x", "public_key": base64.b64encode(b"\0" * 32).decode()}
        (keys_dir / "trust-eu.json").write_text(json.dumps({"keys": entries}))
        old = OldTrustStore(keys_dir)

        def old_check(ids: list[str]) -> Callable[[], object]:
            def check() -> object:
                key = old.public_key(kid)
                return key is not None and old.is_trusted("eu", "app-1", kid)

            return check

        def new_check(view: TrustView, ids: list[str]) -> Callable[[], object]:
            def check() -> object:
                v = view.key("eu", "app-1", kid, int(time.time() * 1000))
                return v.scope is not None and not v.scope.denied(ids)

            return check

        def view_of(write: tuple[str, ...]) -> TrustView:
            v = TrustView([admin.public_key()])
            v.add(make_grant(admin, "app-1", node_key, write, issued_ms=1))
            for _ in range(50):
                v.add(make_grant(admin, "x", Ed25519PrivateKey.generate().public_key(), ("*",), issued_ms=1))
            return v

        mixed = [f"{('inventory', 'ctr')[i % 2]}:sku-{i % 97}" for i in range(a.batch)]
        cases = [
            (f"'*' grant, batch of {a.batch}", view_of(("*",)), mixed, a.batch),
            (f"'inventory:*','ctr:*' grant, batch of {a.batch}", view_of(("ctr:*", "inventory:*")), mixed, a.batch),
            ("'*' grant, batch of 1", view_of(("*",)), mixed[:1], 1),
        ]
        print(f"{'case':44} {'old ns/op':>10} {'new ns/op':>10} {'new/old':>8}")
        for name, view, ids, n in cases:
            t_old = timed(old_check(ids), a.rounds)
            t_new = timed(new_check(view, ids), a.rounds)
            print(f"{name:44} {t_old / n * 1e9:10.1f} {t_new / n * 1e9:10.1f} {t_new / t_old:8.2f}")


if __name__ == "__main__":
    main()
