"""Replay protection: an operation's HLC must lie in [now - max_age, now + max_future]."""

from __future__ import annotations


def check_window(hlc: int, now_ms: int, *, max_age_s: float, max_future_s: float) -> str | None:
    """None if the timestamp is acceptable, else the reason it is not."""
    wall_ms = hlc >> 16
    age = (now_ms - wall_ms) / 1000
    if age > max_age_s:
        return f"timestamp too old by {age - max_age_s:.1f} s (replay window {max_age_s:g} s)"
    if -age > max_future_s:
        return f"timestamp {-age:.1f} s in the future (tolerance {max_future_s:g} s)"
    return None
