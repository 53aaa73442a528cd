"""The worker-role registry: every reader (CLI, stack launcher, app factory) sees the same roles."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from jarvis import roles
from jarvis.config import Settings
from jarvis.roles import Entry, RoleSpec
from jarvis.stack.workers import worker_procs
from jarvis.worker_cli import Role


def test_every_role_names_a_module_that_exists_once() -> None:
    names = [r.name for r in roles.ROLES]
    assert names == ["verifier", "fold", "archiver", "agent", "ingest", "console"]  # the stack's start order
    assert len(set(names)) == len(names)
    for r in roles.ROLES:
        assert importlib.util.find_spec(r.module) is not None, r.module


def test_the_cli_offers_exactly_the_registered_roles() -> None:
    assert [r.value for r in Role] == [r.name for r in roles.ROLES]


def test_ports_are_the_ones_the_roles_always_had() -> None:
    s = Settings()
    assert roles.web_port(s, "fold", "eu") == s.region_config("eu").query_port
    assert roles.web_port(s, "fold", "us", 1) == s.region_config("us").query_port + 100
    assert [roles.web_port(s, n, "eu") for n in ("verifier", "archiver", "agent", "ingest", "console")] == [9201, 9221, 9241, 9261, 9281]
    assert [roles.web_port(s, n, "us") for n in ("verifier", "archiver", "agent", "ingest", "console")] == [9202, 9222, 9242, 9262, 9282]
    assert roles.web_port(s, "agent", "eu", 2) == 9441


def test_no_two_workers_share_a_port() -> None:
    s = Settings(region_names=("eu", "us", "ap"))
    ports = [roles.web_port(s, r.name, g, i) for r in roles.ROLES for g in s.region_names for i in range(3)]
    assert len(set(ports)) == len(ports)


def test_a_role_has_one_kind_of_port() -> None:
    with pytest.raises(ValueError, match="either serves_queries or a metrics_slot"):
        RoleSpec("x", "streams.x", Entry.run, (), serves_queries=True, metrics_slot=4)
    with pytest.raises(ValueError):
        RoleSpec("x", "streams.x", Entry.run, ())


def test_unknown_role_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="verifier, fold, archiver, agent, ingest, console"):
        roles.role("gateway")


def test_only_the_agent_takes_agent_options() -> None:
    assert roles.role("agent").options == {"capabilities", "concurrency", "name"}
    assert all(not r.options for r in roles.ROLES if r.name != "agent")


def test_a_new_role_is_one_entry_and_the_stack_starts_its_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Settings(home=tmp_path)
    before = [p.name for p in worker_procs(s)]
    roles_in_order = ("verifier", "fold", "archiver", "agent", "ingest", "console")
    assert before == [f"worker-{r}-{g}" for g in ("eu", "us") for r in roles_in_order]
    gateway = RoleSpec("gateway", "streams.gateway", Entry.run, ("jarvis.ops.ingress",), instances=2, metrics_slot=6)
    monkeypatch.setattr(roles, "ROLES", (*roles.ROLES, gateway))
    after = worker_procs(s)
    assert [p.name for p in after if "gateway" in p.name] == [
        "worker-gateway-eu", "worker-gateway-eu-1", "worker-gateway-us", "worker-gateway-us-1",
    ]  # fmt: skip
    second = next(p for p in after if p.name == "worker-gateway-us-1")
    assert second.env["JARVIS_WORKER_INSTANCE"] == "1" and second.argv[-4:-2] == ["--region", "us"]
    assert gateway.web_port(s, "eu", 1) == 9181 + 0 + 120 + 100
