"""Outbound MQTT: `fermyon:spin/mqtt@2.0.0` (client.py: paho-mqtt clients shared per app and
address; host.py: the guest bindings)."""
