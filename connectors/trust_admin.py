"""Admin actions on trust: grant, revoke, rotate, development self-trust, and the stack's own nodes.

Each makes admin-signed records (jarvis/security/trust.py) with the admin key under
JARVIS_HOME/keys/admin and publishes them to a region's `jarvis.trust` (connectors/trust_feed.py);
MirrorMaker takes them to every other region. Whoever holds no admin key can trust nothing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from connectors.trust_feed import publish, read_view
from jarvis.config import Settings
from jarvis.errors import JarvisError
from jarvis.roles import BY_NAME as ROLES
from jarvis.security.apikeys import AUTH_PREFIX
from jarvis.security.keys import (
    Signer,
    create_key,
    ensure_node_key,
    key_created_ms,
    load_admin_key,
    load_signer,
)
from jarvis.security.trust import REVOKE, TrustRecord, TrustView, make_grant, make_revocation
from jarvis.tasks import TASK_PREFIX
from pipelines.loader import pipelines

DEV_NOTE = "development trust: the node granted its own key with the local admin key"
CLI_NODE = "jarvis-cli"  # the node `jarvis task submit` signs as


class NoAdminKey(JarvisError, LookupError):
    """This home holds no admin key, so it cannot sign trust records."""


def admin_key(settings: Settings) -> Ed25519PrivateKey:
    key = load_admin_key(settings.keys_dir)
    if key is None:
        raise NoAdminKey(
            f"no admin key in {settings.keys_dir / 'admin'}: trust records need one "
            "(`jarvis keys admin create`, or `jarvis stack up` makes it); a client with a home of its own "
            "is trusted by an admin running `jarvis keys trust NODE --public-key B64`"
        )
    return key


def now_ms() -> int:
    return int(time.time() * 1000)


def grant(
    settings: Settings,
    node_id: str,
    public: Ed25519PublicKey | str,
    write: Sequence[str] = ("*",),
    *,
    regions: Iterable[str] = (),
    valid_from_ms: int = 0,
    issued_ms: int | None = None,
    note: str = "",
    region: str | None = None,
) -> TrustRecord:
    rec = make_grant(
        admin_key(settings), node_id, public, write, regions=regions, valid_from_ms=valid_from_ms,
        issued_ms=issued_ms if issued_ms is not None else now_ms(), note=note,
    )  # fmt: skip
    publish(settings, [rec], region)
    return rec


def revoke(
    settings: Settings, key_id: str, *, at_ms: int | None = None, node_id: str = "", note: str = "",
    region: str | None = None,
) -> TrustRecord:  # fmt: skip
    issued = now_ms()
    rec = make_revocation(
        admin_key(settings), key_id, at_ms=at_ms if at_ms is not None else issued, issued_ms=issued,
        node_id=node_id, note=note,
    )  # fmt: skip
    publish(settings, [rec], region)
    return rec


def dev_trust(
    settings: Settings, signer: Signer, region: str | None = None, write: Sequence[str] = ("*",)
) -> TrustRecord:
    """Development only: grant the node's own key `write` (`*`) with the admin key of this home.

    The record's issue time is the key file's, and Ed25519 signs deterministically, so every start
    of the same client publishes the very same record (kept once by the view and the topic): a node
    id keeps one set of patterns (two grants issued at the same time are ordered by digest)."""
    rec = make_grant(
        admin_key(settings), signer.node_id, signer.public, tuple(write),
        issued_ms=key_created_ms(settings.keys_dir, signer), note=DEV_NOTE,
    )  # fmt: skip
    publish(settings, [rec], region)
    return rec


def rotate(
    settings: Settings, node_id: str, *, keep_old: bool = False, region: str | None = None,
    view: TrustView | None = None,
) -> tuple[Signer, list[TrustRecord]]:  # fmt: skip
    """A new current key for the node, granted what the old one was; the old one revoked from now
    (unless keep_old). Operations the old key signed before stay verifiable: replays judge each
    operation by the trust of its own time."""
    old = load_signer(settings.keys_dir, node_id)
    view = view or read_view(settings, region)
    prior = view.latest_grant(old.key_id)
    write = prior.write if prior else ("*",)
    regions = prior.regions if prior else ()
    new = create_key(settings.keys_dir, node_id)
    issued = now_ms()
    admin = admin_key(settings)
    records = [
        make_grant(admin, node_id, new.public, write, regions=regions, issued_ms=issued,
                   note=f"rotated from key {old.key_id}"),
    ]  # fmt: skip
    if not keep_old:
        records.append(
            make_revocation(admin, old.key_id, at_ms=issued, issued_ms=issued, node_id=node_id,
                            note=f"rotated to key {new.key_id}")
        )  # fmt: skip
    publish(settings, records, region)
    return new, records


def auth_cli_node(settings: Settings) -> str:
    """The node `jarvis auth` signs role and key changes as."""
    return f"auth-cli-{settings.node_id}"


def stack_nodes(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The nodes `jarvis stack up` runs or uses, and what each writes.

    fold-<region> publishes bounded-counter decisions and transfers (streams/rights.py); the agent
    workers record task lifecycles (task:...); the ingest gateway signs for its callers, whose own
    roles it checks (so `*` and the clinical prefixes, which `*` does not reach); the CLI's nodes (`jarvis produce` as JARVIS_NODE_ID, `jarvis task
    submit` as jarvis-cli) are the local operator's, and `jarvis auth` writes the reserved auth:
    objects, which `*` does not cover."""
    bcounters = tuple(sorted(f"{p}:*" for p, r in pipelines().rules.items() if r.crdt_type == "bcounter"))
    clinical = tuple(f"{p}:*" for p in pipelines().clinical_prefixes())
    host = socket.gethostname()
    nodes: dict[str, tuple[str, ...]] = {
        CLI_NODE: ("*",), settings.node_id: ("*",), auth_cli_node(settings): (f"{AUTH_PREFIX}*",),
    }  # fmt: skip
    for r in settings.region_names:
        if bcounters:
            nodes[f"fold-{r}"] = bcounters
        for i in range(ROLES["agent"].instances):
            nodes[f"agent-{r}-{host}-{i}"] = (f"{TASK_PREFIX}:*",)
        for i in range(ROLES["ingest"].instances):
            nodes[f"ingest-{r}-{i}"] = ("*", *clinical)
    return nodes


