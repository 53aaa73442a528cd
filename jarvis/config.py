"""The one configuration object: every `JARVIS_*` environment variable is read here, once (and
JARVIS_WORKER_INSTANCE, the stack's way to number a worker, by `jarvis worker`'s --instance option).

Everything else receives a `Settings` (or calls `settings()`, which caches the first read), so a
test can build its own `Settings(...)` without touching the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from jarvis.security import kafka_credentials

REPO_ROOT = Path(__file__).resolve().parent.parent

# Ports are spaced per region so N regions never collide: region i uses base + 10 * i.
KAFKA_BASE_PORT = 19092
QUERY_BASE_PORT = 8081
SCHEMA_REGISTRY_BASE_PORT = 18081
MQTT_BASE_PORT = 11883  # the region's Mosquitto broker: base + region index + JARVIS_PORT_OFFSET
# Apicurio Registry's Confluent-compatible API lives under this path, not at the root.
CCOMPAT_PATH = "/apis/ccompat/v7"


@dataclass(frozen=True)
class RegionConfig:
    name: str
    index: int
    host: str = "127.0.0.1"
    port_offset: int = 0  # shifts every port of the region: a second stack beside the first
    scheme: str = "https"  # of its HTTP APIs (Settings.http_scheme)

    @property
    def kafka_port(self) -> int:
        return KAFKA_BASE_PORT + 10 * self.index + self.port_offset

    @property
    def controller_port(self) -> int:
        return self.kafka_port + 1

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def query_port(self) -> int:
        return QUERY_BASE_PORT + self.index + self.port_offset

    @property
    def query_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.query_port}"

    @property
    def mqtt_port(self) -> int:
        return MQTT_BASE_PORT + self.index + self.port_offset

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://{self.host}:{self.mqtt_port}"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"JARVIS_{name}", default)


def _flag(value: str | None) -> bool | None:
    if value is None or not value.strip():
        return None
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"a JARVIS_* flag is {value!r}: use 1 or 0")


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: REPO_ROOT / ".jarvis")
    region_names: tuple[str, ...] = ("eu", "us")
    region: str = "eu"
    node_id: str = "local"
    host: str = "127.0.0.1"
    partitions: int = 6
    postgres_port: int = 15432
    postgres_db: str = "jarvis"
    postgres_user: str = "jarvis"
    redis_port: int = 16379
    kafka_heap: str = "512m"
    mirrormaker_heap: str = "384m"
    schema_registry_url: str | None = None  # set: producers write the Confluent wire format
    schema_registry_heap: str = "256m"
    llm_url: str | None = None
    kafka_bootstrap: str | None = None  # overrides the local stack's bootstrap for `region`
    snapshot_every_ops: int = 10_000  # the archiver snapshots an object after this many new ops
    port_offset: int = 0  # added to every Kafka and query port (JARVIS_PORT_OFFSET)
    agent_capabilities: tuple[str, ...] = ()  # empty: every installed handler's capabilities
    agent_concurrency: int = 8
    task_unroutable_s: float = 60.0  # a task no live agent pool can run is dead-lettered after this
    worker_loglevel: str = "warn"  # of the workers `jarvis stack up` starts: crit, error, warn, info, debug
    # /watch streams per fold worker at most; past it a 503. Each costs a socket and a queue (one
    # Redis pub/sub connection serves them all): 2,000 fit this 2-core machine with room.
    max_watchers: int = 2_000
    log_format: str = "text"  # JARVIS_LOG_FORMAT: "json" makes workers log one JSON object per line
    pipelines_file: Path | None = None  # JARVIS_PIPELINES: a definitions file instead of the packaged one
    # A deployment's own PostgreSQL and Redis (docker-compose.yml's services): JARVIS_POSTGRES_DSN and
    # JARVIS_REDIS_URL replace what is built from JARVIS_HOST and the local stack's ports.
    postgres_dsn_override: str | None = None
    redis_url_override: str | None = None
    backup_key: str | None = None  # JARVIS_BACKUP_KEY: `jarvis backup`'s key (64 hex digits or base64)
    # Kafka security (connectors/kafka_clients.py). Unset, every client reads what `jarvis stack up`
    # left under JARVIS_HOME: the protocol, the CA and its principal's password. Set, they name a
    # cluster elsewhere: JARVIS_KAFKA_SECURITY sasl_ssl|plaintext, JARVIS_KAFKA_USERNAME (then used
    # for every client of the process), JARVIS_KAFKA_PASSWORD, JARVIS_KAFKA_CA (a PEM file).
    kafka_security: str | None = None
    kafka_username: str | None = None
    kafka_password: str | None = None
    kafka_ca: Path | None = None
    # JARVIS_ADMIN_PUBLIC_KEYS: base64 Ed25519 public keys (comma-separated) whose trust records count,
    # besides those of JARVIS_HOME/keys/admin (jarvis/security/trust.py).
    admin_public_keys: tuple[str, ...] = ()
    # JARVIS_API_KEY: the Bearer key clients send to the HTTP APIs; unset, JARVIS_HOME/auth/admin.key
    api_key: str | None = None
    # JARVIS_HTTP_TLS 1|0: whether the HTTP APIs (query, ingest, console) speak HTTPS. Unset, as the
    # stack under JARVIS_HOME was brought up: HTTPS unless `jarvis stack up --insecure`.
    # JARVIS_HTTP_CA: the PEM file clients trust for them (default: JARVIS_HOME/tls/ca.pem).
    http_tls: bool | None = None
    http_ca: Path | None = None
    # OTEL_EXPORTER_OTLP_ENDPOINT (OpenTelemetry's own name): the collector the verifier and fold
    # export their spans to (connectors/otel.py); unset, no spans and no cost.
    otel_endpoint: str | None = None
    # OIDC Bearer tokens on the HTTP APIs besides API keys (connectors/oidc.py), on when
    # JARVIS_OIDC_ISSUER is set: JARVIS_OIDC_AUDIENCE (the `aud` our tokens carry; required then),
    # JARVIS_OIDC_ROLE_CLAIM (the claim naming the role, default `roles`), JARVIS_OIDC_CA (a PEM
    # file to verify the issuer's HTTPS with instead of the system's CAs).
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_role_claim: str = "roles"
    oidc_ca: Path | None = None

    @classmethod
    def from_env(cls) -> Settings:
        regions = tuple(r.strip() for r in _env("REGIONS", "eu,us").split(",") if r.strip())
        return cls(
            home=Path(_env("HOME", str(REPO_ROOT / ".jarvis"))).resolve(),
            region_names=regions,
            region=_env("REGION", regions[0]),
            node_id=_env("NODE_ID", "local"),
            host=_env("HOST", "127.0.0.1"),
            partitions=int(_env("PARTITIONS", "6")),
            postgres_port=int(_env("POSTGRES_PORT", "15432")),
            redis_port=int(_env("REDIS_PORT", "16379")),
            kafka_heap=_env("KAFKA_HEAP", "512m"),
            mirrormaker_heap=_env("MIRRORMAKER_HEAP", "384m"),
            schema_registry_url=os.environ.get("JARVIS_SCHEMA_REGISTRY_URL") or None,
            schema_registry_heap=_env("SCHEMA_REGISTRY_HEAP", "256m"),
            llm_url=os.environ.get("JARVIS_LLM_URL") or None,
            kafka_bootstrap=os.environ.get("JARVIS_KAFKA_BOOTSTRAP") or None,
            snapshot_every_ops=int(_env("SNAPSHOT_EVERY_OPS", "10000")),
            port_offset=int(_env("PORT_OFFSET", "0")),
            agent_capabilities=tuple(
                c.strip() for c in _env("AGENT_CAPABILITIES", "").split(",") if c.strip()
            ),
            agent_concurrency=int(_env("AGENT_CONCURRENCY", "8")),
            task_unroutable_s=float(_env("TASK_UNROUTABLE_S", "60")),
            worker_loglevel=_env("WORKER_LOGLEVEL", "warn"),
            max_watchers=int(_env("MAX_WATCHERS", "2000")),
            log_format=_env("LOG_FORMAT", "text").lower(),
            pipelines_file=Path(os.environ["JARVIS_PIPELINES"]) if os.environ.get("JARVIS_PIPELINES") else None,
            postgres_dsn_override=os.environ.get("JARVIS_POSTGRES_DSN") or None,
            redis_url_override=os.environ.get("JARVIS_REDIS_URL") or None,
            backup_key=os.environ.get("JARVIS_BACKUP_KEY") or None,
            kafka_security=(os.environ.get("JARVIS_KAFKA_SECURITY") or "").lower() or None,
            kafka_username=os.environ.get("JARVIS_KAFKA_USERNAME") or None,
            kafka_password=os.environ.get("JARVIS_KAFKA_PASSWORD") or None,
            kafka_ca=Path(os.environ["JARVIS_KAFKA_CA"]).resolve() if os.environ.get("JARVIS_KAFKA_CA") else None,
            admin_public_keys=tuple(
                k.strip() for k in _env("ADMIN_PUBLIC_KEYS", "").split(",") if k.strip()
            ),
            api_key=os.environ.get("JARVIS_API_KEY") or None,
            http_tls=_flag(os.environ.get("JARVIS_HTTP_TLS")),
            http_ca=Path(os.environ["JARVIS_HTTP_CA"]).resolve() if os.environ.get("JARVIS_HTTP_CA") else None,
            otel_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            oidc_issuer=os.environ.get("JARVIS_OIDC_ISSUER") or None,
            oidc_audience=os.environ.get("JARVIS_OIDC_AUDIENCE") or None,
            oidc_role_claim=_env("OIDC_ROLE_CLAIM", "roles") or "roles",
            oidc_ca=Path(os.environ["JARVIS_OIDC_CA"]).resolve() if os.environ.get("JARVIS_OIDC_CA") else None,
        )

    @property
    def regions(self) -> list[RegionConfig]:
        return [
            RegionConfig(name, i, self.host, self.port_offset, scheme)
            for scheme in [self.http_scheme]
            for i, name in enumerate(self.region_names)
        ]

    def region_config(self, name: str) -> RegionConfig:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(f"unknown region {name!r}; configured regions: {', '.join(self.region_names)}")

    def bootstrap(self, region: str | None = None) -> str:
        region = region or self.region
        if self.kafka_bootstrap and region == self.region:
            return self.kafka_bootstrap
        return self.region_config(region).bootstrap

    @property
    def postgres_dsn(self) -> str:
        if self.postgres_dsn_override:
            return self.postgres_dsn_override
        return f"postgresql://{self.postgres_user}@{self.host}:{self.postgres_port}/{self.postgres_db}"

    @property
    def schema_registry_port(self) -> int:
        """Port of the local stack's schema registry (`jarvis stack up --schema-registry`)."""
        return SCHEMA_REGISTRY_BASE_PORT + self.port_offset

    @property
    def local_schema_registry_url(self) -> str:
        return f"http://{self.host}:{self.schema_registry_port}{CCOMPAT_PATH}"

    @property
    def redis_url(self) -> str:
        if self.redis_url_override:
            return self.redis_url_override
        return f"redis://{self.host}:{self.redis_port}/0"

    @property
    def tls_dir(self) -> Path:
        """The project CA and the certificates it issued (jarvis/security/certs.py)."""
        return self.home / "tls"

    @property
    def http_secure(self) -> bool:
        """Whether the HTTP APIs speak HTTPS. Read on each call, not cached: a stack brought back up
        with --insecure (benchmarks/pipeline.py --compare-insecure) is seen at once."""
        if self.http_tls is not None:
            return self.http_tls
        return kafka_credentials.read_mode(self.home) != kafka_credentials.PLAINTEXT

    @property
    def http_scheme(self) -> str:
        return "https" if self.http_secure else "http"

    @property
    def http_ca_file(self) -> Path:
        return self.http_ca or self.tls_dir / "ca.pem"

    def http_url(self, port: int, host: str | None = None) -> str:
        """The base URL of one of the stack's HTTP servers."""
        return f"{self.http_scheme}://{host or self.host}:{port}"

    @property
    def admin_key_file(self) -> Path:
        """The admin API key `jarvis stack up` makes (0600), used by the CLI, demo and tests."""
        return self.home / "auth" / "admin.key"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"


@cache
def settings() -> Settings:
    return Settings.from_env()
