"""The schemas of schemas/: parsed once, named types resolved across files, indexed by fingerprint."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from jarvis.codec.errors import UnknownSchema
from jarvis.codec.fingerprint import crc64_avro

# Package data of the top-level `schemas` package: found the same way in a checkout and in an
# installed wheel, where no source tree sits beside the code.
SCHEMA_DIR = files("schemas")
NAMESPACE = "io.jarvis.v1"
# Referenced types are parsed before the records that use them.
ORDER = ("Dot", "Operation")


def _avsc(directory: Traversable) -> list[Traversable]:
    return [p for p in directory.iterdir() if p.is_file() and p.name.endswith(".avsc")]


def _stem(path: Traversable) -> str:
    return path.name.removesuffix(".avsc")


def _rank(stem: str) -> int:
    return ORDER.index(stem) if stem in ORDER else len(ORDER)


@dataclass(frozen=True)
class Schema:
    name: str  # full name, e.g. io.jarvis.v1.Operation
    parsed: Any
    canonical: str
    fingerprint: bytes  # 8 bytes, little-endian, as the single-object header carries it
    path: Traversable


class SchemaStore:
    def __init__(self, directory: Traversable = SCHEMA_DIR) -> None:
        self.directory = directory
        self.current: dict[str, Schema] = {}
        self.by_fingerprint: dict[bytes, Schema] = {}
        self._load()

    def _load(self) -> None:
        named: dict[str, Any] = {}
        current = sorted(_avsc(self.directory), key=lambda p: (_rank(_stem(p)), _stem(p)))
        for path in current:
            s = self._parse(path, named)
            self.current[s.name] = s
            self.by_fingerprint[s.fingerprint] = s
        # Older versions: readable (by fingerprint) but never written. They may refer to the current
        # named types (as they did when they were current), but not to their own newer version.
        for path in sorted(_avsc(self.directory / "history"), key=lambda p: p.name):
            raw = json.loads(path.read_text())
            own = f"{raw.get('namespace', NAMESPACE)}.{raw['name']}"
            s = self._parse(path, {k: v for k, v in named.items() if k != own})
            self.by_fingerprint.setdefault(s.fingerprint, s)

    @staticmethod
    def _parse(path: Traversable, named: dict[str, Any]) -> Schema:
        raw = json.loads(path.read_text())
        parsed = parse_schema(raw, named_schemas=named)
        canonical = to_parsing_canonical_form(parsed)
        name = f"{raw.get('namespace', NAMESPACE)}.{raw['name']}"
        fp = struct.pack("<Q", crc64_avro(canonical.encode()))
        return Schema(name, parsed, canonical, fp, path)

    def schema(self, name: str) -> Schema:
        full = name if "." in name else f"{NAMESPACE}.{name}"
        try:
            return self.current[full]
        except KeyError:
            raise UnknownSchema(f"no schema named {full!r} in {self.directory}") from None

    def writer(self, fingerprint: bytes) -> Schema:
        try:
            return self.by_fingerprint[fingerprint]
        except KeyError:
            raise UnknownSchema(
                f"unknown schema fingerprint {fingerprint.hex()} (not in {self.directory}): "
                "written by a newer or foreign producer?"
            ) from None


@cache
def store() -> SchemaStore:
    return SchemaStore()
