"""`jarvis auth key create|list|revoke`, `jarvis auth role set|list`: API keys and roles;
`jarvis auth mqtt-files`: the MQTT brokers' password and ACL files from them.

Roles and key records (hashes only) are objects of the pipeline: LWW registers `auth:role:<name>`
and `auth:key:<key id>`, written here as signed operations through the SDK to this region, mirrored
to every other region like any object, and read by every HTTP service of every region from its
region's cache (connectors/auth_view.py). Each command waits until its change is readable in this
region, so the next command (or request) sees it. `key create` prints the key once, as the last
line of stdout.

The host's file store (JARVIS_HOME/auth) keeps the bootstrap admin key `jarvis stack up` made; it is
listed beside the replicated keys and can be revoked like them (through the pipeline, everywhere).
Every change is written to the access audit (jarvis.audit) and rewrites the local MQTT brokers'
password and ACL files.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from connectors.access_audit import AuditSink
from connectors.api_client import api_key
from connectors.auth_records import Replicated, all_keys, all_roles
from jarvis.config import Settings, settings
from jarvis.security.apikeys import (
    KEY_OBJECT,
    ROLE_OBJECT,
    AuthError,
    KeyRecord,
    Role,
    key_id_of,
    make_role,
)
from jarvis.security.key_store import FileAuthStore, new_key_record
from jarvis.stack import mosquitto

auth_app = typer.Typer(no_args_is_help=True, help="API keys and roles (HTTP bearer keys, MQTT passwords).")
key_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")
role_app = typer.Typer(no_args_is_help=True, help="Roles: which object ids a key may read and write.")
auth_app.add_typer(key_app, name="key")
auth_app.add_typer(role_app, name="role")
console = Console(stderr=True)
VISIBLE_TIMEOUT_S = 30.0


def _write(s: Settings, object_id: str, value: dict[str, Any]) -> None:
    """One signed LWW write to this region, accepted by its verifier, then readable here."""
    # Lazy: the SDK loads confluent-kafka and the codec; `jarvis auth role list` needs neither.
    from connectors.sdk import Client, RejectedError
    from connectors.trust_admin import auth_cli_node

    with Client(region=s.region, node_id=auth_cli_node(s), settings=s, track_verdicts=True) as client:
        client.register(object_id).write(value)
        try:
            client.flush(wait=True)
        except RejectedError as e:
            raise AuthError(f"the verifier rejected the change of {object_id}: {e}") from None
    rep = Replicated(s)
    deadline = time.monotonic() + VISIBLE_TIMEOUT_S
    while rep.value(object_id) != value:
        if time.monotonic() > deadline:
            console.print(f"[yellow]{object_id} written, not readable in {s.region} after {VISIBLE_TIMEOUT_S:.0f} s yet[/]")
            return
        time.sleep(0.2)


def _who(s: Settings) -> str:
    key = api_key(s)
    kid = key_id_of(key) if key else None
    return f"key {kid}" if kid else "unknown"


def _audit(s: Settings, action: str, target: str, detail: dict[str, Any]) -> None:
    sink = AuditSink(s.bootstrap(s.region), s.region, "cli", s)
    try:
        sink.admin(action, _who(s), target, detail)
        if sink.flush(10) > 0:
            console.print("[yellow]the audit record of this change was not delivered to Kafka[/]")
    finally:
        sink.close(1)


def _all_keys(s: Settings, rep: Replicated) -> dict[str, KeyRecord]:
    return all_keys(s, rep)


def _all_roles(s: Settings, rep: Replicated) -> dict[str, Role]:
    return all_roles(s, rep)


def _brokers_reload(s: Settings) -> None:
    try:
        n = mosquitto.reload(s)
    except OSError as e:
        console.print(f"[yellow]MQTT password files not rewritten: {e}[/]")
        return
    if n:
        console.print(f"[dim]{n} MQTT broker(s) reloaded their password files[/]")


@auth_app.command("mqtt-files")
def mqtt_files() -> None:
    """Write the MQTT brokers' password and ACL files (JARVIS_HOME/mqtt) from the keys and roles, for
    brokers `jarvis stack up` did not start (docker-compose.yml's); this host's brokers reload them."""
    s = settings()
    try:
        n = mosquitto.reload(s)
    except OSError as e:
        raise _fail(e) from None
    console.print(f"MQTT password and ACL files written to {mosquitto.mqtt_dir(s)}" + (f"; {n} broker(s) reloaded" if n else ""))


def _fail(e: Exception) -> typer.Exit:
    console.print(f"[red]{e}[/]")
    return typer.Exit(1)


@key_app.command("create")
def key_create(
    role: str = typer.Option(..., "--role", help="The key's role (admin is built in)."),
    name: str = typer.Option(None, "--name", help="Principal name operations record (default key-<id>)."),
) -> None:
    """Make a key; it is printed once, as the last line of stdout, and never stored."""
    s = settings()
    try:
        rep = Replicated(s)
        if role not in _all_roles(s, rep):
            raise AuthError(f"no role {role!r}: create it with `jarvis auth role set {role} ...`")
        key, record = new_key_record(role, name)
        keys = _all_keys(s, rep)
        if record.key_id in keys:
            raise AuthError("key id collision, try again")
        if any(r.name == record.name and r.active for r in keys.values()):
            raise AuthError(f"an active key is named {record.name!r} already")
        _write(s, KEY_OBJECT + record.key_id, record.record())
    except AuthError as e:
        raise _fail(e) from None
    _audit(s, "key create", record.key_id, {"name": record.name, "role": record.role})
    _brokers_reload(s)
    console.print(f"key [bold]{record.key_id}[/] for [bold]{record.name}[/] (role {record.role}); keep it, it is not shown again:")
    print(key)


@key_app.command("list")
def key_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every key: id, name, role, created, revoked (never the key or its hash)."""
    s = settings()
    try:
        records = sorted(_all_keys(s, Replicated(s)).values(), key=lambda r: r.created_ms)
    except AuthError as e:
        raise _fail(e) from None
    rows = [{k: v for k, v in asdict(r).items() if k not in ("sha256", "mqtt_hash")} for r in records]
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
    """Stop a key from working, in every region (within seconds; MQTT once the brokers reloaded)."""
    s = settings()
    try:
        found = [r for r in _all_keys(s, Replicated(s)).values() if key in (r.key_id, r.name) and r.active]
        if not found:
            raise AuthError(f"no active key {key!r}")
        record = found[0]
        revoked = KeyRecord(**{**asdict(record), "revoked_ms": int(time.time() * 1000)})
        _write(s, KEY_OBJECT + record.key_id, revoked.record())
        local = FileAuthStore(s.home)
        if local.record(record.key_id) is not None and local.record(record.key_id).active:  # type: ignore[union-attr]
            local.revoke(record.key_id)
    except AuthError as e:
        raise _fail(e) from None
    _audit(s, "key revoke", record.key_id, {"name": record.name, "role": record.role})
    _brokers_reload(s)
    console.print(f"key {record.key_id} ({record.name}) revoked")


@role_app.command("set")
def role_set(
    name: str,
    read: list[str] = typer.Option([], "--read", help="Object-id pattern it may read: '*', 'inventory:*', an id."),
    write: list[str] = typer.Option([], "--write", help="Object-id pattern it may write."),
    tasks: bool = typer.Option(False, "--tasks", help="May submit agent tasks."),
    admin: bool = typer.Option(False, "--admin", help="May manage keys, roles and trust."),
    clinical: bool = typer.Option(
        False, "--clinical", help="May read and write the clinical objects (patient records) its grants name."
    ),
) -> None:
    """Create or replace a role, in every region."""
    s = settings()
    try:
        role = make_role(name, read, write, tasks=tasks, admin=admin, clinical=clinical)
        _write(s, ROLE_OBJECT + name, role.record())
    except AuthError as e:
        raise _fail(e) from None
    _audit(s, "role set", name, role.record())
    _brokers_reload(s)
    clin = " (clinical)" if role.clinical else ""
    console.print(f"role [bold]{role.name}[/]{clin}: read {list(role.read)}, write {list(role.write)}")


@role_app.command("list")
def role_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every role and its grants (admin included)."""
    s = settings()
    try:
        roles = _all_roles(s, Replicated(s))
    except AuthError as e:
        raise _fail(e) from None
    rows = [asdict(r) for r in roles.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="roles")
    for col in ("role", "read", "write", "tasks", "admin", "clinical"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], " ".join(r["read"]), " ".join(r["write"]), str(r["tasks"]), str(r["admin"]),
                  str(r["clinical"]))  # fmt: skip
    Console().print(t)
