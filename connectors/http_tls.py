"""TLS for the stack's HTTP APIs (query API, ingest gateway, console): the servers' context and the
one every client of ours trusts.

`jarvis stack up` issues one leaf, `http`, from the project CA (jarvis/security/certs.py) for the
host's names; every HTTP server of the host presents it. TLS 1.3 only, as on Kafka. Clients trust
the project CA (JARVIS_HTTP_CA, default JARVIS_HOME/tls/ca.pem): curl --cacert, Python ssl, aiohttp.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jarvis.config import Settings
from jarvis.errors import JarvisError
from jarvis.security import certs
from jarvis.security.certs import CertificateAuthority, Leaf

LEAF = "http"


class HttpTlsError(JarvisError, RuntimeError):
    """An HTTPS server or client lacks its certificate or CA; says which file and how to make it."""


def leaf_hosts(settings: Settings) -> tuple[str, ...]:
    return tuple(dict.fromkeys((settings.host, "127.0.0.1", "localhost")))


def issue(settings: Settings) -> Leaf:
    """The HTTP servers' leaf, (re)issued if missing, stale or for other names (by `stack up`)."""
    return CertificateAuthority(settings.tls_dir).leaf(LEAF, hosts=leaf_hosts(settings))


def leaf_files(settings: Settings) -> tuple[Path, Path]:
    return settings.tls_dir / f"{LEAF}.pem", settings.tls_dir / f"{LEAF}.key"


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """What an HTTP server of the stack listens with: None when the stack is insecure."""
    if not settings.http_secure:
        return None
    cert, key = leaf_files(settings)
    if not (cert.exists() and key.exists()):
        raise HttpTlsError(f"no HTTPS certificate at {cert}: `jarvis stack up` issues it (or set JARVIS_HTTP_TLS=0)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(settings: Settings) -> ssl.SSLContext | None:
    """What our clients (CLI, SDK, console, tests, benchmarks) verify the servers with."""
    if not settings.http_secure:
        return None
    ca = settings.http_ca_file
    if not ca.exists():
        raise HttpTlsError(f"no CA at {ca} to verify the HTTPS APIs with: set JARVIS_HTTP_CA, or run `jarvis stack up`")
    return certs.client_context(ca)


def verify(settings: Settings) -> str | bool:
    """The `verify` argument of requests (schemathesis) and httpx: the CA file, or no TLS at all."""
    return str(settings.http_ca_file) if settings.http_secure else True


def start_metrics_server(settings: Settings, port: int) -> None:
    """prometheus-client's /metrics server of a worker without a web app (archiver, agent), over
    HTTPS with the same leaf as the APIs unless the stack is insecure."""
    # Lazy: only those two workers serve metrics this way.
    from prometheus_client import start_http_server

    if not settings.http_secure:
        start_http_server(port, addr=settings.host)
        return
    server_context(settings)  # the same clear error when the leaf is missing
    cert, key = leaf_files(settings)
    start_http_server(port, addr=settings.host, certfile=str(cert), keyfile=str(key),
                      tls_min_version=ssl.TLSVersion.TLSv1_3)  # fmt: skip


def faust_http_client(settings: Settings) -> Callable[[], Any]:
    """Faust's `HttpClient` setting: the session its table router forwards reads to the owning
    worker with, verifying that worker's HTTPS against the project CA."""
    # Lazy: only Faust workers route reads; the CLI and the SDK import this module without aiohttp.
    import aiohttp

    ctx = client_context(settings)

    def session() -> aiohttp.ClientSession:  # made by Faust inside its event loop, on first use
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx or True))

    return session
