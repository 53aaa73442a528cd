"""deploy/k8s: every rendered document valid against its schema, and consistent with the code.

Schemas: Kubernetes' from the kubernetes-validate package (strict: unknown fields are errors), Strimzi's
CRDs made by Strimzi's own generator from its api jar, KEDA's through @kubernetes-models/keda's
validators, all put under .venv/k8s-schemas by `make install` (deploy/k8s/schemas/install.sh), as is
the kustomize that renders the overlays. Nothing is fetched here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from jarvis import topics
from jarvis.config import REPO_ROOT, Settings
from jarvis.roles import web_port
from jarvis.security import kafka_acls
from jarvis.worker_cli import Role

K8S = REPO_ROOT / "deploy" / "k8s"
SCHEMAS = Path(sys.prefix) / "k8s-schemas"
KUBERNETES_VERSION = "1.33"  # the oldest Kubernetes the manifests are meant for
REGIONS = ("eu", "us")
STRIMZI_CLUSTER = "jarvis"
# Environment variables that are not JARVIS_* but read by a library the workers use: libpq (psycopg).
LIBRARY_ENV = {"PGPASSWORD"}

Doc = dict[str, Any]


def _missing(what: Path) -> str:
    return f"{what} is missing: run `make install` (deploy/k8s/schemas/install.sh puts it there)"


@cache
def rendered(region: str) -> tuple[Doc, ...]:
    kustomize = SCHEMAS / "bin" / "kustomize"
    assert kustomize.exists(), _missing(kustomize)
    out = subprocess.run(
        [str(kustomize), "build", str(K8S / "overlays" / region)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def of_kind(docs: tuple[Doc, ...], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


# --- schemas ---------------------------------------------------------------------------------------


def _closed(schema: Any) -> Any:
    """The API server drops fields a structural schema does not declare, silently: a misspelt field
    would just vanish. Closing every object that lists its properties makes such a field an error
    (only typed ones: the untyped branches of a oneOf list properties to require, not to allow)."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@cache
