"""Every Kafka client's configuration, built in one place: confluent-kafka, Faust/aiokafka, and the
Java clients (MirrorMaker 2).

The default stack speaks SASL_SSL only: TLS 1.3 with the project CA (JARVIS_HOME/tls/ca.pem) and a
SCRAM-SHA-512 user per role (jarvis/roles.py; the brokers' ACLs come from jarvis/security/kafka_acls.py).
Which protocol a stack speaks, the CA and each principal's password are read from JARVIS_HOME, where
`jarvis stack up` leaves them (`--insecure` records PLAINTEXT), unless JARVIS_KAFKA_SECURITY,
JARVIS_KAFKA_CA, JARVIS_KAFKA_USERNAME and JARVIS_KAFKA_PASSWORD say otherwise. Nothing here is cached:
a stack brought down and up insecure (benchmarks/pipeline.py --compare-insecure) is seen at once.

Principals: a worker uses its role's name, the SDK Client `producer`, the operator's tools (the CLI,
the stack itself, tests' raw clients) `admin`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jarvis.config import Settings
from jarvis.errors import JarvisError
from jarvis.roles import ADMIN
from jarvis.security import certs
from jarvis.security import kafka_credentials as creds
from jarvis.security.kafka_credentials import PLAINTEXT, SASL_SSL

PRODUCER = "producer"  # the SDK Client's principal by default
MECHANISM = "SCRAM-SHA-512"
TLS_PROTOCOL = "TLSv1.3"

__all__ = ["ADMIN", "KafkaAuth", "KafkaAuthError", "auth", "bootstrap_url", "confluent_conf", "faust_kwargs"]


class KafkaAuthError(JarvisError, RuntimeError):
    """A client of a secure cluster lacks what it needs to connect (CA or password); says where to get it."""


@dataclass(frozen=True, slots=True)
class KafkaAuth:
    protocol: str  # SASL_SSL | PLAINTEXT
    username: str | None = None
    password: str | None = None
    ca: Path | None = None

    @property
    def secure(self) -> bool:
        return self.protocol == SASL_SSL


def protocol(settings: Settings) -> str:
    """SASL_SSL unless JARVIS_KAFKA_SECURITY or the stack under JARVIS_HOME says PLAINTEXT."""
    if settings.kafka_security:
        wanted = settings.kafka_security.upper()
        if wanted not in (SASL_SSL, PLAINTEXT):
            raise KafkaAuthError(f"JARVIS_KAFKA_SECURITY={settings.kafka_security!r}: use sasl_ssl or plaintext")
        return wanted
    return creds.read_mode(settings.home) or SASL_SSL


def ca_path(settings: Settings) -> Path:
    return settings.kafka_ca or settings.tls_dir / "ca.pem"


def credentials_location(settings: Settings) -> Path:
    return creds.credentials_dir(settings.home)


def auth(settings: Settings, principal: str = ADMIN) -> KafkaAuth:
    """How `principal` authenticates to the cluster of `settings` (JARVIS_KAFKA_USERNAME overrides it)."""
    proto = protocol(settings)
    if proto == PLAINTEXT:
        return KafkaAuth(PLAINTEXT)
    user = settings.kafka_username or principal
    password = settings.kafka_password or creds.read_password(settings.home, user)
    if password is None:
        raise KafkaAuthError(
            f"no Kafka password for principal {user!r}: expected {creds.password_file(settings.home, user)} "
            "(made by `jarvis stack up`) or JARVIS_KAFKA_USERNAME/JARVIS_KAFKA_PASSWORD"
        )
    ca = ca_path(settings)
    if not ca.exists():
        raise KafkaAuthError(f"no Kafka CA certificate at {ca}: run `jarvis stack up` or set JARVIS_KAFKA_CA")
    return KafkaAuth(SASL_SSL, user, password, ca)


def bootstrap_url(settings: Settings, region: str | None = None) -> str:
    """The region's bootstrap with its protocol, as `jarvis stack status --json` gives it."""
    return f"{protocol(settings).lower()}://{settings.bootstrap(region)}"


def confluent_conf(
    settings: Settings,
    principal: str = ADMIN,
    region: str | None = None,
    *,
    bootstrap: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A confluent-kafka Producer/Consumer/AdminClient configuration for `principal` on the cluster of
    `region` (or `bootstrap`, a HOST:PORT of that cluster); `extra` keys are added as given."""
    a = auth(settings, principal)
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap or settings.bootstrap(region)}
    if a.secure:
        conf |= {
            "security.protocol": SASL_SSL,
            "sasl.mechanism": MECHANISM,
            "sasl.username": a.username,
            "sasl.password": a.password,
            "ssl.ca.location": str(a.ca),
            "ssl.endpoint.identification.algorithm": "https",
        }
    conf.update(extra)
    return conf


def ssl_context(a: KafkaAuth) -> ssl.SSLContext:
    assert a.ca is not None, "a SASL_SSL KafkaAuth always names its CA (auth())"
    return certs.client_context(a.ca)


def faust_kwargs(settings: Settings, principal: str, region: str | None = None) -> dict[str, Any]:
    """`broker` and `broker_credentials` for faust.App (its aiokafka clients)."""
    a = auth(settings, principal)
    kwargs: dict[str, Any] = {"broker": f"kafka://{settings.bootstrap(region)}"}
    if a.secure:
        # Lazy: the SDK and the CLI build confluent-kafka clients and must not pay for importing Faust.
        import faust

        kwargs["broker_credentials"] = faust.SASLCredentials(
            username=a.username, password=a.password, mechanism=MECHANISM, ssl_context=ssl_context(a)
        )
    return kwargs


def aiokafka_kwargs(settings: Settings, principal: str, region: str | None = None) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client used directly."""
    a = auth(settings, principal)
    kwargs: dict[str, Any] = {"bootstrap_servers": settings.bootstrap(region)}
    if a.secure:
        kwargs |= {
            "security_protocol": SASL_SSL,
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": a.username,
            "sasl_plain_password": a.password,
            "ssl_context": ssl_context(a),
        }
    return kwargs


def java_client_properties(settings: Settings, principal: str) -> dict[str, str]:
    """A Java client's security settings (.properties keys), e.g. MirrorMaker 2's per cluster alias."""
    a = auth(settings, principal)
    if not a.secure:
        return {"security.protocol": PLAINTEXT}
    return {
        "security.protocol": SASL_SSL,
        "sasl.mechanism": MECHANISM,
        "sasl.jaas.config": scram_jaas(a.username or "", a.password or ""),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(a.ca),
        "ssl.enabled.protocols": TLS_PROTOCOL,
        "ssl.protocol": TLS_PROTOCOL,
    }


def scram_jaas(username: str, password: str) -> str:
    # Passwords made by the stack are hex; a quote or backslash would need JAAS escaping.
    if any(c in username + password for c in '"\\;\n'):
        raise KafkaAuthError("a Kafka username or password holds a quote, backslash, semicolon or newline")
    return f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{username}" password="{password}";'


def client_conf(bootstrap: str, principal: str = ADMIN, settings: Settings | None = None) -> dict[str, Any]:
    """confluent_conf for a cluster named by its HOST:PORT, with the process's settings unless given:
    for the helpers that take a bootstrap (tail consumers, admin clients, tests)."""
    # Lazy: reading the environment is the caller's choice, made only when it passes no settings.
    from jarvis.config import settings as process_settings

    return confluent_conf(settings or process_settings(), principal, bootstrap=bootstrap)
