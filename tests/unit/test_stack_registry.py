"""When the local stack starts its schema registry, and how its workers learn of it (no processes)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from jarvis.config import Settings
from jarvis.stack.procs import process_env
from jarvis.stack.schema_registry import wanted
from jarvis.stack.workers import worker_proc


def test_the_registry_is_wanted_only_when_the_url_names_the_local_one() -> None:
    s = Settings()
    assert s.local_schema_registry_url == "http://127.0.0.1:18081/apis/ccompat/v7"
    assert not wanted(s)
    assert wanted(dataclasses.replace(s, schema_registry_url=s.local_schema_registry_url))
    assert wanted(dataclasses.replace(s, schema_registry_url="http://localhost:18081/apis/ccompat/v7"))
    assert not wanted(dataclasses.replace(s, schema_registry_url="http://registry.internal:8081"))
    assert not wanted(dataclasses.replace(s, schema_registry_url="http://127.0.0.1:18082/apis/ccompat/v7"))
    beside = dataclasses.replace(s, port_offset=1000)
    assert beside.schema_registry_port == 19081
    assert wanted(dataclasses.replace(beside, schema_registry_url=beside.local_schema_registry_url))


def test_workers_get_the_settings_registry_url_or_the_running_local_ones(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert "JARVIS_SCHEMA_REGISTRY_URL" not in worker_proc(s, "verifier", "eu").env
    remote = "http://registry.internal:8081"
    env = worker_proc(dataclasses.replace(s, schema_registry_url=remote), "verifier", "eu").env
    assert env["JARVIS_SCHEMA_REGISTRY_URL"] == remote
    # A pidfile naming a live process: the stack's registry runs (this test's own pid stands in).
    (tmp_path / "schema-registry.pid").write_text(str(os.getpid()))
    env = worker_proc(s, "verifier", "eu").env
    assert env["JARVIS_SCHEMA_REGISTRY_URL"] == s.local_schema_registry_url


def test_process_env_reads_a_running_process_environment() -> None:
    assert "PATH" in process_env(os.getpid())  # the environment it started with
    assert process_env(2**22 + 12345) == {}
