"""Distributed EHR: providers in any region update a patient's record field by field; PHI is
sealed before it leaves the provider's process and readable only with the clinical data key.

CRDTs (pipeline `healthcare`):
  ehr:<patient>       map of LWW registers  one register per field, so two providers updating
                                            different fields concurrently both win (field-level
                                            merge); the same field: the later write wins
  medical:<patient>   G-Set                 the append-only audit trail: who changed which fields
                                            when (never the values)

Sealing. A PHI field's value is sealed with AES-256-GCM under the pipeline's data key
(keys/data-healthcare.key, the same keyring the SDK uses for `encrypt:` fields), with associated
data binding it to the object and field: `ehr:v1:<base64 nonce||ciphertext>`. The SDK's own
`encrypt:` binds a ciphertext to its operation id, which the live state does not keep, so a
record read back from the query API could not be opened; sealing in the app keeps the live value
openable by a clinical reader while the verifier, MirrorMaker, Kafka, the archive and the query API
only ever hold ciphertext. The clinical role is holding that key: `EHR(..., clinical=True)`.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from connectors.sdk import Client
from jarvis.security.crypto import DataKeyring, DecryptionError
from pipelines.apps._common import AppError, name, read_value

PIPELINE = "healthcare"
PHI_FIELDS = frozenset({"name", "dob", "address", "phone", "diagnosis", "medications", "allergies", "notes"})
SEALED = "ehr:v1:"
HIDDEN = "<sealed>"


def record_id(patient_id: str) -> str:
    return f"ehr:{patient_id}"


def audit_id(patient_id: str) -> str:
    return f"medical:{patient_id}"


def _aad(object_id: str, field: str) -> bytes:
    return f"{object_id}\0{field}".encode()


def seal(key: bytes, object_id: str, field: str, value: Any) -> str:
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, orjson.dumps(value), _aad(object_id, field))
    return SEALED + base64.b64encode(nonce + ct).decode()


def unseal(key: bytes, object_id: str, field: str, token: str) -> Any:
    if not isinstance(token, str) or not token.startswith(SEALED):
        raise AppError(f"field {field!r} of {object_id} is not sealed")
    raw = base64.b64decode(token[len(SEALED) :])
    try:
        return orjson.loads(AESGCM(key).decrypt(raw[:12], raw[12:], _aad(object_id, field)))
    except InvalidTag:
        raise AppError(
            f"field {field!r} of {object_id}: wrong key, or the value was altered or moved"
        ) from None


class EHR:
    """One provider system's (or reader's) view of the records in its region."""

    def __init__(self, client: Client, *, clinical: bool = False, keyring: DataKeyring | None = None) -> None:
        self.client = client
        self.clinical = clinical
        self._keyring = keyring or client.keyring

    def _key(self, create: bool = True) -> bytes:
        try:
            return self._keyring.key(PIPELINE, create=create)[1]
        except FileExistsError:  # another writer created it between our check and our create
            return self._keyring.key(PIPELINE, create=False)[1]
        except DecryptionError as e:
            raise AppError(f"this reader holds no clinical data key: {e}") from None

    def update_patient_record(self, patient_id: str, updates: dict[str, Any], provider_id: str) -> list[str]:
        """Write each field of `updates` (PHI sealed) and add an audit entry; returns the fields."""
        name("patient_id", patient_id)
        name("provider_id", provider_id)
        if not isinstance(updates, dict) or not updates:
            raise AppError("updates must be a non-empty object of field: value")
        oid = record_id(patient_id)
        rec = self.client.map(oid)
        for field, value in sorted(updates.items()):
            name("field", field)
            stored = seal(self._key(), oid, field, value) if field in PHI_FIELDS else value
            rec.update(field, "register", "write", {"value": {"v": stored, "by": provider_id}})
        self.client.gset(audit_id(patient_id)).add(
            {
                "provider": provider_id,
                "fields": sorted(updates),
                "ts": time.time(),
                "node": self.client.node_id,
            }
        )
        self.client.flush()
        return sorted(updates)

    def read_patient_record(self, patient_id: str) -> dict[str, Any]:
        """The record as this reader may see it: PHI opened for a clinical reader, else `<sealed>`."""
        oid = record_id(name("patient_id", patient_id))
        view = read_value(self.client, oid)
        entries = {} if view is None else view["entries"]
        return {f: self._open(oid, f, e["v"]) for f, e in sorted(entries.items())}

    def _open(self, oid: str, field: str, stored: Any) -> Any:
        if field not in PHI_FIELDS:
            return stored
        if not self.clinical:
            return HIDDEN
        return unseal(self._key(create=False), oid, field, stored)

    def providers(self, patient_id: str) -> dict[str, str]:
        """Which provider wrote each field's current value."""
        view = read_value(self.client, record_id(name("patient_id", patient_id)))
        return {} if view is None else {f: e["by"] for f, e in view["entries"].items()}

    def audit_trail(self, patient_id: str) -> list[dict[str, Any]]:
        return sorted(
            read_value(self.client, audit_id(name("patient_id", patient_id)), []), key=lambda a: a["ts"]
        )