def stack_grants(settings: Settings) -> list[TrustRecord]:
    """Keys for the stack's nodes (made if missing) and their grants, published in every region.

    Deterministic records (issued at each key file's time): a second `stack up` republishes the
    same bytes, which the compacted topic and every view keep once."""
    admin = admin_key(settings)
    records = []
    for node, write in stack_nodes(settings).items():
        signer = ensure_node_key(node, keys_dir=settings.keys_dir)
        records.append(
            make_grant(admin, node, signer.public, write, issued_ms=key_created_ms(settings.keys_dir, signer),
                       note="jarvis stack up: the stack's own node")
        )  # fmt: skip
    for r in settings.region_names:
        publish(settings, records, r)
    return records


def state_of(view: TrustView, key_id: str, at_ms: int) -> dict[str, object]:
    """A key's trust at a time, for `jarvis keys list`."""
    rec = view.current(key_id, at_ms)
    grant = view.latest_grant(key_id)
    if rec is None:
        return {"state": "untrusted", "node_id": grant.node_id if grant else None}
    if rec.kind == REVOKE:
        return {"state": "revoked", "at_ms": rec.effective_ms, "node_id": grant.node_id if grant else rec.node_id}
    return {
        "state": "trusted", "node_id": rec.node_id, "write": list(rec.write),
        "regions": list(rec.regions) or ["*"], "since_ms": rec.effective_ms, "note": rec.note,
    }  # fmt: skip
