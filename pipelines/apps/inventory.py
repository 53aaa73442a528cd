"""Global e-commerce inventory: reserve stock from any region without ever overselling.

CRDTs (pipeline `commerce`):
  stock:<sku>          bounded counter (min 0)  the sellable units. A reservation is a decrement that
                                                the region's fold decides against the rights the
                                                region holds, so the count can never go below 0,
                                                even with both regions selling concurrently; rights
                                                move to the region that lacks them
  reservations:<sku>   OR-Set                   the accepted reservations (a cancelled one is removed)
  pricing:<sku>        LWW register             the current price: the latest write wins everywhere
  order:<id>           workflow                 warehouse order: reserved -> picked -> shipped ->
                                                delivered (or cancelled); illegal moves are refused

`reserve_inventory` waits for the verdict (`decrement(..., wait=True)`): a reservation is confirmed
only when the deciding fold accepted it.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from connectors.sdk import Client
from pipelines.apps._common import AppError, name, positive_int, positive_number, read_value


def stock_id(sku: str) -> str:
    return f"stock:{sku}"


def reservations_id(sku: str) -> str:
    return f"reservations:{sku}"


def pricing_id(sku: str) -> str:
    return f"pricing:{sku}"


def order_id(reservation_id: str) -> str:
    return f"order:{reservation_id}"


@dataclass(frozen=True)
class Reservation:
    reservation_id: str
    sku: str
    quantity: int
    customer_id: str
    warehouse_id: str
    accepted: bool
    reasons: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("accepted", "reasons")}


def reserved_units(records: list[dict[str, Any]]) -> int:
    return sum(int(r["quantity"]) for r in records)


class Store:
    """The inventory app of one region."""

    def __init__(self, client: Client) -> None:
        if not client.track_verdicts:
            raise AppError("the inventory app needs a client with track_verdicts=True (reservation verdicts)")
        self.client = client

    def restock(self, sku: str, units: int) -> None:
        """Add units (rights held by this region until another region needs them)."""
        self.client.bcounter(stock_id(name("sku", sku))).increment(positive_int("units", units))
        self.client.flush(wait=True)

    def set_price(self, sku: str, price: float, currency: str = "EUR") -> None:
        self.client.register(pricing_id(name("sku", sku))).write(
            {"price": positive_number("price", price), "currency": name("currency", currency)}
        )
        self.client.flush()

    def price(self, sku: str) -> dict[str, Any] | None:
        return read_value(self.client, pricing_id(sku))

    def reserve_inventory(
        self, sku: str, quantity: int, customer_id: str, warehouse_id: str, timeout: float = 30.0
    ) -> Reservation:
        """Reserve `quantity` units: accepted only if the region's fold could take them from the
        stock it holds rights to; refused with the fold's reason otherwise. Never oversells."""
        name("sku", sku)
        positive_int("quantity", quantity)
        name("customer_id", customer_id)
        name("warehouse_id", warehouse_id)
        v = self.client.bcounter(stock_id(sku)).decrement(quantity, wait=True, timeout=timeout)
        r = Reservation(
            uuid.uuid4().hex[:16], sku, quantity, customer_id, warehouse_id, v.ok, list(v.reasons)
        )
        if r.accepted:
            self.client.orset(reservations_id(sku)).add(r.record())
            self.client.flush()
        return r

    def advance_order(self, reservation_id: str, to_state: str, **details: Any) -> bool:
        """Move the warehouse order on (picked, shipped, delivered, cancelled); False if refused."""
        self.client.workflow(order_id(name("reservation_id", reservation_id))).transition(to_state, **details)
        return not self.client.verdicts().refused

    def order_state(self, reservation_id: str) -> str:
        v = read_value(self.client, order_id(reservation_id))
        return "reserved" if v is None else v["state"]

    def available(self, sku: str) -> int:
        v = read_value(self.client, stock_id(sku))
        return 0 if v is None else int(v["value"])

    def reservations(self, sku: str) -> list[dict[str, Any]]:
        return list(read_value(self.client, reservations_id(sku), []))
