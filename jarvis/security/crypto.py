"""End-to-end encryption of sensitive argument fields (AES-256-GCM), chosen per pipeline.

The producer encrypts before signing, so the ciphertext is what is signed, mirrored and archived;
only holders of the pipeline's data key (keys/data-<name>.key) can read the value. The associated
data binds a ciphertext to its operation (op id and object id): it cannot be moved to another one.
Ciphertexts are strings, "enc:v1:<key name>:<base64 nonce||ciphertext>", so args stay JSON.
"""

from __future__ import annotations

import base64
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


class DataKeyring:
    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir

    def _path(self, name: str) -> Path:
        return self.keys_dir / f"data-{name}.key"

    def key(self, name: str, create: bool = True) -> tuple[str, bytes]:
        path = self._path(name)
        if not path.exists():
            if not create:
                raise DecryptionError(f"no data key {name!r} in {self.keys_dir}")
            self.keys_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(AESGCM.generate_key(bit_length=256))
        return name, path.read_bytes()

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
