"""Kafka SCRAM passwords and the stack's security mode, kept under JARVIS_HOME.

  <home>/kafka-credentials/<principal>.password   one random password per principal, 0600
  <home>/kafka/security.json                      {"protocol": "SASL_SSL" | "PLAINTEXT"}: what
                                                  `jarvis stack up` (or `--insecure`) brought up

Every client of the stack (the SDK, the CLI, the workers) finds both there, so sharing JARVIS_HOME is
all it takes; elsewhere JARVIS_KAFKA_USERNAME / JARVIS_KAFKA_PASSWORD / JARVIS_KAFKA_CA name them.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

SASL_SSL, PLAINTEXT = "SASL_SSL", "PLAINTEXT"


def credentials_dir(home: Path) -> Path:
    return home / "kafka-credentials"


def mode_file(home: Path) -> Path:
    return home / "kafka" / "security.json"


def password_file(home: Path, principal: str) -> Path:
    if not principal or "/" in principal or principal.startswith("."):
        raise ValueError(f"bad Kafka principal name {principal!r}")
    return credentials_dir(home) / f"{principal}.password"


def read_password(home: Path, principal: str) -> str | None:
    try:
        return password_file(home, principal).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_passwords(home: Path, principals: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Each principal's password, made (random, 0600) if missing; existing ones are kept, since the
    brokers hold their SCRAM hashes."""
    d = credentials_dir(home)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    out: dict[str, str] = {}
    for p in principals:
        current = read_password(home, p)
        if current is None:
            current = secrets.token_hex(24)  # hex: safe unquoted in JAAS and .properties lines
            fd = os.open(password_file(home, p), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(current + "\n")
        out[p] = current
    return out


def read_mode(home: Path) -> str | None:
    """The protocol the stack under `home` was brought up with, or None if it never was."""
    try:
        protocol = json.loads(mode_file(home).read_text()).get("protocol")
    except (FileNotFoundError, ValueError):
        return None
    return protocol if protocol in (SASL_SSL, PLAINTEXT) else None


def write_mode(home: Path, protocol: str) -> None:
    if protocol not in (SASL_SSL, PLAINTEXT):
        raise ValueError(f"unknown Kafka security protocol {protocol!r}")
    path = mode_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"protocol": protocol}) + "\n")
    tmp.replace(path)
