"""Collaborative text (`text`) as a registry spec.

Every operation carries one Yrs v1 update, base64, made by the producer's own document (the SDK's
TextHandle, or any Yjs / Yrs client): `insert {index, s, update}`, `delete {index, n, update}`, or
a bare `update {update}`. The index and string are there for the audit's sake; the fold applies the
update alone, since an index means something only in the document that made the edit, and Yrs
merges updates in any order and any number of times, so every region reaches the same text.
"""

from __future__ import annotations

from typing import Any

from jarvis.crdt.errors import CrdtError
from jarvis.crdt.registry import Arg, CrdtSpec, Rule, register
from jarvis.crdt.text import Text, encode_update


def update_problem(update: Any, what: str = "text") -> str | None:
    """Why `update` is not a base64 Yrs v1 update that a document can take, or None."""
    if not isinstance(update, str):
        return f"{what} operation needs 'update': a base64 Yrs update, got {type(update).__name__}"
    try:
        Text().apply_update(update)  # a scratch document: Yrs parses the whole update
    except CrdtError as e:
        return f"{what} update refused: {e}"
    return None


class TextSpec(CrdtSpec):
    name = "text"
    crdt_class = Text
    kinds = ("insert", "delete", "update")
    handle = "text"
    args = {k: (Arg("update", "string", True, "a Yrs v1 update, base64"),) for k in kinds}

    def mutate(
        self, value: Any, kind: str, a: dict[str, Any], hlc: int, node_id: str, origin: str,
        partition: int, offset: int, index: int,
    ) -> None:  # fmt: skip
        value.apply_update(a["update"])

    def check_args(self, kind: str, args: dict[str, Any], rule: Rule, reasons: list[str]) -> None:
        why = update_problem(args.get("update"))
        if why:
            reasons.append(why)

    def view(self, value: Any) -> Any:
        # The whole state too: a client that edits by index needs the document, not only its text.
        return {**value.view(), "update": encode_update(value.encode_state())}

    def plot(self, view: Any) -> float:
        return float(len(view["text"]))


register(TextSpec())
