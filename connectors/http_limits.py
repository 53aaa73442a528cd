"""The request limits every HTTP server of the project runs with (aiohttp's handler arguments)."""

from __future__ import annotations

# The OpenAPI documents allow ids, prefixes and cursors of 1,024 characters. Percent-encoded, a
# 4-byte UTF-8 character takes 12 bytes, so a request line holding three of them is about 37 KB:
# within these limits the API itself answers such a request (with a JSON reason), where aiohttp's
# defaults (8,190 bytes) answered an undocumented text/plain 400 before any handler ran.
REQUEST_LIMITS: dict[str, int] = {"max_line_size": 64 * 1024, "max_field_size": 16 * 1024}
