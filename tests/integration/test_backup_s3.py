"""`jarvis backup` to a real S3-compatible server: SeaweedFS's S3 gateway (Apache-2.0, built from its
Go module by deploy/build-seaweedfs.sh, minutes the first time on a machine, cached after), private
to the test, with credentials and no anonymous access. What boto3 (our side) writes is checked with a
client we did not write, curl's own SigV4 signing: the objects are really in the bucket, anonymous
requests are refused, and a tampered object put back by curl fails `verify` with the reason."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import socket
import subprocess
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from connectors.backup.container import new_key
from connectors.sdk import Client
from tests.integration.pipeline_helpers import get_json, object_url, wait_until
from tests.integration.test_archive import archived_count
from tests.integration.test_backup import (
    empty_databases,
    jarvis,
    restore_agrees,
    said,
)

__all__ = ["empty_databases"]  # a fixture, used by name

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "build-seaweedfs.sh"
REGION = "us-east-1"  # SeaweedFS signs for any region; boto3 and curl must only agree on one
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass
class S3Server:
    endpoint: str
    access_key: str  # the backup identity's (Read, Write, List): what `jarvis backup` is given
    secret_key: str
    admin_key: str  # an admin identity's, for curl to make buckets with
    admin_secret: str
    home: Path

    def env(self) -> dict[str, str]:
        """What an operator sets for `jarvis backup` (boto3's standard variables), and nothing of the
        machine's own AWS configuration."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(self.home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "no-aws-credentials"),
        }

    def curl(self, method: str, path: str, *, data: Path | None = None, signed: bool = True,
             admin: bool = False, out: Path | None = None) -> tuple[int, bytes]:  # fmt: skip
        """One request by curl (not boto3), signed with curl's own SigV4: its status and body."""
        cmd = ["curl", "-sS", "-o", str(out or "-"), "-w", "\n%{http_code}"]
        # An upload by -T is a real PUT: curl 7.88 signs --data-binary with -X PUT as a POST body.
        cmd += ["-T", str(data)] if data is not None else ["-X", method]
        if signed:
            user = f"{self.admin_key}:{self.admin_secret}" if admin else f"{self.access_key}:{self.secret_key}"
            cmd += ["--aws-sigv4", f"aws:amz:{REGION}:s3", "--user", user]
        r = subprocess.run([*cmd, f"{self.endpoint}{path}"], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        body, _, code = r.stdout.rpartition(b"\n")
        return int(code), body

    def keys(self, bucket: str, prefix: str) -> dict[str, int]:
        """The bucket's objects under prefix, as S3's ListObjectsV2 tells curl: key -> size."""
        # Percent-encoded: curl signs the query as sent, and SigV4 canonicalises "/" as %2F.
        code, body = self.curl("GET", f"/{bucket}?list-type=2&prefix={urllib.parse.quote(prefix, safe='')}")
        assert code == 200, body
        root = ET.fromstring(body)
        return {
            c.findtext(f"{S3_NS}Key"): int(c.findtext(f"{S3_NS}Size"))
            for c in root.iter(f"{S3_NS}Contents")
        }


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _weed(request: pytest.FixtureRequest) -> Path:
    """The weed binary, built on demand (the build's own progress shown, not captured)."""
    cached = subprocess.run(["bash", str(BUILD), "--cached"], capture_output=True, text=True)
    if cached.returncode == 0:
        return Path(cached.stdout.strip().splitlines()[-1])
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(
            "\nbuilding SeaweedFS for the S3 backup test (deploy/build-seaweedfs.sh): up to 20 minutes "
            "on 2 shared cores, once per machine...",
            flush=True,
        )
        r = subprocess.run(["bash", str(BUILD)], stdout=subprocess.PIPE, text=True, timeout=3600)
    if r.returncode != 0:
        pytest.fail(f"deploy/build-seaweedfs.sh failed (exit {r.returncode}): see its output above")
    return Path(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def s3(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A private SeaweedFS (master, volume, filer and S3 gateway in one process) on free loopback
    ports in a temporary folder, answering only to one identity; stopped afterwards."""
    weed = _weed(request)
    home = tmp_path_factory.mktemp("seaweedfs")
    access, secret = f"backup{secrets.token_hex(4)}", secrets.token_urlsafe(30)
    admin, admin_secret = f"admin{secrets.token_hex(4)}", secrets.token_urlsafe(30)
    config = home / "s3.json"
    # No identity named "anonymous": SeaweedFS then refuses every unsigned request.
    config.write_text(json.dumps({"identities": [
        {"name": "admin", "credentials": [{"accessKey": admin, "secretKey": admin_secret}],
         "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
        {"name": "jarvis-backup", "credentials": [{"accessKey": access, "secretKey": secret}],
         "actions": ["Read", "Write", "List"]},
    ]}))  # fmt: skip
    config.chmod(0o600)
    (home / "data").mkdir()
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_port, s3_grpc = _free_ports(8)
    log = open(home / "weed.log", "wb")  # noqa: SIM115 (kept open for the server's lifetime)
    # Every listener on a free loopback port or off (Iceberg, Lance), sockets in the temp folder,
    # no bucket made on upload: a missing bucket must stay missing.
    proc = subprocess.Popen(
        [str(weed), "server", f"-dir={home / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.volumeSizeLimitMB=64",
         f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=64",
         "-volume.preStopSeconds=0",
         "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
         f"-filer.localSocket={home / 'filer.sock'}",
         "-s3", f"-s3.port={s3_port}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
         f"-s3.localSocket={home / 's3.sock'}", f"-s3.config={config}", "-s3.autoCreateBucket=false"],
        stdout=log, stderr=subprocess.STDOUT, cwd=home,
    )  # fmt: skip
    server = S3Server(f"http://127.0.0.1:{s3_port}", access, secret, admin, admin_secret, home)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (home / "weed.log").read_text()[-4000:]
            try:
                if server.curl("GET", "/")[0] == 200:  # ListBuckets, signed: the gateway and filer are up
                    break
            except AssertionError:
                pass  # not listening yet
            assert time.monotonic() < deadline, "SeaweedFS did not answer in 120 s:\n" + (home / "weed.log").read_text()[-4000:]
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A new bucket, made by curl: boto3 only ever finds it there."""
    name = f"jarvis-{uuid.uuid4().hex[:10]}"
    code, body = s3.curl("PUT", f"/{name}", admin=True)
    assert code == 200, body
    return name


def test_the_server_refuses_anonymous_requests_and_wrong_credentials(s3: S3Server, bucket: str) -> None:
    assert s3.curl("GET", f"/{bucket}?list-type=2", signed=False)[0] == 403
    assert s3.curl("PUT", f"/{bucket}/x.jbk", signed=False, data=s3.home / "s3.json")[0] == 403
    assert s3.curl("PUT", f"/{bucket}-2")[0] == 403  # the backup identity makes no buckets
    assert s3.keys(bucket, "") == {}
    r = jarvis("backup", "list", "--from", f"s3://{bucket}/p",
               env={**s3.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"})  # fmt: skip
    assert r.returncode == 1 and "the object store" in said(r) and "Traceback" not in r.stderr, r.stderr
    assert "SignatureDoesNotMatch" in said(r) or "AccessDenied" in said(r), r.stderr


def test_s3_backup_restores_like_the_original_and_any_version_restores(
    stack, empty_databases, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    oid = f"ctr:{run}-s3backup"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    env = {"JARVIS_BACKUP_KEY": new_key(), **s3.env()}
    dest = f"s3://{bucket}/region-eu/nightly"
    client = Client(region="eu", node_id=f"s3backup-{run}", dev_trust=True)
    for _ in range(40):
        client.counter(oid).increment(3)
    client.flush()
    assert wait_until(lambda: archived_count(s.postgres_dsn, [oid]) == 40, 120)

    first = jarvis("backup", "create", "--to", dest, env=env)
    assert first.returncode == 0, first.stderr
    v1 = first.stdout.strip().splitlines()[-1]
    assert dest in said(first)

    for _ in range(25):
        client.counter(oid).increment(1)
    client.flush()
    assert wait_until(lambda: archived_count(s.postgres_dsn, [oid]) == 65, 120)
    assert wait_until(
        lambda: (get_json(object_url(s.region_config("eu").query_url, oid))[1] or {}).get("value") == 145, 60
    )
    second = jarvis("backup", "create", "--to", dest, env=env)
    assert second.returncode == 0, second.stderr
    v2 = second.stdout.strip().splitlines()[-1]

    listed = jarvis("backup", "list", "--from", dest, "--json", env=s3.env())  # no key needed to list
    assert listed.returncode == 0, listed.stderr
    versions = json.loads(listed.stdout)
    assert [v["version"] for v in versions] == sorted([v1, v2]) and all(v.get("key_id") for v in versions)
    # The bucket, listed by curl, holds exactly those objects, at the sizes `list` gave.
    assert s3.keys(bucket, "region-eu/") == {
        f"region-eu/nightly/{v['version']}.jbk": v["size"] for v in versions
    }
    # A neighbouring prefix is not this destination's.
    assert json.loads(jarvis("backup", "list", "--from", f"s3://{bucket}/region-eu", "--json",
                             env=s3.env()).stdout) == []  # fmt: skip

    ok = jarvis("backup", "verify", "--from", dest, "--version", v1, env=env)
    assert ok.returncode == 0 and "verified" in ok.stderr, ok.stderr

    # The newest version into an empty database, its keys into an empty keys directory.
    restore_agrees(s, empty_databases(), dest, env, oid, since, tmp_path / "restored-home")

    older_dsn = empty_databases()
    r = jarvis("backup", "restore", "--from", dest, "--version", v1,
               env={**env, "JARVIS_POSTGRES_DSN": older_dsn, "JARVIS_HOME": str(tmp_path / "older-home")})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert archived_count(older_dsn, [oid]) == 40


def test_a_tampered_or_truncated_s3_object_fails_verify_with_the_reason(
    stack, empty_databases, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    env = {"JARVIS_BACKUP_KEY": new_key(), **s3.env()}
    made = jarvis("backup", "create", "--to", f"s3://{bucket}/good", "--no-kafka", env=env)
    assert made.returncode == 0, made.stderr
    version = made.stdout.strip().splitlines()[-1]
    name = f"{version}.jbk"
    raw_path = tmp_path / name
    code, _ = s3.curl("GET", f"/{bucket}/good/{name}", out=raw_path)
    assert code == 200
    raw = raw_path.read_bytes()
    assert raw and raw_path.stat().st_size == s3.keys(bucket, "good/")[f"good/{name}"]
    assert s3.curl("GET", f"/{bucket}/good/{name}", signed=False)[0] == 403  # never public

    # Altered and cut copies, put into the bucket by curl under prefixes of their own.
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x40
    (tmp_path / "flipped").write_bytes(bytes(flipped))
    (tmp_path / "cut").write_bytes(raw[: len(raw) - 10])
    for prefix, data in (("tampered", "flipped"), ("truncated", "cut")):
        code, body = s3.curl("PUT", f"/{bucket}/{prefix}/{name}", data=tmp_path / data)
        assert code == 200, body

    bad = jarvis("backup", "verify", "--from", f"s3://{bucket}/tampered", env=env)
    assert bad.returncode == 1 and "failed authentication: the backup was altered" in said(bad), bad.stderr
    bad = jarvis("backup", "verify", "--from", f"s3://{bucket}/truncated", env=env)
    assert bad.returncode == 1 and "truncated" in said(bad), bad.stderr
    ok = jarvis("backup", "verify", "--from", f"s3://{bucket}/good", env=env)
    assert ok.returncode == 0 and "verified" in ok.stderr, ok.stderr

    target = empty_databases()
    r = jarvis("backup", "restore", "--from", f"s3://{bucket}/tampered",
               env={**env, "JARVIS_POSTGRES_DSN": target, "JARVIS_HOME": str(tmp_path / "h")})  # fmt: skip
    assert r.returncode == 1 and "failed authentication" in said(r) and "Traceback" not in r.stderr
    with psycopg.connect(target) as conn:  # rolled back: nothing of it landed
        assert conn.execute("SELECT count(*) FROM jarvis.ops").fetchone()[0] == 0

    # Named reasons, not tracebacks, for a version or a bucket that is not there.
    r = jarvis("backup", "verify", "--from", f"s3://{bucket}/good", "--version", "20200101T000000Z-000000", env=env)
    assert r.returncode == 1 and "no backup version 20200101T000000Z-000000" in said(r), r.stderr
    r = jarvis("backup", "create", "--to", f"s3://{bucket}-missing/x", "--no-kafka", env=env)
    assert r.returncode == 1 and "NoSuchBucket" in said(r) and "Traceback" not in r.stderr, r.stderr
