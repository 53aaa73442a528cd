"""`jarvis keys create | list | rotate | trust`: node signing keys and region trust stores."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from jarvis.config import settings
from jarvis.security.keys import TrustStore, ensure_node_key, list_keys, public_b64, rotate

keys_app = typer.Typer(no_args_is_help=True, help="Node signing keys (Ed25519) and region trust stores.")
console = Console()


@keys_app.command()
def create(
    node_id: str,
    trust_region: list[str] = typer.Option(
        None, "--trust-region", help="Regions that accept this key (default: all)."
    ),
) -> None:
    """Create the node's key (if it has none) and trust it in the given regions."""
    s = settings()
    signer = ensure_node_key(node_id, keys_dir=s.keys_dir, trust_regions=trust_region or list(s.region_names))
    console.print(f"node [bold]{node_id}[/] key {signer.key_id}: {public_b64(signer.public)}")


@keys_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every node key, current or retired, and the regions that trust it."""
    s = settings()
    store = TrustStore(s.keys_dir)
    rows = list_keys(s.keys_dir)
    for r in rows:
        r["trusted_in"] = [reg for reg in s.region_names if store.is_trusted(reg, r["node_id"], r["key_id"])]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title=f"keys in {s.keys_dir}")
    for col in ("node", "key id", "status", "trusted in"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["node_id"], r["key_id"], r["status"], ", ".join(r["trusted_in"]) or "-")
    console.print(t)


@keys_app.command("rotate")
def rotate_(node_id: str) -> None:
    """Make a new current key; old keys stay trusted so earlier signatures still verify."""
    s = settings()
    signer = rotate(s.keys_dir, node_id, list(s.region_names))
    console.print(f"node [bold]{node_id}[/] now signs with {signer.key_id}")


@keys_app.command()
def trust(region: str, node_id: str, public_key_b64: str) -> None:
    """Accept another node's public key in a region."""
    kid = TrustStore(settings().keys_dir).trust(region, node_id, public_key_b64)
    console.print(f"region {region} now trusts {node_id} key {kid}")
