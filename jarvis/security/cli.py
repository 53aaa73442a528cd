"""`jarvis keys ...`: node signing keys, admin keys, and trust (admin-signed grants and revocations
on the replicated `jarvis.trust` topic, which every verifier in every region reads)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from jarvis.config import settings
from jarvis.errors import JarvisError
from jarvis.security.keys import (
    KeyError_,
    admin_public_keys,
    create_admin_key,
    ensure_node_key,
    key_id_of,
    list_keys,
    load_admin_key,
    load_signer,
    local_admin_public_keys,
    public_b64,
)
from jarvis.security.trust import TrustError, iso_ms, public_from

keys_app = typer.Typer(no_args_is_help=True, help="Node signing keys (Ed25519), admin keys and trust.")
admin_app = typer.Typer(no_args_is_help=True, help="Admin keys: they sign every grant and revocation.")
keys_app.add_typer(admin_app, name="admin")
console = Console()
err = Console(stderr=True)

REGION_OPT = typer.Option(None, "--region", help="Region whose jarvis.trust gets the record (default JARVIS_REGION).")


def _fail(e: Exception) -> None:
    err.print(f"[red]error:[/] {e}")
    raise typer.Exit(1)


def _time_ms(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time (2026-12-02T08:00:00Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


@keys_app.command()
def create(
    node_id: str,
    trust: bool = typer.Option(
        False, "--trust", help="Development only: grant the key `*` with this home's admin key."
    ),
    region: str = REGION_OPT,
) -> None:
    """Create the node's key (if it has none). It is trusted nowhere until an admin grants it."""
    # Lazy: Kafka is needed only to publish the development grant.
    from connectors.trust_admin import dev_trust

    s = settings()
    try:
        signer = ensure_node_key(node_id, keys_dir=s.keys_dir)
        if trust:
            dev_trust(s, signer, region)
    except (JarvisError, OSError) as e:
        _fail(e)
    console.print(f"node [bold]{node_id}[/] key {signer.key_id}: {public_b64(signer.public)}")
    if trust:
        console.print("[yellow]granted `*` with the local admin key (development only)[/]")
    else:
        console.print(
            f"an admin trusts it with: jarvis keys trust {node_id} --public-key {public_b64(signer.public)}",
            soft_wrap=True,
        )


@keys_app.command()
def trust(
    node_id: str,
    key_id: str = typer.Option(None, "--key-id", help="A key of the node under this home (default: its current key)."),
    public_key: str = typer.Option(None, "--public-key", help="The node's base64 Ed25519 public key (a key held elsewhere)."),
    write: list[str] = typer.Option(None, "--write", help="Object-id pattern the node may write: '*', 'inventory:*', an id (repeatable; default '*', which excludes auth:)."),
    in_region: list[str] = typer.Option(None, "--in-region", help="Only these regions' verifiers accept the key (default: every region)."),
    valid_from: str = typer.Option(None, "--valid-from", help="ISO time from which the key is trusted (default: always)."),
    region: str = REGION_OPT,
) -> None:
    """Grant a node key (signed by this home's admin key); every region's verifier takes it within seconds."""
    # Lazy: Kafka (publishing) is not needed by the other keys commands.
    from connectors.trust_admin import grant

    s = settings()
    try:
        if public_key is not None:
            pub = public_from(public_key)
            if key_id is not None and key_id_of(pub) != key_id:
                raise TrustError(f"--key-id {key_id} is not the id of that public key ({key_id_of(pub)})")
        elif key_id is not None:
            rows = [r for r in list_keys(s.keys_dir) if r["node_id"] == node_id and r["key_id"] == key_id]
            if not rows:
                raise KeyError_(f"no key {key_id} of node {node_id} under {s.keys_dir}: pass --public-key")
            pub = rows[0]["public_key"]
        else:
            pub = load_signer(s.keys_dir, node_id).public
        rec = grant(
            s, node_id, pub, write or ["*"], regions=in_region or (), valid_from_ms=_time_ms(valid_from) or 0,
            note="jarvis keys trust", region=region,
        )  # fmt: skip
    except (JarvisError, OSError) as e:
        _fail(e)
    where = ", ".join(rec.regions) or "every region"
    console.print(f"trusted node {node_id} key {rec.key_id} in {where} to write {', '.join(rec.write)}")


