"""Outbound Redis: `fermyon:spin/redis@2.0.0` and the unversioned Spin 1.x `fermyon:spin/redis`
(client.py: redis-py and the pool driver; host.py: the guest bindings)."""
