"""Node keys (Ed25519) under JARVIS_HOME/keys and per-region trust stores.

  keys/<node>/<key_id>.pem      private keys, 0600; `current` names the signing one
  keys/trust-<region>.json      which (node, key id, public key) the region's verifier accepts

key_id = first 16 hex digits of SHA-256 of the raw public key. Rotating makes a new key current;
old public keys stay trusted (listed as retired) so signatures made before the rotation still
verify in an audit, until an operator removes them.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from jarvis.errors import JarvisError


class KeyError_(JarvisError, LookupError):
    """A key that is asked for does not exist."""


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_b64(public: Ed25519PublicKey) -> str:
    return base64.b64encode(
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()


def public_from_b64(b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64))


@dataclass(frozen=True)
class Signer:
    node_id: str
    key_id: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)


def create_key(keys_dir: Path, node_id: str) -> Signer:
    key = Ed25519PrivateKey.generate()
    kid = key_id_of(key.public_key())
    node_dir = keys_dir / node_id
    _write_private(node_dir / f"{kid}.pem", key)
    (node_dir / "current").write_text(kid)
    return Signer(node_id, kid, key)


def load_signer(keys_dir: Path, node_id: str) -> Signer:
    node_dir = keys_dir / node_id
    try:
        kid = (node_dir / "current").read_text().strip()
        key = serialization.load_pem_private_key((node_dir / f"{kid}.pem").read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyError_(
            f"no key for node {node_id!r} in {keys_dir}: run `jarvis keys create {node_id}`"
        ) from None
    assert isinstance(key, Ed25519PrivateKey)
    return Signer(node_id, kid, key)


def list_keys(keys_dir: Path) -> list[dict[str, Any]]:
    out = []
    for node_dir in sorted(p for p in keys_dir.glob("*") if p.is_dir()):
        current = (node_dir / "current").read_text().strip() if (node_dir / "current").exists() else None
        for pem in sorted(node_dir.glob("*.pem")):
            key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
            out.append(
                {
                    "node_id": node_dir.name,
                    "key_id": pem.stem,
                    "status": "current" if pem.stem == current else "retired",
                    "public_key": public_b64(key.public_key()),
                }
            )
    return out


class TrustStore:
    """Per region, the node keys whose signatures the region's verifier accepts."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def _path(self, region: str) -> Path:
        return self.keys_dir / f"trust-{region}.json"

    def _load(self, region: str) -> dict[str, Any]:
        path = self._path(region)
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

    def trust(self, region: str, node_id: str, public_key_b64: str) -> str:
        public = public_from_b64(public_key_b64)
        kid = key_id_of(public)
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        path = self._path(region)
        # Several processes add keys at once (a stack's workers, three test agents starting together:
        # one's rename once found the shared temporary file already moved). One writer at a time, each
        # reading what the last one wrote, through a temporary file of its own.
        with open(self.keys_dir / f".trust-{region}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._cache.pop(region, None)  # what the last writer left, not what this process last saw
            data = {"keys": dict(self._load(region)["keys"])}
            data["keys"][kid] = {"node_id": node_id, "public_key": public_key_b64}
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
            tmp.replace(path)  # atomic: a verifier never reads half a file
        self._cache.pop(region, None)
        return kid

    def is_trusted(self, region: str, node_id: str, key_id: str) -> bool:
        entry = self._load(region)["keys"].get(key_id)
        return entry is not None and entry["node_id"] == node_id

    def public_key(self, key_id: str, region: str | None = None) -> Ed25519PublicKey | None:
        regions = (
            [region]
            if region
            else [p.stem.removeprefix("trust-") for p in self.keys_dir.glob("trust-*.json")]
        )
        for r in regions:
            entry = self._load(r)["keys"].get(key_id)
            if entry:
                return public_from_b64(entry["public_key"])
        return None

    def entries(self, region: str) -> dict[str, Any]:
        return dict(self._load(region)["keys"])


def ensure_node_key(node_id: str, *, keys_dir: Path, trust_regions: list[str] | None = None) -> Signer:
    """The development flow: create the node's key if missing and trust it in the given regions."""
    try:
        signer = load_signer(keys_dir, node_id)
    except KeyError_:
        signer = create_key(keys_dir, node_id)
    store = TrustStore(keys_dir)
    for region in trust_regions or []:
        if not store.is_trusted(region, node_id, signer.key_id):
            store.trust(region, node_id, public_b64(signer.public))
    return signer


def rotate(keys_dir: Path, node_id: str, trust_regions: list[str]) -> Signer:
    signer = create_key(keys_dir, node_id)
    store = TrustStore(keys_dir)
    for region in trust_regions:
        store.trust(region, node_id, public_b64(signer.public))
    return signer
