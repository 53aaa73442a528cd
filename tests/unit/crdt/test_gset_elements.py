"""G-Set elements: any JSON value, string and non-string kept apart, wire form round trips."""

from __future__ import annotations


def test_gset_keeps_json_values_of_every_type_apart_and_round_trips() -> None:
    from jarvis.crdt import GSet

    g = GSet("a")
    for x in ("1", 1, {"b": [1, 2]}, "x", 1.5, None, True):
        g.add(x)
    assert g.contains("1") and g.contains(1) and g.contains({"b": [1, 2]}) and not g.contains("2")
    assert len(g) == 7
    back = GSet.from_dict(g.to_dict())
    assert back == g and back.elements() == g.elements()
    assert sorted(map(str, g.elements())) == sorted(map(str, ["1", 1, {"b": [1, 2]}, "x", 1.5, None, True]))
