"""The import direction of docs/internals.md's "Import direction", checked on the source (function-level
imports included, type-only imports under TYPE_CHECKING not: they create no edge at run time).

Each module belongs to the layer of the longest prefix below that names it; a module may import its
own layer and the layers under it, never one above. The pure layers import no Kafka, Faust, database
or network library and read no environment variable; a function-level import anywhere in production
code carries a comment saying why it is lazy.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jarvis", "connectors", "streams", "pipelines", "schemas")

# Top to bottom. A prefix names a module and everything under it; the longest prefix wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cli", (
        "jarvis.cli", "jarvis.db_cli", "jarvis.demo", "jarvis.produce_cli", "jarvis.regions_cli",
        "jarvis.replay_cli", "jarvis.task_cli", "jarvis.topics_cli", "jarvis.worker_cli", "jarvis.auth_cli",
        "jarvis.stack.cli", "jarvis.security.cli", "jarvis.audit_cli", "jarvis.backup_cli", "jarvis.demo_cli", "jarvis.trace_cli", "jarvis.certs_cli",
        "jarvis.ingest_cli",
    )),
    ("apps", ("pipelines.apps",)),
    ("workers, SDK, services", (
        "streams", "connectors.sdk", "connectors.audit", "connectors.regions", "connectors.region_join", "connectors.replayer",
        "connectors.verdicts", "connectors.ingest", "connectors.console", "jarvis.stack", "jarvis.agents",
    )),
    ("adapters", ("connectors",)),
    ("rules on the wire format", ("jarvis.gate", "jarvis.replay", "jarvis.regions_join", "jarvis.tasks", "jarvis.verdicts")),
    ("codec, security, configuration", ("jarvis.codec", "jarvis.security", "jarvis.config", "pipelines.loader")),
    ("core", ("jarvis", "pipelines", "schemas")),
)  # fmt: skip
PURE = ("rules on the wire format", "codec, security, configuration", "core")
IO_LIBRARIES = (
    "confluent_kafka", "faust", "aiokafka", "mode", "psycopg", "psycopg_pool", "redis", "aiohttp",
    "requests", "httpx", "urllib.request", "http.client", "socket", "paho", "aiomqtt", "prometheus_client",
    "opentelemetry",
)  # fmt: skip
ENV_READERS = ("jarvis.config",)  # where JARVIS_* variables are read


def layer_of(module: str) -> str:
    best, name = -1, ""
    for layer, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, name = len(p), layer
    return name


def rank(layer: str) -> int:
    return [name for name, _ in LAYERS].index(layer)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str
    line: int
    in_function: bool
    reason: bool  # a comment just above (or on) the import, or its import group


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return lines


def _has_reason(lines: list[str], lineno: int) -> bool:
    if "#" in lines[lineno - 1]:
        return True
    j = lineno - 2
    while j >= 0:
        text = lines[j].strip()
        if text.startswith("#"):
            return True
        if not (text == "" or text.startswith(("from ", "import ", ")")) or text.endswith(",")):
            return False
        j -= 1
    return False


def imports_of(path: Path) -> list[Import]:
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    skip = _type_checking_lines(tree)
    module = module_name(path)
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    in_function.add(sub.lineno)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this package
                base = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                if path.name == "__init__.py" and node.level > 1:
                    base = base[: -(node.level - 1)]
                targets = [".".join([*base, node.module] if node.module else base)]
            else:
                targets = [node.module or ""]
            # `from pkg import mod` imports pkg.mod when that is a module
            targets += [f"{targets[0]}.{a.name}" for a in node.names]
        else:
            targets = [a.name for a in node.names]
        for t in targets:
            found.append(
                Import(module, t, node.lineno, node.lineno in in_function, _has_reason(lines, node.lineno))
            )
    return found


def production_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def known_modules() -> set[str]:
    return {module_name(p) for p in production_files()}


ALL = [i for p in production_files() for i in imports_of(p)]
MODULES = known_modules()


def project_edges() -> list[Import]:
    return [i for i in ALL if i.target in MODULES]


def test_every_production_module_has_a_layer() -> None:
    assert all(layer_of(m) for m in MODULES)


def test_imports_point_down_only() -> None:
    upward = [
        f"{i.module}:{i.line} ({layer_of(i.module)}) imports {i.target} ({layer_of(i.target)})"
        for i in project_edges()
        if rank(layer_of(i.target)) < rank(layer_of(i.module))
    ]
    assert upward == []


def test_pure_layers_import_no_io_library() -> None:
    bad = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in ALL
        if layer_of(i.module) in PURE and any(i.target == lib or i.target.startswith(lib + ".") for lib in IO_LIBRARIES)
    ]
    assert bad == []


def test_only_the_configuration_reads_the_environment() -> None:
    readers = []
    for p in production_files():
        m = module_name(p)
        if layer_of(m) in PURE and m not in ENV_READERS:
            src = p.read_text()
            if "os.environ" in src or "getenv(" in src:
                readers.append(m)
    assert readers == []


def test_every_function_level_import_says_why_it_is_lazy() -> None:
    unexplained = sorted({f"{i.module}:{i.line}" for i in ALL if i.in_function and not i.reason})
    assert unexplained == []


@pytest.mark.parametrize(
    ("importer", "target", "allowed"),
    [
        ("jarvis.crdt.counters", "connectors.sdk", False),
        ("streams.fold", "jarvis.crdt.counters", True),
        ("jarvis.gate", "jarvis.codec.records", True),
        ("jarvis.codec.records", "jarvis.gate", False),
        ("jarvis.security.cli", "jarvis.stack", True),
        ("jarvis.stack.stack", "jarvis.stack.cli", False),
    ],
)
def test_the_layer_table_itself(importer: str, target: str, allowed: bool) -> None:
    assert (rank(layer_of(target)) >= rank(layer_of(importer))) is allowed
