"""The project CA and the certificates it issues (Kafka brokers and clients, the HTTP APIs).

  <tls dir>/ca.pem, ca.key          the CA (key 0600); clients trust ca.pem
  <tls dir>/<name>.pem, <name>.key  a leaf: certificate chain (leaf then CA) and its PKCS#8 key
  <tls dir>/<name>.p12              the same leaf as PKCS#12, for Java (Kafka, MirrorMaker 2)

ECDSA P-256 keys: every TLS 1.3 stack here (OpenSSL in librdkafka and Python, the JDK) speaks it,
and a key is made in a millisecond where RSA-2048 takes tens. A leaf is re-issued when its names
change, it nears expiry, or the CA it was signed by is not the current one; otherwise files are
left alone, so a running broker never sees its certificate change under it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Leaf:
    name: str
    cert: Path  # chain: leaf then CA
    key: Path  # unencrypted PKCS#8 PEM, 0600
    p12: Path  # PKCS#12 of the same, protected by `p12_password`
    p12_password: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def make_ca(common_name: str = "Jarvis Streams local CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str, hosts: Sequence[str]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for `name`, valid as TLS server and client for `hosts` (DNS names or IPs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(_san(hosts), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _sans_of(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    }


class CertificateAuthority:
    """The CA under one directory, made on first use, issuing leaves into the same directory."""

    def __init__(self, tls_dir: Path) -> None:
        self.dir = tls_dir
        self.ca_pem = tls_dir / "ca.pem"
        self._ca_key_path = tls_dir / "ca.key"

    def ensure(self) -> Path:
        """Make the CA if it is missing; returns the path clients should trust."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.ca_pem.exists() and self._ca_key_path.exists():
            return self.ca_pem
        cert, key = make_ca()
        _write_private(self._ca_key_path, _pem_key(key))
        self.ca_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return self.ca_pem

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        self.ensure()
        cert = x509.load_pem_x509_certificate(self.ca_pem.read_bytes())
        key = serialization.load_pem_private_key(self._ca_key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self._ca_key_path} is not an EC key")
        return cert, key

    def leaf(self, name: str, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> Leaf:
        """The leaf `name` for `hosts`, issued now only if missing, stale or for other names."""
        p12_password = self._p12_password()
        out = Leaf(
            name=name, cert=self.dir / f"{name}.pem", key=self.dir / f"{name}.key",
            p12=self.dir / f"{name}.p12", p12_password=p12_password,
        )  # fmt: skip
        ca_cert, ca_key = self._load()
        if out.cert.exists() and out.key.exists() and out.p12.exists():
            current = x509.load_pem_x509_certificates(out.cert.read_bytes())[0]
            fresh = current.not_valid_after_utc - _now() > RENEW_BEFORE
            same_ca = current.issuer == ca_cert.subject and _aki(current) == _ski(ca_cert)
            if fresh and same_ca and _sans_of(current) == set(hosts):
                return out
        cert, key = make_leaf(ca_cert, ca_key, name, hosts)
        pem = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
        _write_private(out.key, _pem_key(key))
        out.cert.write_bytes(pem)
        p12 = pkcs12.serialize_key_and_certificates(
            name.encode(), key, cert, [ca_cert],
            serialization.BestAvailableEncryption(p12_password.encode()),
        )  # fmt: skip
        _write_private(out.p12, p12)
        return out

    def _p12_password(self) -> str:
        # PKCS#12 files need a password for Java to read them; it guards nothing the 0600 mode of the
        # files does not already guard, so one random password per CA directory is kept beside them.
        path = self.dir / "p12.password"
        if not path.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            _write_private(path, os.urandom(18).hex().encode())
        return path.read_text().strip()


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _aki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def client_context(ca: Path) -> ssl.SSLContext:
    """What every client of ours verifies a server of the project with, Kafka brokers and HTTP APIs
    alike: the chain up to `ca` and the server's name, TLS 1.3 only (as the servers speak)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx
