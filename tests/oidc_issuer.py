"""A real OpenID Connect issuer for the tests: oidc-provider under node (tests/interop/oidc, installed
by `make install`), giving client_credentials JWT access tokens (RFC 9068) for one audience."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

ISSUER_JS = Path(__file__).parent / "interop" / "oidc" / "issuer.js"
INSTALLED = shutil.which("node") is not None and (ISSUER_JS.parent / "node_modules" / "oidc-provider").is_dir()
NOT_INSTALLED = "node's oidc-provider is not installed (make install)"
SECRET = "a-client-secret-of-at-least-32-chars"


@contextmanager
def running(audience: str, clients: list[dict[str, Any]]) -> Iterator[str]:
    """The issuer's URL while it runs. A client: {"id", "role" (a string or list: the `roles` claim),
    "alg" (RS256 | ES256), "ttl" (seconds)}; every client's secret is SECRET."""
    conf = json.dumps({"audience": audience, "clients": [{"secret": SECRET, **c} for c in clients]})
    proc = subprocess.Popen(["node", str(ISSUER_JS), conf], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["issuer"]
    finally:
        proc.terminate()
        proc.wait(10)


async def access_token(issuer: str, client_id: str, audience: str) -> str:
    """A client_credentials access token for `audience`, from the token endpoint the issuer's
    discovery document names."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{issuer}/.well-known/openid-configuration") as r:
            token_endpoint = (await r.json())["token_endpoint"]
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": SECRET,
                "resource": audience, "scope": "jarvis"}  # fmt: skip
        async with s.post(token_endpoint, data=form) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"the issuer refused a token to {client_id}: {body}")
            return str(body["access_token"])
