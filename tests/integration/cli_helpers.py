"""The `jarvis` CLI and curl as a test drives them: a subprocess each, output checked by the caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from jarvis.config import Settings
from jarvis.config import settings as default_settings


def jarvis(*args: str, region: str = "eu", timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jarvis.cli", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200", "JARVIS_REGION": region},
    )  # fmt: skip


def ok(cp: subprocess.CompletedProcess) -> str:
    assert cp.returncode == 0, f"{cp.args} exited {cp.returncode}:\n{cp.stdout}\n{cp.stderr}"
    return cp.stdout


def new_key(role: str, name: str, region: str = "eu") -> tuple[str, str]:
    """(key, key id) of a key made by `jarvis auth key create` (the key is stdout's last line)."""
    key = ok(jarvis("auth", "key", "create", "--role", role, "--name", name, region=region)).strip().splitlines()[-1]
    return key, key.split("_")[1]


def curl_tls(settings: Settings | None = None) -> list[str]:
    """curl's arguments to verify the stack's HTTPS APIs against the project CA (none if insecure)."""
    s = settings or default_settings()
    return ["--cacert", str(s.http_ca_file)] if s.http_secure else []


def curl(url: str, key: str | None = None, *, method: str = "GET", body: bytes | None = None,
         max_time: float = 10) -> tuple[int, Any, str]:  # fmt: skip
    """(status, JSON body or text, raw headers) of curl's answer."""
    argv = ["curl", "-sS", "-D", "-", "-o", "-", "--max-time", str(max_time), "-X", method, *curl_tls(), url]
    if key:
        argv += ["-H", f"Authorization: Bearer {key}"]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    out = subprocess.run(argv, input=body, capture_output=True, timeout=max_time + 5).stdout.decode(errors="replace")
    head, _, text = out.partition("\r\n\r\n")
    status = int(head.split(" ", 2)[1]) if head.startswith("HTTP/") else 0
    try:
        return status, json.loads(text), head
    except ValueError:
        return status, text, head
