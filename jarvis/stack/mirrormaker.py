"""The MirrorMaker 2 process (dedicated mode) that carries jarvis.ops between every pair of regions."""

from __future__ import annotations

from pathlib import Path

from connectors.kafka_clients import java_client_properties
from connectors.mirrormaker import mm2_properties
from jarvis.config import Settings
from jarvis.stack.kafka import jvm_opts
from jarvis.stack.kafka_dist import classpath, java_bin
from jarvis.stack.procs import Proc


def mm2_proc(settings: Settings, libs: Path) -> Proc:
    conf_dir = settings.home / "mirrormaker"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "mm2.properties"
    security = java_client_properties(settings, "mirrormaker")
    conf.write_text(mm2_properties({r.name: r.bootstrap for r in settings.regions}, security=security))
    conf.chmod(0o600)  # it holds MirrorMaker's SCRAM password
    argv = [
        java_bin(), *jvm_opts(settings.mirrormaker_heap), "-cp", classpath(libs),
        "org.apache.kafka.connect.mirror.MirrorMaker", str(conf),
    ]  # fmt: skip
    return Proc(name="mirrormaker", run_dir=settings.home, argv=argv)
