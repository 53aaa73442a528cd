from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.loader import PipelineError, load


def test_default_pipelines_cover_the_seed_use_cases() -> None:
    p = load()
    assert p.rule_for("inventory:sku-42").crdt_type == "pncounter"
    assert p.rule_for("patient:123").encrypt == ("value",)
    assert p.rule_for("prescription:rx-1").workflow.initial == "prescribed"
    assert p.rule_for("quality:line-3").telemetry is True
    used = {r.crdt_type for r in p.rules.values()}
    assert used == {
        "gcounter", "pncounter", "gset", "orset", "lww", "timeseries", "graph", "workflow", "bcounter", "text", "map"
    }  # fmt: skip


@pytest.mark.parametrize("object_id", ["nosuchprefix:x", "inventory:", "no-colon"])
def test_unknown_or_malformed_object_ids_have_no_rule(object_id: str) -> None:
    assert load().rule_for(object_id) is None


def test_bad_files_fail_with_a_message_naming_the_entry(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("pipelines:\n  x:\n    prefixes:\n      a: {type: nope}\n")
    with pytest.raises(PipelineError, match="x.a: unknown CRDT type 'nope'"):
        load(f)
    f.write_text("pipelines:\n  x:\n    prefixes:\n      a: {type: workflow, workflow: missing}\n")
    with pytest.raises(PipelineError, match="unknown workflow 'missing'"):
        load(f)
