"""Eclipse Mosquitto from Debian's packages: one broker per region, for the ingest gateway's MQTT side.

Each broker listens on the region's mqtt_port with persistence on (a QoS 1 message the gateway has
not acknowledged survives a broker restart), no anonymous clients, and a password file made from the
API key store: the user name is the key's name, the password the key. Keys whose role may write
something may publish to `jarvis/ops/#` and `telemetry/#`; the gateways log in as `jarvis-ingest`
(a secret under JARVIS_HOME/mqtt) and read everything. A key created or revoked rewrites the files
and sends the running brokers SIGHUP, which makes Mosquitto reload them.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import signal
import socket
from collections.abc import Mapping
from pathlib import Path

from connectors.auth_records import Replicated, all_keys, all_roles
from jarvis import mosquitto_db
from jarvis.config import RegionConfig, Settings
from jarvis.errors import JarvisError
from jarvis.mqtt_sessions import Ghost, configured_instances, ghosts
from jarvis.security.apikeys import KeyRecord, Role, mosquitto_hash
from jarvis.security.key_store import FileAuthStore, mosquitto_password_lines
from jarvis.stack.procs import Proc, StackError

BRIDGE_USER = "jarvis-ingest"
# A publish above this is refused by the broker (it disconnects the client): the gateway's HTTP body
# limit, so the two doors take the same operations.
MAX_PACKET_BYTES = 1024 * 1024
# The gateway acknowledges a message only once Kafka has its batch, so many are in flight at once;
# Mosquitto's defaults (20 in flight, 1,000 queued) would throttle it, or drop what a resumed session
# has queued past 1,000.
MAX_INFLIGHT = 10_000
MAX_QUEUED = 1_000_000


def mqtt_dir(settings: Settings) -> Path:
    return settings.home / "mqtt"


def name(region: RegionConfig) -> str:
    return f"mosquitto-{region.name}"


def bridge_secret(settings: Settings) -> str:
    """The gateways' broker password (made on first use, 0600)."""
    path = mqtt_dir(settings) / "bridge.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def write_auth_files(
    settings: Settings, records: list[KeyRecord] | None = None, roles: Mapping[str, Role] | None = None
) -> None:
    """The password and ACL files from these key records and roles (default: the host's file store
    and, when this region's query API answers, the replicated ones), the bridge user included."""
    d = mqtt_dir(settings)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = FileAuthStore(settings.home)
    if records is None:
        try:
            rep = Replicated(settings)
            records, roles = list(all_keys(settings, rep).values()), all_roles(settings, rep)
        # No query API to ask (the stack is starting, or this host runs none: no CA, nothing listening):
        # the brokers know the file's keys.
        except (JarvisError, OSError):
            records = store.list_keys()
    bridge = mosquitto_hash(bridge_secret(settings), secrets.token_bytes(12))
    _write(d / "passwd", "\n".join(mosquitto_password_lines(records, {BRIDGE_USER: bridge})) + "\n")
    acl = [f"user {BRIDGE_USER}", "topic readwrite #", ""]
    known: dict[str, Role | None] = dict(roles or {})
    for r in records:
        if not r.active:
            continue
        role = known.get(r.role) if r.role in known else known.setdefault(r.role, store.role(r.role))
        if role is not None and (role.write or role.admin):
            acl += [f"user {r.name}", "topic write jarvis/ops/#", "topic write telemetry/#", ""]
    _write(d / "acl", "\n".join(acl))


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def db_path(settings: Settings, region: RegionConfig) -> Path:
    """The broker's persistence file (persistence_location + Mosquitto's default file name)."""
    return mqtt_dir(settings) / region.name / "mosquitto.db"


def ghost_sessions(settings: Settings, region: RegionConfig) -> list[Ghost]:
    """Persistent sessions on the region's broker under a gateway client id that is not one of its
    configured instances: each takes a share of the region's messages while offline. Read from the
    broker's persistence file, saved every second (autosave_interval): the broker's own record,
    which no client connection or log line can give (Mosquitto 2.0 has no $SYS list of sessions).
    Raises mosquitto_db.MosquittoDbError for a file this cannot read."""
    try:
        data = db_path(settings, region).read_bytes()
    except FileNotFoundError:  # the broker has not saved yet: it holds no session worth saving
        return []
    held = mosquitto_db.sessions(data).values()
    return ghosts(((s.client_id, s.queued) for s in held), region.name, configured_instances())


def broker_proc(settings: Settings, region: RegionConfig) -> Proc:
    return Proc(name=name(region), run_dir=settings.home)


def prepared_proc(settings: Settings, region: RegionConfig) -> Proc:
    server = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if server is None:
        raise StackError("Mosquitto is not installed: run `make install` or `apt-get install mosquitto`.")
    d = mqtt_dir(settings)
    data = d / region.name
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_auth_files(settings)
    conf = d / f"{region.name}.conf"
    # Without `user`, started as root, Mosquitto becomes user `mosquitto` and cannot read the 0600
    # files under JARVIS_HOME.
    conf.write_text(broker_conf(region.mqtt_port, region.host, d, data, getpass.getuser()))
    # Mosquitto's stdout into the log file is block-buffered: line-buffer it, so the log is whole
    # while the broker runs (stdbuf execs the broker: the pid stays the broker's).
    stdbuf = shutil.which("stdbuf")
    argv = [*([stdbuf, "-oL"] if stdbuf else []), server, "-c", str(conf)]
    return Proc(name=name(region), run_dir=settings.home, argv=argv)


def broker_conf(port: int, host: str | None, auth_dir: Path, data_dir: Path, user: str) -> str:
    """A broker's mosquitto.conf: the local stack's, and docker-compose.yml's (deploy/mosquitto/,
    made by this and checked equal by tests/unit/test_compose.py). `host` None: every interface."""
    return "\n".join(
        [
            f"listener {port}" + (f" {host}" if host else ""),
            "allow_anonymous false",
            f"password_file {auth_dir / 'passwd'}",
            f"acl_file {auth_dir / 'acl'}",
            "persistence true",
            f"persistence_location {data_dir}/",
            "autosave_interval 1",
            f"max_packet_size {MAX_PACKET_BYTES}",
            f"max_inflight_messages {MAX_INFLIGHT}",
            f"max_queued_messages {MAX_QUEUED}",
            f"user {user}",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # Who holds a share of the gateways' shared subscription is otherwise invisible, and a
            # session in it that never reads takes every Nth message (docs/internals.md).
            "log_type subscribe",
            "",
        ]
    )


def reload(
    settings: Settings, records: list[KeyRecord] | None = None, roles: Mapping[str, Role] | None = None
) -> int:
    """Rewrite the password and ACL files and make every running broker re-read them; how many."""
    write_auth_files(settings, records, roles)
    n = 0
    for region in settings.regions:
        pid = broker_proc(settings, region).pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            n += 1
    return n


def ping(region: RegionConfig, timeout: float = 1.0) -> bool:
    """True when the broker answers an MQTT CONNECT (with a CONNACK, refused or not)."""
    # MQTT 3.1.1 CONNECT, client id "jarvis-ping", no credentials: any CONNACK proves the broker is up.
    cid = b"jarvis-ping"
    body = b"\x00\x04MQTT\x04\x02\x00\x05" + len(cid).to_bytes(2, "big") + cid
    packet = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((region.host, region.mqtt_port), timeout=timeout) as s:
            s.sendall(packet)
            return s.recv(4)[:1] == b"\x20"
    except OSError:
        return False
