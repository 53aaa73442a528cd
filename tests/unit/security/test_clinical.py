"""Clinical roles: the prefixes pipelines/default.yaml marks `clinical: true` (ehr:, medical:) are
read and written only by a role marked clinical that grants them; admin and `*` alone are refused
with a reason naming the clinical role, the verifier's `*` node grants stop short of them, the HTTP
hook answers 403/200 accordingly and audits the granted reads. Also: the data key two writers
create at once is one key."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors.http_auth import HttpAuth
from jarvis.security.apikeys import (
    ADMIN,
    Principal,
    Role,
    clinical_object,
    make_role,
    read_denial,
    role_of_record,
    write_denial,
)
from jarvis.security.crypto import DataKeyring, DecryptionError
from jarvis.security.key_store import FileAuthStore
from jarvis.security.keys import key_id_of
from jarvis.security.trust import TrustView, WriteScope, make_grant
from pipelines.loader import PipelineError, load, pipelines
from tests.trust_helpers import ADMIN as ADMIN_KEY

CLINICIAN = Role("clinician", ("ehr:*",), ("ehr:*",), clinical=True)
STAR = Role("star", ("*",), ("*",))


def test_the_pipeline_definition_is_the_one_place_that_says_which_prefixes_are_clinical() -> None:
    assert pipelines().clinical_prefixes() == ["ehr", "medical"]
    assert clinical_object("ehr:p1") and clinical_object("medical:p1")
    assert not clinical_object("patient:p1") and not clinical_object("ehr:") and not clinical_object("ehr")


def test_a_clinical_flag_that_is_not_a_boolean_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("pipelines:\n  h:\n    prefixes:\n      ehr: {type: map, clinical: 'yes'}\n")
    with pytest.raises(PipelineError, match="clinical must be true or false"):
        load(f)


@pytest.mark.parametrize("role", [ADMIN, STAR, Role("prefix", ("ehr:*", "patient:*"), ("ehr:*",)),
                                  Role("admin2", ("*",), ("*",), admin=True)])  # fmt: skip
def test_admin_or_a_grant_without_the_clinical_flag_reads_and_writes_no_clinical_object(role: Role) -> None:
    assert not role.may_read("ehr:p1") and not role.may_write("ehr:p1")
    assert role.may_read("patient:p1")  # other objects: as before
    why = read_denial(Principal("u", "k", role), "ehr:p1")
    assert why and "a clinical role that grants them is needed" in why and "--clinical" in why
    assert "a clinical role" in (write_denial(Principal("u", "k", role), "ehr:p1") or "")


def test_a_clinical_role_reads_what_it_grants_and_nothing_more() -> None:
    assert CLINICIAN.may_read("ehr:p1") and CLINICIAN.may_write("ehr:p1")
    assert not CLINICIAN.may_read("medical:p1") and not CLINICIAN.may_read("patient:p1")
    assert "does not grant medical:*" in (read_denial(Principal("c", "k", CLINICIAN), "medical:p1") or "")
    assert Role("c", ("*",), (), clinical=True).may_read("ehr:p1")  # clinical and '*': granted
    assert not Role("c", ("*",), (), clinical=True).may_read("auth:role:x")  # auth: stays admin's


def test_the_clinical_flag_is_stored_with_the_role_and_read_back(tmp_path: Path) -> None:
    role = make_role("clinician", ["ehr:*"], [], tasks=False, admin=False, clinical=True)
    assert role.record()["clinical"] is True
    assert role_of_record("clinician", role.record()) == role
    assert role_of_record("old", {"read": ["*"], "write": []}).clinical is False  # roles made before
    assert role_of_record("x", {"read": ["ehr:*"], "clinical": "true"}).clinical is False  # not a bool: no
    store = FileAuthStore(tmp_path)
    store.set_role("clinician", ["ehr:*"], [], tasks=False, admin=False, clinical=True)
    assert store.role("clinician") == role


def test_a_star_node_grant_does_not_reach_clinical_objects_a_named_one_does() -> None:
    star, named = WriteScope(("*",), ("ehr", "medical")), WriteScope(("*", "ehr:*"), ("ehr", "medical"))
    assert star.denied(["ctr:1", "patient:1"]) == []
    assert star.denied(["ctr:1", "ehr:p1", "medical:p1"]) == [1, 2]
    assert named.denied(["ctr:1", "ehr:p1", "medical:p1"]) == [2]
    assert "ehr: objects are clinical" in star.denial("n1", "ehr:p1")
    assert WriteScope(("*",)).denied(["ehr:p1"]) == []  # a view told no clinical prefixes: as before
    v = TrustView([ADMIN_KEY.public_key()], pipelines().clinical_prefixes())
    node = Ed25519PrivateKey.generate()
    v.add(make_grant(ADMIN_KEY, "n1", node.public_key(), ("*",), issued_ms=1))
    assert "clinical" in (v.op("eu", "n1", key_id_of(node.public_key()), "ehr:p1", 5) or "")
    assert v.op("eu", "n1", key_id_of(node.public_key()), "patient:p1", 5) is None


# -- the HTTP hook ---------------------------------------------------------------------------------
class Audit:
    def __init__(self) -> None:
        self.denials: list[tuple[Any, ...]] = []
        self.reads: list[tuple[Any, ...]] = []

    def denied(self, *event: Any) -> None:
        self.denials.append(event)

    def read(self, *event: Any) -> None:
        self.reads.append(event)


def _run(tmp_path: Path, check: Any) -> Audit:
    store = FileAuthStore(tmp_path)
    store.set_role("clinician", ["ehr:*"], [], tasks=False, admin=False, clinical=True)
    store.set_role("star", ["*"], [], tasks=False, admin=False)
    keys = {r: store.create_key(r, f"u-{r}")[0] for r in ("clinician", "star")}
    keys["admin"] = store.create_key("admin", "u-admin")[0]
    audit = Audit()
    auth = HttpAuth(store, audit, oidc=None)  # type: ignore[arg-type]
    objects = {"ehr:p1": {"entries": {}}, "ctr:1": 3}

    async def read(request: web.Request) -> web.Response:
        oid = request.match_info["id"]
        auth.require_read(request, oid)  # before the lookup: a 403 tells nothing of existence
        if oid not in objects:
            return web.json_response({"error": "unknown"}, status=404)
        auth.record_read(request, [oid])
        return web.json_response({"value": objects[oid]})

    async def go() -> None:
        app = web.Application(middlewares=[auth.middleware()])
        app.router.add_get("/v1/objects/{id}", read)
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            await check(client, keys)
        finally:
            await client.close()

    asyncio.run(go())
    return audit


async def _get(c: TestClient, key: str, oid: str) -> tuple[int, dict[str, Any]]:
    r = await c.get(f"/v1/objects/{oid}", headers={"Authorization": f"Bearer {key}"})
    return r.status, await r.json()


def test_http_a_clinical_key_reads_a_record_star_and_admin_get_403_with_the_reason(tmp_path: Path) -> None:
    async def check(c: TestClient, keys: dict[str, str]) -> None:
        assert await _get(c, keys["clinician"], "ehr:p1") == (200, {"value": {"entries": {}}})
        assert (await _get(c, keys["clinician"], "ehr:nobody"))[0] == 404
        for who in ("star", "admin"):
            there, absent = await _get(c, keys[who], "ehr:p1"), await _get(c, keys[who], "ehr:nobody")
            assert there[0] == absent[0] == 403 and "a clinical role" in there[1]["error"]
            assert there[1]["error"].replace("p1", "nobody") == absent[1]["error"]  # nothing leaks
            assert (await _get(c, keys[who], "ctr:1"))[0] == 200
        assert (await _get(c, keys["clinician"], "ctr:1"))[0] == 403

    audit = _run(tmp_path, check)
    # One audit record per served clinical read, with who read it; none for ctr:1 or the refusals.
    assert [(e[0], e[2], e[3]) for e in audit.reads] == [("GET", ["ehr:p1"], "u-clinician")]
    assert sum("a clinical role" in e[3] for e in audit.denials) == 4


# -- the data key race -----------------------------------------------------------------------------
def _create(keys_dir: str, out: Any) -> None:
    out.put(DataKeyring(Path(keys_dir)).key("healthcare")[1])


def test_writers_creating_the_data_key_at_once_in_threads_all_get_the_same_key(tmp_path: Path) -> None:
    for attempt in range(20):
        ring = DataKeyring(tmp_path / f"k{attempt}")
        start, got = threading.Barrier(8), list[bytes]()

        def writer(ring: DataKeyring = ring, start: threading.Barrier = start, got: list[bytes] = got) -> None:
            start.wait()
            got.append(ring.key("healthcare")[1])

        threads = [threading.Thread(target=writer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 8 and len(set(got)) == 1 and len(got[0]) == 32
        assert [p.name for p in ring.keys_dir.iterdir()] == ["data-healthcare.key"]  # no temp files left


def test_writers_creating_the_data_key_at_once_in_processes_all_get_the_same_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_create, args=(str(tmp_path), out)) for _ in range(6)]
    for p in procs:
        p.start()
    keys = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert len(set(keys)) == 1 and keys[0] == DataKeyring(tmp_path).key("healthcare", create=False)[1]


def test_a_damaged_data_key_is_an_error_not_a_wrong_key(tmp_path: Path) -> None:
    (tmp_path / "data-healthcare.key").write_bytes(b"")
    with pytest.raises(DecryptionError, match="0 bytes"):
        DataKeyring(tmp_path).key("healthcare")
