"""The one authentication hook of the three HTTP services (query API, ingest gateway, console).

Every request but the exempt ones (EXEMPT: liveness, readiness, Prometheus' scrape, the OpenAPI
document) carries `Authorization: Bearer <key>`; an aiohttp middleware finds its principal in the
service's AuthStore (connectors/auth_view.py) and keeps it on the request (`principal(request)`).
With JARVIS_OIDC_ISSUER set, the Bearer value may instead be a JWT of that issuer
(connectors/oidc.py): its role claim names one of the store's roles, whose grants then apply.

  401  no key, a malformed, unknown or revoked one, an invalid or expired token (WWW-Authenticate: Bearer)
  403  the key's role may not do this (`require_read`, `require`); checked BEFORE anything is
       looked up, so the answer is the same whether the object exists or not
  503  the replicated roles and keys are not loaded yet, or the OIDC issuer's keys cannot be had
       (Retry-After): fail closed, never allow-all

Every 401 and 403 is written to the access audit (connectors/access_audit.py) with method, path,
principal if known and reason, and so is every granted read of a clinical object (`record_read`:
who read which patient records, jarvis/security/apikeys.py). Faust's web server is aiohttp underneath, so the same middleware
serves the fold's query API.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any

import orjson
from aiohttp import web

from connectors.access_audit import AuditSink
from connectors.oidc import OidcUnavailable, OidcVerifier
from jarvis.config import settings
from jarvis.errors import JarvisError
from jarvis.security.apikeys import (
    AuthNotReady,
    AuthStore,
    Principal,
    bearer_key,
    clinical_object,
    key_id_of,
    read_denial,
)
from jarvis.security.oidc import OidcError, looks_like_jwt

log = logging.getLogger("jarvis.auth")

# Exempt from authentication: what probes and Prometheus call, and the API's own description.
EXEMPT = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
RETRY_AFTER_S = "1"
PRINCIPAL = web.RequestKey("jarvis_principal", Principal)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FROM_SETTINGS: Any = object()  # HttpAuth's `oidc` default: the process' JARVIS_OIDC_* settings


class Denied(JarvisError, PermissionError):  # noqa: N818 - an answer, not a failure
    """A refused request: its status, the reason the caller sees and the audit keeps."""

    def __init__(self, status: int, reason: str, principal: Principal | None = None, key_id: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.principal, self.key_id = status, reason, principal, key_id

    def response(self) -> web.Response:
        headers = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="jarvis"'
        if self.status == 503:
            headers["Retry-After"] = RETRY_AFTER_S
        body = {"error": self.reason} | ({"retry_after": int(RETRY_AFTER_S)} if self.status == 503 else {})
        return web.Response(status=self.status, body=orjson.dumps(body), content_type="application/json",
                            headers=headers)  # fmt: skip


def principal(request: web.Request) -> Principal:
    """The request's authenticated principal (the middleware put it there)."""
    return request[PRINCIPAL]


class HttpAuth:
    def __init__(
        self,
        store: AuthStore,
        audit: AuditSink | None = None,
        *,
        exempt: Collection[str] = EXEMPT,
        public: Callable[[str], bool] | None = None,
        optional: Collection[str] = (),
        oidc: OidcVerifier | None = FROM_SETTINGS,
    ) -> None:
        self.store = store
        self.oidc = OidcVerifier.from_settings(settings()) if oidc is FROM_SETTINGS else oidc
        self.audit = audit
        self.exempt = frozenset(exempt)
        self.public = public or (lambda path: False)  # no key needed at all (the console's login page)
        self.optional = frozenset(optional)  # a key is looked at if sent; its absence is no 401

    async def identify(self, header: str | None) -> Principal:
        """The principal of an Authorization header: an API key's, or an OIDC token's."""
        token = bearer_key(header)
        if token is None or self.oidc is None or not looks_like_jwt(token):
            return self.authenticate(header)
        if not getattr(self.store, "loaded", True):  # the roles a token may name are not known yet
            raise Denied(503, "the roles and keys of this region are not loaded yet; retry")
        try:
            return await self.oidc.verify(token, self.store.role)
        except OidcUnavailable as e:
            raise Denied(503, f"{e}; retry") from None
        except OidcError as e:
            raise Denied(401, str(e)) from None

    def authenticate(self, header: str | None) -> Principal:
        key = bearer_key(header)
        if key is None:
            what = "an API key or an OIDC token" if self.oidc else "a valid API key"
            raise Denied(401, f"{what} is needed: Authorization: Bearer <key> (jarvis auth key create)")
        try:
            p = self.store.lookup(key)
        except AuthNotReady as e:
            raise Denied(503, f"{e}; retry") from None
        if p is None:
            raise Denied(401, "unknown or revoked API key", key_id=key_id_of(key))
        return p

    def require_read(self, request: web.Request, object_id: str) -> Principal:
        p = principal(request)
        why = read_denial(p, object_id)
        if why:
            raise Denied(403, why, p)
        return p

    def require(self, request: web.Request, allowed: bool, what: str) -> Principal:
        p = principal(request)
        if not allowed:
            raise Denied(403, f"{p.name} (role {p.role.name}) may not {what}", p)
        return p

    def record_read(self, request: web.Request, object_ids: Iterable[str]) -> None:
        """Audit a granted read of the clinical objects among `object_ids` (the others are not)."""
        clinical = [o for o in object_ids if clinical_object(o)]
        if self.audit is None or not clinical:
            return
        p = request.get(PRINCIPAL)
        self.audit.read(request.method, request.path_qs, clinical,
                        p.name if p else None, p.key_id if p else None)  # fmt: skip

    def record(self, request: web.Request, d: Denied) -> None:
        if self.audit is None or d.status not in (401, 403):
            return
        p = d.principal
        self.audit.denied(request.method, request.path_qs, d.status, d.reason,
                          p.name if p else None, p.key_id if p else d.key_id)  # fmt: skip

    def middleware(self) -> Any:
        @web.middleware
        async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
            path = request.path
            if path in self.exempt or self.public(path) or request.method == "OPTIONS":
                return await handler(request)
            try:
                try:
                    request[PRINCIPAL] = await self.identify(request.headers.get("Authorization"))
                except Denied as d:
                    if path not in self.optional or d.status == 503 or "Authorization" in request.headers:
                        raise
                return await handler(request)
            except Denied as d:
                self.record(request, d)
                return d.response()

        return authenticate
