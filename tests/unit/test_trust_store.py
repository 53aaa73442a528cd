"""The trust store under concurrent writers: processes adding keys at once lose none of them."""

from __future__ import annotations

import base64
import json
import multiprocessing
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jarvis.security.keys import TrustStore


def _add(args: tuple[str, int]) -> str:
    keys_dir, i = args
    public = Ed25519PrivateKey.generate().public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return TrustStore(Path(keys_dir)).trust("eu", f"node-{i}", base64.b64encode(raw).decode())


def test_keys_added_by_many_processes_at_once_are_all_trusted(tmp_path: Path) -> None:
    with multiprocessing.get_context("fork").Pool(8) as pool:
        kids = pool.map(_add, [(str(tmp_path), i) for i in range(48)])
    stored = json.loads((tmp_path / "trust-eu.json").read_text())["keys"]
    assert set(stored) == set(kids) and len(kids) == 48
    store = TrustStore(tmp_path)
    assert all(store.is_trusted("eu", f"node-{i}", kid) for i, kid in enumerate(kids))
    assert not list(tmp_path.glob("*.tmp"))
