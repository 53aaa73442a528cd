"""Prometheus from Debian's `prometheus` package, scraping every worker of the local stack.

Its configuration is generated from jarvis/roles.py (every role's web port, per region and
instance), so a new role is scraped without editing a file, plus MirrorMaker's JMX exporter; the recording and alert rules are the
ones in deploy/prometheus/rules, the same files docker-compose mounts.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from jarvis import roles
from jarvis.config import REPO_ROOT, Settings
from jarvis.stack import mirrormaker
from jarvis.stack.procs import Proc, StackError

NAME = "prometheus"
BASE_PORT = 19090
RULES = REPO_ROOT / "deploy" / "prometheus" / "rules"
SCRAPE_S = 5  # short, so a test or a demo sees rates within seconds


def port(settings: Settings) -> int:
    return BASE_PORT + settings.port_offset


def url(settings: Settings) -> str:
    return f"http://{settings.host}:{port(settings)}"


def config(settings: Settings) -> dict[str, Any]:
    jobs = []
    for role in roles.ROLES:
        targets = [
            {"targets": [f"{settings.host}:{role.web_port(settings, r.name, i)}"],
             "labels": {"region": r.name, "instance_no": str(i)}}
            for r in settings.regions
            for i in range(role.instances)
        ]  # fmt: skip
        jobs.append(_job(settings, f"jarvis-{role.name}", targets))
    mm = {"targets": [f"{settings.host}:{port}" for port in mirrormaker.metrics_ports(settings)], "labels": {}}
    jobs.append(_job(settings, "mirrormaker", [mm]))
    return {
        "global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
        "rule_files": [str(RULES / "*.yml")],
        "scrape_configs": jobs,
    }


def _job(settings: Settings, name: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    job: dict[str, Any] = {"job_name": name, "static_configs": targets}
    if settings.http_secure:  # every worker serves /metrics over HTTPS with the project CA's leaf
        job |= {"scheme": "https", "tls_config": {"ca_file": str(settings.http_ca_file), "min_version": "TLS13"}}
    return job


def prometheus_proc(settings: Settings) -> Proc:
    binary = shutil.which("prometheus")
    if binary is None:
        raise StackError("Prometheus is not installed: run `make install` or `apt-get install prometheus`.")
    home = settings.home / "prometheus"
    (home / "data").mkdir(parents=True, exist_ok=True)
    cfg = write_config(settings, home / "prometheus.yml")
    argv = [
        binary, f"--config.file={cfg}", f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address={settings.host}:{port(settings)}", "--storage.tsdb.retention.time=2d",
        "--web.enable-lifecycle",
    ]  # fmt: skip
    return Proc(name=NAME, run_dir=settings.home, argv=argv)


def write_config(settings: Settings, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config(settings), sort_keys=False))
    return path


def ping(settings: Settings) -> bool:
    with urllib.request.urlopen(f"{url(settings)}/-/ready", timeout=2) as r:
        return r.status == 200
