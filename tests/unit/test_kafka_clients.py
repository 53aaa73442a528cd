"""Client configuration (connectors/kafka_clients.py) from what `jarvis stack up` leaves in JARVIS_HOME."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from connectors import kafka_clients as kc
from connectors.mirrormaker import mm2_properties
from jarvis.config import Settings
from jarvis.security import kafka_credentials as creds


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path)
    creds.ensure_passwords(tmp_path, ["producer", "admin", "mirrormaker"])
    s.tls_dir.mkdir()
    (s.tls_dir / "ca.pem").write_text("not read here")
    return s


def test_passwords_are_random_private_and_kept(tmp_path: Path) -> None:
    first = creds.ensure_passwords(tmp_path, ["a", "b"])
    assert first["a"] != first["b"] and len(first["a"]) >= 32
    assert creds.ensure_passwords(tmp_path, ["a", "b"]) == first
    mode = stat.S_IMODE(creds.password_file(tmp_path, "a").stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(creds.credentials_dir(tmp_path).stat().st_mode) == 0o700
    with pytest.raises(ValueError):
        creds.password_file(tmp_path, "../x")


def test_secure_by_default(home: Settings) -> None:
    conf = kc.confluent_conf(home, "producer", "eu", **{"acks": "all"})
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "producer"
    assert conf["sasl.password"] == creds.read_password(home.home, "producer")
    assert conf["ssl.ca.location"] == str(home.tls_dir / "ca.pem")
    assert conf["bootstrap.servers"] == "127.0.0.1:19092" and conf["acks"] == "all"
    assert kc.bootstrap_url(home, "us") == "sasl_ssl://127.0.0.1:19102"


def test_insecure_stack_is_recorded_and_seen(home: Settings) -> None:
    creds.write_mode(home.home, creds.PLAINTEXT)
    conf = kc.confluent_conf(home, "producer", "eu")
    assert conf == {"bootstrap.servers": "127.0.0.1:19092"}
    assert kc.bootstrap_url(home, "eu") == "plaintext://127.0.0.1:19092"
    assert kc.java_client_properties(home, "mirrormaker") == {"security.protocol": "PLAINTEXT"}
    creds.write_mode(home.home, creds.SASL_SSL)
    assert kc.confluent_conf(home, "producer")["security.protocol"] == "SASL_SSL"


def test_explicit_settings_win(home: Settings, tmp_path: Path) -> None:
    s = replace(home, kafka_username="svc", kafka_password="pw", kafka_ca=tmp_path / "other.pem")
    (tmp_path / "other.pem").write_text("x")
    conf = kc.confluent_conf(s, "producer")
    assert (conf["sasl.username"], conf["sasl.password"], conf["ssl.ca.location"]) == ("svc", "pw", str(tmp_path / "other.pem"))
    assert kc.confluent_conf(replace(home, kafka_security="plaintext"), "producer")["bootstrap.servers"]
    with pytest.raises(kc.KafkaAuthError):
        kc.confluent_conf(replace(home, kafka_security="tls"), "producer")


def test_missing_password_or_ca_is_a_clear_error(home: Settings) -> None:
    with pytest.raises(kc.KafkaAuthError, match="verifier.password"):
        kc.confluent_conf(home, "verifier")
    (home.tls_dir / "ca.pem").unlink()
    with pytest.raises(kc.KafkaAuthError, match="ca.pem"):
        kc.confluent_conf(home, "producer")


def test_java_properties_for_mirrormaker(home: Settings) -> None:
    props = kc.java_client_properties(home, "mirrormaker")
    assert props["ssl.enabled.protocols"] == "TLSv1.3" and props["ssl.truststore.type"] == "PEM"
    pw = creds.read_password(home.home, "mirrormaker")
    assert props["sasl.jaas.config"].endswith(f'username="mirrormaker" password="{pw}";')
    text = mm2_properties({"eu": "a:1", "us": "b:2"}, security=props)
    assert "eu.security.protocol=SASL_SSL" in text and "us.sasl.mechanism=SCRAM-SHA-512" in text
    with pytest.raises(kc.KafkaAuthError):
        kc.scram_jaas("a", 'x"y')


def test_faust_and_aiokafka_kwargs(home: Settings) -> None:
    # The CA file above is no certificate: build a real one for the SSL context.
    from jarvis.security.certs import CertificateAuthority

    CertificateAuthority(home.tls_dir / "real").ensure()
    s = replace(home, kafka_ca=home.tls_dir / "real" / "ca.pem")
    kw = kc.faust_kwargs(s, "producer", "eu")
    assert kw["broker"] == "kafka://127.0.0.1:19092"
    cred = kw["broker_credentials"]
    assert cred.username == "producer" and cred.mechanism.value == "SCRAM-SHA-512"
    assert cred.ssl_context.minimum_version.name == "TLSv1_3"
    ak = kc.aiokafka_kwargs(s, "producer", "eu")
    assert ak["security_protocol"] == "SASL_SSL" and ak["sasl_mechanism"] == "SCRAM-SHA-512"
    creds.write_mode(home.home, creds.PLAINTEXT)
    assert "broker_credentials" not in kc.faust_kwargs(home, "producer", "eu")
