"""Trading: a desk trades from any region; positions, trade records and the order book converge.

CRDTs (pipeline `trading` in pipelines/default.yaml):
  portfolio:<account>:<symbol>  PN-Counter  the position: buys add, sells subtract, concurrently
                                            from every region, and the sum is exact (commutative)
  trades:<account>              G-Set       immutable trade records: never edited or removed, so a
                                            grow-only set is the whole truth; a record's id is unique
  orderbook:<symbol>            time series every execution's (time, price) point with its quantity
  risk:<account>                LWW         the latest risk report (exposures, limit, breaches)

`execute_trade` is three SDK writes; nothing is read, so it never waits on another region.
`update_risk_metrics` reads positions and last prices and writes a report whose `alerts` name the
exposures above their limit.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from connectors.sdk import Client
from pipelines.apps._common import AppError, name, positive_number, read_value


def position_id(account: str, symbol: str) -> str:
    return f"portfolio:{account}:{symbol}"


def trades_id(account: str) -> str:
    return f"trades:{account}"


def orderbook_id(symbol: str) -> str:
    return f"orderbook:{symbol}"


def risk_id(account: str) -> str:
    return f"risk:{account}"


@dataclass(frozen=True)
class Trade:
    trade_id: str
    account: str
    symbol: str
    quantity: int  # signed: a buy is positive, a sell negative
    price: float
    ts: float
    node: str

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, record: dict[str, Any]) -> Trade:
        return cls(**record)


@dataclass(frozen=True)
class RiskReport:
    account: str
    exposures: dict[str, float]  # per symbol: |position| x price
    gross: float
    net: float
    limits: dict[str, float]
    gross_limit: float | None
    alerts: list[str] = field(default_factory=list)  # what is above its limit, readable

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def positions_from_trades(trades: list[Trade]) -> dict[str, int]:
    """What the positions must be, given every trade record (a reconciliation, in pure logic)."""
    out: dict[str, int] = {}
    for t in trades:
        out[t.symbol] = out.get(t.symbol, 0) + t.quantity
    return out


def risk_metrics(
    account: str,
    positions: dict[str, int],
    prices: dict[str, float],
    limits: dict[str, float] | None = None,
    gross_limit: float | None = None,
) -> RiskReport:
    """Exposure per symbol (|position| x last price), gross and net, and an alert for each exposure
    (or the gross) above its limit. A position without a price is an alert, never a zero."""
    limits = dict(limits or {})
    exposures: dict[str, float] = {}
    net = 0.0
    alerts: list[str] = []
    for sym in sorted(positions):
        pos = positions[sym]
        if sym not in prices:
            if pos:
                alerts.append(f"{sym}: position {pos} has no price")
            continue
        exposures[sym] = abs(pos) * prices[sym]
        net += pos * prices[sym]
        lim = limits.get(sym)
        if lim is not None and exposures[sym] > lim:
            alerts.append(f"{sym}: exposure {exposures[sym]:.2f} above limit {lim:.2f}")
    gross = sum(exposures.values())
    if gross_limit is not None and gross > gross_limit:
        alerts.append(f"gross exposure {gross:.2f} above limit {gross_limit:.2f}")
    return RiskReport(account, exposures, gross, net, limits, gross_limit, alerts)


class TradingDesk:
    """One trading desk's app in one region (an SDK client writes for it)."""

    def __init__(self, client: Client, account: str = "desk") -> None:
        self.client = client
        self.account = name("account", account)

    def execute_trade(self, symbol: str, quantity: int, price: float) -> Trade:
        """Book a trade: position, immutable record, order-book point. Sent with the next flush."""
        name("symbol", symbol)
        if type(quantity) is not int or quantity == 0:
            raise AppError(f"quantity must be a non-zero integer (negative sells), got {quantity!r}")
        positive_number("price", price)
        c = self.client
        trade = Trade(uuid.uuid4().hex, self.account, symbol, quantity, float(price), time.time(), c.node_id)
        pos = c.counter(position_id(self.account, symbol))
        pos.increment(quantity) if quantity > 0 else pos.decrement(-quantity)
        c.gset(trades_id(self.account)).add(trade.record())
        c.timeseries(orderbook_id(symbol)).append_data_point(
            trade.ts, trade.price, {"qty": quantity, "trade": trade.trade_id}
        )
        return trade

    def flush(self) -> None:
        self.client.flush()

    # -- reading (the client's region) -------------------------------------------------------------
    def trades(self) -> list[Trade]:
        return sorted((Trade.of(r) for r in read_value(self.client, trades_id(self.account), [])),
                      key=lambda t: (t.ts, t.trade_id))  # fmt: skip

    def position(self, symbol: str) -> int:
        return int(read_value(self.client, position_id(self.account, symbol), 0))

    def positions(self, symbols: list[str] | None = None) -> dict[str, int]:
        syms = symbols if symbols is not None else sorted({t.symbol for t in self.trades()})
        return {s: self.position(s) for s in syms}

    def last_price(self, symbol: str) -> float | None:
        points = read_value(self.client, orderbook_id(symbol), [])
        return max(points, key=lambda p: p["timestamp"])["value"] if points else None

    def update_risk_metrics(
        self,
        prices: dict[str, float] | None = None,
        limits: dict[str, float] | None = None,
        gross_limit: float | None = None,
    ) -> RiskReport:
        """Recompute the desk's risk from live positions and (given or last traded) prices, and
        publish it as `risk:<account>` (every region sees the same latest report)."""
        positions = self.positions()
        px = {s: p for s in positions if (p := (prices or {}).get(s, self.last_price(s))) is not None}
        report = risk_metrics(self.account, positions, px, limits, gross_limit)
        self.client.register(risk_id(self.account)).write(report.as_dict())
        self.client.flush()
        return report

    def risk(self) -> dict[str, Any] | None:
        return read_value(self.client, risk_id(self.account))


class RiskWatcher:
    """Re-publishes the desk's risk whenever a position it reads has changed, every `interval_s`:
    an exposure crossing its limit raises its alert in this region's next tick, and every other
    region reads the same report once `risk:<account>` has replicated."""

    def __init__(
        self,
        desk: TradingDesk,
        limits: dict[str, float] | None = None,
        gross_limit: float | None = None,
        interval_s: float = 0.2,
    ) -> None:
        self.desk, self.limits, self.gross_limit, self.interval_s = desk, limits, gross_limit, interval_s
        self._last: dict[str, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reports: list[RiskReport] = []

    def tick(self) -> RiskReport | None:
        """One look: a new report if positions changed since the last one, else None."""
        positions = self.desk.positions()
        if positions == self._last:
            return None
        self._last = positions
        report = self.desk.update_risk_metrics(limits=self.limits, gross_limit=self.gross_limit)
        self.reports.append(report)
        return report

    def start(self) -> RiskWatcher:
        def run() -> None:
            while not self._stop.wait(self.interval_s):
                self.tick()

        self._thread = threading.Thread(target=run, name="risk-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
