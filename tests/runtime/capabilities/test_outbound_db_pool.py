"""The connection pool's warm path (runtime/capabilities/outbound_db/pool.py), against a real
redis-server: a request that finds an idle live connection keeps its app's CPU turn (giving it
back would let another guest of the app run and make this one wait for a turn again, for a
wait that does not happen); opening a connection, or replacing one the server closed, gives the
turn back while it waits on the network."""

from __future__ import annotations

import logging
import time
from typing import Any

from runtime.capabilities.outbound_db.pool import ConnectionPool
from runtime.capabilities.redis.client import RedisDriver, parse_address
from runtime.core.context import RequestContext, bind
from tests.support.db_servers import RedisServer


class TurnLog:
    """The scheduler's side of RequestContext.waiting: counts the turns given back."""

    def __init__(self) -> None:
        self.given = 0
        self.taken = 0

    def give(self) -> None:
        self.given += 1

    def take(self) -> None:
        self.taken += 1


def _context(turns: TurnLog) -> RequestContext:
    # The pool reads only the deadline and the wait hooks of the request's context.
    app: Any = None
    ctx = RequestContext(app=app, component=app, settings=app, deadline=time.monotonic() + 30,
                         log=logging.getLogger("test"))
    ctx.on_wait, ctx.on_resume = turns.give, turns.take
    return ctx


def _ping(conn: Any) -> Any:
    conn.send_command("PING")
    return conn.read_response()


def test_a_warm_connection_is_lent_without_giving_the_turn_back(redis_server: RedisServer) -> None:
    pool: ConnectionPool[Any] = ConnectionPool(RedisDriver(5.0), limit=2)
    key = parse_address(redis_server.url)
    turns = TurnLog()
    admin: Any = redis_server.client()
    try:
        with bind(_context(turns)):
            first = pool.acquire(key, time.monotonic() + 10)  # connects: a wait on the network
            assert (turns.given, turns.taken) == (1, 1)
            first.release()

            again = pool.acquire(key, time.monotonic() + 10)  # idle and alive: no wait
            assert again.item is first.item
            assert (turns.given, turns.taken) == (1, 1)
            assert _ping(again.conn) == "PONG"
            again.release()

            # The server closes the idle connection: it is dropped, and the new connect waits.
            admin.client_kill_filter(skipme=True, _type="normal")
            time.sleep(0.1)
            fresh = pool.acquire(key, time.monotonic() + 10)
            assert fresh.item is not first.item
            assert (turns.given, turns.taken) == (2, 2)
            assert _ping(fresh.conn) == "PONG"
            fresh.release()
        assert pool.stats() == (1, 1)  # one connection, idle: the dead one's slot was freed
    finally:
        pool.close()
    assert pool.stats() == (0, 0)
