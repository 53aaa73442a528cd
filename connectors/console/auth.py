"""The console's one authentication hook: who is asking (from a Bearer key) and what they may read.

Until API keys exist every request is an anonymous reader of everything (`OpenAccess`). A key
store plugs in by providing an `Access`: the server asks it once per request and filters every
object, page and record it returns through `Principal.can_read`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    read_prefixes: tuple[str, ...] = ("*",)  # object-id patterns: "*" everything, "patient:*" one prefix

    def can_read(self, object_id: str | None) -> bool:
        if "*" in self.read_prefixes:
            return True
        if object_id is None:
            return False  # a record naming no object (an undecodable message) needs read on everything
        return any(object_id.startswith(p[:-1]) if p.endswith("*") else object_id == p for p in self.read_prefixes)


ANONYMOUS = Principal("anonymous", "open")


class Access(Protocol):
    required: bool  # True: a request without a valid key gets 401

    def principal(self, bearer: str | None) -> Principal | None:
        """The key's principal, or None if the key is missing, unknown or revoked."""


class OpenAccess:
    """No key store: everyone reads everything (the local stack before API keys)."""

    required = False

    def principal(self, bearer: str | None) -> Principal | None:
        return ANONYMOUS


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
