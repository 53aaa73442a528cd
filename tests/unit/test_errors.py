"""Every exception class the project defines derives from JarvisError, so one `except` at an edge
catches everything Jarvis raises on purpose, and keeps its built-in base so older callers still work."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

from jarvis.codec.errors import CodecError, UnknownSchema
from jarvis.errors import JarvisError
from pipelines.loader import PipelineError

PACKAGES = ("jarvis", "connectors", "pipelines", "streams")


def _modules() -> list[ModuleType]:
    found: list[ModuleType] = []
    for top in PACKAGES:
        pkg = importlib.import_module(top)
        found.append(pkg)
        for info in pkgutil.walk_packages(pkg.__path__, f"{top}."):
            found.append(importlib.import_module(info.name))
    return found


def _classes(owner: object, module: str) -> list[type]:
    """Classes defined in `module`: at its top level and nested in its classes."""
    out: list[type] = []
    for value in vars(owner).values():
        if inspect.isclass(value) and value.__module__ == module and value not in out:
            out.append(value)
            out.extend(c for c in _classes(value, module) if c not in out)
    return out


MODULES = _modules()
EXCEPTIONS = [
    c for m in MODULES for c in _classes(m, m.__name__) if issubclass(c, BaseException)
]


def test_the_walk_finds_the_project_exceptions() -> None:
    # The walk itself must work: it sees the exceptions of the codec, security, SDK, pipelines and
    # stack (17 when JarvisError was added, plus JarvisError and NotReady).
    names = {c.__name__ for c in EXCEPTIONS}
    assert {"CodecError", "SignatureError", "ObjectError", "PipelineError", "StackError"} <= names
    assert len(EXCEPTIONS) >= 19


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_project_exception_derives_from_jarvis_error(cls: type) -> None:
    assert issubclass(cls, JarvisError), f"{cls.__module__}.{cls.__qualname__} does not derive from JarvisError"


def test_no_exception_class_hides_inside_a_function() -> None:
    # A class defined in a function body is invisible to the walk above: keep them at module level.
    hidden: list[str] = []
    for m in MODULES:
        if not m.__file__:
            continue
        tree = ast.parse(Path(m.__file__).read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ClassDef):
                    bases = [ast.unparse(b) for b in node.bases]
                    if any(b.endswith(("Error", "Exception")) for b in bases):
                        hidden.append(f"{m.__name__}:{node.lineno} {node.name}")
    assert not hidden


def test_built_in_bases_are_kept() -> None:
    # Callers that catch ValueError (the verifier, the CLI) must still catch these.
    assert issubclass(CodecError, ValueError)
    assert issubclass(UnknownSchema, ValueError)
    assert issubclass(PipelineError, ValueError)
    with pytest.raises(ValueError):
        raise PipelineError("bad entry")
