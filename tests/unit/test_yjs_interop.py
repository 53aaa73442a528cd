"""Interop with the reference implementation: an update made by `yjs` under node, folded by the
pipeline, gives the text yjs has, and the fold's stored state loads in yjs (installed by
`make install` into tests/interop/yjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from jarvis.crdt import Text
from jarvis.crdt.text import encode_update
from jarvis.materialize import ObjectState, fold_run
from jarvis.ops import DotRun
from pipelines.loader import load, object_factory

TOOL = Path(__file__).parents[1] / "interop" / "yjs" / "yjs_tool.js"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (TOOL.parent / "node_modules" / "yjs").is_dir(),
    reason="node's yjs is not installed (make install)",
)
CREATE = object_factory(load())


def yjs(apply: list[str], insert: tuple[int, str] | None = None) -> dict[str, Any]:
    req = json.dumps({"apply": apply, "insert": list(insert) if insert else None})
    out = subprocess.run(
        ["node", str(TOOL)], input=req, capture_output=True, text=True, check=True, timeout=30
    )
    return json.loads(out.stdout)


def fold(state: ObjectState | None, origin: str, offset: int, update: str) -> ObjectState:
    st = state or CREATE("txt:doc", "text")
    run = DotRun(origin, 0, offset, [(0, "txt:doc", "text", "update", {"update": update}, "n", 1 << 16)])
    done = fold_run(run, lambda oid, t: st)
    assert not done.failed, done.failed
    return st


def test_a_yjs_update_folded_by_the_pipeline_gives_the_text_yjs_has() -> None:
    made = yjs([], (0, "héllo wörld"))
    st = fold(None, "us", 0, made["update"])
    assert st.view("eu")["value"]["text"] == made["text"] == "héllo wörld"


def test_concurrent_pycrdt_and_yjs_edits_converge_and_the_stored_state_loads_in_yjs() -> None:
    base = Text()
    base_update = encode_update(base.insert(0, "shared " + uuid.uuid4().hex[:4]).update or b"")
    py = Text()
    py.apply_update(base_update)
    py_edit = encode_update(py.insert(0, "[py] ").update or b"")
    js_edit = yjs([base_update], (len("shared ") + 4, " [js]"))["update"]  # concurrent with py's
    eu = fold(fold(fold(None, "eu", 0, base_update), "eu", 1, py_edit), "us", 0, js_edit)
    us = fold(fold(fold(None, "us", 0, js_edit), "eu", 0, base_update), "eu", 1, py_edit)
    text = eu.view("eu")["value"]["text"]
    assert text == us.view("us")["value"]["text"]
    assert text.startswith("[py] shared ") and text.endswith(" [js]")
    stored = ObjectState.from_bytes(eu.to_bytes()).view("eu")["value"]["update"]
    assert yjs([stored])["text"] == text
