"""Smart factory: devices report over MQTT (the ingest gateway's bridge), never through the SDK.

CRDTs (pipeline `factory`):
  production:<line>          G-Counter    units produced: many devices add concurrently, never
                                          subtract, and the total is the sum of every report
  quality:<line>             time series  quality scores 0-100 (the verifier refuses others)
  sensor:<device>-<metric>   time series  raw readings (telemetry: scored for confidence)
  equipment:<device>         LWW          the device's latest status

`process_iot_data(device_id, sensor_data)` turns one device report into MQTT messages (QoS 1):
`jarvis/ops/<object>` for operations, `telemetry/<object>` for points. The broker holds each
message until the gateway has it in Kafka (manual acks), so a gateway crash loses nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from pipelines.apps._common import AppError, name


def production_id(line: str) -> str:
    return f"production:{line}"


def quality_id(line: str) -> str:
    return f"quality:{line}"


def sensor_id(device_id: str, metric: str) -> str:
    return f"sensor:{device_id}-{metric}"


def equipment_id(device_id: str) -> str:
    return f"equipment:{device_id}"


def messages(
    device_id: str, sensor_data: dict[str, Any], now: float | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The MQTT (topic, payload) pairs one device report becomes. `sensor_data` holds `line`, and
    any of: `produced` (units since the last report), `quality` (0-100), `status`, `readings`
    ({metric: number}), `ts` (default now)."""
    name("device_id", device_id)
    if not isinstance(sensor_data, dict):
        raise AppError(f"sensor_data must be an object, got {type(sensor_data).__name__}")
    line = name("line", sensor_data.get("line"))
    ts = float(sensor_data.get("ts", now if now is not None else time.time()))
    out: list[tuple[str, dict[str, Any]]] = []
    produced = sensor_data.get("produced", 0)
    if type(produced) is not int or produced < 0:
        raise AppError(f"produced must be a non-negative integer, got {produced!r}")
    if produced:
        out.append((f"jarvis/ops/{production_id(line)}", {"kind": "increment", "args": {"n": produced}}))
    if (q := sensor_data.get("quality")) is not None:
        if isinstance(q, bool) or not isinstance(q, int | float) or not 0 <= q <= 100:
            raise AppError(f"quality must be a number from 0 to 100, got {q!r}")
        out.append(
            (
                f"telemetry/{quality_id(line)}",
                {"ts": ts, "value": float(q), "metadata": {"device": device_id}},
            )
        )
    for metric, v in (sensor_data.get("readings") or {}).items():
        name("metric", metric)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise AppError(f"reading {metric} must be a number, got {v!r}")
        out.append((f"telemetry/{sensor_id(device_id, metric)}", {"ts": ts, "value": float(v)}))
    if (status := sensor_data.get("status")) is not None:
        value = {"status": name("status", status), "line": line, "ts": ts}
        out.append((f"jarvis/ops/{equipment_id(device_id)}", {"kind": "write", "args": {"value": value}}))
    return out


class Factory:
    """A device gateway publishing to the region's Mosquitto broker as one MQTT user."""

    def __init__(
        self, host: str, port: int, username: str, password: str, client_id: str | None = None
    ) -> None:
        self._mqtt = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"factory-{uuid.uuid4().hex[:8]}"
        )
        self._mqtt.username_pw_set(username, password)
        self._mqtt.max_inflight_messages_set(1000)
        self._mqtt.max_queued_messages_set(0)
        self._connack: list[Any] = []
        self._mqtt.on_connect = lambda _c, _u, _f, rc, _p: self._connack.append(rc)
        self._mqtt.loop_start()
        for _ in range(10):  # a broker just told of a new password re-reads its files in a moment
            self._connack.clear()
            self._mqtt.connect(host, port)
            deadline = time.monotonic() + 3
            while not self._connack and time.monotonic() < deadline:
                time.sleep(0.01)
            if self._connack and not self._connack[0].is_failure:
                break
            self._mqtt.disconnect()
            time.sleep(0.5)
        else:
            self._mqtt.loop_stop()
            raise AppError(f"MQTT at {host}:{port} refused {username!r}: {self._connack[:1] or 'no answer'}")
        self._infos: list[mqtt.MQTTMessageInfo] = []

    def process_iot_data(self, device_id: str, sensor_data: dict[str, Any]) -> int:
        """Publish one device report (QoS 1); returns how many messages it became."""
        msgs = messages(device_id, sensor_data)
        for topic, payload in msgs:
            self._infos.append(self._mqtt.publish(topic, json.dumps(payload), qos=1))
        return len(msgs)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until the broker has acknowledged (PUBACK) every message published so far."""
        deadline = time.monotonic() + timeout
        for info in self._infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise AppError(
                    f"the MQTT broker did not acknowledge a message within {timeout:.0f} s (rc {info.rc})"
                )
        self._infos = []

    def close(self) -> None:
        self.flush()
        self._mqtt.loop_stop()
        self._mqtt.disconnect()
