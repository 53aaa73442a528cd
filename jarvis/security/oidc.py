"""OIDC Bearer tokens: from a verified JWT's claims to the principal and role. Pure (no I/O).

connectors/oidc.py fetches the issuer's keys and checks the signature and the registered claims
(exp, nbf, iat, iss, aud); this module decides everything that needs no key: which issuer URLs are
acceptable, where its keys are, whether a refresh of them is allowed now, and who the caller is.

The role is the value of one claim (JARVIS_OIDC_ROLE_CLAIM, default `roles`, RFC 9068's claim; a
dotted path such as `realm_access.roles` reaches a nested one). A string or a list of strings; of
those, exactly one must name a role that exists (a built-in one or one made by `jarvis auth role
set`): none is a 401, and so are several, since a principal holds one role, as an API key does, and
picking one of several would grant by accident of order.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jarvis.errors import JarvisError
from jarvis.security.apikeys import Principal, Role, key_id_of

ALGORITHMS = ("RS256", "ES256")  # asymmetric only: `none` and HMAC (a shared secret) never
KEY_TYPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}  # alg -> (kty, crv)
DEFAULT_ROLE_CLAIM = "roles"
LEEWAY_S = 30  # clock skew between us and the issuer that exp/nbf/iat tolerate
MIN_REFRESH_S = 30.0  # unknown `kid`s refetch the JWKS at most this often: no fetch per forged token
RETRY_S = 5.0
MAX_AGE_S = 600.0  # a key set older than this is refetched, so keys the issuer dropped stop verifying
MAX_TOKEN_BYTES = 16 * 1024
# The signature part may be empty: an `alg: none` token is then refused as such, not as an unknown key.
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_LOOPBACK_NAMES = ("localhost",)


class OidcError(JarvisError, ValueError):
    """A token, issuer document or key set that is not acceptable; the message is the 401's reason
    (it names what is wrong with the token, never anything about the objects it asked for)."""


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    audience: str
    role_claim: str = DEFAULT_ROLE_CLAIM
    leeway_s: int = LEEWAY_S

    def __post_init__(self) -> None:
        check_url(self.issuer, "JARVIS_OIDC_ISSUER")
        if not self.audience:
            # Without an audience check a token the issuer made for any other application would do.
            raise OidcError("JARVIS_OIDC_ISSUER is set but JARVIS_OIDC_AUDIENCE is not: set the audience our APIs' tokens carry")
        if not self.role_claim or any(not part for part in self.role_claim.split(".")):
            raise OidcError(f"JARVIS_OIDC_ROLE_CLAIM {self.role_claim!r} is not a claim name or dotted path")

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> str:
    """An issuer or JWKS URL: HTTPS, or plain HTTP to this host only (a local test issuer): keys
    fetched in clear text over a network could be swapped by anyone on the path."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise OidcError(f"{what} {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise OidcError(f"{what} {url!r} must be https (plain http only to localhost)")
    return url


def jwks_uri(discovery: Any, config: OidcConfig) -> str:
    """The key set's URL from the issuer's discovery document, which must name the same issuer
    (OpenID Connect Discovery 1.0, section 4.3): a document served for another issuer is refused."""
    if not isinstance(discovery, dict):
        raise OidcError("the issuer's openid-configuration is not a JSON object")
    if discovery.get("issuer") != config.issuer:
        raise OidcError(f"the openid-configuration names issuer {str(discovery.get('issuer'))[:200]!r}, not {config.issuer!r}")
    uri = discovery.get("jwks_uri")
    if not isinstance(uri, str):
        raise OidcError("the issuer's openid-configuration has no jwks_uri")
    return check_url(uri, "jwks_uri")


def looks_like_jwt(token: str) -> bool:
    """A compact JWS (three base64url parts), and not one of our API keys."""
    return key_id_of(token) is None and len(token) <= MAX_TOKEN_BYTES and bool(_JWT.match(token))


def signing_key_fits(jwk: dict[str, Any], alg: str) -> bool:
    """Whether a key of the set may verify a token signed with `alg`: a signing key, of the type
    the algorithm needs, and declaring that algorithm if it declares one (RFC 7517 4.2, 4.4)."""
    if alg not in KEY_TYPES or jwk.get("use") not in (None, "sig"):
        return False
    kty, crv = KEY_TYPES[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return False
    return jwk.get("alg") in (None, alg)


def pick_key(keys: list[dict[str, Any]], kid: str | None, alg: str) -> dict[str, Any] | None:
    """The key of the set a token's header names: by `kid`, or the only fitting key when the token
    carries none (an issuer with one key may leave it out)."""
    fitting = [k for k in keys if isinstance(k, dict) and signing_key_fits(k, alg)]
    if kid is None:
        return fitting[0] if len(fitting) == 1 else None
    return next((k for k in fitting if k.get("kid") == kid), None)


def check_header(header: Any) -> tuple[str, str | None]:
    """(alg, kid) of a token's protected header, if its algorithm is one we accept."""
    if not isinstance(header, dict):
        raise OidcError("the token's header is not a JSON object")
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise OidcError(f"token algorithm {str(alg)[:20]!r} is not accepted (only {', '.join(ALGORITHMS)})")
    if kid is not None and not isinstance(kid, str):
        raise OidcError("the token's kid is not a string")
    return alg, kid


@dataclass(slots=True)
class RefreshLimiter:
    """Whether the key set may be fetched now. After a fetch, not for MIN_REFRESH_S: a rotated key
    is picked up within that, and tokens with made-up kids cost the issuer one fetch per interval,
    not one each. After a failed fetch, not for RETRY_S: an issuer down does not slow every request
    by a connect timeout, and one back is seen soon."""

    min_interval_s: float = MIN_REFRESH_S
    retry_s: float = RETRY_S
    next_at: float | None = None

    def allow(self, now: float) -> bool:
        if self.next_at is not None and now < self.next_at:
            return False
        self.next_at = now + self.min_interval_s
        return True

    def failed(self, now: float) -> None:
        self.next_at = now + self.retry_s


def claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def role_of(claims: dict[str, Any], config: OidcConfig, lookup: Callable[[str], Role | None]) -> Role:
    raw = claim(claims, config.role_claim)
    names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise OidcError(f"the token has no role claim {config.role_claim!r} (a string or a list of strings)")
    roles = {n: r for n in dict.fromkeys(names) if (r := lookup(n)) is not None}
    if not roles:
        raise OidcError(f"the token's {config.role_claim!r} claim names no role of ours")
    if len(roles) > 1:
        raise OidcError(f"the token's {config.role_claim!r} claim names several roles of ours ({', '.join(sorted(roles))[:200]}): one is needed")
    return next(iter(roles.values()))


def subject_id(issuer: str, subject: str) -> str:
    """The principal's stable id, where an API key has its key id (the audit, ingest's
    idempotency keys): `oidc-` and 16 hex digits of the issuer and subject."""
    return "oidc-" + hashlib.sha256(f"{issuer}\0{subject}".encode()).hexdigest()[:16]


def principal_of(claims: dict[str, Any], config: OidcConfig, lookup: Callable[[str], Role | None]) -> Principal:
    """The principal of a token whose signature and registered claims have been verified."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise OidcError("the token has no subject (sub)")
    return Principal(f"oidc:{sub[:200]}", subject_id(config.issuer, sub), role_of(claims, config, lookup))
