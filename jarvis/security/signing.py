"""Batch signatures: one Ed25519 signature per batch, each operation verifiable on its own.

op_digests = SHA-256(content(op_0)) || SHA-256(content(op_1)) || ...
signature  = Ed25519(SHA-256(op_digests))

Verifying one Ed25519 signature costs ~90 µs here, so signing per batch rather than per operation
is what lets the verifier keep up; and because the digests travel with every verified batch (and sit
in the archive), an auditor can check one operation with its 32-byte digest and the batch signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jarvis.codec.records import op_content
from jarvis.errors import JarvisError
from jarvis.ops import Operation
from jarvis.security.keys import Signer


class SignatureError(JarvisError, ValueError):
    """A signature or digest does not verify; the message says which and why."""


def op_digest(op: Operation) -> bytes:
    return hashlib.sha256(op_content(op)).digest()


def sign_batch(ops: Sequence[Operation], signer: Signer) -> tuple[bytes, bytes]:
    digests = b"".join(op_digest(op) for op in ops)
    return digests, sign_digests(digests, signer)


def sign_digests(op_digests: bytes, signer: Signer) -> bytes:
    """The batch signature over digests computed elsewhere (jarvis/codec/batch_builder.py)."""
    return signer.sign(hashlib.sha256(op_digests).digest())


def verify_batch(op_digests: bytes, signature: bytes, public_key: Ed25519PublicKey) -> None:
    try:
        public_key.verify(signature, hashlib.sha256(op_digests).digest())
    except InvalidSignature:
        raise SignatureError("bad signature: the batch was not signed by this key or was altered") from None


def check_digest(op: Operation, index: int, op_digests: bytes) -> None:
    """The op's content matches digest `index` of its batch (the batch signature is checked apart)."""
    expected = op_digests[index * 32 : (index + 1) * 32]
    if len(expected) != 32:
        raise SignatureError(f"no digest for op {index} in a batch of {len(op_digests) // 32}")
    if op_digest(op) != expected:
        raise SignatureError(f"digest mismatch for op {index}: content altered after signing")


def verify_op(
    op: Operation, index: int, op_digests: bytes, signature: bytes, public_key: Ed25519PublicKey
) -> None:
    check_digest(op, index, op_digests)
    verify_batch(op_digests, signature, public_key)
