"""The root of every exception the project raises on purpose.

Why one root: a caller at an edge (the CLI, a worker's loop, the query API) can tell "Jarvis refused
this, and the message says why" from a bug (TypeError, AttributeError) or a library's own failure
with one `except JarvisError`, instead of listing every module's error class and going stale as new
ones are added. Each project error keeps its built-in base as well (ValueError, RuntimeError,
LookupError), so code that already catches those behaves as before.
"""

from __future__ import annotations


class JarvisError(Exception):
    """Raised by Jarvis itself; subclasses name the part (codec, security, SDK, pipelines, stack)."""


class NotReady(JarvisError):
    """A part was asked before it can answer (e.g. a table router with no partitions assigned yet):
    the request is fine and worth retrying, unlike a bug that happens to raise the same built-in."""
