"""Service mesh: a service registry and circuit breakers shared by every region.

CRDTs (pipeline `platform`):
  services:<service>           LWW register  the registration {endpoint, region, version, threshold,
                                             epoch}: re-registering replaces it everywhere
  breaker:<service>:<epoch>    G-Counter     failures reported by every sidecar in every region;
                                             grow-only, so the count only rises and every region
                                             sums the same increments

A breaker is open when its failures reach the registered threshold. Every region computes that from
the same two converged objects, so a breaker that opens in one region opens in all of them once the
failures have replicated, with no message between the regions beyond the counter's own operations.
Resetting a breaker starts a new epoch (a new counter): a grow-only count is never decremented.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from connectors.sdk import Client
from pipelines.apps._common import AppError, name, positive_int, read_value

DEFAULT_THRESHOLD = 5


def service_id(service: str) -> str:
    return f"services:{service}"


def breaker_id(service: str, epoch: int) -> str:
    return f"breaker:{service}:{epoch}"


@dataclass(frozen=True)
class BreakerState:
    service: str
    epoch: int
    failures: int
    threshold: int

    @property
    def open(self) -> bool:
        return breaker_open(self.failures, self.threshold)


def breaker_open(failures: int, threshold: int) -> bool:
    return failures >= threshold


class Mesh:
    """The mesh control plane of one region."""

    def __init__(self, client: Client, *, registration_ttl_s: float = 0.5) -> None:
        self.client = client
        # Reporting failures reads the registration (epoch, threshold); a report within this long
        # of the last read reuses it. A reset made in another region is seen after at most this.
        self.registration_ttl_s = registration_ttl_s
        self._records: dict[str, tuple[float, dict[str, Any]]] = {}

    def register_service(
        self,
        service: str,
        endpoint: str,
        version: str = "1",
        threshold: int = DEFAULT_THRESHOLD,
        epoch: int = 0,
    ) -> dict[str, Any]:
        name("service", service)
        if not isinstance(endpoint, str) or not endpoint:
            raise AppError(f"endpoint must be a non-empty string, got {endpoint!r}")
        if type(epoch) is not int or epoch < 0:
            raise AppError(f"epoch must be a non-negative integer, got {epoch!r}")
        record = {
            "endpoint": endpoint,
            "region": self.client.region,
            "version": name("version", version),
            "threshold": positive_int("threshold", threshold),
            "epoch": epoch,
        }
        self.client.register(service_id(service)).write(record)
        self.client.flush()
        self._records.pop(service, None)
        return record

    def lookup(self, service: str) -> dict[str, Any] | None:
        return read_value(self.client, service_id(name("service", service)))

    def _record(self, service: str, fresh: bool = False) -> dict[str, Any]:
        cached = self._records.get(service)
        if not fresh and cached is not None and time.monotonic() - cached[0] < self.registration_ttl_s:
            return cached[1]
        rec = self.lookup(service)
        if rec is None:
            raise AppError(f"service {service!r} is not registered (in {self.client.region} yet)")
        self._records[service] = (time.monotonic(), rec)
        return rec

    def update_circuit_breaker(self, service: str, failure_count: int) -> None:
        """Report `failure_count` new failures of `service` (sent at once: breakers must be quick)."""
        rec = self._record(service)
        self.client.counter(breaker_id(service, rec["epoch"])).increment(
            positive_int("failure_count", failure_count)
        )
        self.client.flush()

    def breaker_state(self, service: str) -> BreakerState:
        rec = self._record(service, fresh=True)
        failures = int(read_value(self.client, breaker_id(service, rec["epoch"]), 0))
        return BreakerState(service, rec["epoch"], failures, rec["threshold"])

    def reset_circuit_breaker(self, service: str) -> dict[str, Any]:
        """Close the breaker: re-register with the next epoch, whose failure count starts at 0."""
        rec = self._record(service, fresh=True)
        return self.register_service(
            service, rec["endpoint"], rec["version"], rec["threshold"], rec["epoch"] + 1
        )
