"""Collaborative CMS: editors in any region edit one document at once, see who else is there, and
discuss it in comment threads.

CRDTs (pipeline `content`):
  article:<doc>          text (Yrs)      the document: concurrent inserts and deletes from every
                                         region merge into one text, each editor's intent kept
  presence:<doc>.<user>  LWW             where an editor is (cursor) and when last seen
  members:<doc>          OR-Set          who collaborates on the document (removable)
  changes:<doc>          G-Set           the change history: who did what when (append-only)
  comments:<doc>         map of sets     one thread per key; a comment is an element of its set
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from connectors.sdk import Client
from pipelines.apps._common import AppError, name, read_value


def article_id(doc: str) -> str:
    return f"article:{doc}"


def presence_id(doc: str, user: str) -> str:
    return f"presence:{doc}.{user}"


def members_id(doc: str) -> str:
    return f"members:{doc}"


def changes_id(doc: str) -> str:
    return f"changes:{doc}"


def comments_id(doc: str) -> str:
    return f"comments:{doc}"


def parse_operation(operation: dict[str, Any]) -> tuple[str, int, Any]:
    """("insert", index, text) or ("delete", index, n) from {"insert": {"index", "text"}} or
    {"delete": {"index", "n"}}; AppError with the reason otherwise."""
    if not isinstance(operation, dict) or len(operation) != 1:
        raise AppError('an operation is {"insert": {"index", "text"}} or {"delete": {"index", "n"}}')
    ((kind, args),) = operation.items()
    if kind not in ("insert", "delete") or not isinstance(args, dict):
        raise AppError(f"unknown operation {kind!r}: insert or delete")
    index = args.get("index")
    if type(index) is not int or index < 0:
        raise AppError(f"index must be a non-negative integer, got {index!r}")
    if kind == "insert":
        text = args.get("text")
        if not isinstance(text, str) or not text:
            raise AppError(f"insert needs non-empty text, got {text!r}")
        return kind, index, text
    n = args.get("n", 1)
    if type(n) is not int or n <= 0:
        raise AppError(f"delete needs a positive n, got {n!r}")
    return kind, index, n


def present(presences: dict[str, dict[str, Any] | None], now: float, within_s: float) -> list[str]:
    """The users seen within `within_s` seconds of `now`."""
    return sorted(u for u, p in presences.items() if p is not None and now - p["ts"] <= within_s)


class Editor:
    """One editor's session (one user, one SDK client and its replica of each document)."""

    def __init__(self, client: Client, user_id: str) -> None:
        self.client = client
        self.user = name("user_id", user_id)

    def edit_document(self, document_id: str, user_id: str, operation: dict[str, Any]) -> str:
        """Apply one insert or delete to the document, mark the editor present at its cursor and
        record the change; returns the document as this editor now sees it."""
        name("document_id", document_id)
        if name("user_id", user_id) != self.user:
            raise AppError(f"this session edits as {self.user!r}, not {user_id!r}")
        kind, index, arg = parse_operation(operation)
        doc = self.client.text(article_id(document_id))
        length = len(doc.text())
        if index > length or (kind == "delete" and index + arg > length):
            raise AppError(f"{kind} at {index} is outside the document ({length} characters)")
        if kind == "insert":
            doc.insert(index, arg)
            cursor = index + len(arg)
        else:
            doc.delete(index, arg)
            cursor = index
        c, now = self.client, time.time()
        c.orset(members_id(document_id)).add(self.user)
        c.register(presence_id(document_id, self.user)).write(
            {"user": self.user, "cursor": cursor, "ts": now, "region": c.region}
        )
        c.gset(changes_id(document_id)).add({"id": uuid.uuid4().hex[:12], "user": self.user, "op": kind, "index": index,
                                             "arg": arg, "ts": now})  # fmt: skip
        c.flush()
        return doc.text()

    def sync(self, document_id: str) -> str:
        """Merge everyone's edits this region has into the editor's replica; the text after."""
        doc = self.client.text(article_id(document_id))
        doc.sync()
        return doc.text()

    def comment(self, document_id: str, thread_id: str, text: str) -> None:
        if not isinstance(text, str) or not text:
            raise AppError("a comment needs text")
        self.client.map(comments_id(name("document_id", document_id))).update(
            name("thread_id", thread_id), "set", "add",
            {"element": {"user": self.user, "text": text, "ts": time.time(), "id": uuid.uuid4().hex[:12]}},
        )  # fmt: skip
        self.client.flush()

    # -- what the region shows ---------------------------------------------------------------------
    def document(self, document_id: str) -> str:
        v = read_value(self.client, article_id(document_id))
        return "" if v is None else v["text"]

    def who_is_here(self, document_id: str, within_s: float = 60.0) -> list[str]:
        users = read_value(self.client, members_id(document_id), [])
        return present(
            {u: read_value(self.client, presence_id(document_id, u)) for u in users}, time.time(), within_s
        )

    def threads(self, document_id: str) -> dict[str, list[dict[str, Any]]]:
        v = read_value(self.client, comments_id(document_id))
        entries = {} if v is None else v["entries"]
        return {t: sorted(cs, key=lambda c: (c["ts"], c["id"])) for t, cs in entries.items()}

    def history(self, document_id: str) -> list[dict[str, Any]]:
        return sorted(read_value(self.client, changes_id(document_id), []), key=lambda c: (c["ts"], c["id"]))