@keys_app.command()
def revoke(
    key_id: str,
    at: str = typer.Option(None, "--at", help="ISO time from which the key is untrusted (default now; earlier for a key compromised since)."),
    region: str = REGION_OPT,
) -> None:
    """Revoke a key everywhere. Operations it signed before the revocation still verify in replay."""
    # Lazy: Kafka.
    from connectors.trust_admin import revoke as do_revoke
    from connectors.trust_feed import read_view

    s = settings()
    try:
        grant = read_view(s, region).latest_grant(key_id)
        rec = do_revoke(
            s, key_id, at_ms=_time_ms(at), node_id=grant.node_id if grant else "", note="jarvis keys revoke",
            region=region,
        )  # fmt: skip
    except (JarvisError, OSError, TimeoutError) as e:
        _fail(e)
    console.print(f"revoked key {key_id} at {iso_ms(rec.effective_ms)}")


@keys_app.command("rotate")
def rotate_(
    node_id: str,
    keep_old: bool = typer.Option(False, "--keep-old", help="Leave the old key trusted too."),
    region: str = REGION_OPT,
) -> None:
    """A new current key with the old one's grant, the old key revoked from now.

    Earlier operations stay verifiable in `jarvis replay` and `jarvis audit`: each is judged by
    the trust of its own time."""
    # Lazy: Kafka.
    from connectors.trust_admin import rotate

    s = settings()
    try:
        signer, records = rotate(s, node_id, keep_old=keep_old, region=region)
    except (JarvisError, OSError, TimeoutError) as e:
        _fail(e)
    console.print(f"node [bold]{node_id}[/] now signs with {signer.key_id}" + ("" if keep_old else "; the old key is revoked"))


@keys_app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json"),
    region: str = typer.Option(None, "--region", help="Region whose trust topics are read (default JARVIS_REGION)."),
) -> None:
    """Every key this home holds or the trust topics name, with its trust state now."""
    # Lazy: Kafka.
    from connectors.trust_admin import now_ms, state_of
    from connectors.trust_feed import read_view

    s = settings()
    try:
        view = read_view(s, region)
    except (JarvisError, OSError, TimeoutError) as e:
        _fail(e)
    now = now_ms()
    rows: list[dict[str, Any]] = []
    local = {r["key_id"]: r for r in list_keys(s.keys_dir)}
    for kid in sorted(set(local) | set(view.key_ids())):
        row: dict[str, Any] = {"key_id": kid, **state_of(view, kid, now)}
        if kid in local:
            row["node_id"] = local[kid]["node_id"]
            row["local"] = local[kid]["status"]  # current or retired
        row["public_key"] = local[kid]["public_key"] if kid in local else _pub(view, kid)
        rows.append(row)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title=f"keys in {s.keys_dir} and on the trust topics")
    for col in ("node", "key id", "here", "trust", "writes", "regions"):
        t.add_column(col)
    for r in rows:
        state = r["state"] + (f" at {iso_ms(r['at_ms'])}" if r["state"] == "revoked" else "")
        t.add_row(
            str(r.get("node_id") or "?"), r["key_id"], r.get("local", "-"), state,
            ", ".join(r.get("write", [])) or "-", ", ".join(r.get("regions", [])) or "-",
        )  # fmt: skip
    console.print(t)


def _pub(view: Any, kid: str) -> str | None:
    key = view.public_key(kid)
    return public_b64(key) if key is not None else None


@admin_app.command("create")
def admin_create() -> None:
    """Make an admin key under JARVIS_HOME/keys/admin (it becomes the signing one)."""
    s = settings()
    key = create_admin_key(s.keys_dir)
    pub = public_b64(key.public_key())
    console.print(f"admin key {key_id_of(key.public_key())}: {pub}")
    console.print("verifiers on other hosts accept it with JARVIS_ADMIN_PUBLIC_KEYS=" + pub, soft_wrap=True)


@admin_app.command("list")
def admin_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """The admin keys whose records count here: configured (JARVIS_ADMIN_PUBLIC_KEYS) and local."""
    s = settings()
    local = local_admin_public_keys(s.keys_dir)
    current = load_admin_key(s.keys_dir)
    current_id = key_id_of(current.public_key()) if current else None
    rows = []
    for pub in admin_public_keys(s.keys_dir, s.admin_public_keys):
        kid = key_id_of(pub)
        where = "local" if kid in local else "JARVIS_ADMIN_PUBLIC_KEYS"
        rows.append({"key_id": kid, "public_key": public_b64(pub), "source": where, "signing": kid == current_id})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="admin keys")
    for col in ("key id", "source", "signing", "public key"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["key_id"], r["source"], "yes" if r["signing"] else "", r["public_key"])
    console.print(t)
