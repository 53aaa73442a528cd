"""The Prometheus rules and configurations, checked by Debian's promtool (installed by make install):
every alert unit-tested on synthetic series, both configurations valid with the rules they load."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from jarvis import roles
from jarvis.config import REPO_ROOT, Settings
from jarvis.stack import prometheus

DEPLOY = REPO_ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool missing: `make install` installs Debian's prometheus package"
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=DEPLOY)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_every_alert_has_a_unit_test_and_they_pass() -> None:
    alerts = {
        r["alert"]
        for f in (DEPLOY / "rules").glob("*.yml")
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert alerts == {"MirrorMakerLagHigh", "MirrorMakerReplicationSlow", "MirrorMakerDown", "RegionsDisagree",
                      "RejectionRateSpike", "FoldNotReady", "ConsumerLagGrowing", "IngestThrottling"}  # fmt: skip
    tests = sorted(str(p.relative_to(DEPLOY)) for p in (DEPLOY / "tests").glob("*.yml"))
    tested = {
        t["alertname"]
        for f in tests
        for case in yaml.safe_load((DEPLOY / f).read_text())["tests"]
        for t in case.get("alert_rule_test", [])
        if t.get("exp_alerts")
    }
    assert tested == alerts, f"alerts never seen firing in a test: {alerts - tested}"
    assert "SUCCESS" in promtool("test", "rules", *tests)


def test_compose_config_is_valid_with_its_rules() -> None:
    out = promtool("check", "config", "prometheus.yml")
    assert "rules found" in out


def test_the_stack_config_scrapes_every_role_in_every_region(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    cfg = prometheus.write_config(s, tmp_path / "prometheus.yml")
    assert "rules found" in promtool("check", "config", str(cfg))
    jobs = {j["job_name"]: j for j in prometheus.config(s)["scrape_configs"]}
    assert set(jobs) == {f"jarvis-{r.name}" for r in roles.ROLES} | {"mirrormaker"}
    assert [t["targets"] for t in jobs["mirrormaker"]["static_configs"]] == [["127.0.0.1:19190"]]
    fold = [t["targets"][0] for t in jobs["jarvis-fold"]["static_configs"]]
    assert fold == ["127.0.0.1:8081", "127.0.0.1:8082"]
    console = [(t["targets"][0], t["labels"]["region"]) for t in jobs["jarvis-console"]["static_configs"]]
    assert console == [("127.0.0.1:9281", "eu"), ("127.0.0.1:9282", "us")]
