"""Distributed EHR: providers in any region update a patient's record field by field; PHI is
sealed before it leaves the provider's process; records are readable only by a clinical role.

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
only ever hold ciphertext.

Who reads. Both prefixes are `clinical: true` in the pipeline definition: the query API serves them
only to a key whose role is clinical and grants them (`jarvis auth role set clinician --clinical
--read 'ehr:*' ...`; admin and `*` alone get 403), and writes every such read to the access audit.
The verifier takes their operations only from a node key granted them by name. So reading a record
takes the clinical role's key (the client's api_key, pipelines/apps/_client.py clinical_client) and
opening its PHI the data key as well: the role decides who may see the record, the key keeps the
PHI sealed everywhere in between.
"""

from __future__ import annotations

import base64
import os
import time
import urllib.error
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

    def __init__(self, client: Client, *, keyring: DataKeyring | None = None) -> None:
        self.client = client  # its api_key is the reader's: a clinical role's, or every read is refused
        self._keyring = keyring or client.keyring

    def _key(self, create: bool = True) -> bytes:
        try:  # creation is atomic (DataKeyring): concurrent first writers get the same key
            return self._keyring.key(PIPELINE, create=create)[1]
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

    def _read(self, object_id: str, default: Any = None) -> Any:
        try:
            return read_value(self.client, object_id, default)
        except urllib.error.HTTPError as e:
            if e.code != 403:
                raise
            raise AppError(f"{object_id} not readable with this key: {_reason(e)}") from None

    def read_patient_record(self, patient_id: str, *, phi: bool = True) -> dict[str, Any]:
        """The record: PHI opened with the data key (`phi=False`: shown as `<sealed>`, no key used).
        AppError if the client's key is not a clinical role's or this reader holds no data key."""
        oid = record_id(name("patient_id", patient_id))
        view = self._read(oid)
        entries = {} if view is None else view["entries"]
        return {f: self._open(oid, f, e["v"], phi) for f, e in sorted(entries.items())}

    def _open(self, oid: str, field: str, stored: Any, phi: bool) -> Any:
        if field not in PHI_FIELDS:
            return stored
        if not phi:
            return HIDDEN
        return unseal(self._key(create=False), oid, field, stored)

    def providers(self, patient_id: str) -> dict[str, str]:
        """Which provider wrote each field's current value."""
        view = self._read(record_id(name("patient_id", patient_id)))
        return {} if view is None else {f: e["by"] for f, e in view["entries"].items()}

    def audit_trail(self, patient_id: str) -> list[dict[str, Any]]:
        return sorted(self._read(audit_id(name("patient_id", patient_id)), []), key=lambda a: a["ts"])


def _reason(e: urllib.error.HTTPError) -> str:
    try:
        return str(orjson.loads(e.read()).get("error"))
    except (orjson.JSONDecodeError, AttributeError, OSError):
        return f"HTTP {e.code}"
