"""The seed's use cases as small apps on the public SDK (one module per case), with `jarvis demo`.

Each app's prefixes are declared once, in its pipeline in pipelines/default.yaml (the one file the
verifier, fold, SDK and archiver read); the module names the pipeline it writes to.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    module: str  # pipelines.apps.<module>
    pipeline: str  # in pipelines/default.yaml
    crdts: str  # what it uses and why, one line
    summary: str


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("trading", "trading", "trading",
             "PN-Counter positions (exact sum of concurrent buys/sells), G-Set immutable trades, "
             "time-series order book, LWW risk report",
             "desks in two regions trade the same symbols; positions and trade records agree; risk alerts"),
        Case("cms", "cms", "content",
             "Yrs text document (concurrent edits merge), LWW presence, OR-Set members, G-Set history, map of comment sets",
             "editors in two regions type into one document at once; both see the same text and each other"),
        Case("inventory", "inventory", "commerce",
             "bounded counter stock (never below 0, rights move), OR-Set reservations, LWW price, "
             "workflow warehouse order",
             "shoppers in two regions reserve more than the stock; nothing is oversold"),
        Case("eventsourcing", "eventsourcing", "eventsourcing",
             "G-Set of events with HLC versions (unique, ordered, no coordination), LWW snapshot",
             "two regions append to one aggregate; both read the same events in version order"),
        Case("ehr", "ehr", "healthcare",
             "map of LWW registers per patient (field-level merge), PHI sealed before it leaves, G-Set audit trail",
             "two providers in two regions update one record; only a clinical reader sees PHI"),
        Case("factory", "factory", "factory",
             "G-Counter production (many devices add, the sum is exact), time-series quality and sensors, LWW equipment",
             "devices publish over MQTT in two regions; production totals equal what they sent"),
        Case("mesh", "mesh", "platform",
             "LWW service registry, G-Counter failures per breaker epoch (opens everywhere at the threshold)",
             "failures reported in two regions open the breaker in both"),
        Case("ratelimit", "ratelimit", "platform",
             "G-Counter per gateway (own count exact, others' as replicated): a global limit within a stated slack",
             "gateways in two regions share one limit"),
    )
}  # fmt: skip
