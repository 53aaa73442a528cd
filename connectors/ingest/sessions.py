"""End a gateway instance's persistent MQTT session on its region's broker (`jarvis ingest
drop-session`): a clean-session connect under its client id makes Mosquitto discard the session,
its share of the shared subscription and every message queued for it."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from jarvis.errors import JarvisError

CONNECT_TIMEOUT_S = 10.0


def end_session(host: str, port: int, client_id: str, user: str, password: str) -> None:
    """Connect once with clean_session under `client_id`, then disconnect. A client connected under
    that id is disconnected by the broker (a session takeover)."""
    done = threading.Event()
    refused: list[str] = []

    def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: mqtt.ReasonCode, props: object) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.on_connect = on_connect
    try:
        c.connect(host, port, keepalive=10)
    except OSError as e:
        raise JarvisError(f"the MQTT broker at {host}:{port} does not answer: {e}") from None
    c.loop_start()
    try:
        if not done.wait(CONNECT_TIMEOUT_S):
            raise JarvisError(f"the MQTT broker at {host}:{port} sent no CONNACK in {CONNECT_TIMEOUT_S:.0f} s")
        if refused:
            raise JarvisError(f"the MQTT broker at {host}:{port} refused the connect: {refused[0]}")
    finally:
        c.disconnect()
        c.loop_stop()
