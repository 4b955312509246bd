"""Guest bindings for outbound MQTT: `fermyon:spin/mqtt@2.0.0`.

As Spin's `factor-outbound-mqtt`: `open` checks the address against the component's
`allowed_outbound_hosts` (scheme `mqtt`, default port 1883) before anything touches the network
(`connection-failed("address ... is not permitted")`) and parses it as rumqttc does (a
`client_id` parameter is required; otherwise `invalid-address`); the broker is contacted at the
first `publish`, whose network failures are `connection-failed`. The client is shared per app
and address (client.py). `publish` returns once the broker has the message at the requested QoS.

`spin:mqtt/mqtt@3.0.0` is not served: its functions are component-model `async`, which this
runtime (wasmtime-py 50) cannot define; a component importing it is refused at load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.capabilities.outbound_db import guest
from runtime.capabilities.outbound_db.pool import blocked_networks, max_connections
from runtime.capabilities.support.wit import case, err, ok
from runtime.core import context
from runtime.core.contract import InterfaceImpl, resource_type_id
from runtime.core.values import own

if TYPE_CHECKING:
    from runtime.capabilities.mqtt.client import Target

NAME = "spin-outbound-mqtt"
V2_CONNECTION = resource_type_id("fermyon:spin/mqtt", "connection")


@dataclass(eq=False)
class _Handle:
    """A guest's connection: the target; the shared client is taken per publish."""

    app: object
    target: Target
    released: bool = field(default=False)

    def release(self) -> None:
        self.released = True  # nothing held between publishes


def _error(exc: Exception) -> Any:
    tag = getattr(exc, "tag", "other")
    message = getattr(exc, "message", None)
    if tag in ("invalid-address", "too-many-connections"):
        return err(case(tag))
    return err(case(tag, message if message is not None else str(exc)))


def _open(store: Any, address: str, username: str, password: str, keep_alive: int) -> Any:
    from runtime.capabilities.mqtt.client import MqttError, parse

    ctx = context.current()
    if not guest.allows(guest.allowed(NAME), address, "mqtt"):
        guest.note_failed_open("mqtt", address, "not allowed by allowed_outbound_hosts")
        return err(case("connection-failed", f"address {address} is not permitted"))
    try:
        target = parse(address, username, password, int(keep_alive))
    except MqttError as exc:
        return _error(exc)
    return ok(own(guest.hold(_Handle(ctx.app, target)), V2_CONNECTION))


def _publish(store: Any, handle: Any, topic: str, payload: bytes, qos: str) -> Any:
    from runtime.capabilities.mqtt.client import QOS, MqttError, clients_for

    h = guest.get(store, handle, _Handle)
    ctx = context.current()
    clients = clients_for(h.app, max_connections("outbound_mqtt"), blocked_networks())
    try:
        with ctx.waiting():  # the broker's CONNACK, a free client: waits on the network
            client = clients.acquire(h.target, ctx.deadline)
        try:
            with ctx.waiting():
                client.publish(topic, bytes(payload), QOS[qos], ctx.deadline)
        finally:
            clients.release(client)
    except MqttError as exc:
        guest.note_failed_open("mqtt", f"mqtt://{h.target.host}:{h.target.port}", str(exc))
        return _error(exc)
    return ok(None)


class MqttCapability(guest.OutboundDbCapability):
    name = NAME
    interfaces = frozenset({"fermyon:spin/mqtt"})

    def provides(self, interface: str) -> bool:
        return interface == "fermyon:spin/mqtt"

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        return InterfaceImpl(
            resources={"connection": (V2_CONNECTION, guest.drop)},
            funcs={"[static]connection.open": _open, "[method]connection.publish": _publish},
        )

