"""The brokers' ACLs, derived from the role table (jarvis/roles.py) and the topic table (jarvis/topics.py).

Plain data, no Kafka: `jarvis stack up` applies the list with AdminClient.create_acls (and removes
what the list no longer holds), and tests/unit/test_kafka_acls.py checks the rules the issue asks for
(only the verifier writes jarvis.ops, only MirrorMaker writes <region>.jarvis.ops, producers write
only ingress and tasks). A topic or role added to those tables gets its ACLs from here with no other
edit. The brokers run StandardAuthorizer with allow.everyone.if.no.acl.found=false: what is not
listed is denied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jarvis import roles, topics

TOPIC, GROUP, CLUSTER = "TOPIC", "GROUP", "CLUSTER"
LITERAL, PREFIXED = "LITERAL", "PREFIXED"
CLUSTER_NAME = "kafka-cluster"
BROKER = "broker"  # the brokers' own SCRAM principal (inter-broker traffic); a super user


@dataclass(frozen=True, order=True, slots=True)
class AclBinding:
    """One ALLOW rule for any host: `principal` may `operation` on the resource."""

    principal: str  # "User:verifier"
    resource: str  # TOPIC | GROUP | CLUSTER
    name: str
    pattern: str  # LITERAL | PREFIXED
    operation: str  # Kafka's AclOperation name: READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS, ALL


def principals() -> tuple[str, ...]:
    """Every SCRAM user the stack makes: one per worker role, the client principals, admin, broker."""
    return (*(r.name for r in roles.ROLES), *roles.CLIENT_PRINCIPALS, roles.ADMIN, BROKER)


def super_users(broker_cert_names: Iterable[str] = ()) -> list[str]:
    """The brokers' super.users: the operator, the brokers' SCRAM user, and the brokers' certificate
    names (the controller listener authenticates them by mutual TLS)."""
    return [f"User:{roles.ADMIN}", f"User:{BROKER}", *(f"User:CN={n}" for n in broker_cert_names)]


def _resource(name: str) -> tuple[str, str]:
    """(name, pattern) of a table entry: `jarvis.tasks.pool.<pool>` and `console-*` are prefixes."""
    if "<" in name:
        return name[: name.index("<")], PREFIXED
    if name.endswith("*"):
        return name[:-1], PREFIXED
    return name, LITERAL


def _mirrors(names: Iterable[str], region_names: Sequence[str]) -> list[str]:
    # Every region's copy: the table is the same on every region's brokers (a region holds only the
    # others' copies, so its own name's never exists there).
    return [topics.mirrored(r, t) for t in names for r in region_names]


def _access_bindings(principal: str, access: roles.KafkaAccess, region_names: Sequence[str]) -> list[AclBinding]:
    user = f"User:{principal}"
    out: list[AclBinding] = []

    def add(resource: str, entry: str, *ops: str) -> None:
        name, pattern = _resource(entry)
        out.extend(AclBinding(user, resource, name, pattern, op) for op in ops)

    for t in (*access.reads, *_mirrors(access.reads_mirrors, region_names)):
        add(TOPIC, t, "READ")  # READ implies DESCRIBE (metadata, offsets)
    for t in access.writes:
        add(TOPIC, t, "WRITE")
    for t in access.creates:
        add(TOPIC, t, "CREATE", "DESCRIBE_CONFIGS")  # topics_admin compares configs with the spec
    for g in access.groups:
        add(GROUP, g + ("" if g.endswith("*") else "*"), "READ")
    if access.mirrors:
        out += _mirrormaker_bindings(user, region_names)
    return out


def _mirrormaker_bindings(user: str, region_names: Sequence[str]) -> list[AclBinding]:
    out = [AclBinding(user, TOPIC, t, LITERAL, "DESCRIBE_CONFIGS") for t in topics.MIRRORED]  # config sync
    for r in region_names:
        # <r>.jarvis.ops, <r>.jarvis.ops.seen, <r>.heartbeats, <r>.checkpoints.internal
        out.append(AclBinding(user, TOPIC, f"{r}.", PREFIXED, "ALL"))
        # The dedicated-mode Connect worker of each flow is the group <source>-mm2.
        out.append(AclBinding(user, GROUP, f"{r}-mm2", PREFIXED, "ALL"))
    out += [
        AclBinding(user, TOPIC, "heartbeats", LITERAL, "ALL"),
        AclBinding(user, TOPIC, "mm2-", PREFIXED, "ALL"),  # offset syncs, and each worker's config/offset/status
        AclBinding(user, GROUP, "*", LITERAL, "DESCRIBE"),  # the checkpoint connector lists groups
        AclBinding(user, CLUSTER, CLUSTER_NAME, LITERAL, "DESCRIBE"),
        AclBinding(user, CLUSTER, CLUSTER_NAME, LITERAL, "DESCRIBE_CONFIGS"),
    ]
    return out


def role_access(spec: roles.RoleSpec) -> roles.KafkaAccess:
    """A worker role's whole access: what it consumes (and their mirrors) plus its `kafka` field."""
    k = spec.kafka
    return roles.KafkaAccess(
        writes=k.writes,
        reads=tuple(dict.fromkeys((*spec.consumes, *k.reads))),
        reads_mirrors=tuple(dict.fromkeys((*(spec.consumes if spec.consumes_mirrors else ()), *k.reads_mirrors))),
        creates=k.creates,
        groups=k.groups,
        mirrors=k.mirrors,
    )


def acl_bindings(region_names: Sequence[str]) -> list[AclBinding]:
    """Every ACL of a region's brokers, sorted, without duplicates."""
    out: list[AclBinding] = []
    for spec in roles.ROLES:
        out += _access_bindings(spec.name, role_access(spec), region_names)
        if spec.entry is roles.Entry.faust:
            # Its changelog, repartition and leader topics and its consumer group all start with its app id.
            prefix = roles.faust_app_prefix(spec.name)
            user = f"User:{spec.name}"
            out += [AclBinding(user, TOPIC, prefix, PREFIXED, "ALL"), AclBinding(user, GROUP, prefix, PREFIXED, "ALL")]
    for name, access in roles.CLIENT_PRINCIPALS.items():
        out += _access_bindings(name, access, region_names)
    return sorted(set(out))


def allowed(bindings: Iterable[AclBinding], principal: str, resource: str, name: str, operation: str) -> bool:
    """Whether `bindings` let `principal` do `operation` on the named resource (ALL covers every
    operation, READ/WRITE imply DESCRIBE, as in Kafka); super users are not consulted."""
    implied = {"DESCRIBE": {"READ", "WRITE", "DELETE", "ALTER", "DESCRIBE"}}.get(operation, {operation})
    for b in bindings:
        if b.principal != f"User:{principal}" or b.resource != resource:
            continue
        if b.operation != "ALL" and b.operation not in implied:
            continue
        if (b.pattern == LITERAL and (b.name == name or b.name == "*")) or (
            b.pattern == PREFIXED and name.startswith(b.name)
        ):
            return True
    return False
