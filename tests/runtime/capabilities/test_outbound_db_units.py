"""The pure parts of the outbound database capabilities: MySQL `?` parameters, the PostgreSQL,
MySQL, Redis and MQTT address rules, and the rdbms value lowering per interface version."""

from __future__ import annotations

import pytest

from runtime.capabilities.mqtt.client import MqttError
from runtime.capabilities.mqtt.client import parse as parse_mqtt
from runtime.capabilities.mysql.address import parse_and_check as mysql_address
from runtime.capabilities.mysql.statement import ParameterCountError, bind, placeholders
from runtime.capabilities.outbound_db.rdbms import Column, DbError, RowSet, Value, Version, lower_row_set
from runtime.capabilities.postgres.address import parse_and_check as pg_address
from runtime.capabilities.redis.client import InvalidAddress, parse_address
from runtime.capabilities.support.allowed_hosts import AllowedHosts


@pytest.mark.parametrize(
    ("statement", "count"),
    [
        ("SELECT ?", 1),
        ("SELECT '?', \"?\", `?` FROM t WHERE a = ?", 1),
        ("SELECT 'it''s ?' , 'a\\'?' , ?", 1),
        ("SELECT ? -- ?\n, ? # ?\n, ? /* ? */", 3),
        ("SELECT 1--?", 1),  # `--` without a space is two minus signs in MySQL
        ("SELECT '?", 0),  # an unterminated string swallows the rest
    ],
)
def test_mysql_placeholders(statement: str, count: int) -> None:
    assert len(placeholders(statement)) == count


def test_mysql_bind() -> None:
    assert bind("SELECT ?, '?', ?", [b"1", b"X'00'"]) == b"SELECT 1, '?', X'00'"
    with pytest.raises(ParameterCountError, match="takes 1 parameters but 0 was supplied"):
        bind("SELECT ?", [])


ALLOWED = AllowedHosts.parse(["postgres://db.example:5432", "mysql://127.0.0.1:3307", "redis://*:6379"])


def test_postgres_addresses() -> None:
    key = pg_address("postgres://spin:pw@db.example/app", ALLOWED)
    assert dict(key) == {"host": "db.example", "user": "spin", "password": "pw", "dbname": "app"}  # type: ignore[call-overload]
    assert dict(pg_address("host=db.example port=5432 user=u connect_timeout=99", ALLOWED)) == {  # type: ignore[call-overload]
        "host": "db.example", "port": "5432", "user": "u",
    }

    def refused(address: str) -> str:
        with pytest.raises(DbError) as info:
            pg_address(address, ALLOWED)
        return info.value.message

    assert refused("postgres://u@db.example:5433/app") == "address postgres://db.example:5433 is not permitted"
    assert refused("postgres://u@other.example/app") == "address postgres://other.example is not permitted"
    assert refused("host=/var/run/postgresql user=u") == "Unix sockets are not supported on WebAssembly"
    assert refused("postgres://db.example/app") == "user missing"
    assert refused("postgres://u@db.example/app?service=evil") == "unsupported connection parameter 'service'"
    assert refused("postgres://u@db.example/app?hostaddr=10.0.0.1") == "unsupported connection parameter 'hostaddr'"
    assert refused("host=db.example,other.example user=u").startswith("address postgres://other.example")


def test_mysql_addresses() -> None:
    address = mysql_address("mysql://spin:p%40ss@127.0.0.1:3307/app?ssl-mode=DISABLED", ALLOWED)
    assert (address.user, address.password, address.database, address.port, address.tls) == ("spin", "p@ss", "app", 3307, False)
    with pytest.raises(DbError, match="not permitted"):
        mysql_address("mysql://spin@127.0.0.1/app", ALLOWED)  # default port 3306
    with pytest.raises(DbError, match="unknown URL parameter"):
        mysql_address("mysql://spin@127.0.0.1:3307/app?prefer_socket=true", ALLOWED)
    assert "p@ss" not in repr(address)


def test_redis_and_mqtt_addresses() -> None:
    parsed = parse_address("redis://user:secret@cache.example:6380/2")
    assert (parsed.host, parsed.port, parsed.db, parsed.username, parsed.tls) == ("cache.example", 6380, 2, "user", False)
    assert "secret" not in repr(parsed)
    for bad in ("redis://", "http://cache.example", "unix:///tmp/redis.sock"):
        with pytest.raises(InvalidAddress):
            parse_address(bad)
    target = parse_mqtt("mqtt://broker.example?client_id=c1&clean_session=false", "u", "p", 30)
    assert (target.port, target.client_id, target.clean_session, target.keep_alive_s) == (1883, "c1", False, 30)
    for bad in ("mqtt://broker.example", "mqtt://broker.example?client_id=c&bogus=1", "http://b?client_id=c"):
        with pytest.raises(MqttError) as info:
            parse_mqtt(bad, "", "", 30)
        assert info.value.tag == "invalid-address"


def test_newer_cases_read_as_unsupported_in_older_versions() -> None:
    rows = RowSet([Column("d", "date"), Column("j", "jsonb"), Column("x", "other", "inet")],
                  [[Value("date", (2024, 1, 2)), Value("jsonb", b"{}"), Value("unsupported", b"\x02")]])

    def lowered(version: Version) -> tuple[list[object], list[object]]:
        rec = lower_row_set(rows, version)
        types = [getattr(c, "data-type") for c in rec.columns]
        values = [(v.tag, v.payload) for v in rec.rows[0]]
        return [t.tag if hasattr(t, "tag") else t for t in types], values

    assert lowered(Version.PG4) == (["date", "jsonb", "other"], [("date", (2024, 1, 2)), ("jsonb", b"{}"), ("unsupported", b"\x02")])
    assert lowered(Version.PG3) == (["date", "other", "other"], [("date", (2024, 1, 2)), ("unsupported", None), ("unsupported", None)])
    assert lowered(Version.V2) == (["other", "other", "other"], [("unsupported", None)] * 3)
