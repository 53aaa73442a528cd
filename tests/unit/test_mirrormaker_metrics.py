"""MirrorMaker's JMX exporter configuration: which MBeans become which series, and its HTTPS."""

from __future__ import annotations

import re
from pathlib import Path

from jarvis.config import Settings
from jarvis.stack import mirrormaker


def test_the_source_rule_names_a_mirrored_partition_by_target_topic_and_partition() -> None:
    # The exporter matches "domain<key=value, ...><>attribute" with Java regexes; these are plain ones.
    bean = "kafka.connect.mirror<type=MirrorSourceConnector, target=us, topic=eu.jarvis.ops, partition=11><>replication-latency-ms-max"
    m = re.fullmatch(mirrormaker.SOURCE_RULE["pattern"], bean)
    assert m is not None and m.groups() == ("us", "eu.jarvis.ops", "11", "replication-latency-ms-max")
    assert re.fullmatch(mirrormaker.SOURCE_RULE["pattern"], "kafka.connect<type=connect-worker-metrics><>task-count") is None


def test_the_exporter_serves_https_with_the_http_leaf_unless_insecure(tmp_path: Path) -> None:
    secure = Settings(home=tmp_path / "s", http_tls=True)
    conf = mirrormaker.exporter_config(secure)
    ks = conf["httpServer"]["ssl"]["keyStore"]
    assert Path(ks["filename"]).is_file() and ks["filename"].startswith(str(secure.tls_dir))
    assert conf["httpServer"]["ssl"]["certificate"]["alias"] == "http"
    insecure = Settings(home=tmp_path / "i", http_tls=False)
    assert "httpServer" not in mirrormaker.exporter_config(insecure)
    assert mirrormaker.metrics_port(Settings(home=tmp_path, port_offset=1000)) == mirrormaker.METRICS_BASE_PORT + 1000
