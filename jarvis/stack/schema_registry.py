"""Apicurio Registry as the local stack's schema registry, started only when one is wanted.

Confluent's registry and Karapace cannot be installed here; Apicurio Registry speaks the same REST
API under /apis/ccompat/v7, which confluent-kafka's SchemaRegistryClient uses unchanged. Maven
builds it from its Maven Central artifacts (deploy/schema-registry/pom.xml) into
JARVIS_HOME/schema-registry/app, once: the build is redone only when that folder's files change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from jarvis.config import REPO_ROOT, Settings
from jarvis.stack.kafka_dist import java_bin
from jarvis.stack.procs import Proc, StackError

SOURCE = REPO_ROOT / "deploy" / "schema-registry"
NAME = "schema-registry"


def wanted(settings: Settings) -> bool:
    """True when JARVIS_SCHEMA_REGISTRY_URL names the local stack's registry (any loopback spelling)."""
    url = settings.schema_registry_url
    if not url:
        return False
    u = urllib.parse.urlsplit(url)
    local = urllib.parse.urlsplit(settings.local_schema_registry_url)
    same_host = u.hostname == local.hostname or {u.hostname, local.hostname} <= {"127.0.0.1", "localhost"}
    return same_host and u.port == local.port


def _source_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in SOURCE.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(SOURCE)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def ensure_app(home: Path) -> Path:
    """The runnable registry (runner jar + lib/), built by Maven on first use."""
    root = home / NAME
    app = root / "app"
    stamp = app / ".source-sha256"
    digest = _source_digest()
    if stamp.exists() and stamp.read_text() == digest and any(app.glob("*-runner.jar")):
        return app
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven is not installed: run `make install` or `apt-get install maven`.")
    java_bin()
    # Built in a copy so the repository stays free of Maven's target/ folder.
    build = root / "build"
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(SOURCE, build)
    # -DskipDefault switches off the Apicurio parent pom's profile that adds repositories outside
    # Maven Central: unreachable from our machines, they would only turn a clear error into time-outs.
    cmd = [mvn, "-q", "-B", "-DskipDefault", "-f", str(build / "pom.xml"), "package"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StackError(
            "mvn could not build Apicurio Registry from Maven Central "
            f"(exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    target = build / "target"
    runners = list(target.glob("*-runner.jar"))
    if not runners or not (target / "lib").is_dir():
        raise StackError(f"the registry build left no runnable jar in {target}")
    shutil.rmtree(app, ignore_errors=True)
    app.mkdir(parents=True)
    shutil.move(str(runners[0]), app / runners[0].name)
    shutil.move(str(target / "lib"), app / "lib")
    shutil.rmtree(build, ignore_errors=True)
    stamp.write_text(digest)
    return app


def registry_proc(settings: Settings, app: Path) -> Proc:
    runner = next(app.glob("*-runner.jar"))
    data = settings.home / NAME / "data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        java_bin(), f"-Xmx{settings.schema_registry_heap}", "-Xms64m",
        # A handful of requests per producer and verifier (clients cache every schema id): start-up
        # time and CPU matter more on 2 shared cores than peak throughput, so the C1 compiler only.
        "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:ActiveProcessorCount=2",
        "-Djava.awt.headless=true", f"-Dquarkus.http.host={settings.host}",
        # The release's pool of 20 connections to an embedded database serves nobody here.
        "-D%prod.quarkus.datasource.jdbc.min-size=1", "-D%prod.quarkus.datasource.jdbc.initial-size=1",
        "-D%prod.quarkus.datasource.jdbc.max-size=8",
        "-jar", str(runner),
    ]  # fmt: skip
    env = {
        # Apicurio's own knobs (its application.properties reads them in the prod profile).
        "HTTP_PORT": str(settings.schema_registry_port),
        # Ingress messages outlive a restart in Kafka, so the schema ids they carry must too: the
        # registry's H2 database lives in a file under JARVIS_HOME instead of in memory.
        "REGISTRY_DATASOURCE_URL": f"jdbc:h2:file:{data / 'registry'};DB_CLOSE_ON_EXIT=FALSE",
        "LOG_LEVEL": "INFO",
    }
    return Proc(name=NAME, run_dir=settings.home, argv=argv, env=env)


def ping(settings: Settings, timeout: float = 2.0) -> bool:
    """The registry answers the Confluent API: GET /subjects returns a JSON list."""
    url = f"{settings.local_schema_registry_url}/subjects"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200 and isinstance(json.loads(resp.read()), list)
    except (urllib.error.URLError, OSError, ValueError):
        return False
