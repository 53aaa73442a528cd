"""The pure half of OIDC Bearer tokens (jarvis/security/oidc.py): which issuers and key sets are
acceptable, which key verifies a token, when the key set may be refetched, and claims -> principal."""

from __future__ import annotations

import pytest

from jarvis.security.apikeys import ADMIN, Role, new_key
from jarvis.security.oidc import (
    OidcConfig,
    OidcError,
    RefreshLimiter,
    check_header,
    check_url,
    jwks_uri,
    looks_like_jwt,
    pick_key,
    principal_of,
    role_of,
    subject_id,
)

CONF = OidcConfig("https://id.example.com/realms/x", "https://jarvis.example.com")
ROLES = {"admin": ADMIN, "reader": Role("reader", read=("inventory:*",)), "writer": Role("writer", write=("*",))}
RSA = {"kty": "RSA", "kid": "r1", "n": "x", "e": "AQAB"}
EC = {"kty": "EC", "crv": "P-256", "kid": "e1", "x": "x", "y": "y", "alg": "ES256"}


def test_issuers_must_be_https_but_for_this_host() -> None:
    assert check_url("https://id.example.com", "x") and check_url("http://127.0.0.1:8080", "x")
    assert check_url("http://localhost:1/r", "x") and check_url("http://[::1]:1", "x")
    for bad in ("http://id.example.com", "ftp://127.0.0.1", "id.example.com", "http://10.0.0.1"):
        with pytest.raises(OidcError):
            check_url(bad, "JARVIS_OIDC_ISSUER")


def test_a_config_needs_an_audience_and_a_claim_name() -> None:
    assert CONF.discovery_url == "https://id.example.com/realms/x/.well-known/openid-configuration"
    assert OidcConfig("https://a/", "aud").discovery_url == "https://a/.well-known/openid-configuration"
    with pytest.raises(OidcError, match="JARVIS_OIDC_AUDIENCE"):
        OidcConfig("https://a", "")
    with pytest.raises(OidcError, match="ROLE_CLAIM"):
        OidcConfig("https://a", "aud", "realm_access..roles")


def test_the_discovery_document_must_name_our_issuer() -> None:
    good = {"issuer": CONF.issuer, "jwks_uri": "https://id.example.com/certs"}
    assert jwks_uri(good, CONF) == "https://id.example.com/certs"
    with pytest.raises(OidcError, match="names issuer"):
        jwks_uri({**good, "issuer": "https://evil.example.com"}, CONF)
    with pytest.raises(OidcError, match="no jwks_uri"):
        jwks_uri({"issuer": CONF.issuer}, CONF)
    with pytest.raises(OidcError, match="https"):
        jwks_uri({**good, "jwks_uri": "http://id.example.com/certs"}, CONF)
    with pytest.raises(OidcError):
        jwks_uri([], CONF)


def test_api_keys_are_never_taken_for_tokens() -> None:
    key, _ = new_key(bytes(36))
    assert not looks_like_jwt(key) and not looks_like_jwt("a.b") and not looks_like_jwt("a.b.c d")
    assert looks_like_jwt("eyJh.eyJz.c2ln") and not looks_like_jwt("a." * 9000 + "b.c")


def test_only_asymmetric_algorithms_are_accepted() -> None:
    assert check_header({"alg": "ES256", "kid": "e1"}) == ("ES256", "e1")
    assert check_header({"alg": "RS256"}) == ("RS256", None)
    for alg in ("none", "HS256", "RS512", None, "NONE"):
        with pytest.raises(OidcError, match="not accepted"):
            check_header({"alg": alg})
    with pytest.raises(OidcError, match="kid"):
        check_header({"alg": "RS256", "kid": 7})


def test_the_key_must_fit_the_algorithm_and_the_kid() -> None:
    keys = [RSA, EC, {**RSA, "kid": "enc", "use": "enc"}, {**RSA, "kid": "r512", "alg": "RS512"}]
    assert pick_key(keys, "r1", "RS256") == RSA and pick_key(keys, "e1", "ES256") == EC
    assert pick_key(keys, "e1", "RS256") is None  # an EC key never verifies an RSA signature
    assert pick_key(keys, "enc", "RS256") is None and pick_key(keys, "r512", "RS256") is None
    assert pick_key(keys, "nope", "RS256") is None
    assert pick_key(keys, None, "ES256") == EC  # one fitting key: a token without kid may use it
    assert pick_key([RSA, {**RSA, "kid": "r2"}], None, "RS256") is None  # two: which one is unclear
    assert pick_key([{**EC, "crv": "P-384"}], "e1", "ES256") is None


def test_refetches_are_rate_limited_and_retried_soon_after_a_failure() -> None:
    lim = RefreshLimiter(min_interval_s=30, retry_s=5)
    assert lim.allow(100.0) and not lim.allow(101.0) and not lim.allow(129.9) and lim.allow(130.0)
    lim.failed(131.0)
    assert not lim.allow(135.9) and lim.allow(136.0)


def test_the_role_claim_names_exactly_one_existing_role() -> None:
    assert role_of({"roles": "reader"}, CONF, ROLES.get).name == "reader"
    assert role_of({"roles": ["offline_access", "reader"]}, CONF, ROLES.get).name == "reader"
    nested = OidcConfig(CONF.issuer, CONF.audience, "realm_access.roles")
    assert role_of({"realm_access": {"roles": ["admin"]}}, nested, ROLES.get) is ADMIN
    with pytest.raises(OidcError, match="names no role"):
        role_of({"roles": ["ghost"]}, CONF, ROLES.get)
    with pytest.raises(OidcError, match="several roles"):
        role_of({"roles": ["reader", "writer"]}, CONF, ROLES.get)
    for claims in ({}, {"roles": []}, {"roles": [1]}, {"roles": {"a": 1}}, {"realm_access": "x"}):
        with pytest.raises(OidcError, match="no role claim"):
            role_of(claims, nested if "realm_access" in claims else CONF, ROLES.get)


def test_the_principal_is_the_subject_with_a_stable_id() -> None:
    p = principal_of({"sub": "svc-7", "roles": "reader"}, CONF, ROLES.get)
    assert p.name == "oidc:svc-7" and p.role.may_read("inventory:1") and not p.role.may_read("patient:1")
    assert p.key_id == subject_id(CONF.issuer, "svc-7") != subject_id("https://other", "svc-7")
    assert p.key_id.startswith("oidc-") and len(p.key_id) == 21
    with pytest.raises(OidcError, match="subject"):
        principal_of({"roles": "reader"}, CONF, ROLES.get)
