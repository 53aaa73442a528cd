"""End-to-end encryption of sensitive argument fields (AES-256-GCM), chosen per pipeline.

The producer encrypts before signing, so the ciphertext is what is signed, mirrored and archived;
only holders of the pipeline's data key (keys/data-<name>.key) can read the value. The associated
data binds a ciphertext to its operation (op id and object id): it cannot be moved to another one.
Ciphertexts are strings, "enc:v1:<key name>:<base64 nonce||ciphertext>", so args stay JSON.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jarvis.errors import JarvisError
from jarvis.ops import Operation

PREFIX = "enc:v1:"


class DecryptionError(JarvisError, ValueError):
    """A field cannot be decrypted: no key, wrong key, or the ciphertext was moved or altered."""


KEY_BYTES = 32


class DataKeyring:
    """The data keys of a home, one file each (keys/data-<name>.key, 32 raw bytes, mode 0600).

    Creation is atomic: the key is written whole to a temporary file and then linked to its name,
    which fails if the name exists. Two writers creating the same key at once (two providers' first
    writes) both end up with the one that was linked first; nobody ever reads a half-written file,
    as an O_EXCL create-then-write would let a second writer do (it saw the name, read zero bytes)."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir

    def _path(self, name: str) -> Path:
        return self.keys_dir / f"data-{name}.key"

    def key(self, name: str, create: bool = True) -> tuple[str, bytes]:
        path = self._path(name)
        if not path.exists():
            if not create:
                raise DecryptionError(f"no data key {name!r} in {self.keys_dir}")
            self._create(path)
        secret = path.read_bytes()
        if len(secret) != KEY_BYTES:
            raise DecryptionError(f"data key {path} holds {len(secret)} bytes, not {KEY_BYTES}: damaged")
        return name, secret

    def _create(self, path: Path) -> None:
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(AESGCM.generate_key(bit_length=8 * KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            # Atomic, and never replaces: the first link wins; a loser reads the winner's key.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def has(self, name: str) -> bool:
        return self._path(name).exists()


def _aad(op: Operation, field: str) -> bytes:
    return f"{op.op_id}\0{op.object_id}\0{field}".encode()


def encrypt_fields(op: Operation, fields: list[str], key: tuple[str, bytes]) -> Operation:
    """A copy of `op` whose named args fields are encrypted (values JSON-encoded first)."""
    name, secret = key
    aes = AESGCM(secret)
    args = dict(op.args)
    done = list(op.encrypted_fields)
    for f in fields:
        if f not in args or f in done:
            continue
        nonce = os.urandom(12)
        ct = aes.encrypt(nonce, orjson.dumps(args[f]), _aad(op, f))
        args[f] = f"{PREFIX}{name}:{base64.b64encode(nonce + ct).decode()}"
        done.append(f)
    return dataclasses.replace(op, args=args, encrypted_fields=done)


def decrypt_fields(op: Operation, keyring: DataKeyring) -> Operation:
    """A copy of `op` with its encrypted fields readable; DecryptionError without the right key."""
    args: dict[str, Any] = dict(op.args)
    for f in op.encrypted_fields:
        token = args.get(f)
        if not isinstance(token, str) or not token.startswith(PREFIX):
            raise DecryptionError(f"field {f!r} is marked encrypted but holds no ciphertext")
        name, _, b64 = token[len(PREFIX) :].partition(":")
        _, secret = keyring.key(name, create=False)
        raw = base64.b64decode(b64)
        try:
            args[f] = orjson.loads(AESGCM(secret).decrypt(raw[:12], raw[12:], _aad(op, f)))
        except InvalidTag:
            raise DecryptionError(
                f"field {f!r}: wrong key, or ciphertext altered or moved from another operation"
            ) from None
    return dataclasses.replace(op, args=args, encrypted_fields=[])
