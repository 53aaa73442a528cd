"""HTTPS of the stack's APIs: the mode follows the stack (or JARVIS_HTTP_TLS), the servers' leaf
comes from the project CA, a handshake between our server and client contexts is TLS 1.3, and a
client that does not trust the project CA is refused."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from connectors import http_tls
from jarvis.config import Settings
from jarvis.security import kafka_credentials as kcreds


def home(tmp_path: Path, mode: str | None = None, **kw: object) -> Settings:
    s = Settings(home=tmp_path, **kw)  # type: ignore[arg-type]
    if mode:
        kcreds.write_mode(tmp_path, mode)
    return s


def test_https_unless_the_stack_was_brought_up_insecure_or_the_env_says(tmp_path: Path) -> None:
    assert home(tmp_path).http_scheme == "https"  # never brought up: secure by default
    assert home(tmp_path, kcreds.SASL_SSL).regions[0].query_url.startswith("https://")
    insecure = home(tmp_path, kcreds.PLAINTEXT)
    assert insecure.http_scheme == "http" and insecure.http_url(9261) == "http://127.0.0.1:9261"
    assert http_tls.server_context(insecure) is None and http_tls.client_context(insecure) is None
    assert home(tmp_path, http_tls=True).http_secure and not home(tmp_path / "x", http_tls=False).http_secure


def test_a_missing_certificate_or_ca_is_a_clear_error(tmp_path: Path) -> None:
    s = home(tmp_path)
    with pytest.raises(http_tls.HttpTlsError, match="jarvis stack up"):
        http_tls.server_context(s)
    with pytest.raises(http_tls.HttpTlsError, match="JARVIS_HTTP_CA"):
        http_tls.client_context(s)


def serve_once(ctx: ssl.SSLContext) -> tuple[int, threading.Thread, list[object]]:
    srv = socket.create_server(("127.0.0.1", 0))
    out: list[object] = []

    def run() -> None:
        conn, _ = srv.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                out.append(tls.version())
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as e:
            out.append(e)
        finally:
            srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv.getsockname()[1], t, out


def test_server_and_client_contexts_agree_on_tls_13_and_strangers_are_refused(tmp_path: Path) -> None:
    s = home(tmp_path)
    leaf = http_tls.issue(s)
    assert leaf.cert.exists() and leaf.key.stat().st_mode & 0o077 == 0
    server = http_tls.server_context(s)
    client = http_tls.client_context(s)
    assert server is not None and client is not None
    port, t, out = serve_once(server)
    with socket.create_connection(("127.0.0.1", port)) as raw, client.wrap_socket(raw, server_hostname="127.0.0.1") as c:
        assert c.version() == "TLSv1.3" and c.recv(2) == b"ok"
    t.join(5)
    assert out == ["TLSv1.3"]

    stranger = ssl.create_default_context()  # the system's CAs only: our leaf is not theirs
    port, t, out = serve_once(server)
    with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLCertVerificationError):
        stranger.wrap_socket(raw, server_hostname="127.0.0.1")
    t.join(5)

    old = ssl.create_default_context(cafile=str(s.http_ca_file))
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    port, t, out = serve_once(server)
    with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLError):
        old.wrap_socket(raw, server_hostname="127.0.0.1")
    t.join(5)
