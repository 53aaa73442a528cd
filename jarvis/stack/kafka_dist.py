"""Apache Kafka and MirrorMaker 2 jars, resolved from Maven Central by `mvn` (deploy/kafka/pom.xml).

The Apache download host is unreachable from our machines; the broker, its storage tool and
MirrorMaker 2 are ordinary Maven artifacts, and a flat folder of jars on the classpath is all the
tarball's scripts ever gave us. The folder is cached under JARVIS_HOME and rebuilt only when the
pom changes, so a second `make test` resolves nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from jarvis.config import REPO_ROOT
from jarvis.stack.procs import StackError

POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
JMX_AGENT_GLOB = "jmx_prometheus_javaagent-*.jar"


def java_bin() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "Java is not installed. Kafka needs a JRE 17: run `make install` (it installs "
            "openjdk-17-jre-headless) or `apt-get install openjdk-17-jre-headless`."
        )
    return java


def ensure_libs(home: Path) -> Path:
    libs = home / "kafka" / "libs"
    stamp = libs / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven is not installed: run `make install` or `apt-get install maven`.")
    java_bin()
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StackError(
            "mvn could not resolve Kafka from Maven Central "
            f"(exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    agents = agents_dir(libs)
    agents.mkdir(exist_ok=True)
    for jar in libs.glob(JMX_AGENT_GLOB):
        jar.replace(agents / jar.name)
    stamp.write_text(digest)
    return libs


def agents_dir(libs: Path) -> Path:
    return libs.parent / "agents"


def jmx_agent(libs: Path) -> Path:
    """The Prometheus JMX exporter's agent jar that ensure_libs resolved beside the libs."""
    found = sorted(agents_dir(libs).glob(JMX_AGENT_GLOB))
    if not found:
        raise StackError(f"no {JMX_AGENT_GLOB} in {agents_dir(libs)}: delete {libs} and run `jarvis stack up` again")
    return found[-1]


def kafka_version(libs: Path) -> str:
    jar = next(libs.glob("kafka_2.13-*.jar"))
    return jar.stem.removeprefix("kafka_2.13-")


def classpath(libs: Path) -> str:
    return str(libs / "*")
