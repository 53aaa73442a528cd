"""The console server without a stack: its pages, security headers and the auth hook.

The query API it proxies is a port where nothing listens, so the proxy's failure path is real too."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from connectors.console.server import CSP, Console, console_auth
from jarvis.config import Settings
from jarvis.security.apikeys import ADMIN, Principal, Role, new_key

# Region index 0 with a port offset that puts its query port where nothing listens.
SETTINGS = Settings(port_offset=7, http_tls=False)  # plain HTTP: the pages and the proxy, not TLS (tests/unit/test_http_tls.py)
ALL_KEY, _ = new_key(bytes(36))
CTR_KEY, _ = new_key(bytes([1]) * 36)


class KeyStore:
    """Two keys: an admin and a reader of ctr:* (the console sees only the AuthStore interface)."""

    def lookup(self, key: str) -> Principal | None:
        return {ALL_KEY: Principal("ops", "k0", ADMIN),
                CTR_KEY: Principal("ana", "k1", Role("analyst", read=("ctr:*",)))}.get(key)  # fmt: skip

    def role(self, name: str) -> Role | None:
        return None


async def _with_client(access: Any, check: Any) -> None:
    client = TestClient(TestServer(Console(SETTINGS, "eu", console_auth(access or KeyStore())).app()))
    await client.start_server()
    try:
        await check(client)
    finally:
        await client.close()


def run(check: Any, access: Any = None) -> None:
    asyncio.run(_with_client(access, check))


def test_pages_are_served_with_a_policy_that_forbids_inline_script() -> None:
    async def check(c: TestClient) -> None:
        r = await c.get("/")
        assert r.status == 200 and "text/html" in r.headers["Content-Type"]
        assert r.headers["Content-Security-Policy"] == CSP and "script-src 'self'" in CSP
        assert "'unsafe-inline'" not in CSP
        assert '<script type="module" src="/static/app.js">' in await r.text()
        js = await c.get("/static/app.js")
        assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
        assert (await c.get("/static/../server.py")).status == 404
        assert (await c.get("/static/nothing.js")).status == 404

    run(check)


def test_no_data_reaches_markup_in_the_shipped_scripts() -> None:
    from connectors.console.server import static_files

    for name, (body, _) in static_files().items():
        text = body.decode()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{name} uses {sink}"


def test_an_unanswering_query_api_is_a_json_502() -> None:
    async def check(c: TestClient) -> None:
        ops = {"Authorization": f"Bearer {ALL_KEY}"}
        r = await c.get("/api/objects", params={"prefix": "ctr:"}, headers=ops)
        assert r.status == 502 and "did not answer" in (await r.json())["error"]
        assert r.headers["Content-Security-Policy"] == CSP
        s = await c.get("/api/session", headers=ops)
        assert (await s.json())["principal"]["role"] == "admin"

    run(check)


def test_keys_gate_the_api_and_a_role_reads_only_its_prefixes() -> None:
    async def check(c: TestClient) -> None:
        assert (await c.get("/")).status == 200  # the login page itself needs no key
        assert (await c.get("/api/objects")).status == 401
        s = await c.get("/api/session")
        assert await s.json() == {"auth_required": True, "principal": None}
        assert (await c.get("/api/objects/ctr:a", headers={"Authorization": "Bearer wrong"})).status == 401
        ana = {"Authorization": f"Bearer {CTR_KEY}"}
        r = await c.get("/api/objects/patient:1", headers=ana)
        assert r.status == 403 and "may not read" in (await r.json())["error"]
        assert (await c.get("/api/objects/ctr:a", headers=ana)).status == 502  # allowed: proxied
        assert (await c.get("/api/regions", headers=ana)).status == 403  # digests need read on '*'
        me = await (await c.get("/api/session", headers=ana)).json()
        assert me["principal"]["read"] == ["ctr:*"] and me["principal"]["role"] == "analyst"

    run(check, KeyStore())
