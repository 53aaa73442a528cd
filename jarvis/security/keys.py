"""Node keys and admin keys (Ed25519) under JARVIS_HOME/keys.

  keys/<node>/<key_id>.pem      a node's private keys, 0600; `current` names the signing one
  keys/admin/<key_id>.pem       admin keys, which sign trust records (jarvis/security/trust.py)

key_id = first 16 hex digits of SHA-256 of the raw public key. Having a key here trusts it nowhere:
trust is an admin-signed grant on the replicated `jarvis.trust` topic, the same in every region.
"""

from __future__ import annotations

import base64
import hashlib
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
    if node_id == ADMIN_DIR:
        raise KeyError_(f"node id {ADMIN_DIR!r} is reserved for the admin keys' directory")
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
    for node_dir in sorted(p for p in keys_dir.glob("*") if p.is_dir() and p.name != ADMIN_DIR):
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


def ensure_node_key(node_id: str, *, keys_dir: Path) -> Signer:
    """The node's current key, created if it has none. Creating a key trusts it nowhere: an admin
    grants it (`jarvis keys trust`, or the development-only `Client(dev_trust=True)`)."""
    try:
        return load_signer(keys_dir, node_id)
    except KeyError_:
        return create_key(keys_dir, node_id)


def key_created_ms(keys_dir: Path, signer: Signer) -> int:
    """When the key file was written: a stable issue time, so granting the same key twice makes the
    same (deterministically signed) record, which the view and the compacted topic keep once."""
    return (keys_dir / signer.node_id / f"{signer.key_id}.pem").stat().st_mtime_ns // 1_000_000


# -- admin keys: JARVIS_HOME/keys/admin/<key id>.pem, `current` names the signing one ----------------
ADMIN_DIR = "admin"


def create_admin_key(keys_dir: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    kid = key_id_of(key.public_key())
    _write_private(keys_dir / ADMIN_DIR / f"{kid}.pem", key)
    (keys_dir / ADMIN_DIR / "current").write_text(kid)
    return key


def load_admin_key(keys_dir: Path) -> Ed25519PrivateKey | None:
    """The local admin key that signs trust records, or None if this home has none."""
    d = keys_dir / ADMIN_DIR
    try:
        kid = (d / "current").read_text().strip()
        key = serialization.load_pem_private_key((d / f"{kid}.pem").read_bytes(), password=None)
    except FileNotFoundError:
        return None
    assert isinstance(key, Ed25519PrivateKey)
    return key


def ensure_admin_key(keys_dir: Path) -> Ed25519PrivateKey:
    return load_admin_key(keys_dir) or create_admin_key(keys_dir)


def local_admin_public_keys(keys_dir: Path) -> dict[str, Ed25519PublicKey]:
    """Public halves of every admin key under keys/admin (current and older ones), by key id."""
    out: dict[str, Ed25519PublicKey] = {}
    for pem in sorted((keys_dir / ADMIN_DIR).glob("*.pem")):
        key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        out[pem.stem] = key.public_key()
    return out


def admin_public_keys(keys_dir: Path, configured: tuple[str, ...] = ()) -> list[Ed25519PublicKey]:
    """The admin keys whose trust records a process accepts: the configured ones
    (JARVIS_ADMIN_PUBLIC_KEYS, for hosts that hold no admin key) and those of keys/admin."""
    try:
        out = [public_from_b64(k) for k in configured]
    except ValueError as e:
        raise KeyError_(f"JARVIS_ADMIN_PUBLIC_KEYS: not a base64 Ed25519 public key: {e}") from None
    return [*out, *local_admin_public_keys(keys_dir).values()]
