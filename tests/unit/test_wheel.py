"""The installed package runs on its own: a wheel built from a clean copy of the tree, installed into
a fresh venv outside the checkout, has its CLI, every worker role, every schema, the default
pipelines and the archive migrations, all read from the installed files.

Needs no stack; takes ~1 min (the first run ~1.5 min, while it fills the dependency wheelhouse).
Not marked integration, so `make test` and `make test-unit` both run it; `-m "not slow"` skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from jarvis.config import REPO_ROOT
from pipelines.loader import load

# About a minute (builds and installs the wheel): part of `make test`, which CI runs.
# The pinned dependencies as wheels, kept between runs (in the ignored state directory): installing
# them from the index took ~60 s of the test, from here ~16 s. The same pins either way, since the
# wheel under test names them; a missing or changed one refills the wheelhouse from the index.
WHEELHOUSE = REPO_ROOT / ".jarvis" / "wheelhouse"
PACKAGES = ("jarvis", "connectors", "pipelines", "streams", "schemas")

# Runs inside the fresh venv. Roles come from the installed CLI's own `worker ROLE` argument, so a
# role added to the code is checked without editing this test.
PROBE = """
import enum, importlib, json, pkgutil, typing
import typer.main
from jarvis.cli import app
from jarvis.codec.store import SCHEMA_DIR, store
from pipelines.loader import DEFAULT_FILE, pipelines
from connectors.archive.migrate import MIGRATIONS
from connectors.console.server import static_files

worker = typer.main.get_command(app).commands["worker"]
ann = next(p for p in worker.params if p.name == "role").type_descriptor.annotation
roles = [m.value for m in ann] if isinstance(ann, type) and issubclass(ann, enum.Enum) else list(typing.get_args(ann))
files = {}
for top in PACKAGES:
    pkg = importlib.import_module(top)
    files[top] = pkg.__file__
    for info in pkgutil.walk_packages(pkg.__path__, top + "."):
        files[info.name] = importlib.import_module(info.name).__file__
st = store()
pipes = pipelines()
print(json.dumps({
    "roles": roles,
    "modules": files,
    "schema_dir": str(SCHEMA_DIR),
    "pipelines_file": str(DEFAULT_FILE),
    "current": sorted(st.current),
    "fingerprints": sorted(fp.hex() for fp in st.by_fingerprint),
    "prefixes": sorted(pipes.rules),
    "workflows": sorted(pipes.workflows),
    "migrations": sorted(p.name for p in MIGRATIONS.iterdir() if p.name.endswith(".sql")),
    "console_files": sorted(static_files()),
}))
"""


def _clean_copy(dest: Path) -> None:
    """The files git would commit (tracked, plus new ones not ignored): no .venv, egg-info or build/."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO_ROOT / rel
        if src.is_file():  # a tracked file deleted in the work tree is not part of it
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(venv, a working directory outside the checkout, the environment to run in)."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know which files make a clean copy")
    root = tmp_path_factory.mktemp("wheel")
    assert REPO_ROOT not in root.parents
    src, dist, venv, elsewhere = root / "src", root / "dist", root / "venv", root / "cwd"
    elsewhere.mkdir()
    _clean_copy(src)
    # The environment of a user who has only the wheel: nothing of this checkout on the path, no
    # pipeline file override, a state directory of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JARVIS_", "PYTHON", "VIRTUAL_ENV"))}
    env["JARVIS_HOME"] = str(root / "home")
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "-q", "-w", str(dist), str(src)], root, env)
    (wheel,) = dist.glob("jarvis_streams-*.whl")
    # No pip of its own: this checkout's pip installs into it (--python), which saves ensurepip.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root, env)
    install = [*pip, "--python", str(venv / "bin" / "python"), "install", "-q", "--no-index", "--find-links"]
    try:
        _run([*install, str(WHEELHOUSE), str(wheel)], root, env)
    except AssertionError:  # first run, or the pinned dependencies changed: fill the wheelhouse
        _run([*pip, "wheel", "-q", "-w", str(WHEELHOUSE), str(wheel)], root, env)
        for own in WHEELHOUSE.glob("jarvis_streams-*.whl"):
            own.unlink()  # only the dependencies are kept; the wheel under test is always the new one
        _run([*install, str(WHEELHOUSE), str(wheel)], root, env)
    return venv, elsewhere, env


