"""`jarvis auth key create|list|revoke`, `jarvis auth role set|list`: API keys and roles under JARVIS_HOME.

`key create` prints the key once, as the last line of stdout; only its hash is kept. Every change
rewrites the MQTT brokers' password and ACL files and makes running brokers reload them.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.console import Console
from rich.table import Table

from jarvis.config import settings
from jarvis.security.apikeys import AuthError
from jarvis.security.key_store import FileAuthStore
from jarvis.stack import mosquitto

auth_app = typer.Typer(no_args_is_help=True, help="API keys and roles (HTTP bearer keys, MQTT passwords).")
key_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")
role_app = typer.Typer(no_args_is_help=True, help="Roles: which object ids a key may read and write.")
auth_app.add_typer(key_app, name="key")
auth_app.add_typer(role_app, name="role")
console = Console(stderr=True)


def _store() -> FileAuthStore:
    return FileAuthStore(settings().home)


def _brokers_reload() -> None:
    n = mosquitto.reload(settings())
    if n:
        console.print(f"[dim]{n} MQTT broker(s) reloaded their password files[/]")


def _fail(e: AuthError) -> typer.Exit:
    console.print(f"[red]{e}[/]")
    return typer.Exit(1)


@key_app.command("create")
def key_create(
    role: str = typer.Option(..., "--role", help="The key's role (admin is built in)."),
    name: str = typer.Option(None, "--name", help="Principal name operations record (default key-<id>)."),
) -> None:
    """Make a key; it is printed once, as the last line of stdout, and never stored."""
    try:
        key, record = _store().create_key(role, name)
    except AuthError as e:
        raise _fail(e) from None
    _brokers_reload()
    console.print(f"key [bold]{record.key_id}[/] for [bold]{record.name}[/] (role {record.role}); keep it, it is not shown again:")
    print(key)


@key_app.command("list")
def key_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every key: id, name, role, created, revoked (never the key or its hash)."""
    rows = [{k: v for k, v in asdict(r).items() if k not in ("sha256", "mqtt_hash")} for r in _store().list_keys()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="API keys")
    for col in ("key id", "name", "role", "state"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["key_id"], r["name"], r["role"], "revoked" if r["revoked_ms"] else "active")
    Console().print(t)


@key_app.command("revoke")
def key_revoke(key: str = typer.Argument(..., help="Key id or name.")) -> None:
    """Stop a key from working (HTTP at once, MQTT once the brokers reloaded)."""
    try:
        record = _store().revoke(key)
    except AuthError as e:
        raise _fail(e) from None
    _brokers_reload()
    console.print(f"key {record.key_id} ({record.name}) revoked")


@role_app.command("set")
def role_set(
    name: str,
    read: list[str] = typer.Option([], "--read", help="Object-id pattern it may read: '*', 'inventory:*', an id."),
    write: list[str] = typer.Option([], "--write", help="Object-id pattern it may write."),
    tasks: bool = typer.Option(False, "--tasks", help="May submit agent tasks."),
    admin: bool = typer.Option(False, "--admin", help="May manage keys, roles and trust."),
) -> None:
    """Create or replace a role."""
    try:
        role = _store().set_role(name, read, write, tasks=tasks, admin=admin)
    except AuthError as e:
        raise _fail(e) from None
    _brokers_reload()
    console.print(f"role [bold]{role.name}[/]: read {list(role.read)}, write {list(role.write)}")


@role_app.command("list")
def role_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every role and its grants (admin included)."""
    rows = [asdict(r) for r in _store().roles()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="roles")
    for col in ("role", "read", "write", "tasks", "admin"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], " ".join(r["read"]), " ".join(r["write"]), str(r["tasks"]), str(r["admin"]))
    Console().print(t)
