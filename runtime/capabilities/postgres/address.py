"""A guest's PostgreSQL connection string, checked as Spin does before any connection.

Spin parses the address as tokio-postgres does (a `postgres://` URL or `key=value` pairs) and
checks every host, with its port, against `allowed_outbound_hosts` under the scheme `postgres`
(default port 5432); a Unix socket is refused. The parsed parameters are the pool key, so
connections with other credentials or options are never shared.

libpq (under psycopg) reads more than tokio-postgres would: service files, password files,
client certificates, a `hostaddr` that bypasses the host name. Only the parameters below are
accepted, so a guest can neither read the host's files nor reach an address it was not allowed.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable

from psycopg.conninfo import conninfo_to_dict

from runtime.capabilities.outbound_db.rdbms import DbError, ErrorKind
from runtime.capabilities.support.allowed_hosts import AllowedHosts

DEFAULT_PORT = 5432
ACCEPTED = frozenset(
    {
        "host", "port", "user", "password", "dbname", "sslmode", "application_name", "options",
        "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
        "tcp_user_timeout", "target_session_attrs", "channel_binding",
    }
)


def _failed(message: str) -> DbError:
    return DbError(ErrorKind.CONNECTION_FAILED, message)


@functools.lru_cache(maxsize=1024)
def parse_and_check(address: str, allowed: AllowedHosts) -> Hashable:
    """The pool key for `address`; DbError(connection-failed) if Spin would refuse it.
    Remembered (guests open the same few addresses on every request; errors are not kept)."""
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(address).items()}
    except Exception as exc:
        raise _failed(f"invalid connection string: {str(exc).splitlines()[0]}") from None
    for name in params:
        if name not in ACCEPTED:
            raise _failed(f"unsupported connection parameter {name!r}")
    hosts = [h for h in params.get("host", "").split(",") if h]
    ports = [p for p in params.get("port", "").split(",") if p]
    if not hosts:
        raise _failed("host missing")
    if "user" not in params:
        raise _failed("user missing")  # tokio-postgres needs one; libpq would guess the OS user
    for i, host in enumerate(hosts):
        if host.startswith(("/", "@")):
            raise _failed("Unix sockets are not supported on WebAssembly")
        port = ports[i] if i < len(ports) else (ports[0] if len(ports) == 1 else None)
        shown = f"[{host}]" if ":" in host else host
        url = shown + (f":{port}" if port else "")
        if not allowed.allows_url(url, "postgres"):
            raise _failed(f"address postgres://{url} is not permitted")
    params.pop("connect_timeout", None)  # the request's deadline decides
    return tuple(sorted(params.items()))
