"""OIDC Bearer tokens on the HTTP APIs: the issuer's keys and the token's signature and claims.

On when JARVIS_OIDC_ISSUER is set (jarvis/config.py). The issuer's `jwks_uri` comes from
`<issuer>/.well-known/openid-configuration` (fetched once); its key set is cached, refetched when a
token names a `kid` the cache lacks (a key rotation) and when older than MAX_AGE_S, both at most
once per MIN_REFRESH_S (jarvis/security/oidc.py RefreshLimiter). PyJWT checks the signature (RS256
or ES256 only: the algorithm is taken from the chosen key's type, so a token cannot pick `none` or
HMAC) and exp, nbf, iat (LEEWAY_S of skew), iss and aud; jarvis/security/oidc.py maps the claims to
a principal whose role must exist, and from there a token gets the grants an API key of that role
gets. Fetches are aiohttp's, so they never block the event loop the query API shares with the fold.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import orjson

from jarvis.config import Settings
from jarvis.errors import JarvisError
from jarvis.security.apikeys import Principal, Role
from jarvis.security.oidc import (
    MAX_AGE_S,
    OidcConfig,
    OidcError,
    RefreshLimiter,
    check_header,
    jwks_uri,
    pick_key,
    principal_of,
)

log = logging.getLogger("jarvis.auth")

FETCH_TIMEOUT_S = 5.0
MAX_DOCUMENT_BYTES = 1 << 20
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


class OidcUnavailable(JarvisError, RuntimeError):
    """The issuer's keys cannot be had and none are cached: nobody's token can be checked (503)."""


def config_of(settings: Settings) -> OidcConfig | None:
    if not settings.oidc_issuer:
        return None
    return OidcConfig(settings.oidc_issuer, settings.oidc_audience or "", settings.oidc_role_claim)


def issuer_context(settings: Settings) -> ssl.SSLContext:
    """The issuer is someone else's server: the system's CAs (or JARVIS_OIDC_CA), TLS 1.2 or later."""
    return ssl.create_default_context(cafile=str(settings.oidc_ca) if settings.oidc_ca else None)


class OidcVerifier:
    def __init__(
        self,
        config: OidcConfig,
        ssl_context: ssl.SSLContext | None = None,
        *,
        limiter: RefreshLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.ssl_context = ssl_context
        self.limiter = limiter or RefreshLimiter()
        self.clock = clock
        self.jwks_uri: str | None = None
        self.keys: list[dict[str, Any]] | None = None
        self.fetched_at: float | None = None
        self.fetches = 0  # key-set fetches made: what the rate limit bounds (and tests count)
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        config = config_of(settings)
        return None if config is None else cls(config, issuer_context(settings))

    async def verify(self, token: str, roles: Callable[[str], Role | None]) -> Principal:
        """The token's principal; raises OidcError (a 401, with the reason) or OidcUnavailable."""
        try:
            alg, kid = check_header(jwt.get_unverified_header(token))
        except jwt.InvalidTokenError as e:
            raise OidcError(f"malformed token: {e}") from None
        jwk = await self._key(kid, alg)
        try:
            claims = jwt.decode(
                token, jwt.PyJWK(jwk, alg), algorithms=[alg], audience=self.config.audience,
                issuer=self.config.issuer, leeway=self.config.leeway_s, options={"require": REQUIRED_CLAIMS},
            )  # fmt: skip
        except (jwt.InvalidTokenError, jwt.PyJWKError) as e:
            raise OidcError(f"invalid token: {e}") from None
        return principal_of(claims, self.config, roles)

    async def _key(self, kid: str | None, alg: str) -> dict[str, Any]:
        now = self.clock()
        key = None if self.keys is None else pick_key(self.keys, kid, alg)
        if key is not None and self.fetched_at is not None and now - self.fetched_at <= MAX_AGE_S:
            return key
        async with self._lock:
            # Skipped when another request refreshed while this one waited for the lock.
            if (self.fetched_at is None or self.fetched_at < now) and self.limiter.allow(self.clock()):
                await self._refresh()
            key = pick_key(self.keys or [], kid, alg)
        if key is not None:
            return key
        if self.keys is None:
            raise OidcUnavailable("the OIDC issuer's keys cannot be fetched now")
        raise OidcError(f"no key of the issuer fits the token (kid {str(kid)[:64]!r}, {alg})")

    async def _refresh(self) -> None:
        try:
            if self.jwks_uri is None:
                self.jwks_uri = jwks_uri(await self._get(self.config.discovery_url), self.config)
            doc = await self._get(self.jwks_uri)
            keys = doc.get("keys") if isinstance(doc, dict) else None
            if not isinstance(keys, list):
                raise OidcError(f"{self.jwks_uri} is not a JWK set")
        except (OidcError, aiohttp.ClientError, TimeoutError, ValueError) as e:
            # The keys cached (if any) stay: an issuer outage must not lock out every token at once.
            self.limiter.failed(self.clock())
            log.warning("OIDC: fetching the issuer's keys failed: %s", e)
            return
        self.keys, self.fetched_at = keys, self.clock()
        self.fetches += 1

    async def _get(self, url: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
        connector = aiohttp.TCPConnector(ssl=self.ssl_context or True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session, session.get(url) as resp:
            if resp.status != 200:
                raise OidcError(f"{url} answered {resp.status}")
            body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise OidcError(f"{url} answered more than {MAX_DOCUMENT_BYTES} bytes")
            return orjson.loads(body)
