"""Outbound MySQL: `fermyon:spin/mysql@2.0.0` and the unversioned Spin 1.x interface
(address.py: URLs and the allow-list; statement.py: `?` parameters; client.py: mysqlclient,
the pool driver and value conversion; host.py: the guest bindings)."""
