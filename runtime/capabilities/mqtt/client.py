"""MQTT through paho-mqtt: one client per app and address, shared by the requests that use it.

An MQTT client id may be connected only once (a broker disconnects the older session when the
same id connects again), so concurrent requests publishing to one address share one paho client
instead of each opening its own, as Spin's per-request clients would. The client connects at the
first publish (as Spin's rumqttc does), runs paho's network thread, and is closed when it breaks,
after IDLE_TIMEOUT_S unused, or when the app is unloaded. An app has at most `limit` clients.

Waits (the CONNACK, a publish's completion: written for QoS 0, PUBACK for 1, PUBCOMP for 2) end at
the request's deadline; paho's own thread does the network work.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import weakref
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from runtime.capabilities.outbound_db.pool import DEFAULT_MAX_CONNECTIONS, IDLE_TIMEOUT_S
from runtime.capabilities.outbound_db.watchdog import WATCHDOG
from runtime.capabilities.support.blocked_networks import BlockedNetworks, DestinationProhibited, checked_host

QOS = {"at-most-once": 0, "at-least-once": 1, "exactly-once": 2}
_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}
# rumqttc's other URL options tune its own client; they have no meaning for paho's and are ignored.
_TUNING = frozenset(
    {"keep_alive_secs", "max_incoming_packet_size_bytes", "max_outgoing_packet_size_bytes",
     "request_channel_capacity_num", "max_request_batch_num", "pending_throttle_usecs", "inflight_num",
     "conn_timeout_secs"}
)


class MqttError(Exception):
    def __init__(self, tag: str, message: str | None = None) -> None:
        super().__init__(tag if message is None else f"{tag}: {message}")
        self.tag = tag  # the error case: invalid-address, too-many-connections, connection-failed, other
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where and as whom to connect: the key clients are shared by."""

    host: str
    port: int
    tls: bool
    client_id: str
    clean_session: bool
    username: str
    password: str
    keep_alive_s: int

    def __repr__(self) -> str:  # never show the password
        return f"Target({self.host}:{self.port}, client_id={self.client_id!r})"


def parse(address: str, username: str, password: str, keep_alive_s: int) -> Target:
    """As rumqttc's MqttOptions::parse_url: a scheme, a host, and a `client_id` parameter."""
    try:
        url = urllib.parse.urlsplit(address)
        port = url.port
    except ValueError:
        raise MqttError("invalid-address") from None
    if url.scheme not in _SCHEMES or not url.hostname:
        raise MqttError("invalid-address")
    options = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    client_id = options.pop("client_id", None)
    clean = options.pop("clean_session", "true").lower()
    if not client_id or clean not in ("true", "false") or any(k not in _TUNING for k in options):
        raise MqttError("invalid-address")
    tls = _SCHEMES[url.scheme]
    return Target(
        host=url.hostname, port=port or (8883 if tls else 1883), tls=tls, client_id=client_id,
        clean_session=clean == "true", username=username, password=password, keep_alive_s=max(0, keep_alive_s),
    )


