"""Outbound PostgreSQL: `spin:postgres/postgres@4.0.0` and `@3.0.0`, `fermyon:spin/postgres@2.0.0`
and the unversioned Spin 1.x interface (address.py: connection strings and the allow-list;
values.py: WIT values to and from psycopg; client.py: the pool driver and statements;
host.py: the guest bindings)."""
