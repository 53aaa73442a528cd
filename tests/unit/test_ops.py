from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jarvis.ops import KINDS_BY_TYPE, OBJECT_ID, OperationError, validate

PAIRS = [(t, k) for t, ks in KINDS_BY_TYPE.items() for k in ks]


@given(
    prefix=st.sampled_from(["ctr", "inv", "Bad", "a b", "", "x-1_z"]),
    sep=st.sampled_from([":", "", "::"]),
    rest=st.text(max_size=6),
    pair=st.sampled_from([*PAIRS, ("gcounter", "add"), ("nope", "increment")]),
)
def test_validate_accepts_exactly_what_the_model_allows(
    prefix: str, sep: str, rest: str, pair: tuple
) -> None:
    object_id = prefix + sep + rest
    allowed = bool(OBJECT_ID.fullmatch(object_id)) and pair in PAIRS
    for _ in range(2):  # the second call takes the cached-prefix path
        if allowed:
            validate(object_id, *pair)
        else:
            with pytest.raises(OperationError):
                validate(object_id, *pair)
