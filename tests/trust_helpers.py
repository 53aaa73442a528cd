"""Trust for unit tests: a test admin key and views that grant the given signers (no Kafka)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jarvis.security.keys import Signer
from jarvis.security.trust import TrustView, make_grant

ADMIN = Ed25519PrivateKey.generate()


def view_trusting(*signers: Signer, write: Sequence[str] = ("*",), regions: Sequence[str] = ()) -> TrustView:
    view = TrustView([ADMIN.public_key()])
    for s in signers:
        assert view.add(make_grant(ADMIN, s.node_id, s.public, write, regions=regions, issued_ms=1)) is None
    return view
