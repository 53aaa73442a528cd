"""The local stack: Kafka (KRaft) per region, MirrorMaker 2, PostgreSQL, Redis, and the workers;
optionally a schema registry (Apicurio, Confluent-compatible API) for the Confluent wire format.

`up` is idempotent: a component already answering is left alone. Each step reports through a
callback so the CLI can show progress; `up` returns only when every part answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from connectors import http_tls, kafka_clients
from connectors.trust_admin import stack_grants
from jarvis import mosquitto_db, mqtt_sessions, topics
from jarvis.config import RegionConfig, Settings
from jarvis.roles import web_port
from jarvis.security import kafka_acls, key_store
from jarvis.security import kafka_credentials as kcreds
from jarvis.security.keys import ensure_admin_key
from jarvis.stack import (
    kafka,
    kafka_dist,
    kafka_security,
    mirrormaker,
    mosquitto,
    postgres,
    prometheus,
    redis_server,
    schema_registry,
    supervisor,
)
from jarvis.stack.procs import Proc, StackError, port_open, process_env, supervised_names, wait_until
from jarvis.stack.workers import start_workers, wait_for_ingest, wait_for_queries, worker_proc, worker_procs

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Stack:
    settings: Settings

    # -- components -----------------------------------------------------------------------------
    def broker(self, region: RegionConfig) -> Proc:
        return Proc(name=f"kafka-{region.name}", run_dir=self.settings.home)

    def mm2(self) -> Proc:
        """The first MirrorMaker process: with two regions, the only one (it runs every flow)."""
        return self.mm2_procs()[0]

    def mm2_procs(self) -> list[Proc]:
        return [Proc(name=mirrormaker.proc_name(t), run_dir=self.settings.home) for t in mirrormaker.targets(self.settings)]

    def postgres(self) -> Proc:
        return Proc(name="postgres", run_dir=self.settings.home, stop_signal=postgres.STOP_SIGNAL)

    def redis(self) -> Proc:
        return Proc(name="redis", run_dir=self.settings.home)

    def schema_registry(self) -> Proc:
        return Proc(name=schema_registry.NAME, run_dir=self.settings.home)

    def mqtt_broker(self, region: RegionConfig) -> Proc:
        return mosquitto.broker_proc(self.settings, region)
    def prometheus(self) -> Proc:
        return Proc(name=prometheus.NAME, run_dir=self.settings.home)

    def worker_procs(self) -> list[Proc]:
        return worker_procs(self.settings)

    def supervisor(self) -> Proc:
        return supervisor.supervisor_proc(self.settings.home)

    def all_procs(self) -> list[Proc]:
        # The supervisor first (nothing is restarted while the rest stops); then every supervised
        # process, also those started outside `up`; workers before the registry: a verifier may
        # still be asking it for a schema.
        known = {p.name: p for p in self.worker_procs()}
        for name in supervised_names(self.settings.home):
            known.setdefault(name, Proc(name=name, run_dir=self.settings.home, supervised=True))
        procs = [self.supervisor(), self.prometheus(), *known.values(), *self.mm2_procs(), self.schema_registry()]
        procs += [self.broker(r) for r in self.settings.regions]
        procs += [self.mqtt_broker(r) for r in self.settings.regions]
        procs += [self.postgres(), self.redis()]
        # Whatever else left a pid file here: a stack brought up with more regions (or the other
        # MirrorMaker topology) than these settings name is stopped whole, MirrorMaker before Kafka.
        named = {p.name for p in procs}
        for name in sorted(p.stem for p in self.settings.home.glob("*.pid") if p.stem not in named):
            proc = Proc(name=name, run_dir=self.settings.home)
            if name.startswith(("kafka-", "mosquitto-")):
                procs.insert(len(procs) - 2, proc)  # before PostgreSQL and Redis
            else:
                procs.insert(next(i for i, p in enumerate(procs) if p.name.startswith("kafka-")), proc)
        return procs

    # -- up ---------------------------------------------------------------------------------------
    def registry_wanted(self, requested: bool = False) -> bool:
        """Asked for, named by JARVIS_SCHEMA_REGISTRY_URL, or already running (it stays until `down`)."""
        return requested or schema_registry.wanted(self.settings) or self.schema_registry().running()

    def kafka_protocol(self, insecure: bool | None = None) -> str:
        """What `up` brings Kafka up with: SASL_SSL, or PLAINTEXT for `--insecure`. A stack whose
        brokers run keeps what it was brought up with until `down` (every client reads the choice
        from JARVIS_HOME); `--insecure` on a running secure stack (or the reverse) is an error."""
        recorded = kcreds.read_mode(self.settings.home)
        running = any(self.broker(r).running() for r in self.settings.regions)
        if running and recorded is not None:
            if insecure is not None and (recorded == kcreds.PLAINTEXT) != insecure:
                raise StackError(
                    f"the stack is up with Kafka {recorded}; run `jarvis stack down` before bringing it up "
                    + ("--insecure" if insecure else "secure (without --insecure)")
                )
            return recorded
        return kcreds.PLAINTEXT if insecure else kcreds.SASL_SSL

    def up(
        self, report: Report = _quiet, workers: bool = True, with_registry: bool = False, insecure: bool | None = None,
        before_mirrors: Callable[[], None] | None = None,
    ) -> float:
        """Start what is missing; `with_registry` adds the local schema registry (never started
        otherwise, unless JARVIS_SCHEMA_REGISTRY_URL names it or it already runs); `insecure` brings
        Kafka up PLAINTEXT without ACLs (None: as it runs now, else secure). `before_mirrors` runs
        once every broker answers and has its topics, before MirrorMaker starts (a region that
        joins writes where MirrorMaker's flows into it begin: connectors/region_join.py)."""
        t0 = time.monotonic()
        s = self.settings
        s.home.mkdir(parents=True, exist_ok=True)
        protocol = self.kafka_protocol(insecure)
        report("resolving Kafka jars (Maven)")
        libs = kafka_dist.ensure_libs(s.home)
        report(f"Kafka {kafka_dist.kafka_version(libs)} jars ready")
        # Made for an insecure stack too: a data dir formatted now can be brought up secure later.
        passwords = kcreds.ensure_passwords(s.home, kafka_acls.principals())
        secure = protocol == kcreds.SASL_SSL
        # Recorded first (kafka_protocol refused a change of mode while brokers run): the HTTP
        # servers, Prometheus' scrape config and every client read it (HTTPS follows Kafka's TLS).
        kcreds.write_mode(s.home, protocol)
        if s.http_secure:
            leaf = http_tls.issue(s)
            report(f"HTTPS certificate for the APIs: {leaf.cert} (TLS 1.3, project CA {s.http_ca_file})")

        registry = self.registry_wanted(with_registry)
        registry_proc = None
        if registry:
            registry_proc = self._start_schema_registry(report)  # its JVM starts while Kafka does
            s = self.settings

        _, made = key_store.ensure_admin_key(s.home, s.admin_key_file)
        report(f"admin API key {'made' if made else 'kept'} at {s.admin_key_file} (0600)")
        self._start_redis(report)
        self._start_postgres(report)
        self._start_mosquitto(report)
        prom = self._start_prometheus(report)  # it scrapes whatever answers; nothing waits for it
        started = []
        for region in s.regions:
            running = self.broker(region).running()
            if running and self._broker_ready(region):
                report(f"kafka {region.name} already up on {kafka_clients.bootstrap_url(s, region.name)}")
                continue
            if running:
                # Ours, but slow to answer (a loaded machine, or still starting): a second broker on
                # its ports would only fail on them; wait for this one with the new ones below.
                started.append((region, self.broker(region)))
                continue
            self._check_port_free(region.kafka_port, f"Kafka ({region.name})", "JARVIS_REGIONS order")
            self._check_port_free(region.controller_port, f"Kafka controller ({region.name})", "")
            security = None
            if secure:
                if kafka.formatted(region, s) and not kafka.scram_stamp(region, s).exists():
                    self._add_scram_users_plaintext(region, libs, passwords, report)
                security = kafka.broker_security(region, s, passwords)
            kcreds.write_mode(s.home, protocol)  # before any client of the new broker connects
            kafka.prepare_broker(region, s, libs, security, passwords)
            proc = kafka.broker_proc(region, s, libs)
            proc.start()
            started.append((region, proc))
            report(f"kafka {region.name} starting on {kafka_clients.bootstrap_url(s, region.name)}")
        for region, proc in started:
            wait_until(lambda r=region: self._broker_ready(r), 120, proc, f"Kafka broker {region.name}")
            report(f"kafka {region.name} answers metadata")
        if secure:
            acls = kafka_acls.acl_bindings(s.region_names)
            for region in s.regions:
                added = kafka_security.ensure_scram_users(s, region.bootstrap, passwords)
                created, deleted = kafka_security.apply_acls(s, region.bootstrap, acls)
                report(
                    f"kafka {region.name}: TLS 1.3 + SCRAM-SHA-512, {len(acls)} ACLs ({created} new, {deleted} removed)"
                    + (f", SCRAM users added: {', '.join(added)}" if added else "")
                )
        for region in s.regions:
            ensure_topics(s, region.bootstrap)
        report("topics ready: " + ", ".join(t.name for t in topics.PIPELINE_TOPICS))
        self._grant_stack_nodes(report)
        if before_mirrors is not None:
            before_mirrors()

        mms = []
        for target, mm in zip(mirrormaker.targets(s), self.mm2_procs(), strict=True):
            if not mm.running():
                port = mirrormaker.metrics_port(s, target)
                self._check_port_free(port, "MirrorMaker's metrics", "JARVIS_PORT_OFFSET")
                mm = mirrormaker.mm2_proc(s, libs, target)
                mm.start()
                report(f"{mm.name} starting" + (f" (every flow into {target})" if target else ""))
            mms.append(mm)
        for mm in mms:
            wait_until(self._mirrors_ready, 180, mm, "MirrorMaker 2 (mirrored topics)", interval=1.0)
        report("mirrormaker 2 replicating " + ", ".join(self._mirror_topic_names()))

        if registry:
            self._await_schema_registry(registry_proc, report)

        sup = self.supervisor()
        if not sup.running():
            sup.start()
            report("supervisor started: workers that die are started again")
        if workers:
            start_workers(s, report)
            wait_for_queries(s, report)
            wait_for_ingest(s, report)
        wait_until(lambda: prometheus.ping(s), 60, prom, "Prometheus")
        report(f"prometheus answers on {prometheus.url(s)}")
        return time.monotonic() - t0

    def _add_scram_users_plaintext(self, region: RegionConfig, libs: Any, passwords: dict[str, str], report: Report) -> None:
        """A data dir formatted before the stack made SCRAM users has none, so no one could log in to
        add them once it runs secure: start it once as it was (PLAINTEXT, loopback), add them, stop it."""
        s = self.settings
        plain = replace(s, kafka_security="plaintext")
        kafka.prepare_broker(region, s, libs, None)
        proc = kafka.broker_proc(region, s, libs)
        proc.start()
        try:
            wait_until(lambda: self._safe(lambda: cluster_metadata(plain, region) is not None), 120, proc,
                       f"Kafka broker {region.name} (adding SCRAM users)")  # fmt: skip
            kafka_security.ensure_scram_users(plain, region.bootstrap, passwords)
        finally:
            proc.stop()
        kafka.scram_stamp(region, s).write_text("added by the stack over PLAINTEXT\n")
        report(f"kafka {region.name}: SCRAM users added to its existing data")
    def _grant_stack_nodes(self, report: Report) -> None:
        # The admin key, and grants for the stack's own signing nodes, before any worker signs:
        # nothing else is trusted (a Client trusts its key only when told to, dev_trust=True).
        s = self.settings
        ensure_admin_key(s.keys_dir)
        records = stack_grants(s)
        report(f"trust: admin key ready, {len(records)} stack node keys granted ({topics.TRUST})")

    def _start_prometheus(self, report: Report) -> Proc | None:
        s = self.settings
        if self._safe(lambda: prometheus.ping(s)):
            report(f"prometheus already answers on {prometheus.url(s)}")
            return None
        proc = self.prometheus()
        if not proc.running():
            self._check_port_free(prometheus.port(s), "Prometheus", "JARVIS_PORT_OFFSET")
            proc = prometheus.prometheus_proc(s)
            proc.start()
            report(f"prometheus starting on {prometheus.url(s)}")
        return proc

    def _start_redis(self, report: Report) -> None:
        s = self.settings
        if self._safe(lambda: redis_server.ping(s)):
            report(f"redis already answers on {s.redis_url}")
            return
        self._check_port_free(s.redis_port, "Redis", "JARVIS_REDIS_PORT")
        proc = redis_server.redis_proc(s)
        proc.start()
        wait_until(lambda: redis_server.ping(s), 30, proc, "Redis")
        report(f"redis answers PING on {s.redis_url}")

    def _start_mosquitto(self, report: Report) -> None:
        s = self.settings
        for region in s.regions:
            if mosquitto.ping(region):
                mosquitto.write_auth_files(s)
                report(f"mosquitto {region.name} already answers on {region.mqtt_url}")
                continue
            self._check_port_free(region.mqtt_port, f"Mosquitto ({region.name})", "JARVIS_PORT_OFFSET")
            proc = mosquitto.prepared_proc(s, region)
            proc.start()
            wait_until(lambda r=region: mosquitto.ping(r), 30, proc, f"Mosquitto {region.name}")
            report(f"mosquitto {region.name} answers on {region.mqtt_url}")

    def ensure_schema_registry(self, report: Report = _quiet) -> str:
        """Start the local schema registry unless it answers, and point the verifiers at it; its URL."""
        self._await_schema_registry(self._start_schema_registry(report), report)
        return self.settings.local_schema_registry_url

    def _start_schema_registry(self, report: Report) -> Proc | None:
        """Start the registry without waiting for it; None if it already answers."""
        s = self.settings
        if not s.schema_registry_url:
            # The workers started from now on resolve schema ids through the local registry.
            self.settings = s = replace(s, schema_registry_url=s.local_schema_registry_url)
        if schema_registry.ping(s):
            return None
        proc = self.schema_registry()
        if not proc.running():
            self._check_port_free(s.schema_registry_port, "the schema registry", "JARVIS_PORT_OFFSET")
            app = schema_registry.ensure_app(s.home)
            report(f"Apicurio Registry ready in {app} (built by Maven on first use)")
            proc = schema_registry.registry_proc(s, app)
            proc.start()
            report(f"schema registry starting on port {s.schema_registry_port}")
        return proc

    def _await_schema_registry(self, proc: Proc | None, report: Report) -> None:
        s = self.settings
        if proc is not None:
            wait_until(lambda: schema_registry.ping(s), 120, proc, "schema registry")
        report(f"schema registry answers on {s.local_schema_registry_url}")
        self._restart_verifiers_for_registry(report)

    def _restart_verifiers_for_registry(self, report: Report) -> None:
        """Verifiers decode ingress, so they must know the registry; workers read settings once, at start."""
        url = self.settings.schema_registry_url
        for region in self.settings.regions:
            proc = worker_proc(self.settings, "verifier", region.name)
            pid = proc.pid()
            if pid is None or process_env(pid).get("JARVIS_SCHEMA_REGISTRY_URL") == url:
                continue
            proc.stop()
            proc.start()
            report(f"restarted {proc.name} to resolve schema ids through {url}")

    def _start_postgres(self, report: Report) -> None:
        s = self.settings
        if not self._safe(lambda: postgres.ping(s)):
            if not port_open(s.host, s.postgres_port):
                postgres.wait_for_previous_exit(postgres.prepare(s))
                proc = postgres.postgres_proc(s)
                proc.start()
                wait_until(lambda: port_open(s.host, s.postgres_port), 60, proc, "PostgreSQL")
            else:
                proc = None
            try:
                wait_until(
                    lambda: self._safe(lambda: postgres.ensure_database(s) or True), 60, proc, "PostgreSQL"
                )
            except StackError as e:
                raise StackError(
                    f"port {s.postgres_port} is busy but is not our PostgreSQL ({e}). "
                    "Stop what listens there or set JARVIS_POSTGRES_PORT."
                ) from None
        report(f"postgres answers on {s.postgres_dsn}")

    @staticmethod
    def _safe_str(get: Callable[[], str]) -> str | None:
        try:
            return get()
        except Exception as e:  # noqa: BLE001 - status reports what it cannot read instead of failing
            return f"unknown ({e})"

    @staticmethod
    def _safe(check: Callable[[], Any]) -> bool:
        try:
            return bool(check())
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    def _check_port_free(self, port: int, what: str, knob: str) -> None:
        if port_open(self.settings.host, port):
            hint = f" or set {knob}" if knob else ""
            raise StackError(
                f"port {port} for {what} is busy: another process listens there. "
                f"Stop it (`ss -ltnp 'sport = :{port}'` shows which){hint}."
            )

    def _broker_ready(self, region: RegionConfig) -> bool:
        if not port_open(region.host, region.kafka_port):
            return False
        return self._safe(lambda: cluster_metadata(self.settings, region) is not None)

    def _mirror_topic_names(self) -> list[str]:
        names = []
        for dst in self.settings.regions:
            for src in self.settings.regions:
                if src.name != dst.name:
                    names.append(f"{dst.name}:{topics.mirrored(src.name)}")
        return names

    def _mirrors_ready(self) -> bool:
        for dst in self.settings.regions:
            md = cluster_metadata(self.settings, dst)
            for src in self.settings.regions:
                if src.name != dst.name and topics.mirrored(src.name) not in md.topics:
                    return False
        return all(p.running() for p in self.mm2_procs())

    def stopped(self) -> list[str]:
        """The parts `up` starts that are not running: what a benchmark or test needs to name."""
        wanted = [*(self.broker(r) for r in self.settings.regions), *self.mm2_procs(), *self.worker_procs()]
        wanted += [self.postgres(), self.redis()]
        return [p.name for p in wanted if not p.running()]

    # -- down / status ----------------------------------------------------------------------------
    def down(self, report: Report = _quiet) -> None:
        for proc in self.all_procs():
            if proc.stop():
                report(f"stopped {proc.name}")

    def status(self) -> dict[str, Any]:
        s = self.settings
        regions: dict[str, Any] = {}
        warnings: list[str] = []  # what needs the operator: `stack status` prints them, --json lists them
        for r in s.regions:
            regions[r.name] = {
                "bootstrap": r.bootstrap,
                "bootstrap_url": self._safe_str(lambda r=r: kafka_clients.bootstrap_url(s, r.name)),
                "query_url": r.query_url,
                "console_url": console_url(s, r.name),
                "kafka": "up" if self._broker_ready(r) else "down",
                "ingest_url": s.http_url(web_port(s, "ingest", r.name), r.host),
                "mqtt_url": r.mqtt_url,
                "mqtt": "up" if mosquitto.ping(r) else "down",
                "mqtt_ghost_sessions": [],
            }
            try:
                found = mosquitto.ghost_sessions(s, r)
            except (OSError, mosquitto_db.MosquittoDbError) as e:  # status says what it cannot read, not fail
                warnings.append(f"MQTT {r.name}: cannot read {mosquitto.db_path(s, r)}: {e}")
                continue
            regions[r.name]["mqtt_ghost_sessions"] = [g.as_dict() for g in found]
            warnings += [mqtt_sessions.warning(g) for g in found]
        all_procs = self.all_procs()
        procs = {p.name: ("running" if p.running() else "stopped") for p in all_procs}
        restarts = {p.name: p.restarts() for p in all_procs if p.supervised}
        if self._safe(lambda: schema_registry.ping(s)):
            registry = "up"
        else:
            registry = "starting" if procs.get(schema_registry.NAME) == "running" else "off"
        protocol = self._safe_str(lambda: kafka_clients.protocol(s))
        return {
            "home": str(s.home),
            "regions": regions,
            # What a client needs: the protocol, the CA to trust and where its principal's password is.
            "kafka_security": protocol,
            "ca": str(kafka_clients.ca_path(s).resolve()) if protocol == kcreds.SASL_SSL else None,
            "http_ca": str(s.http_ca_file.resolve()) if self._safe(lambda: s.http_secure) else None,
            "kafka_credentials": str(kafka_clients.credentials_location(s).resolve()) if protocol == kcreds.SASL_SSL else None,
            "mirrormaker": "running" if all(procs.get(p.name) == "running" for p in self.mm2_procs()) else "stopped",
            "postgres": s.postgres_dsn,
            "postgres_status": "up" if self._safe(lambda: postgres.ping(s)) else "down",
            "redis": s.redis_url,
            "redis_status": "up" if self._safe(lambda: redis_server.ping(s)) else "down",
            "schema_registry": s.local_schema_registry_url,
            "schema_registry_status": registry,
            "processes": procs,
            "supervisor": procs.get(supervisor.NAME, "stopped"),
            "restarts": restarts,
            "console_url": console_url(s, s.region_names[0]),
            "prometheus_url": prometheus.url(s),
            "prometheus_status": "up" if self._safe(lambda: prometheus.ping(s)) else "down",
            "warnings": warnings,
        }


def console_url(settings: Settings, region: str) -> str:
    return settings.http_url(web_port(settings, "console", region)) + "/"


def cluster_metadata(settings: Settings, region: RegionConfig, timeout: float = 3.0) -> Any:
    # Lazy: only this command loads librdkafka; every `jarvis` command imports this module.
    from confluent_kafka.admin import AdminClient

    conf = kafka_clients.confluent_conf(settings, kafka_clients.ADMIN, bootstrap=region.bootstrap, **{"socket.timeout.ms": 3000})
    admin = AdminClient(conf)
    return admin.list_topics(timeout=timeout)


def ensure_topics(settings: Settings, bootstrap: str) -> None:
    """Create the pipeline topics if missing (same partition count everywhere: partition = f(object))."""
    # Imported here, as cluster_metadata's AdminClient is: every `jarvis` command imports this module,
    # and only `stack up` needs librdkafka loaded.
    from connectors.topics_admin import TopicsError, admin_client
    from connectors.topics_admin import ensure_topics as create

    try:
        create(admin_client(bootstrap, settings), topics.PIPELINE_TOPICS, settings.partitions)
    except TopicsError as e:
        raise StackError(f"{e} (on {bootstrap})") from e