def strimzi_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> the CRD's openAPIV3Schema, closed."""
    folder = SCHEMAS / "strimzi"
    assert folder.is_dir(), _missing(folder)
    out: dict[tuple[str, str], Any] = {}
    for path in sorted(folder.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            out[(f"{group}/{version['name']}", kind)] = _closed(version["schema"]["openAPIV3Schema"])
    return out


def strimzi_errors(doc: Doc) -> list[str]:
    schema = strimzi_schemas().get((doc["apiVersion"], doc["kind"]))
    if schema is None:
        return [f"no Strimzi CRD for {doc['apiVersion']} {doc['kind']}"]
    validator = jsonschema.Draft4Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def kubernetes_errors(doc: Doc) -> list[str]:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [e.message]
    return []


def keda_errors(docs: list[Doc]) -> list[str | None]:
    npm = SCHEMAS / "npm"
    assert (npm / "node_modules" / "@kubernetes-models" / "keda").is_dir(), _missing(npm)
    out = subprocess.run(
        ["node", str(K8S / "schemas" / "keda-validate.mjs"), str(npm)],
        input=json.dumps(docs),
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return json.loads(out)


def schema_errors(docs: list[Doc]) -> dict[str, list[str]]:
    """Every document's errors by `kind/name`, empty lists dropped."""
    found: dict[str, list[str]] = {}
    keda = [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
    for doc, error in zip(keda, keda_errors(keda) if keda else [], strict=True):
        if error:
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = [error]
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        check = strimzi_errors if doc["apiVersion"].startswith("kafka.strimzi.io/") else kubernetes_errors
        errors = check(doc)
        if errors:
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = errors
    return found


@pytest.mark.parametrize("region", REGIONS)
def test_every_rendered_document_is_valid(region: str) -> None:
    docs = list(rendered(region))
    kinds = {d["kind"] for d in docs}
    expected = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "KafkaMirrorMaker2", "Deployment"}
    expected |= {"Service", "ScaledObject", "PodDisruptionBudget", "NetworkPolicy", "Namespace"}
    assert expected <= kinds
    assert schema_errors(docs) == {}
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {f"jarvis-{region}"}


def test_example_secrets_are_valid() -> None:
    docs = [d for d in yaml.safe_load_all((K8S / "examples" / "secrets.example.yaml").read_text()) if d]
    assert {d["metadata"]["name"] for d in docs} >= {
        "jarvis-postgres",
        "jarvis-mirrormaker",
        "jarvis-keda-kafka",
    }
    assert schema_errors(docs) == {}


def test_the_validators_reject_what_they_should() -> None:
    """The checks above can fail: each validator refuses a broken document of its kind."""
    deployment = json.loads(json.dumps(of_kind(rendered("eu"), "Deployment")["fold"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # misspelt
    mm2 = json.loads(json.dumps(of_kind(rendered("eu"), "KafkaMirrorMaker2")["jarvis"]))
    # The shape Strimzi removed: the v1 CRD knows neither field.
    mm2["spec"]["connectCluster"] = "eu"
    mm2["spec"]["clusters"] = [{"alias": "eu", "bootstrapServers": "x:9093"}]
    topic = json.loads(json.dumps(of_kind(rendered("eu"), "KafkaTopic")["jarvis-ops"]))
    topic["spec"]["partitions"] = "six"
    user = json.loads(json.dumps(of_kind(rendered("eu"), "KafkaUser")["jarvis-fold"]))
    user["spec"]["authorisation"] = user["spec"].pop("authorization")  # the API server would drop it
    scaled = json.loads(json.dumps(of_kind(rendered("eu"), "ScaledObject")["fold"]))
    del scaled["spec"]["scaleTargetRef"]
    errors = schema_errors([deployment, mm2, topic, user, scaled])
    assert set(errors) == {
        "Deployment/fold",
        "KafkaUser/jarvis-fold",
        "KafkaMirrorMaker2/jarvis",
        "KafkaTopic/jarvis-ops",
        "ScaledObject/fold",
    }
    assert any("connectCluster" in e for e in errors["KafkaMirrorMaker2/jarvis"])


# --- consistency with the code ---------------------------------------------------------------------


def topic_names() -> set[str]:
    """Every topic jarvis/topics.py names (not its prefixes or patterns), and jarvis.ops.seen."""
    names = {
        v
        for k, v in vars(topics).items()
        if k.isupper() and isinstance(v, str) and re.fullmatch(r"jarvis(\.[a-z]+)+", v)
    }
    return names | {getattr(topics, "SEEN", "jarvis.ops.seen")}


@pytest.mark.parametrize("region", REGIONS)
def test_every_topic_has_a_kafka_topic_with_one_partition_count(region: str) -> None:
    docs = rendered(region)
    kafka_topics = {d["spec"]["topicName"]: d for d in of_kind(docs, "KafkaTopic").values()}
    assert set(kafka_topics) == topic_names()
    assert {d["spec"]["partitions"] for d in kafka_topics.values()} == {Settings().partitions}
    assert kafka_topics[topics.AGENTS]["spec"]["config"]["cleanup.policy"] == "compact"
    seen_retention = getattr(topics, "SEEN_RETENTION_MS", 2 * 24 * 3600 * 1000)
    assert kafka_topics["jarvis.ops.seen"]["spec"]["config"]["retention.ms"] == seen_retention
    for d in (*of_kind(docs, "KafkaTopic").values(), *of_kind(docs, "KafkaUser").values()):
        assert d["metadata"]["labels"]["strimzi.io/cluster"] == STRIMZI_CLUSTER
    kafka = of_kind(docs, "Kafka")[STRIMZI_CLUSTER]
    assert kafka["spec"]["kafka"]["config"]["message.max.bytes"] == topics.BROKER_MESSAGE_MAX_BYTES
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }
    pools = [
        p
        for p in of_kind(docs, "KafkaNodePool").values()
        if p["metadata"]["labels"]["strimzi.io/cluster"] == STRIMZI_CLUSTER
    ]
    assert {r for p in pools for r in p["spec"]["roles"]} == {"controller", "broker"}


def config_env_names() -> set[str]:
    """Every JARVIS_* name jarvis/config.py reads."""
    src = (REPO_ROOT / "jarvis" / "config.py").read_text()
    return {f"JARVIS_{n}" for n in re.findall(r'_env\("([A-Z_]+)"', src)} | set(
        re.findall(r'"(JARVIS_[A-Z_]+)"', src)
    )


def worker_container(deployment: Doc) -> Doc:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "worker")


POD_IP = "10.1.2.3"  # what the kubelet puts in a variable taken from status.podIP
SECRET_VALUE = "from-a-secret"  # what a variable taken from a Secret's key holds here


def deployment_settings(container: Doc, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a worker gets from its container's environment."""
    for e in container["env"]:
        if not e["name"].startswith("JARVIS_"):
            continue
        if "value" in e:
            monkeypatch.setenv(e["name"], e["value"])
        elif "secretKeyRef" in e["valueFrom"]:
            monkeypatch.setenv(e["name"], SECRET_VALUE)
        else:
            assert e["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}, e["name"]
            monkeypatch.setenv(e["name"], POD_IP)
    return Settings.from_env()


@pytest.mark.parametrize("region", REGIONS)
def test_every_role_has_a_deployment_its_env_read_and_its_probes_on_its_web_port(
    region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployments = of_kind(rendered(region), "Deployment")
    assert set(deployments) == {r.value for r in Role}
    read = config_env_names()
    for role, d in deployments.items():
        c = worker_container(d)
        assert c["command"] == ["jarvis", "worker", role, "--region", region]
        names = {e["name"] for e in c["env"]}
        assert names - read - LIBRARY_ENV == set(), f"{role} sets variables nothing reads"
        s = deployment_settings(c, monkeypatch)
        assert s.region == region and region in s.region_names
        # Bound where the kubelet's probes and the query Service reach it, and a routable canonical URL.
        assert s.host == POD_IP
        assert s.kafka_bootstrap == f"{STRIMZI_CLUSTER}-kafka-bootstrap:9093"
        assert s.partitions == Settings().partitions
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in (c["readinessProbe"], c["livenessProbe"]):
            assert probe["httpGet"]["path"] == "/healthz"
            port = probe["httpGet"]["port"]
            assert ports.get(port, port) == web_port(s, role, region, 0), f"{role} probe port"


@pytest.mark.parametrize("region", REGIONS)
def test_sidecars_forward_to_where_config_points(region: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DSN and Redis URL config.py builds from JARVIS_HOST (the pod's IP) lead to a socat sidecar
    listening on the pod's addresses and forwarding to the ExternalName Service."""
    docs = rendered(region)
    deployments = of_kind(docs, "Deployment")
    for role, port_of, service in (
        ("archiver", "postgres_port", "postgres"),
        ("fold", "redis_port", "redis"),
    ):
        pod = deployments[role]["spec"]["template"]["spec"]
        s = deployment_settings(worker_container(deployments[role]), monkeypatch)
        proxy = next(c for c in pod["containers"] if c["name"] == f"{service}-proxy")
        listen, target = proxy["args"]
        assert listen.split(",")[0] == f"TCP-LISTEN:{getattr(s, port_of)}" and "bind=" not in listen
        assert target.split(":")[1] == service
        assert of_kind(docs, "Service")[service]["spec"]["type"] == "ExternalName"


def allows(user: Doc, resource_type: str, name: str, operation: str) -> bool:
    for acl in user["spec"]["authorization"]["acls"]:
        r = acl["resource"]
        if acl.get("type", "allow") != "allow" or r["type"] != resource_type:
            continue
        pattern = r.get("name", "")
        matches = name.startswith(pattern) if r.get("patternType") == "prefix" else name == pattern
        if (resource_type == "cluster" or matches) and (
            operation in acl["operations"] or "All" in acl["operations"]
        ):
            return True
    return False


@pytest.mark.parametrize("region", REGIONS)
def test_users_have_least_privilege(region: str) -> None:
    docs = rendered(region)
    users = of_kind(docs, "KafkaUser")
    other = next(r for r in REGIONS if r != region)
    seen = getattr(topics, "SEEN", "jarvis.ops.seen")
    verifier, fold, archiver, agent = (
        users[f"jarvis-{r}"] for r in ("verifier", "fold", "archiver", "agent")
    )
    assert all(u["spec"]["authentication"]["type"] == "scram-sha-512" for u in users.values())
    assert allows(verifier, "topic", topics.INGRESS, "Read")
    for t in (topics.OPS, seen, topics.REJECTED):
        assert allows(verifier, "topic", t, "Write")
    assert allows(verifier, "topic", topics.mirrored(other, seen), "Read")
    for u in (fold, archiver):
        assert allows(u, "topic", topics.OPS, "Read")
        assert allows(u, "topic", topics.mirrored(other), "Read")
    assert allows(fold, "topic", f"jarvis-fold-{region}-table-changelog", "Write")
    assert allows(fold, "topic", topics.REJECTED, "Write")
    for t in (topics.TASKS, f"{topics.TASK_POOL_PREFIX}noop", topics.AGENTS):
        assert allows(agent, "topic", t, "Read") and allows(agent, "topic", t, "Write"), t
    assert allows(agent, "topic", topics.TASKS_DEAD, "Write")
    # Only the verifier writes verified operations; only MirrorMaker writes the mirrored ones.
    for name, u in users.items():
        assert allows(u, "topic", topics.OPS, "Write") == (name == "jarvis-verifier"), name
        assert allows(u, "topic", topics.mirrored(other), "Write") == (name == "jarvis-mirrormaker"), name
        # The gateway reads ingress back for GET /v1/ops/{op_id}, the console for its operation page
        # (tests/unit/test_kafka_acls.py).
        readers = ("jarvis-verifier", "jarvis-ingest", "jarvis-console")
        assert not allows(u, "topic", topics.INGRESS, "Read") or name in readers, name
    assert not allows(archiver, "topic", topics.REJECTED, "Write")
    listeners = of_kind(docs, "Kafka")[STRIMZI_CLUSTER]["spec"]["kafka"]["listeners"]
    assert [(x["tls"], x["authentication"]["type"]) for x in listeners] == [(True, "scram-sha-512")]


# kafka_acls' operation names in Strimzi's spelling.
STRIMZI_OPERATIONS = {"READ": "Read", "WRITE": "Write", "CREATE": "Create", "DESCRIBE": "Describe",
                      "DESCRIBE_CONFIGS": "DescribeConfigs", "ALL": "All"}  # fmt: skip
Acl = tuple[str, str, str, str]  # (resource type, name, pattern, operation), kafka_acls' spelling


def strimzi_acls(user: Doc) -> set[Acl]:
    """A KafkaUser's ACLs, without the Describe that a Read or Write on the same resource implies."""
    out: set[Acl] = set()
    for acl in user["spec"]["authorization"]["acls"]:
        r = acl["resource"]
        assert acl.get("type", "allow") == "allow" and acl.get("host", "*") == "*", acl
        key = (r["type"].upper(), r.get("name", kafka_acls.CLUSTER_NAME),
               "PREFIXED" if r.get("patternType") == "prefix" else "LITERAL")  # fmt: skip
        ops = set(acl["operations"])
        if ops & {"Read", "Write"}:
            ops.discard("Describe")
        out |= {(*key, op) for op in ops}
    return out


def code_acls(role: str, region: str) -> set[Acl]:
    """What the local stack's brokers allow the role (jarvis/security/kafka_acls.py), less the copies
    of this region's own topics under its name, which exist only in the other regions."""
    return {
        (b.resource, b.name, b.pattern, STRIMZI_OPERATIONS[b.operation])
        for b in kafka_acls.acl_bindings(REGIONS)
        if b.principal == f"User:{role}" and not b.name.startswith(f"{region}.")
    }


@pytest.mark.parametrize("region", REGIONS)
def test_every_deployment_logs_in_as_its_roles_kafka_user(region: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each worker authenticates as the KafkaUser of its role, with the password from the Secret Strimzi
    makes for that user and the cluster CA mounted as a file, and that user may do exactly what the
    role may do on the local stack."""
    docs = rendered(region)
    users = of_kind(docs, "KafkaUser")
    for role, d in of_kind(docs, "Deployment").items():
        pod = d["spec"]["template"]["spec"]
        c = worker_container(d)
        env = {e["name"]: e for e in c["env"]}
        s = deployment_settings(c, monkeypatch)
        assert s.kafka_security == "sasl_ssl" and s.kafka_username == f"jarvis-{role}"
        assert env["JARVIS_KAFKA_PASSWORD"]["valueFrom"] == {
            "secretKeyRef": {"name": s.kafka_username, "key": "password"}
        }, role
        assert s.kafka_password == SECRET_VALUE
        # The CA: Strimzi's <cluster>-cluster-ca-cert Secret, key ca.crt, at the path the variable names.
        # (The variable's value, not s.kafka_ca: config.py resolves symlinks, and /var/run often is one.)
        ca = Path(env["JARVIS_KAFKA_CA"]["value"])
        assert s.kafka_ca == ca.resolve()
        mount = next(m for m in c["volumeMounts"] if ca.parent == Path(m["mountPath"]))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == f"{STRIMZI_CLUSTER}-cluster-ca-cert"
        assert {"key": "ca.crt", "path": ca.name} in volume["secret"]["items"]
        # Nothing else of a Secret is mounted where a worker could mistake it for its own credentials.
        assert all("kafka-user" not in m["mountPath"] for m in c["volumeMounts"])
        user = users.get(s.kafka_username)
        assert user is not None, f"{role}: no KafkaUser {s.kafka_username}"
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}  # Strimzi makes the password
        assert strimzi_acls(user) == code_acls(role, region), role


def test_a_kafka_user_that_lacks_or_adds_an_acl_is_noticed() -> None:
    user = json.loads(json.dumps(of_kind(rendered("eu"), "KafkaUser")["jarvis-archiver"]))
    assert strimzi_acls(user) == code_acls("archiver", "eu")
    user["spec"]["authorization"]["acls"].pop()
    assert strimzi_acls(user) < code_acls("archiver", "eu")
    user["spec"]["authorization"]["acls"].append(
        {"resource": {"type": "topic", "name": topics.OPS, "patternType": "literal"}, "operations": ["Write"]}
    )
    assert not strimzi_acls(user) <= code_acls("archiver", "eu")


@pytest.mark.parametrize("region", REGIONS)
def test_mirrormaker_mirrors_ops_and_seen_from_the_other_region(region: str) -> None:
    mm2 = of_kind(rendered(region), "KafkaMirrorMaker2")["jarvis"]["spec"]
    other = next(r for r in REGIONS if r != region)
    assert mm2["target"]["alias"] == region
    (mirror,) = mm2["mirrors"]
    assert mirror["source"]["alias"] == other
    assert f"jarvis-{other}" in mirror["source"]["bootstrapServers"]
    pattern = re.compile(mirror["topicsPattern"])
    mirrored = {t for t in topic_names() | {topics.mirrored(other)} if pattern.fullmatch(t)}
    assert mirrored == {topics.OPS, getattr(topics, "SEEN", "jarvis.ops.seen"), topics.TRUST}


def pods_of(selector: Doc, deployments: dict[str, Doc]) -> set[str]:
    labels = selector.get("matchLabels", {})
    return {
        n
        for n, d in deployments.items()
        if labels.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    }


@pytest.mark.parametrize("region", REGIONS)
def test_scaling_budgets_and_network_policies(region: str) -> None:
    docs = rendered(region)
    deployments = of_kind(docs, "Deployment")
    scaled = of_kind(docs, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled.values()} == {"fold", "verifier"}
    for s in scaled.values():
        role = s["spec"]["scaleTargetRef"]["name"]
        (trigger,) = s["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == f"jarvis-{role}-{region}"  # streams/app.py's app id
        assert s["spec"]["maxReplicaCount"] <= Settings().partitions
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert set().union(*(pods_of(b["spec"]["selector"], deployments) for b in budgets.values())) == set(
        deployments
    )
    # Reachable from outside the namespace: an ingress rule with no `from`, or one naming other
    # namespaces or addresses. Only the fold's query port may be.
    outside: set[str] = set()
    for p in of_kind(docs, "NetworkPolicy").values():
        for rule in p["spec"].get("ingress", []):
            # Never the sidecars' ports, which listen on the pod's IP.
            assert [x["port"] for x in rule.get("ports", [])] == ["web"], p["metadata"]["name"]
            peers = rule.get("from")
            if not peers or any("namespaceSelector" in x or "ipBlock" in x for x in peers):
                outside |= pods_of(p["spec"]["podSelector"], deployments)
    assert outside == {"fold"}
    query = of_kind(docs, "Service")["query"]
    assert pods_of({"matchLabels": query["spec"]["selector"]}, deployments) == {"fold"}
    assert query["spec"]["ports"][0]["targetPort"] == "web"
