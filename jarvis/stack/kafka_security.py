"""Make a secure cluster's SCRAM users and ACLs what the tables say (jarvis/security/kafka_acls.py),
as the `admin` super user, at every `jarvis stack up`. Both steps are idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connectors.kafka_clients import ADMIN, confluent_conf
from jarvis.config import Settings
from jarvis.security import kafka_acls
from jarvis.security.kafka_acls import AclBinding
from jarvis.stack.procs import StackError

SCRAM_ITERATIONS = 8192
# librdkafka names Kafka's CLUSTER resource type BROKER.
_TO_LIBRDKAFKA = {"CLUSTER": "BROKER"}
_FROM_LIBRDKAFKA = {v: k for k, v in _TO_LIBRDKAFKA.items()}


def _admin(settings: Settings, bootstrap: str) -> Any:
    # Lazy, as in jarvis/stack/stack.py: every `jarvis` command imports the stack modules.
    from confluent_kafka.admin import AdminClient

    return AdminClient(confluent_conf(settings, ADMIN, bootstrap=bootstrap, **{"socket.timeout.ms": 10_000}))


def ensure_scram_users(settings: Settings, bootstrap: str, passwords: Mapping[str, str], timeout: float = 30) -> list[str]:
    """Add every principal of `passwords` the cluster does not know yet (a new role, or a data dir
    formatted before there were users); users it knows keep theirs. Returns the names added."""
    # Lazy, as above.
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = _admin(settings, bootstrap)
    try:
        known = set(admin.describe_user_scram_credentials(request_timeout=timeout).result())
    except Exception as e:  # noqa: BLE001 - KafkaException carries the broker's reason
        raise StackError(f"cannot list Kafka SCRAM users on {bootstrap}: {e}") from e
    missing = [u for u in sorted(passwords) if u not in known]
    if not missing:
        return []
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    ups = [UserScramCredentialUpsertion(u, info, passwords[u].encode()) for u in missing]
    for user, fut in admin.alter_user_scram_credentials(ups, request_timeout=timeout).items():
        try:
            fut.result()
        except Exception as e:  # noqa: BLE001
            raise StackError(f"cannot add Kafka SCRAM user {user} on {bootstrap}: {e}") from e
    return missing


def _to_kafka(b: AclBinding) -> Any:
    # Lazy, as above.
    from confluent_kafka.admin import AclBinding as KafkaAcl
    from confluent_kafka.admin import AclOperation, AclPermissionType, ResourcePatternType, ResourceType

    return KafkaAcl(
        ResourceType[_TO_LIBRDKAFKA.get(b.resource, b.resource)], b.name, ResourcePatternType[b.pattern], b.principal, "*",
        AclOperation[b.operation], AclPermissionType.ALLOW,
    )  # fmt: skip


def _from_kafka(k: Any) -> AclBinding:
    return AclBinding(k.principal, _FROM_LIBRDKAFKA.get(k.restype.name, k.restype.name), k.name, k.resource_pattern_type.name, k.operation.name)


def apply_acls(settings: Settings, bootstrap: str, wanted: Iterable[AclBinding], timeout: float = 30) -> tuple[int, int]:
    """Create the missing ACLs and delete those of the stack's principals that the table no longer
    holds (an ACL added by hand for another principal is left alone). Returns (created, deleted)."""
    # Lazy, as above.
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    admin = _admin(settings, bootstrap)
    want = set(wanted)
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    try:
        present = admin.describe_acls(everything, request_timeout=timeout).result()
    except Exception as e:  # noqa: BLE001
        raise StackError(f"cannot list Kafka ACLs on {bootstrap}: {e}") from e
    have = {_from_kafka(k): k for k in present if k.permission_type == AclPermissionType.ALLOW and k.host == "*"}
    ours = {f"User:{p}" for p in kafka_acls.principals()}
    stale = [k for b, k in have.items() if b not in want and b.principal in ours]
    missing = [_to_kafka(b) for b in sorted(want - set(have))]
    for fut in (admin.create_acls(missing, request_timeout=timeout) if missing else {}).values():
        try:
            fut.result()
        except Exception as e:  # noqa: BLE001
            raise StackError(f"cannot create Kafka ACLs on {bootstrap}: {e}") from e
    if stale:
        filters = [
            AclBindingFilter(k.restype, k.name, k.resource_pattern_type, k.principal, k.host, k.operation, k.permission_type)
            for k in stale
        ]
        for fut in admin.delete_acls(filters, request_timeout=timeout).values():
            fut.result()
    return len(missing), len(stale)
