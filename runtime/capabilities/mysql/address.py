"""A guest's MySQL address, `mysql://user:password@host[:port]/database[?ssl-mode=...]`, checked
as Spin does: the whole URL against `allowed_outbound_hosts` under the scheme `mysql` (default
port 3306) before any connection; a denied one is `connection-failed("address ... is not
permitted")`. Spin's mysql_async accepts only URL parameters it knows; here that is `ssl-mode`
(or `sslmode`): TLS unless it is `DISABLED`.
"""

from __future__ import annotations

import functools
import urllib.parse
from dataclasses import dataclass

from runtime.capabilities.outbound_db.guest import allows
from runtime.capabilities.outbound_db.rdbms import DbError, ErrorKind
from runtime.capabilities.support.allowed_hosts import AllowedHosts

DEFAULT_PORT = 3306


@dataclass(frozen=True)
class Address:
    """The pool key: connections with other credentials or databases are never shared."""

    host: str
    port: int
    user: str
    password: str
    database: str | None
    tls: bool

    def __repr__(self) -> str:  # never show the password
        return f"Address({self.user}@{self.host}:{self.port}/{self.database}, tls={self.tls})"


def parse_and_check(address: str, allowed: AllowedHosts) -> Address:
    if not allows(allowed, address, "mysql"):
        raise DbError(ErrorKind.CONNECTION_FAILED, f"address {address} is not permitted")
    return _parse(address)


@functools.lru_cache(maxsize=1024)
def _parse(address: str) -> Address:
    """The parsed address, remembered (guests open the same few on every request); DbError
    (not remembered) for one mysql_async would refuse."""
    try:
        url = urllib.parse.urlsplit(address)
        port = url.port or DEFAULT_PORT
    except ValueError as exc:
        raise DbError(ErrorKind.CONNECTION_FAILED, f"invalid address: {exc}") from None
    if url.scheme != "mysql" or not url.hostname:
        raise DbError(ErrorKind.CONNECTION_FAILED, f"invalid address: {url.scheme}:// URL without a host")
    tls = False
    for name, value in urllib.parse.parse_qsl(url.query, keep_blank_values=True):
        if name.lower() not in ("ssl-mode", "sslmode"):
            raise DbError(ErrorKind.CONNECTION_FAILED, f"unknown URL parameter {name!r}")
        tls = value.lower() != "disabled"
    # libmysqlclient takes "localhost" for its Unix socket: the guest asked for TCP.
    host = "127.0.0.1" if url.hostname == "localhost" else url.hostname
    return Address(
        host=host,
        port=port,
        user=urllib.parse.unquote(url.username or ""),
        password=urllib.parse.unquote(url.password or ""),
        database=urllib.parse.unquote(url.path.lstrip("/")) or None,
        tls=tls,
    )
