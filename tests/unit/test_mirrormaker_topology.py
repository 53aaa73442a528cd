"""Which MirrorMaker processes the stack runs: one for two regions, one per target region beyond,
each with a metrics port of its own and every ordered pair of regions carried by exactly one."""

from __future__ import annotations

from pathlib import Path

from jarvis.config import Settings
from jarvis.stack import mirrormaker, prometheus
from jarvis.stack.stack import Stack

FIVE = ("eu", "us", "ap", "sa", "af")


def test_two_regions_keep_one_process_on_the_base_port(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert mirrormaker.targets(s) == [None]
    assert [p.name for p in Stack(s).mm2_procs()] == ["mirrormaker"]
    assert mirrormaker.metrics_ports(s) == [mirrormaker.METRICS_BASE_PORT]


def test_five_regions_run_one_process_per_target_on_distinct_ports(tmp_path: Path) -> None:
    s = Settings(home=tmp_path, region_names=FIVE, port_offset=1000)
    assert mirrormaker.targets(s) == list(FIVE)
    assert [p.name for p in Stack(s).mm2_procs()] == [f"mirrormaker-{r}" for r in FIVE]
    ports = mirrormaker.metrics_ports(s)
    assert len(set(ports)) == 5 and mirrormaker.METRICS_BASE_PORT + 1000 not in ports
    scraped = next(j for j in prometheus.config(s)["scrape_configs"] if j["job_name"] == "mirrormaker")
    assert scraped["static_configs"][0]["targets"] == [f"127.0.0.1:{p}" for p in ports]


def test_stop_covers_processes_of_a_wider_stack(tmp_path: Path) -> None:
    # A five-region stack's pid files, seen through two-region settings (`jarvis stack down` without
    # JARVIS_REGIONS): every one is on the list, MirrorMaker before any broker.
    for name in ("mirrormaker-ap", "kafka-ap", "kafka-af", "mosquitto-sa"):
        (tmp_path / f"{name}.pid").write_text("999999999\n")
    names = [p.name for p in Stack(Settings(home=tmp_path)).all_procs()]
    assert {"mirrormaker-ap", "kafka-ap", "kafka-af", "mosquitto-sa"} <= set(names)
    assert names.index("mirrormaker-ap") < min(i for i, n in enumerate(names) if n.startswith("kafka-"))
    assert names[-2:] == ["postgres", "redis"]
