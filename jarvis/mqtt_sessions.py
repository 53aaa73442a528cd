"""The ingest gateways' MQTT session policy, pure: which client ids are the region's configured
gateway instances, and which persistent sessions on a broker are ghosts.

Mosquitto keeps dispatching a shared subscription's share to a member whose persistent session is
offline and queues the messages for it (eclipse-mosquitto/mosquitto#1747). A gateway instance that
ran once with a persistent session and never comes back therefore takes 1/N of its region's
messages for good. So only the instances `jarvis stack up` runs (the ingest role's `instances`)
keep a persistent session, which is what makes their crash lose nothing; any other instance number
connects with a clean session, which the broker ends when the instance disconnects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from jarvis import roles

CLIENT_ID_PREFIX = "jarvis-ingest-"
_CLIENT_ID = re.compile(r"jarvis-ingest-(?P<region>.+)-(?P<instance>\d+)")


def client_id(region: str, instance: int) -> str:
    """A gateway instance's MQTT client id: fixed, so a restart resumes its persistent session."""
    return f"{CLIENT_ID_PREFIX}{region}-{instance}"


def share_group(region: str) -> str:
    """The shared subscription group every gateway instance of the region joins."""
    return f"jarvis-ingest-{region}"


def parse_client_id(cid: str) -> tuple[str, int] | None:
    """(region, instance) of a gateway client id, None for any other client."""
    m = _CLIENT_ID.fullmatch(cid)
    return (m["region"], int(m["instance"])) if m else None


def configured_instances() -> int:
    """How many gateway instances a region runs: the ingest role's `instances` (jarvis/roles.py),
    which `jarvis stack up` starts and its supervisor restarts."""
    return roles.role("ingest").instances


def persistent(instance: int, configured: int) -> bool:
    """Whether this gateway instance keeps a persistent session: only a configured one, whose crash
    must lose nothing and which is always brought back (the stack's supervisor restarts it)."""
    return 0 <= instance < configured


@dataclass(frozen=True, slots=True)
class Ghost:
    """A persistent session under a gateway client id that no configured instance owns."""

    client_id: str
    region: str
    instance: int
    queued: int  # messages the broker holds for it, lost to the pipeline until drained or dropped

    def as_dict(self) -> dict[str, object]:
        return {"client_id": self.client_id, "instance": self.instance, "queued": self.queued}


def ghosts(sessions: Iterable[tuple[str, int]], region: str, configured: int) -> list[Ghost]:
    """Ghosts among a region's broker's persistent sessions, given as (client id, queued messages).

    Every gateway client id joins the region's share group when it connects, so a persistent session
    under one is a member (or becomes one on its next connect, or held its share's messages before a
    broker restart: Mosquitto 2.0 does not persist shared subscriptions, but does persist the queue)."""
    out = []
    for cid, queued in sessions:
        parsed = parse_client_id(cid)
        if parsed is not None and parsed[0] == region and not persistent(parsed[1], configured):
            out.append(Ghost(cid, region, parsed[1], queued))
    return sorted(out, key=lambda g: g.instance)


def warning(g: Ghost) -> str:
    """What `jarvis stack status` says about a ghost, with both ways out. Draining signs the
    messages as the instance's node (`ingest-<region>-<instance>`, connectors/ingest/worker.py),
    whose key the verifier must trust, as it trusts the configured instances' keys."""
    r, i = g.region, g.instance
    return (
        f"MQTT session {g.client_id} ({g.queued} message(s) queued) is not one of {r}'s configured ingest "
        f"instances: the broker gives it a share of {r}'s MQTT messages, which no gateway reads. Write them: "
        f"trust its node (`jarvis keys create ingest-{r}-{i} --trust` in development), run "
        f"`jarvis worker ingest --region {r} --instance {i}` until its log says the left session was written, "
        f"stop it. Or discard them: `jarvis ingest drop-session --region {r} --instance {i}`."
    )
