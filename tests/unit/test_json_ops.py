"""JSON operations read through the CRDT registry's vocabulary (jarvis/json_ops.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.crdt import registry as crdt_registry
from jarvis.json_ops import JsonOp, OpInputError, OpParser, check_args, kinds_table, parse_op
from pipelines.loader import pipelines

RULES = pipelines()


def _parse(d: object) -> JsonOp:
    return parse_op(d, RULES.rule_for)


def _reasons(d: object) -> list[str]:
    with pytest.raises(OpInputError) as e:
        _parse(d)
    return e.value.reasons


def _object_of(crdt_type: str) -> str:
    for prefix in RULES.prefixes():
        rule = RULES.rule_for(f"{prefix}:x")
        if rule is not None and rule.crdt_type == crdt_type and rule.workflow is None:
            return f"{prefix}:x"
    for prefix in RULES.prefixes():
        rule = RULES.rule_for(f"{prefix}:x")
        if rule is not None and rule.crdt_type == crdt_type:
            return f"{prefix}:x"
    raise LookupError(crdt_type)


def test_every_kind_of_every_type_in_the_default_pipelines_parses() -> None:
    samples = {"integer": 2, "number": 1.5, "string": "s", "object": {}, None: "any", "array": []}
    types = {RULES.rule_for(f"{p}:x").crdt_type for p in RULES.prefixes()}  # type: ignore[union-attr]
    assert types >= {"pncounter", "orset", "lww", "timeseries", "graph", "workflow"}
    for t in types:
        spec = crdt_registry.SPECS[t]
        oid = _object_of(t)
        for kind in spec.kinds:
            args = {a.name: samples[a.json_type] for a in spec.args[kind]}
            op = _parse({"object_id": oid, "kind": kind, "args": args})
            assert (op.crdt_type, op.kind, op.args) == (t, kind, args)


def test_the_sdk_method_name_is_an_alias_of_the_wire_kind() -> None:
    oid = _object_of("timeseries")
    op = _parse({"object_id": oid, "kind": "append_data_point", "args": {"timestamp": 1.0, "value": 2}})
    assert op.kind == "append"
    assert kinds_table()["timeseries"]["append_data_point"] == kinds_table()["timeseries"]["append"]


def test_reasons_name_the_problem() -> None:
    ctr = _object_of("pncounter")
    assert "no pipeline defines the prefix 'nosuch'" in _reasons({"object_id": "nosuch:1", "kind": "increment"})[0]
    assert "has no operation 'explode'" in _reasons({"object_id": ctr, "kind": "explode"})[0]
    assert _reasons({"object_id": ctr, "kind": "increment", "args": {"n": "3"}}) == [
        "args.n must be an integer, got str"
    ]
    assert "takes no argument 'm'" in _reasons({"object_id": ctr, "kind": "increment", "args": {"m": 1}})[0]
    assert _reasons([1]) == ["an operation must be a JSON object, got an array"]
    assert len(_reasons({"object_id": 3, "kind": None, "args": [], "x": 1})) == 4
    assert "must look like" in _reasons({"object_id": "NoColon", "kind": "increment"})[0]
    assert "exceeds the limit" in _reasons({"object_id": "ctr:" + "x" * 2000, "kind": "increment"})[0]
    ts = _object_of("timeseries")
    assert _reasons({"object_id": ts, "kind": "append", "args": {"timestamp": 1, "value": float("nan")}}) == [
        "args.value must be a finite number"
    ]
    assert _reasons({"object_id": ts, "kind": "append", "args": {"value": True}}) == [
        "args.timestamp is required for append",
        "args.value must be a finite number",
    ]
    assert "the operation says 'gset'" in _reasons({"object_id": ctr, "kind": "increment", "type": "gset"})[0]


def test_booleans_are_not_integers_and_any_json_passes_an_untyped_argument() -> None:
    assert check_args("pncounter", "increment", {"n": True}) == ["args.n must be an integer, got bool"]
    assert check_args("orset", "add", {"element": {"nested": [1]}}) == []


def test_a_type_without_declared_args_takes_any_object() -> None:
    class Free(crdt_registry.CrdtSpec):
        name = "freeform_test"
        crdt_class = dict
        kinds = ("poke",)

    crdt_registry.register(Free())
    try:
        assert check_args("freeform_test", "poke", {"anything": 1}) == []
    finally:
        crdt_registry.unregister("freeform_test")


# -- OpParser: parse_op with memory, equal to it on every input ----------------------------------
_PREFIXES = sorted(RULES.prefixes())
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
_KINDS = sorted({k for t in crdt_registry.names() for k in (*crdt_registry.SPECS[t].kinds,
                 *crdt_registry.SPECS[t].kind_aliases)} | {"nope"})  # fmt: skip
_OPS = st.fixed_dictionaries(
    {
        "object_id": st.one_of(
            st.builds(lambda p, i: f"{p}:{i}", st.sampled_from([*_PREFIXES, "nosuch"]), st.sampled_from(["a", "b", "", "x\ny"])),
            _ANY_JSON,
        ),
        "kind": st.one_of(st.sampled_from(_KINDS), _ANY_JSON),
    },
    optional={
        "args": st.one_of(st.dictionaries(st.sampled_from(["n", "element", "value", "to_state", "v", "ts"]), _ANY_JSON, max_size=3), _ANY_JSON),
        "type": st.one_of(st.sampled_from(sorted(crdt_registry.names())), _ANY_JSON),
        "extra": _ANY_JSON,
    },
)


def _outcome(f: object, d: object) -> object:
    try:
        return f(d)  # type: ignore[operator]
    except OpInputError as e:
        return e.reasons


@settings(max_examples=400, deadline=None)
@given(st.lists(_OPS, min_size=1, max_size=12))
def test_op_parser_agrees_with_parse_op_on_every_input_and_repeat(items: list[dict]) -> None:
    parser = OpParser(RULES.rule_for, max_objects=4)  # small: the memory is also cleared on the way
    for d in [*items, *items]:  # the repeats take the remembered path
        assert _outcome(parser.parse, d) == _outcome(_parse, d)