class SharedClient:
    """One connected paho client; `publish` is safe from several request threads at once."""

    def __init__(self, target: Target, blocked: BlockedNetworks | None = None) -> None:
        self.target = target
        self._blocked = blocked or BlockedNetworks()
        self.users = 0
        self.idle_since = time.monotonic()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._failure: str | None = None
        self._started = False
        self.broken = False
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=target.client_id, clean_session=target.clean_session,
            protocol=paho.MQTTv311,
        )
        client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        self._client = client

    # paho's network thread calls these
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._fail(f"connection refused: {reason}")
        else:
            self._connected.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._fail("could not connect to the MQTT broker")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._fail(f"disconnected: {reason}")

    def _fail(self, message: str) -> None:
        self._failure = self._failure or message
        self.broken = True
        self._connected.set()  # wake anyone waiting for the CONNACK

    def connect(self, deadline: float) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                t = self.target
                try:  # the app's block_networks, before any socket opens
                    host = checked_host(t.host, t.port, t.tls, self._blocked)
                except (DestinationProhibited, OSError) as exc:
                    self._fail(str(exc))
                    raise MqttError("connection-failed", str(exc)) from None
                self._client.connect_timeout = max(0.1, deadline - time.monotonic())
                self._client.connect_async(host, t.port, keepalive=t.keep_alive_s)  # 0: no keep-alive
                self._client.loop_start()
        if not self._connected.wait(max(0.0, deadline - time.monotonic())):
            self.broken = True
            raise MqttError("connection-failed", "no answer from the MQTT broker before the request's deadline")
        if self._failure is not None:
            raise MqttError("connection-failed", self._failure)

    def publish(self, topic: str, payload: bytes, qos: int, deadline: float) -> None:
        self.connect(deadline)
        try:
            info = self._client.publish(topic, payload, qos)
        except ValueError as exc:  # an invalid topic
            raise MqttError("other", str(exc)) from None
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError("connection-failed", paho.error_string(info.rc))
        remaining = deadline - time.monotonic()
        try:
            info.wait_for_publish(max(0.0, remaining))
        except (RuntimeError, ValueError) as exc:
            raise MqttError("connection-failed", str(exc)) from None
        if not info.is_published():
            raise MqttError("connection-failed", "the publish was not acknowledged before the request's deadline")

    def close(self) -> None:
        # loop_stop joins paho's thread (up to a second): never on a request's thread.
        def stop() -> None:
            self._client.disconnect()
            self._client.loop_stop()

        threading.Thread(target=stop, name="lepton-mqtt-close", daemon=True).start()


class Clients:
    """An app's MQTT clients: at most `limit`, shared per target."""

    def __init__(self, limit: int = DEFAULT_MAX_CONNECTIONS, blocked: BlockedNetworks | None = None) -> None:
        self.limit = limit
        self.blocked = blocked
        self._cond = threading.Condition()
        self._clients: dict[Target, SharedClient] = {}
        self._closed = False
        WATCHDOG.add_reaper(self)

    def acquire(self, target: Target, deadline: float) -> SharedClient:
        closing: list[SharedClient] = []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise MqttError("connection-failed", "the app was unloaded")
                    client = self._clients.get(target)
                    if client is not None and client.broken:
                        # Replaced now; closed when the requests still holding it let go.
                        del self._clients[target]
                        if client.users == 0:
                            closing.append(client)
                        client = None
                    if client is not None:
                        client.users += 1
                        return client
                    if client is None and len(self._clients) < self.limit:
                        client = self._clients[target] = SharedClient(target, self.blocked)
                        client.users += 1
                        return client
                    idle = [c for c in self._clients.values() if c.users == 0]
                    if client is None and idle:
                        oldest = min(idle, key=lambda c: c.idle_since)
                        closing.append(self._clients.pop(oldest.target))
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise MqttError("too-many-connections")
                    self._cond.wait(remaining)
        finally:
            for c in closing:
                c.close()

    def release(self, client: SharedClient) -> None:
        closing = None
        with self._cond:
            client.users -= 1
            client.idle_since = time.monotonic()
            current = self._clients.get(client.target) is client
            if client.users == 0 and (client.broken or self._closed or not current):
                if current:
                    del self._clients[client.target]
                closing = client
            self._cond.notify_all()
        if closing is not None:
            closing.close()

    def reap(self, now: float) -> None:
        with self._cond:
            stale = [c for c in self._clients.values() if c.users == 0 and now - c.idle_since > IDLE_TIMEOUT_S]
            for c in stale:
                del self._clients[c.target]
        for c in stale:
            c.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = [c for c in self._clients.values() if c.users == 0]
            for c in idle:
                del self._clients[c.target]
            self._cond.notify_all()
        for c in idle:
            c.close()


_lock = threading.Lock()
_by_app: dict[int, Clients] = {}


def clients_for(app: object, limit: int = DEFAULT_MAX_CONNECTIONS, blocked: BlockedNetworks | None = None) -> Clients:
    """The app's clients, made at its first publish with its cap (`[outbound_mqtt]
    max_connections`) and block list: a runtime config that changes either means a new load."""
    with _lock:
        clients = _by_app.get(id(app))
        if clients is None:
            clients = _by_app[id(app)] = Clients(limit, blocked)
            weakref.finalize(app, _unload, id(app))
        return clients


def _unload(key: int) -> None:
    with _lock:
        clients = _by_app.pop(key, None)
    if clients is not None:
        clients.close()