@pytest.fixture(scope="module")
def probe(installed: tuple[Path, Path, dict[str, str]]) -> dict:
    venv, cwd, env = installed
    code = f"PACKAGES = {PACKAGES!r}\n{PROBE}"
    return json.loads(_run([str(venv / "bin" / "python"), "-I", "-c", code], cwd, env))


def test_every_module_comes_from_the_installed_package(
    installed: tuple[Path, Path, dict[str, str]], probe: dict
) -> None:
    venv = installed[0].resolve()
    strays = {m: f for m, f in probe["modules"].items() if venv not in Path(f).resolve().parents}
    assert not strays, f"imported from outside the venv: {strays}"
    sources = [f for top in PACKAGES for f in (REPO_ROOT / top).rglob("*.py")]
    checkout = {".".join(f.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__") for f in sources}
    assert set(probe["modules"]) == checkout
    for data in (probe["schema_dir"], probe["pipelines_file"]):
        assert venv in Path(data).resolve().parents


def test_cli_and_every_worker_role_answer_help(installed: tuple[Path, Path, dict[str, str]], probe: dict) -> None:
    venv, cwd, env = installed
    jarvis = str(venv / "bin" / "jarvis")
    assert "worker" in _run([jarvis, "--help"], cwd, env)
    assert set(probe["roles"]) >= {"verifier", "fold", "archiver", "agent"}
    for role in probe["roles"]:
        assert "--region" in _run([jarvis, "worker", role, "--help"], cwd, env), role


def test_schemas_pipelines_and_migrations_match_the_checkout(probe: dict) -> None:
    current = sorted((REPO_ROOT / "schemas").glob("*.avsc"))
    history = sorted((REPO_ROOT / "schemas" / "history").glob("*.avsc"))
    assert len(probe["current"]) == len(current) > 0
    assert sorted(n.rsplit(".", 1)[1] for n in probe["current"]) == sorted(p.stem for p in current)
    # Every file, current and history, is a distinct readable writer schema.
    assert len(probe["fingerprints"]) == len(current) + len(history)
    default = load(REPO_ROOT / "pipelines" / "default.yaml")
    assert probe["prefixes"] == sorted(default.rules) and probe["prefixes"]
    assert probe["workflows"] == sorted(default.workflows)
    sql = sorted(p.name for p in (REPO_ROOT / "connectors" / "archive" / "migrations").glob("*.sql"))
    assert probe["migrations"] == sql and sql
    pages = sorted(p.name for p in (REPO_ROOT / "connectors" / "console" / "static").iterdir())
    assert probe["console_files"] == pages and "index.html" in pages


def test_jarvis_pipelines_overrides_the_packaged_default(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    venv, cwd, env = installed
    own = tmp_path / "mine.yaml"
    own.write_text("pipelines:\n  mine:\n    prefixes:\n      gauge: {type: lww}\n")
    show = "from pipelines.loader import pipelines; p = pipelines(); print(sorted(p.rules), p.source)"
    out = _run([str(venv / "bin" / "python"), "-I", "-c", show], cwd, {**env, "JARVIS_PIPELINES": str(own)})
    assert out.split() == ["['gauge']", str(own)]


def test_the_dockerfile_copies_every_packaged_folder() -> None:
    # No Docker engine runs here, so the image is not built: check that `pip install .` in it sees
    # every top-level package the wheel is made of.
    include = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packaged = {pattern.rstrip("*") for pattern in include}
    dockerfile = (REPO_ROOT / "deploy" / "docker" / "Dockerfile").read_text().splitlines()
    copied = {src.rstrip("/") for line in dockerfile if line.startswith("COPY ") for src in line.split()[1:-1]}
    assert packaged <= copied, f"not copied into the image: {packaged - copied}"
    assert {"pyproject.toml", "README.md"} <= copied  # the build reads both
