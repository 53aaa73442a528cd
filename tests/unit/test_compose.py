"""docker-compose.yml cannot run here (no Docker engine), so check its shape and references."""

from __future__ import annotations

from pathlib import Path

import yaml

from connectors.mirrormaker import mm2_properties
from jarvis.config import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_topology() -> None:
    services = COMPOSE["services"]
    for name in ("kafka-eu", "kafka-us", "mirrormaker", "timescaledb", "redis", "prometheus"):
        assert name in services, f"{name} missing from docker-compose.yml"
    assert any(s.startswith("fold-") for s in services)
    assert any(s.startswith("verifier-") for s in services)
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


def test_compose_mirrormaker_config_is_generated_from_the_region_list() -> None:
    path = Path(REPO_ROOT / "deploy/mirrormaker/mm2.compose.properties")
    expected = mm2_properties({"eu": "kafka-eu:9092", "us": "kafka-us:9092"})
    assert path.read_text() == expected, "regenerate with connectors.mirrormaker.mm2_properties"
