"""Text: collaborative plain text, a Yrs document (pycrdt, the Python binding of Yrs / Yjs).

An edit is a Yrs update (v1 encoding): `insert(index, s)` and `delete(index, n)` edit this replica's
document and return the update they made, as a delta; `apply_update(bytes)` folds one in (what the
fold does with an operation's update). Yrs merges updates in any order, any number of times, and two
documents that have seen the same updates hold the same text and the same state vector.

One gap of pycrdt is filled here: an update whose dependencies have not arrived yet is held by Yrs
as pending, and is left out of the document's own encoding (`get_update()`); nor does Yrs always
integrate it once they come. Such an update is kept beside the document (`pending`, one merged
update) and applied again with every new update until the document covers it, so a copy, the plain
data and a merge lose nothing while updates arrive out of order.

Indexes and lengths are in characters (code points), as Python counts them; pycrdt counts UTF-8
bytes, and an index inside a character corrupts the document, so every index is converted here.

The Yrs client id (the replica's name inside the document) is random per instance, as Yjs requires:
two live documents sharing a client id corrupt each other's edits, and node names may be reused.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pycrdt import Doc, merge_updates
from pycrdt import Text as YText
from pycrdt import get_update as diff_update

from jarvis.crdt.errors import CrdtError, TextUpdateError

ROOT = "text"  # the root type's name: the same in every replica and in yjs


def _varuints(data: bytes, pos: int, count: int) -> tuple[list[int], int]:
    out = []
    for _ in range(count):
        n = shift = 0
        while True:
            if pos >= len(data):
                raise TextUpdateError("Yrs update ends inside a number")
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        out.append(n)
    return out, pos


def decode_state_vector(sv: bytes) -> dict[int, int]:
    """A Yrs state vector as {client id: clock}; its bytes list the clients in no fixed order."""
    (n,), pos = _varuints(sv, 0, 1)
    out = {}
    for _ in range(n):
        (client, clock), pos = _varuints(sv, pos, 2)
        out[client] = clock
    return out


def _covered(rest: bytes, sv: dict[int, int]) -> bool:
    """Whether `rest` (an update already diffed against the document's state vector) holds nothing the
    document lacks: no structs, and deletions only of items the document has."""
    (clients,), pos = _varuints(rest, 0, 1)
    if clients:
        return False
    (ds_clients,), pos = _varuints(rest, pos, 1)
    for _ in range(ds_clients):
        (client, ranges), pos = _varuints(rest, pos, 2)
        for _ in range(ranges):
            (clock, length), pos = _varuints(rest, pos, 2)
            if clock + length > sv.get(client, 0):
                return False
    return True


def _delete_set(rest: bytes) -> dict[int, list[tuple[int, int]]]:
    """The deletions of an update that holds no structs, as {client: merged [start, end) ranges}."""
    (clients,), pos = _varuints(rest, 0, 1)
    if clients:
        raise TextUpdateError("expected an update holding deletions only")
    (ds_clients,), pos = _varuints(rest, pos, 1)
    out: dict[int, list[tuple[int, int]]] = {}
    for _ in range(ds_clients):
        (client, ranges), pos = _varuints(rest, pos, 2)
        spans = []
        for _ in range(ranges):
            (clock, length), pos = _varuints(rest, pos, 2)
            spans.append((clock, clock + length))
        merged: list[tuple[int, int]] = []
        for a, b in sorted(spans):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        if merged:
            out[client] = out.get(client, []) + merged
    return out


def decode_update(data: str | bytes) -> bytes:
    """An update from an operation's args (base64 text) or raw bytes, checked to be a Yrs v1 update."""
    if isinstance(data, str):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise TextUpdateError(f"text update is not base64: {e}") from None
    if not isinstance(data, bytes | bytearray) or not data:
        raise TextUpdateError("text update is empty: a Yrs update has at least its two section counts")
    return bytes(data)


def encode_update(update: bytes) -> str:
    return base64.b64encode(update).decode()


def delta(update: bytes) -> Text:
    """A delta carrying one update (b"": none), as insert and delete return."""
    d = Text.__new__(Text)
    d.node_id, d.doc, d.text, d.pending, d.update = "", None, None, None, update
    d._chars = d._bytes = d._made = None
    return d


class Text:
    __slots__ = ("node_id", "doc", "text", "pending", "update", "_chars", "_bytes", "_made", "__weakref__")

    def __init__(self, node_id: str = "", client_id: int | None = None) -> None:
        self.node_id = node_id
        self.doc = Doc() if client_id is None else Doc(client_id=client_id)
        self.text: YText = self.doc.get(ROOT, type=YText)
        self.pending: bytes | None = None
        self.update: bytes | None = None  # set on a delta: the update it carries
        self._chars: int | None = 0  # the length in characters; None: to be counted again
        self._bytes: int | None = 0  # ... in UTF-8 bytes, pycrdt's unit
        # A local edit's update, as Yrs encodes its transaction. Asking the document for the update
        # since the state vector before the edit scans the whole document: 13 us an insert at 10,000
        # characters, 64 us at 50,000.
        self._made: bytes | None = None
        self.doc.observe(self._capture)

    def _delta(self, update: bytes) -> Text:
        d = delta(update)
        d.node_id = self.node_id
        return d

    def _capture(self, event: Any) -> None:
        self._made = event.update

    def _offset(self, index: int) -> int:
        """The UTF-8 byte offset of character `index` (the caller checked 0 <= index <= length)."""
        if self._bytes == self._length():  # all ASCII: bytes are characters
            return index
        return len(self.read()[:index].encode())

    def _length(self) -> int:
        if self._chars is None:
            s = self.read()
            self._chars, self._bytes = len(s), len(s.encode())
        return self._chars

    def _edit(self) -> Text:
        made, self._made = self._made, None
        return self._delta(made or b"\x00\x00")  # an edit that changed nothing: the empty update

    # -- mutators ---------------------------------------------------------------------------------
    def insert(self, index: int, s: str) -> Text:
        size = self._length()
        if type(index) is not int or not 0 <= index <= size:
            raise CrdtError(
                f"insert index must be an integer from 0 to {size} (the text's length), got {index!r}"
            )
        if not isinstance(s, str):
            raise CrdtError(f"insert takes a string, got {type(s).__name__}")
        at = self._offset(index)
        self._made = None
        self.text.insert(at, s)
        self._chars = size + len(s)
        self._bytes = (self._bytes or 0) + len(s.encode())
        return self._edit()

    def delete(self, index: int, n: int = 1) -> Text:
        size = self._length()
        if type(index) is not int or type(n) is not int or n < 0 or index < 0 or index + n > size:
            raise CrdtError(f"delete of {n!r} characters at {index!r} does not fit a text of length {size}")
        start, end = self._offset(index), self._offset(index + n)
        self._made = None
        del self.text[start:end]
        self._chars = size - n
        self._bytes = (self._bytes or 0) - (end - start)
        return self._edit()

    def apply_update(self, update: str | bytes) -> None:
        """Fold in one Yrs update (bytes, or base64 text as operations carry it)."""
        u = decode_update(update)
        try:
            self.doc.apply_update(u)
        except ValueError as e:  # pycrdt's word for every malformed update
            raise TextUpdateError(f"not a Yrs v1 update ({len(u)} bytes): {e}") from None
        self._chars = self._bytes = self._made = None
        self._hold(u)

    def _hold(self, u: bytes) -> None:
        """Keep what the document has not integrated yet (see the module docstring). Yrs does not
        always retry its pending updates when their dependency arrives (an update from client c held
        for c's first insertion stayed out after that insertion came), so a held update is applied
        again after every new one until the document covers it."""
        if self.pending is None:
            if self._covers(u):
                return
            self.pending = u
            return
        held = merge_updates(self.pending, u)
        if not self._covers(held):
            self.doc.apply_update(held)
        self.pending = None if self._covers(held) else held

    def _covers(self, update: bytes) -> bool:
        sv = self.doc.get_state()
        return _covered(diff_update(update, sv), decode_state_vector(sv))

    # -- queries ----------------------------------------------------------------------------------
    def read(self) -> str:
        return str(self.text)

    def value(self) -> str:
        return self.read()

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def view(self) -> dict[str, Any]:
        """The query view: the text and the state vector (base64), for a client to sync from."""
        return {"text": self.read(), "state_vector": encode_update(self.doc.get_state())}

    def encode_state(self) -> bytes:
        """Everything held, as one update: loads into any Yrs or Yjs document."""
        full = self.doc.get_update()
        return full if self.pending is None else merge_updates(full, self.pending)

    def __len__(self) -> int:
        return self._length()

    def blank(self) -> bool:
        """Never edited: holds no item, not even a deleted one."""
        return (
            not self.update if self.doc is None else self.doc.get_state() == b"\x00" and self.pending is None
        )

    # -- merge ------------------------------------------------------------------------------------
    def merge(self, other: Text) -> None:
        if other is self:
            return
        theirs = other.update if other.doc is None else other.encode_state()
        if not theirs:
            return
        if self.doc is None:  # a delta absorbing another: one update carrying both
            self.update = merge_updates(self.update, theirs) if self.update else decode_update(theirs)
            return
        self.apply_update(theirs)

    def copy(self) -> Text:
        if self.doc is None:
            return self._delta(self.update or b"")
        c = Text(self.node_id)
        state = self.encode_state()
        c.doc.apply_update(state)
        c._chars, c._bytes, c._made = self._chars, self._bytes, None
        if self.pending is not None:
            c._hold(self.pending)
        return c

    # -- plain data -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"update": encode_update(self.encode_state() if self.doc is not None else self.update or b"")}

    @classmethod
    def from_dict(cls, d: dict[str, Any], node_id: str = "") -> Text:
        t = cls(node_id)
        t.apply_update(d["update"])
        return t

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Text):
            return NotImplemented
        if self.doc is None or other.doc is None:
            return self.doc is other.doc and self.update == other.update
        return (
            self.clock() == other.clock()
            and self._deletions() == other._deletions()
            and (self.pending is None) == (other.pending is None)
        )

    def clock(self) -> dict[int, int]:
        """The state vector as {client id: clock}: equal for documents that hold the same insertions."""
        return decode_state_vector(self.doc.get_state())

    def _deletions(self) -> dict[int, list[tuple[int, int]]]:
        return _delete_set(diff_update(self.doc.get_update(), self.doc.get_state()))

    def __repr__(self) -> str:
        return (
            f"Text({self.read()!r})"
            if self.doc is not None
            else f"Text(delta, {len(self.update or b'')} bytes)"
        )
