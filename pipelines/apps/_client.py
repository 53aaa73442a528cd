"""The one place the use-case apps, their tests, demos and benchmarks construct an SDK client.

Trust, credentials and transport settings of the SDK change in one place here, not in every app.
"""

from __future__ import annotations

from typing import Any

from connectors.sdk import Client


def client(region: str, node_id: str, *, track_verdicts: bool = False, **kwargs: Any) -> Client:
    """An SDK client for `region` writing as `node_id`; sends with 1 ms linger unless told otherwise.

    The apps are demos on the local stack, so their clients grant themselves with the stack's admin
    key (dev_trust, development only); a deployment passes dev_trust=False and has an admin grant
    each app's key (`jarvis keys trust NODE --public-key ... --write 'inventory:*'`)."""
    kwargs.setdefault("linger_ms", 1.0)
    kwargs.setdefault("dev_trust", True)
    return Client(region=region, node_id=node_id, track_verdicts=track_verdicts, **kwargs)


FACTORY_PREFIXES = ["production:*", "quality:*", "sensor:*", "equipment:*"]
CLINICAL_PREFIXES = ["ehr:*", "medical:*"]  # pipelines/default.yaml marks them `clinical: true`


def local_api_key(role: str, name: str, read: list[str], write: list[str], *, clinical: bool = False) -> str:
    """An API key of `role` (made or replaced with these grants) in this host's auth store, which
    the local stack's query API and ingest gateway read beside the replicated roles. A deployment
    uses `jarvis auth role set` and `jarvis auth key create` instead."""
    # Lazy: only the apps that read with a role of their own need the local auth store.
    import secrets

    from jarvis.config import settings
    from jarvis.security.key_store import FileAuthStore

    store = FileAuthStore(settings().home)
    store.set_role(role, read, write, tasks=False, admin=False, clinical=clinical)
    key, _ = store.create_key(role, f"{name}-{secrets.token_hex(3)}")
    return key


def clinical_key(name: str) -> str:
    """A key of the `clinician` role: clinical, reads and writes the patient records."""
    return local_api_key("clinician", name, CLINICAL_PREFIXES, CLINICAL_PREFIXES, clinical=True)


def clinical_client(region: str, node_id: str, **kwargs: Any) -> Client:
    """A provider system's client: it reads with a clinical key and its node key is granted the
    clinical prefixes by name (`*` does not reach them)."""
    kwargs.setdefault("api_key", clinical_key(node_id))
    kwargs.setdefault("dev_trust", ("*", *CLINICAL_PREFIXES))
    return client(region, node_id, **kwargs)


def mqtt_device(region: str, device: str) -> tuple[str, int, str, str]:
    """MQTT credentials for a factory gateway in `region`: (host, port, user, password). Creates a
    key in the local auth store with a role that may write the factory's prefixes only, and makes
    the region's broker re-read its password and ACL files."""
    # Lazy: only the factory app needs the local auth store and the broker's files.
    from jarvis.config import settings
    from jarvis.security.key_store import FileAuthStore
    from jarvis.stack import mosquitto

    s = settings()
    store = FileAuthStore(s.home)
    store.set_role("factory-device", FACTORY_PREFIXES, FACTORY_PREFIXES, tasks=False, admin=False)
    key, _ = store.create_key("factory-device", device)
    mosquitto.reload(s)
    r = s.region_config(region)
    return r.host, r.mqtt_port, device, key
