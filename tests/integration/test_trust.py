"""Trust that replicates and can be revoked (issue 19, item 4), on the real stack: a client with a
home of its own is refused everywhere until an admin trusts its key with the real CLI, accepted in
both regions after (a grant written in eu reaches us through MirrorMaker), refused again in both
once revoked, and what it wrote meanwhile still verifies in `jarvis replay`."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from connectors.sdk import Client
from connectors.trust_admin import NoAdminKey
from connectors.trust_feed import read_view
from jarvis.security import kafka_credentials as kcreds
from jarvis.security.keys import public_b64
from tests.integration.pipeline_helpers import get_json, object_url, wait_until

pytestmark = pytest.mark.integration
REGIONS = ("eu", "us")


def jarvis(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jarvis.cli", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def send(client: Client, object_id: str, n: int = 1) -> list:
    """One increment; the verifier's verdicts on it (read back from jarvis.ops / jarvis.ops.rejected)."""
    client.counter(object_id).increment(n)
    return list(client.verdicts(60).verdicts.values())


def test_a_key_is_trusted_only_by_an_admin_grant_and_revocation_holds_in_every_region(stack, tmp_path: Path) -> None:
    s = stack.settings
    run = uuid.uuid4().hex[:8]
    node = f"stranger-{run}"
    # Its own JARVIS_HOME (no admin key there); the cluster's producer credentials passed explicitly,
    # as an application elsewhere is given them.
    own = dataclasses.replace(
        s, home=tmp_path / "home", kafka_username="producer", kafka_password=kcreds.read_password(s.home, "producer"),
        kafka_ca=s.tls_dir / "ca.pem", http_ca=s.http_ca_file,
    )  # fmt: skip
    clients = {r: Client(region=r, node_id=node, settings=own, track_verdicts=True, linger_ms=1) for r in REGIONS}
    signer = clients["eu"].signer
    kid = signer.key_id
    assert clients["us"].signer.key_id == kid
    oid = {r: f"ctr:{run}-{r}" for r in REGIONS}
    accepted = dict.fromkeys(REGIONS, 0)  # the counter's value: what the accepted increments add up to

    # 1. Untrusted: every operation refused, in both regions, with the reason.
    for r in REGIONS:
        verdicts = [v for _ in range(3) for v in send(clients[r], oid[r])]
        assert [v.accepted for v in verdicts] == [False] * 3
        assert {tuple(v.reasons) for v in verdicts} == {(f"key {kid} of node {node} is not trusted in {r}",)}

    # 2. The admin (the stack's home) trusts the key for ctr:* with the real CLI, writing in eu only.
    granted = time.monotonic()
    r = jarvis("keys", "trust", node, "--public-key", public_b64(signer.public), "--write", "ctr:*", "--region", "eu")
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"trusted node {node} key {kid}" in " ".join(r.stdout.split())
    for region in REGIONS:  # us learns of the grant through MirrorMaker (eu.jarvis.trust)

        def ok(region: str = region) -> bool:
            v = send(clients[region], oid[region])
            accepted[region] += sum(x.accepted for x in v)
            return all(x.accepted for x in v)

        assert wait_until(ok, 30, interval=0.2), f"grant not effective in {region}"
        print(f"grant effective in {region} {time.monotonic() - granted:.1f} s after `jarvis keys trust`")
        for _ in range(3):
            accepted[region] += 10 * sum(x.accepted for x in send(clients[region], oid[region], 10))
    assert accepted == {"eu": 31, "us": 31}
    # The grant's write patterns hold: another prefix is refused, with the reason.
    clients["eu"].register(f"reg:{run}").write("x")
    (v,) = clients["eu"].verdicts(60).verdicts.values()
    assert not v.accepted and v.reasons == [f"node {node} may not write reg:{run} (grants: ctr:*)"]

    # 3. Revoked in eu: refused again in eu at once, and in us once the revocation is mirrored.
    r = jarvis("keys", "revoke", kid, "--region", "eu")
    assert r.returncode == 0, r.stderr + r.stdout
    revoked = time.monotonic()
    assert wait_until(lambda: read_view(s, "us").current(kid, int(time.time() * 1000)).kind == "revoke", 30)
    print(f"revocation on us's trust topics {time.monotonic() - revoked:.1f} s after `jarvis keys revoke`")
    for region in REGIONS:
        verdicts = [v for _ in range(2) for v in send(clients[region], oid[region])]
        assert not any(v.accepted for v in verdicts), region
        assert all(v.reasons[0].startswith(f"key {kid} of node {node} revoked at ") for v in verdicts)

    # 4. What the key signed while trusted still verifies: replay judges by the trust of each op's time.
    for region in REGIONS:
        url = object_url(s.region_config("eu").query_url, oid[region])
        want = accepted[region]
        assert wait_until(lambda u=url, w=want: (get_json(u)[1] or {}).get("value") == w, 60)
        rep = jarvis("replay", "--object", oid[region], "--region", "eu", "--json")
        assert rep.returncode == 0, rep.stderr + rep.stdout
        report = json.loads(rep.stdout)
        assert report["value"] == accepted[region] and report["signature_failures"] == []

        def archived(o: str = oid[region], w: int = want) -> bool:  # the audit's source: the archive
            r = jarvis("replay", "--object", o, "--source", "archive", "--json")
            return r.returncode == 0 and json.loads(r.stdout)["value"] == w

        assert wait_until(archived, 60, interval=2), f"archive replay of {oid[region]}"
    for c in clients.values():
        c.close()


def test_a_client_sharing_the_stacks_home_is_not_trusted_unless_told_to(stack, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    plain = Client(region="eu", node_id=f"fresh-{run}", track_verdicts=True, linger_ms=1)
    (v,) = send(plain, f"ctr:{run}")
    assert not v.accepted and v.reasons == [f"key {plain.signer.key_id} of node fresh-{run} is not trusted in eu"]
    dev = Client(region="eu", node_id=f"dev-{run}", track_verdicts=True, linger_ms=1, dev_trust=True)
    (v,) = send(dev, f"ctr:{run}")  # the grant is judged right away: the verifier reads trust up to date
    assert v.accepted, v.reasons
    with pytest.raises(NoAdminKey, match="no admin key"):
        Client(region="eu", node_id="x", settings=dataclasses.replace(stack.settings, home=tmp_path), dev_trust=True)
    keys = json.loads(jarvis("keys", "list", "--json").stdout)
    by_id = {k["key_id"]: k for k in keys}
    assert by_id[dev.signer.key_id]["state"] == "trusted" and by_id[dev.signer.key_id]["write"] == ["*"]
    assert by_id[plain.signer.key_id]["state"] == "untrusted"
    for c in (plain, dev):
        c.close()
