"""The MirrorMaker 2 process (dedicated mode) that carries jarvis.ops between every pair of regions.

It runs with the Prometheus JMX exporter as its java agent, so Prometheus scrapes MirrorMaker's own
view of replication (per mirrored partition: replication latency, record age, records and bytes
copied) beside the lag our console measures from the outside (connectors/console/health.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from connectors import http_tls
from connectors.kafka_clients import java_client_properties
from connectors.mirrormaker import mm2_properties
from jarvis.config import Settings
from jarvis.stack.kafka import jvm_opts
from jarvis.stack.kafka_dist import classpath, java_bin, jmx_agent
from jarvis.stack.procs import Proc

# MirrorMaker's metrics port, clear of the roles' (jarvis/roles.py) and Kafka's; with one process per
# target region (below), the next ports, one per region in region order.
METRICS_BASE_PORT = 19190
# Up to this many regions one process runs every flow; beyond, one process per target region
# (docs/scale.md, "Five regions", says why).
ONE_PROCESS_REGIONS = 2
NAME = "mirrormaker"

# MirrorMaker 2's source-connector MBeans, one per mirrored partition, e.g.
# kafka.connect.mirror:type=MirrorSourceConnector,target=us,topic=eu.jarvis.ops,partition=3
SOURCE_RULE = {
    "pattern": r"kafka.connect.mirror<type=MirrorSourceConnector, target=([^,]+), topic=([^,]+), partition=([0-9]+)><>([a-z-]+)",
    "name": "kafka_connect_mirror_source_connector_$4",
    "labels": {"target": "$1", "topic": "$2", "partition": "$3"},
    "type": "GAUGE",
}


# JDK 17's default list, plus TLSv1.2.
TLS_DISABLED = (
    "SSLv3, TLSv1, TLSv1.1, TLSv1.2, DTLSv1.0, RC4, DES, MD5withRSA, DH keySize < 1024, EC keySize < 224, "
    "3DES_EDE_CBC, anon, NULL, ECDH"
)


def targets(settings: Settings) -> list[str | None]:
    """The MirrorMaker processes to run, by the target region each one writes into; None: every flow."""
    if len(settings.region_names) <= ONE_PROCESS_REGIONS:
        return [None]
    return list(settings.region_names)


def proc_name(target: str | None = None) -> str:
    return NAME if target is None else f"{NAME}-{target}"


def metrics_port(settings: Settings, target: str | None = None) -> int:
    shift = 0 if target is None else 1 + settings.region_config(target).index
    return METRICS_BASE_PORT + settings.port_offset + shift


def metrics_ports(settings: Settings) -> list[int]:
    return [metrics_port(settings, t) for t in targets(settings)]


def exporter_config(settings: Settings) -> dict[str, Any]:
    """The JMX exporter's YAML: MirrorMaker's mirror metrics only (and the JVM's, which it adds),
    served over HTTPS with the stack's HTTP leaf unless the stack is insecure."""
    conf: dict[str, Any] = {"lowercaseOutputName": True, "rules": [SOURCE_RULE]}
    if settings.http_secure:
        leaf = http_tls.issue(settings)
        conf["httpServer"] = {"ssl": {
            "keyStore": {"filename": str(leaf.p12), "password": leaf.p12_password},
            "certificate": {"alias": leaf.name},
        }}  # fmt: skip
    return conf


def mm2_proc(settings: Settings, libs: Path, target: str | None = None) -> Proc:
    """The process running every flow into `target` (MirrorMaker's --clusters), or every flow."""
    conf_dir = settings.home / "mirrormaker"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "mm2.properties"
    security = java_client_properties(settings, "mirrormaker")
    conf.write_text(mm2_properties({r.name: r.bootstrap for r in settings.regions}, security=security))
    conf.chmod(0o600)  # it holds MirrorMaker's SCRAM password
    exporter = conf_dir / "jmx-exporter.yml"
    exporter.write_text(yaml.safe_dump(exporter_config(settings), sort_keys=False))
    exporter.chmod(0o600)  # it holds the PKCS#12 password
    agent = f"-javaagent:{jmx_agent(libs)}={settings.host}:{metrics_port(settings, target)}:{exporter}"
    tls = []
    if settings.http_secure:
        # The exporter asks for a "TLSv1.3" context, which still accepts 1.2 (jdk.tls.server.protocols
        # does not reach named contexts): disabling 1.2 in this JVM leaves 1.3 only, as on every
        # other server of ours; its Kafka clients speak 1.3 to the brokers already.
        sec = conf_dir / "java.security"
        sec.write_text(f"jdk.tls.disabledAlgorithms={TLS_DISABLED}\n")
        tls = [f"-Djava.security.properties={sec}"]
    argv = [
        java_bin(), *jvm_opts(settings.mirrormaker_heap), agent, *tls,
        "-cp", classpath(libs), "org.apache.kafka.connect.mirror.MirrorMaker", str(conf),
        *(["--clusters", target] if target else []),
    ]  # fmt: skip
    return Proc(name=proc_name(target), run_dir=settings.home, argv=argv)
