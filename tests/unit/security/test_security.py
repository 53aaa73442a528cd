from __future__ import annotations

import dataclasses
import stat
import uuid
from pathlib import Path

import pytest

from jarvis.ops import Operation
from jarvis.security.crypto import DataKeyring, DecryptionError, decrypt_fields, encrypt_fields
from jarvis.security.keys import KeyError_, create_key, ensure_node_key, load_signer
from jarvis.security.replay_window import check_window
from jarvis.security.signing import SignatureError, sign_batch, verify_batch, verify_op


def op(i: int = 0, **kw: object) -> Operation:
    fields = dict(
        op_id=uuid.uuid4().hex, object_id=f"patient:{i}", crdt_type="lww", kind="write",
        args={"value": {"diagnosis": "flu", "i": i}}, node_id="n1", region="eu", hlc=1 << 16,
    )  # fmt: skip
    fields.update(kw)
    return Operation(**fields)  # type: ignore[arg-type]


def test_batch_signature_verifies_and_each_op_verifies_alone(tmp_path: Path) -> None:
    signer = create_key(tmp_path, "n1")
    ops = [op(i) for i in range(5)]
    digests, sig = sign_batch(ops, signer)
    verify_batch(digests, sig, signer.public)
    for i, o in enumerate(ops):
        verify_op(o, i, digests, sig, signer.public)


def test_tampered_signature_altered_op_and_wrong_key_are_refused(tmp_path: Path) -> None:
    signer = create_key(tmp_path, "n1")
    other = create_key(tmp_path, "n2")
    ops = [op(i) for i in range(3)]
    digests, sig = sign_batch(ops, signer)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_batch(digests, bytes([sig[0] ^ 1]) + sig[1:], signer.public)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_batch(digests, sig, other.public)
    altered = dataclasses.replace(ops[1], args={"value": "forged"})
    with pytest.raises(SignatureError, match="digest mismatch for op 1"):
        verify_op(altered, 1, digests, sig, signer.public)


def test_keys_are_private_files_and_a_new_key_is_trusted_nowhere(tmp_path: Path) -> None:
    first = ensure_node_key("n1", keys_dir=tmp_path)
    pem = tmp_path / "n1" / f"{first.key_id}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert ensure_node_key("n1", keys_dir=tmp_path).key_id == first.key_id  # loaded, not made again
    second = create_key(tmp_path, "n1")
    assert load_signer(tmp_path, "n1").key_id == second.key_id != first.key_id
    assert not list(tmp_path.glob("trust-*.json"))  # no local trust file a process could add itself to
    with pytest.raises(KeyError_, match="reserved"):
        create_key(tmp_path, "admin")


def test_encrypted_fields_are_unreadable_without_the_key(tmp_path: Path) -> None:
    ring = DataKeyring(tmp_path)
    plain = op()
    enc = encrypt_fields(plain, ["value"], ring.key("healthcare"))
    assert enc.encrypted_fields == ["value"]
    assert "flu" not in str(enc.args)
    assert decrypt_fields(enc, ring).args == plain.args
    with pytest.raises(DecryptionError, match="no data key"):
        decrypt_fields(enc, DataKeyring(tmp_path / "elsewhere"))
    moved = dataclasses.replace(enc, op_id="another-op")  # the same ciphertext on another operation
    with pytest.raises(DecryptionError, match="moved"):
        decrypt_fields(moved, ring)


def test_replay_window() -> None:
    now = 1_700_000_000_000
    assert check_window(now << 16, now, max_age_s=60, max_future_s=5) is None
    assert "too old by 40.0 s" in check_window((now - 100_000) << 16, now, max_age_s=60, max_future_s=5)
    assert "10.0 s in the future" in check_window((now + 10_000) << 16, now, max_age_s=60, max_future_s=5)
