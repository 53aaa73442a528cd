"""The default stack's Kafka is secure, checked with clients we did not write (kcat, openssl) and
with confluent-kafka: TLS 1.3 only, no anonymous access, and ACLs per principal (jarvis/roles.py)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from connectors.kafka_clients import confluent_conf
from jarvis import topics
from jarvis.security import kafka_credentials as kcreds

pytestmark = pytest.mark.integration

KCAT = shutil.which("kcat")
needs_kcat = pytest.mark.skipif(KCAT is None, reason="kcat not installed (deploy/install-system-deps.sh)")


@pytest.fixture(scope="module")
def secure(stack):
    if kcreds.read_mode(stack.settings.home) != kcreds.SASL_SSL:
        pytest.skip("the stack was brought up --insecure")
    return stack.settings


def _status() -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "jarvis.cli", "stack", "status", "--json"], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def _kcat_produce(settings, region: str, topic: str, user: str | None, timeout: float = 30) -> subprocess.CompletedProcess:
    args = [KCAT, "-P", "-b", settings.bootstrap(region), "-t", topic, "-m", "10", "-X", "message.timeout.ms=8000"]
    if user is not None:
        password = kcreds.read_password(settings.home, user)
        args += [
            "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
            "-X", f"sasl.username={user}", "-X", f"sasl.password={password}",
            "-X", f"ssl.ca.location={settings.tls_dir / 'ca.pem'}",
        ]  # fmt: skip
    return subprocess.run(args, input=f"kcat-{uuid.uuid4().hex}\n", capture_output=True, text=True, timeout=timeout)


def _produce(settings, principal: str, region: str, topic: str) -> KafkaError | None:
    """Produce one record as `principal`; the delivery error, or None when it was written."""
    p = Producer(confluent_conf(settings, principal, region, **{"message.timeout.ms": 10_000, "acks": "all"}))
    errors: list[KafkaError | None] = []
    p.produce(topic, key=b"acl-test", value=b"x", on_delivery=lambda err, _msg: errors.append(err))
    p.flush(20)
    assert errors, "no delivery report within 20 s"
    return errors[0]


def test_status_json_tells_a_client_how_to_connect(secure) -> None:
    st = _status()
    for region in secure.region_names:
        r = secure.region_config(region)
        assert st["regions"][region]["bootstrap_url"] == f"sasl_ssl://{r.host}:{r.kafka_port}"
    assert st["kafka_security"] == "SASL_SSL"
    assert Path(st["ca"]).is_absolute() and Path(st["ca"]).exists()
    creds = Path(st["kafka_credentials"])
    assert (creds / "producer.password").exists()
    assert (creds / "producer.password").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("region", ["eu", "us"])
def test_ca_verifies_the_broker_certificate_for_its_address(secure, region: str) -> None:
    ca = _status()["ca"]
    r = secure.region_config(region)
    ctx = ssl.create_default_context(cafile=ca)  # checks the chain and that the name matches the address
    sock = socket.create_connection((r.host, r.kafka_port), timeout=10)
    with ctx.wrap_socket(sock, server_hostname=r.host) as tls:
        assert tls.version() == "TLSv1.3"
        assert tls.getpeercert()["subject"] == ((("commonName", f"kafka-{region}"),),)


@pytest.mark.parametrize("port_of", ["kafka_port", "controller_port"])
def test_openssl_negotiates_tls13_and_refuses_tls12(secure, port_of: str) -> None:
    r = secure.region_config("eu")
    target = f"{r.host}:{getattr(r, port_of)}"
    ca = str(secure.tls_dir / "ca.pem")
    # The controller wants a client certificate of the CA: present the broker's own.
    leaf = secure.tls_dir / "kafka-eu"
    client = ["-cert", f"{leaf}.pem", "-key", f"{leaf}.key"] if port_of == "controller_port" else []
    ok = subprocess.run(
        ["openssl", "s_client", "-connect", target, "-tls1_3", "-CAfile", ca, "-verify_return_error", "-brief", *client],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    out = ok.stdout + ok.stderr
    assert "Protocol version: TLSv1.3" in out, out
    assert "Verification: OK" in out, out
    old = subprocess.run(
        ["openssl", "s_client", "-connect", target, "-tls1_2", "-CAfile", ca, "-brief", *client],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert old.returncode != 0, old.stdout + old.stderr
    assert "Protocol version: TLSv1.2" not in old.stdout + old.stderr


@pytest.mark.parametrize("role", ["fold", "ingest", "console", "verifier", "agent", "mirrormaker"])
def test_every_http_server_speaks_tls13_only_with_the_project_leaf(secure, role: str) -> None:
    """The query API (the fold's web server), the ingest gateway, the console, the /metrics of a
    worker without a web app and MirrorMaker's JMX exporter: TLS 1.3 with the CA's leaf, TLS 1.2
    refused, no plain HTTP."""
    from jarvis.roles import web_port
    from jarvis.stack import mirrormaker

    port = mirrormaker.metrics_port(secure) if role == "mirrormaker" else web_port(secure, role, "eu")
    target = f"{secure.host}:{port}"
    ca = str(secure.http_ca_file)
    ok = subprocess.run(
        ["openssl", "s_client", "-connect", target, "-tls1_3", "-CAfile", ca, "-verify_return_error", "-brief"],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    out = ok.stdout + ok.stderr
    assert "Protocol version: TLSv1.3" in out and "Verification: OK" in out, out
    old = subprocess.run(["openssl", "s_client", "-connect", target, "-tls1_2", "-CAfile", ca, "-brief"],
                         input="", capture_output=True, text=True, timeout=30)  # fmt: skip
    assert old.returncode != 0 and "Protocol version: TLSv1.2" not in old.stdout + old.stderr
    plain = subprocess.run(["curl", "-sS", "--max-time", "5", f"http://{target}/healthz"], capture_output=True, text=True)
    assert plain.returncode != 0 or not plain.stdout.startswith("{"), plain.stdout  # no plain-HTTP answer


@needs_kcat
def test_kcat_without_credentials_is_refused(secure) -> None:
    # Plaintext to a TLS listener: the broker drops the connection; nothing is written.
    res = _kcat_produce(secure, "eu", topics.INGRESS, user=None)
    assert res.returncode != 0, res.stdout + res.stderr
    # TLS without SASL: the SASL_SSL listener wants authentication first.
    ca = secure.tls_dir / "ca.pem"
    res = subprocess.run(
        [KCAT, "-L", "-b", secure.bootstrap("eu"), "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={ca}",
         "-m", "8"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode != 0, res.stdout + res.stderr


@needs_kcat
def test_kcat_with_a_wrong_password_is_refused(secure) -> None:
    args = [
        KCAT, "-L", "-b", secure.bootstrap("eu"), "-m", "8",
        "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
        "-X", "sasl.username=producer", "-X", "sasl.password=not-the-password",
        "-X", f"ssl.ca.location={secure.tls_dir / 'ca.pem'}",
    ]  # fmt: skip
    res = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert "Authentication failed" in res.stderr or "SASL" in res.stderr, res.stderr


@needs_kcat
def test_kcat_as_producer_writes_ingress_but_not_jarvis_ops(secure) -> None:
    ok = _kcat_produce(secure, "eu", topics.INGRESS, "producer")
    assert ok.returncode == 0, ok.stderr
    denied = _kcat_produce(secure, "eu", topics.OPS, "producer")
    assert denied.returncode != 0
    assert "Topic authorization failed" in denied.stderr or "TOPIC_AUTHORIZATION_FAILED" in denied.stderr, denied.stderr


@pytest.mark.parametrize(
    ("principal", "topic", "allowed"),
    [
        ("producer", topics.OPS, False),
        ("producer", topics.REJECTED, False),
        ("producer", topics.SEEN, False),
        ("producer", topics.INGRESS, True),
        ("producer", topics.TASKS, True),
        ("verifier", topics.mirrored("us"), False),  # only MirrorMaker writes the mirrored copies
        ("verifier", topics.OPS, True),
        ("archiver", topics.OPS, False),
        ("fold", topics.OPS, False),
    ],
)
def test_acls_per_principal(secure, principal: str, topic: str, allowed: bool) -> None:
    err = _produce(secure, principal, "eu", topic)
    if allowed:
        assert err is None, err
    else:
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err


def test_producer_cannot_read_what_it_has_no_need_for(secure) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(confluent_conf(secure, "producer", "eu", **{"group.id": f"verdicts-{uuid.uuid4().hex}"}))
    try:
        md = c.list_topics(topics.SEEN, timeout=10).topics[topics.SEEN]
        assert md.error is not None and md.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, md.error
        with pytest.raises(KafkaException):
            c.get_watermark_offsets(TopicPartition(topics.SEEN, 0), timeout=10)
        # What it needs (its verdicts) it reads.
        assert c.list_topics(topics.DECIDED, timeout=10).topics[topics.DECIDED].error is None
    finally:
        c.close()


def test_producer_creates_no_topics(secure) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(confluent_conf(secure, "producer", "eu"))
    fut = admin.create_topics([NewTopic(f"scratch.{uuid.uuid4().hex}", 1, 1)])
    with pytest.raises(KafkaException) as e:
        next(iter(fut.values())).result(20)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
