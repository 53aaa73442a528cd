"""OIDC Bearer tokens from a real OpenID Connect issuer we did not write: oidc-provider under node
(installed by `make install` into tests/interop/oidc), whose client_credentials grant with a
resource indicator gives a JWT access token (RFC 9068) for our audience. Our hook discovers its
keys, checks RS256 and ES256 tokens, maps the `roles` claim to our roles, and refuses what it must."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.http_auth import HttpAuth
from connectors.oidc import OidcVerifier
from jarvis.security.key_store import FileAuthStore
from jarvis.security.oidc import OidcConfig
from tests import oidc_issuer

pytestmark = pytest.mark.skipif(not oidc_issuer.INSTALLED, reason=oidc_issuer.NOT_INSTALLED)
AUD = "https://jarvis.test/api"
CLIENTS = [
    {"id": "inventory-reader", "role": "reader", "alg": "RS256"},
    {"id": "inventory-reader-es", "role": ["offline", "reader"], "alg": "ES256"},
    {"id": "nobody", "role": "ghost"},
    {"id": "short-lived", "role": "reader", "ttl": 1},
]


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    with oidc_issuer.running(AUD, CLIENTS) as url:
        yield url


async def access_token(issuer: str, client_id: str) -> str:
    return await oidc_issuer.access_token(issuer, client_id, AUD)


def serve(tmp_path: Path, issuer: str, check: Any) -> None:
    store = FileAuthStore(tmp_path)
    store.set_role("reader", ["inventory:*"], [], tasks=False, admin=False)

    async def read(request: web.Request) -> web.Response:
        p = auth.require_read(request, request.match_info["id"])
        return web.json_response({"principal": p.name, "role": p.role.name})

    auth = HttpAuth(store, None, oidc=OidcVerifier(OidcConfig(issuer, AUD, leeway_s=0)))
    app = web.Application(middlewares=[auth.middleware()])
    app.router.add_get("/v1/objects/{id}", read)

    async def go() -> None:
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            await check(client)
        finally:
            await client.close()

    asyncio.run(go())


async def get(c: TestClient, token: str, oid: str = "inventory:1") -> tuple[int, dict[str, Any]]:
    r = await c.get(f"/v1/objects/{oid}", headers={"Authorization": f"Bearer {token}"})
    return r.status, await r.json()


def test_the_issuers_rs256_and_es256_tokens_get_the_roles_grants(tmp_path: Path, issuer: str) -> None:
    async def check(c: TestClient) -> None:
        for client_id in ("inventory-reader", "inventory-reader-es"):
            token = await access_token(issuer, client_id)
            status, body = await get(c, token)
            assert status == 200 and body == {"principal": f"oidc:{client_id}", "role": "reader"}
            status, body = await get(c, token, "patient:1")
            assert status == 403 and "may not read patient:1" in body["error"]
            tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            assert (await get(c, tampered))[0] == 401

    serve(tmp_path, issuer, check)


def test_a_token_naming_no_role_of_ours_or_expired_is_refused(tmp_path: Path, issuer: str) -> None:
    async def check(c: TestClient) -> None:
        status, body = await get(c, await access_token(issuer, "nobody"))
        assert status == 401 and "names no role of ours" in body["error"]
        token = await access_token(issuer, "short-lived")
        assert (await get(c, token))[0] == 200
        await asyncio.sleep(2.1)
        status, body = await get(c, token)
        assert status == 401 and "expired" in body["error"]

    serve(tmp_path, issuer, check)
