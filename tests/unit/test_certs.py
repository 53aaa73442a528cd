"""The project CA (jarvis/security/certs.py): leaves verify against it, and are re-issued only when they must be."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from jarvis.security.certs import CertificateAuthority


def test_leaf_verifies_against_the_ca_with_openssl(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    ca = CertificateAuthority(tmp_path)
    leaf = ca.leaf("kafka-eu", ["127.0.0.1", "localhost"])
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca.ca_pem), "-purpose", "sslserver", str(leaf.cert)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    other = CertificateAuthority(tmp_path / "other")
    other.ensure()
    bad = subprocess.run(
        ["openssl", "verify", "-CAfile", str(other.ca_pem), str(leaf.cert)], capture_output=True, text=True
    )
    assert bad.returncode != 0


def test_python_ssl_loads_the_pair_and_the_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    leaf = ca.leaf("query-eu")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(leaf.cert, leaf.key)  # raises if the key does not match the certificate
    client = ssl.create_default_context(cafile=str(ca.ca_pem))
    assert client.cert_store_stats()["x509_ca"] == 1


def test_sans_and_p12(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    leaf = ca.leaf("b", ["127.0.0.1", "kafka.example.internal"])
    cert = x509.load_pem_x509_certificates(leaf.cert.read_bytes())[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["kafka.example.internal"]
    key, p12_cert, extra = pkcs12.load_key_and_certificates(leaf.p12.read_bytes(), leaf.p12_password.encode())
    assert key is not None and p12_cert == cert and len(extra) == 1
    assert leaf.key.stat().st_mode & 0o077 == 0


def test_reissued_only_when_names_or_ca_change(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    first = ca.leaf("x", ["127.0.0.1"]).cert.read_bytes()
    assert ca.leaf("x", ["127.0.0.1"]).cert.read_bytes() == first
    renamed = ca.leaf("x", ["127.0.0.1", "localhost"]).cert.read_bytes()
    assert renamed != first
    (tmp_path / "ca.pem").unlink()
    (tmp_path / "ca.key").unlink()
    new_ca = CertificateAuthority(tmp_path)
    again = new_ca.leaf("x", ["127.0.0.1", "localhost"]).cert.read_bytes()
    assert again != renamed


def test_jarvis_certs_issue_prints_paths_openssl_verifies(tmp_path, monkeypatch) -> None:
    import json
    import subprocess

    from typer.testing import CliRunner

    from jarvis.certs_cli import certs_app
    from jarvis.config import settings

    monkeypatch.setenv("JARVIS_HOME", str(tmp_path))
    settings.cache_clear()
    try:
        out = CliRunner().invoke(certs_app, ["issue", "web1", "--host", "db.internal", "--host", "10.0.0.5", "--json"])
        assert out.exit_code == 0, out.output
        paths = json.loads(out.stdout)
        ok = subprocess.run(["openssl", "verify", "-CAfile", paths["ca"], paths["cert"]], capture_output=True, text=True)
        assert ok.returncode == 0 and ok.stdout.strip().endswith("OK")
        bad = CliRunner().invoke(certs_app, ["issue", "../x", "--host", "a"])
        assert bad.exit_code != 0 and "letters, digits" in bad.output
    finally:
        settings.cache_clear()
