"""The brokers' ACL table (jarvis/security/kafka_acls.py), derived from the role and topic tables."""

from __future__ import annotations

import pytest

from jarvis import roles, topics
from jarvis.security.kafka_acls import CLUSTER, GROUP, TOPIC, AclBinding, acl_bindings, allowed, principals

REGIONS = ("eu", "us", "ap")
ACLS = acl_bindings(REGIONS)
ROLE_NAMES = [r.name for r in roles.ROLES]


def writers(topic: str) -> set[str]:
    return {p for p in principals() if allowed(ACLS, p, TOPIC, topic, "WRITE")}


def readers(topic: str) -> set[str]:
    return {p for p in principals() if allowed(ACLS, p, TOPIC, topic, "READ")}


def test_one_principal_per_role_and_the_issue_s_list() -> None:
    names = set(principals())
    assert {"verifier", "fold", "archiver", "agent", "ingest", "mirrormaker", "producer", "admin"} <= names
    assert set(ROLE_NAMES) <= names
    assert len(principals()) == len(names)


def test_only_the_verifier_writes_jarvis_ops() -> None:
    assert writers(topics.OPS) == {"verifier"}
    assert writers(topics.SEEN) == {"verifier"}


def test_rejected_is_written_by_pipeline_components_never_by_producers() -> None:
    # The fold rejects bounded-counter decrements at fold time, the ingest gateway malformed MQTT messages.
    assert writers(topics.REJECTED) == {"verifier", "fold", "ingest"}
    assert "producer" not in writers(topics.REJECTED)


def test_producer_writes_only_ingress_and_tasks() -> None:
    everything = [t.name for t in topics.PIPELINE_TOPICS] + [topics.mirrored(r, t) for r in REGIONS for t in topics.MIRRORED]
    everything += [topics.TASK_POOL_PREFIX + "gpu", "jarvis-fold-eu-state-changelog", "heartbeats", "mm2-offsets.eu.internal"]
    assert {t for t in everything if allowed(ACLS, "producer", TOPIC, t, "WRITE")} == {topics.INGRESS, topics.TASKS}
    assert not any(allowed(ACLS, "producer", TOPIC, t, "CREATE") for t in everything)


@pytest.mark.parametrize("topic", topics.MIRRORED)
def test_only_mirrormaker_writes_mirrored_copies(topic: str) -> None:
    for r in REGIONS:
        assert writers(topics.mirrored(r, topic)) == {"mirrormaker"}
    assert writers("eu.heartbeats") == {"mirrormaker"}


def test_each_role_reads_what_it_consumes_and_its_mirrors() -> None:
    for spec in roles.ROLES:
        for t in spec.consumes:
            name = t.replace("<pool>", "gpu")
            assert allowed(ACLS, spec.name, TOPIC, name, "READ"), (spec.name, name)
            if spec.consumes_mirrors:
                assert all(allowed(ACLS, spec.name, TOPIC, topics.mirrored(r, name), "READ") for r in REGIONS)


def test_readers_are_only_those_that_need_it() -> None:
    # The console reads ingress for the operation page's "written" step (connectors/trace.py).
    assert readers(topics.INGRESS) == {"verifier", "ingest", "console"}
    assert readers(topics.IDEMPOTENCY) == {"ingest"}
    # MirrorMaker owns every <region>.* topic it makes (it syncs their configs and offsets).
    assert readers(topics.mirrored("us", topics.SEEN)) == {"verifier", "mirrormaker"}
    assert "producer" not in readers(topics.TASKS) and "producer" not in readers(topics.SEEN)
    assert readers(topics.TASKS_DEAD) == {"console"}


def test_faust_apps_own_their_internal_topics_and_groups() -> None:
    for spec in roles.ROLES:
        app = roles.faust_app_id(spec.name, "eu")
        own = spec.entry is roles.Entry.faust
        assert allowed(ACLS, spec.name, TOPIC, f"{app}-fold_state-changelog", "CREATE") is own
        if own:
            assert allowed(ACLS, spec.name, GROUP, app, "READ")
    assert not allowed(ACLS, "fold", TOPIC, "jarvis-verifier-eu-x-changelog", "WRITE")


def test_groups_are_prefixes_each_role_owns() -> None:
    assert allowed(ACLS, "producer", GROUP, "verdicts-1234", "READ")
    assert not allowed(ACLS, "producer", GROUP, "jarvis-archiver-eu", "READ")
    assert allowed(ACLS, "archiver", GROUP, "jarvis-archiver-eu", "READ")
    assert allowed(ACLS, "mirrormaker", GROUP, "eu-mm2", "READ")


def test_the_agent_creates_pool_topics_only() -> None:
    assert allowed(ACLS, "agent", TOPIC, topics.TASK_POOL_PREFIX + "x", "CREATE")
    assert not allowed(ACLS, "agent", TOPIC, topics.OPS, "CREATE")


def test_no_cluster_rights_but_mirrormaker_s_describe() -> None:
    holders = {b.principal for b in ACLS if b.resource == CLUSTER}
    assert holders == {"User:mirrormaker"}


def test_table_is_sorted_unique_and_literal_names_are_whole() -> None:
    assert sorted(set(ACLS)) == ACLS
    assert all(isinstance(b, AclBinding) and "<" not in b.name for b in ACLS)
    assert acl_bindings(REGIONS) == ACLS  # deterministic
