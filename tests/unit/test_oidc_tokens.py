"""OIDC Bearer tokens through the real HTTP auth hook (connectors/http_auth.py + connectors/oidc.py),
against an issuer served by a test-local HTTP server (discovery document and JWKS) with keys this
test generates: every way a token can be wrong is a 401 with its reason, a good one gets its role's
grants, a rotated key is fetched once, made-up kids do not make us hammer the issuer.

tests/unit/test_oidc_issuer.py does the same against a real OpenID Connect issuer (oidc-provider)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from connectors.http_auth import HttpAuth, principal
from connectors.oidc import OidcVerifier
from jarvis.security.key_store import FileAuthStore
from jarvis.security.oidc import OidcConfig, RefreshLimiter

AUD = "https://jarvis.test/api"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    return {**algo.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": alg, "use": "sig"}


class Issuer:
    """The issuer's two documents over real HTTP; `keys` may change (a rotation)."""

    def __init__(self) -> None:
        self.keys = [public_jwk(RSA_KEY, "r1", "RS256"), public_jwk(EC_KEY, "e1", "ES256")]
        self.jwks_requests = 0
        self.url = ""

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            return web.json_response({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

        async def jwks(request: web.Request) -> web.Response:
            self.jwks_requests += 1
            return web.json_response({"keys": self.keys})

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks", jwks)
        return app

    def token(self, key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "r1", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "aud": AUD, "sub": "svc-1", "iat": now, "exp": now + 300, "roles": "reader"}
        body.update(claims)
        return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg,
                          headers={"kid": kid} if kid else None)  # fmt: skip


class Denials:
    """Where HttpAuth writes its denials (the access audit's producer needs Kafka)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def denied(self, *event: Any) -> None:
        self.events.append(event)


def api(auth: HttpAuth) -> web.Application:
    async def read(request: web.Request) -> web.Response:
        p = auth.require_read(request, request.match_info["id"])
        return web.json_response({"principal": p.name, "key_id": p.key_id, "role": principal(request).role.name})

    app = web.Application(middlewares=[auth.middleware()])
    app.router.add_get("/v1/objects/{id}", read)
    return app


Check = Callable[[TestClient, Issuer, HttpAuth, Denials], Awaitable[None]]


def run(
    tmp_path: Path,
    check: Check,
    *,
    limiter: RefreshLimiter | None = None,
    issuer_up: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    store = FileAuthStore(tmp_path)
    store.set_role("reader", ["inventory:*"], [], tasks=False, admin=False)
    store.set_role("writer", [], ["*"], tasks=False, admin=False)
    issuer = Issuer()

    async def go() -> None:
        iss = TestServer(issuer.app())
        await iss.start_server()
        issuer.url = str(iss.make_url("")).rstrip("/")
        if not issuer_up:
            await iss.close()
        denials = Denials()
        verifier = OidcVerifier(OidcConfig(issuer.url, AUD), limiter=limiter, clock=clock)
        auth = HttpAuth(store, denials, oidc=verifier)  # type: ignore[arg-type]
        client = TestClient(TestServer(api(auth)))
        await client.start_server()
        try:
            await check(client, issuer, auth, denials)
        finally:
            await client.close()
            await iss.close()

    asyncio.run(go())


async def get(c: TestClient, token: str, oid: str = "inventory:1") -> tuple[int, dict[str, Any]]:
    r = await c.get(f"/v1/objects/{oid}", headers={"Authorization": f"Bearer {token}"})
    return r.status, await r.json()


def test_a_good_token_gets_its_roles_grants_rs256_and_es256(tmp_path: Path) -> None:
    async def check(c: TestClient, iss: Issuer, auth: HttpAuth, denials: Denials) -> None:
        for token in (iss.token(), iss.token(EC_KEY, "ES256", "e1"), iss.token(kid=None, roles=["x", "reader"])):
            status, body = await get(c, token)
            assert status == 200, body
            assert body["principal"] == "oidc:svc-1" and body["role"] == "reader" and body["key_id"].startswith("oidc-")
        status, body = await get(c, iss.token(), "patient:1")
        assert status == 403 and "may not read patient:1" in body["error"]
        assert denials.events[-1][2:5] == (403, body["error"], "oidc:svc-1")
        assert str(denials.events[-1][5]).startswith("oidc-")
        assert iss.jwks_requests == 1  # one fetch serves every token after it

    run(tmp_path, check)


def test_every_wrong_token_is_a_401_with_its_reason_and_is_audited(tmp_path: Path) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())

    async def check(c: TestClient, iss: Issuer, auth: HttpAuth, denials: Denials) -> None:
        good = iss.token()
        head, payload, sig = good.split(".")
        forged_sig = base64.urlsafe_b64encode(bytes(256)).decode().rstrip("=")
        pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        unsigned = jwt.encode({"iss": iss.url, "aud": AUD, "sub": "x", "iat": now, "exp": now + 60, "roles": "reader"}, None, algorithm="none")
        cases = {
            "expired": iss.token(iat=now - 600, exp=now - 300),
            "not yet valid (nbf)": iss.token(nbf=now + 600),
            "not yet valid (iat)": iss.token(iat=now + 600),
            "Invalid issuer": iss.token(iss="https://evil.example.com"),
            "Audience doesn't match": iss.token(aud="https://someone-else"),
            "Signature verification failed": f"{head}.{payload}.{forged_sig}",
            "no key of the issuer fits": iss.token(other, kid="r9"),
            "not accepted": unsigned,
            "names no role of ours": iss.token(roles="ghost"),
            "no role claim": iss.token(roles=None),
            "several roles": iss.token(roles=["reader", "writer"]),
            'missing the "exp" claim': iss.token(exp=None),
        }
        # HS256 keyed with the issuer's public key: the classic algorithm-confusion forgery.
        cases["not accepted "] = f"{jwt.encode({'sub': 'x'}, 'k' * 32, algorithm='HS256').split('.')[0]}.{payload}.{sig}"
        cases["not accepted  "] = jwt.encode({"sub": "x", "iss": iss.url}, pem.decode()[:64], algorithm="HS256")
        for reason, token in cases.items():
            status, body = await get(c, token)
            assert status == 401, (reason, body)
            assert reason.strip() in body["error"] and "Traceback" not in body["error"], (reason, body)
            method, path, st, why, who, _ = denials.events[-1]
            assert (method, path, st, why, who) == ("GET", "/v1/objects/inventory:1", 401, body["error"], None)
        r = await c.get("/v1/objects/patient:1")  # no credentials at all
        assert r.status == 401 and "OIDC token" in (await r.json())["error"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")

    run(tmp_path, check)


def test_a_rotated_key_is_fetched_once_and_made_up_kids_do_not_hammer_the_issuer(tmp_path: Path) -> None:
    new = ec.generate_private_key(ec.SECP256R1())
    now = [1000.0]  # a clock the test moves: fifty requests on a loaded machine may outlast a real interval

    async def check(c: TestClient, iss: Issuer, auth: HttpAuth, denials: Denials) -> None:
        assert (await get(c, iss.token()))[0] == 200
        assert iss.jwks_requests == 1
        now[0] += 0.25
        for i in range(50):  # forged tokens naming kids the issuer never had
            assert (await get(c, iss.token(new, "ES256", f"x{i}")))[0] == 401
        assert iss.jwks_requests == 2  # one refetch for all fifty, then the rate limit
        iss.keys.append(public_jwk(new, "e2", "ES256"))  # the issuer rotates in a new key
        assert (await get(c, iss.token(new, "ES256", "e2")))[0] == 401  # within the interval: not yet
        now[0] += 0.25
        status, body = await get(c, iss.token(new, "ES256", "e2"))
        assert status == 200 and body["role"] == "reader"
        assert iss.jwks_requests == 3

    run(tmp_path, check, limiter=RefreshLimiter(min_interval_s=0.2), clock=lambda: now[0])


def test_api_keys_still_work_and_an_unreachable_issuer_is_a_503(tmp_path: Path) -> None:
    FileAuthStore(tmp_path).set_role("reader", ["inventory:*"], [], tasks=False, admin=False)
    key, _ = FileAuthStore(tmp_path).create_key("reader", "ana")

    async def check(c: TestClient, iss: Issuer, auth: HttpAuth, denials: Denials) -> None:
        status, body = await get(c, key)
        assert status == 200 and body["principal"] == "ana"
        r = await c.get("/v1/objects/inventory:1", headers={"Authorization": f"Bearer {iss.token()}"})
        assert r.status == 503 and r.headers["Retry-After"] and "cannot be fetched" in (await r.json())["error"]

    run(tmp_path, check, issuer_up=False)


def test_without_an_issuer_a_token_is_just_an_unknown_key(tmp_path: Path) -> None:
    from jarvis.config import Settings

    assert OidcVerifier.from_settings(Settings(home=tmp_path)) is None
    v = OidcVerifier.from_settings(Settings(home=tmp_path, oidc_issuer="https://id.example.com", oidc_audience=AUD))
    assert v is not None and v.config.role_claim == "roles"
    with pytest.raises(ValueError, match="JARVIS_OIDC_AUDIENCE"):
        OidcVerifier.from_settings(Settings(home=tmp_path, oidc_issuer="https://id.example.com"))
