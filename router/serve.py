"""`lepton-router serve`: hypercorn on the shared listener(s), optional admin listener, N workers.

Sockets are bound once, in this process, and handed to every worker process (the way hypercorn's
own `--workers` does it), so N workers accept on the same port without SO_REUSEPORT games. We run
our own small supervisor instead of hypercorn.run.run because hypercorn's treats SIGHUP as "restart
all workers"; ours forwards SIGHUP to the workers, which hot-reload routes.toml in place. Each
worker has its own runtime and app versions; they share the on-disk registry and compiled caches.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any, cast

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HyperConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from router import config as config_mod
from router import http1_head, telemetry
from router.admin import create_admin_app
from router.app import RouterApp
from router.app_calls import ServedApps
from router.http_guard import HttpGuard
from router.loader import AppLoader
from router.manager import AppManager
from router.proxy import TrustedProxies

log = logging.getLogger("lepton.router")

GRACEFUL_TIMEOUT_S = 10.0
CRASH_LIMIT = 5  # worker exits within CRASH_WINDOW_S before the supervisor gives up
CRASH_WINDOW_S = 30
EVENT_LOOP_ENV = "LEPTON_EVENT_LOOP"  # "asyncio": the standard library's loop instead of uvloop


@dataclass(frozen=True)
class ServeOptions:
    routes_path: Path
    listen: tuple[str, ...] = ()  # overrides [server].listen
    admin_listen: tuple[str, ...] | None = None  # overrides [server].admin_listen
    workers: int | None = None  # overrides [server].workers
    access_log: bool = False
    watch: bool = True  # watch routes.toml; SIGHUP reloads either way
    log_level: str = "INFO"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (the default on Linux: see pyproject), else
    asyncio's. The loop runs the HTTP server and every request's dispatch, so its own cost is per
    request: with uvloop the Python spin-sdk hello with instance reuse served 1.07x (1 connection)
    and 1.12x (16 connections) the requests per second of asyncio's loop in one run
    (docs/explanation/execution-path.md). LEPTON_EVENT_LOOP=asyncio keeps asyncio's loop."""
    if os.environ.get(EVENT_LOOP_ENV, "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
        stream=sys.stderr,
    )


def _hypercorn_config(binds: tuple[str, ...], server: config_mod.ServerConfig, access_log: bool,
                      tls: bool) -> HyperConfig:
    hc = HyperConfig()
    hc.bind = list(binds)
    hc.graceful_timeout = GRACEFUL_TIMEOUT_S
    # Logger objects (not "-") so hypercorn logs through our handlers, once, in our format.
    hc.accesslog = logging.getLogger("hypercorn.access") if access_log else None
    hc.errorlog = logging.getLogger("hypercorn.error")
    # Responses carry the app's headers as set. hypercorn would append its own Date after the
    # app's (a guest that sets Date sent two) and `server: hypercorn-h11`, which Spin does not
    # send: router/http_guard.py adds Date only where a response has none.
    hc.include_server_header = False
    hc.include_date_header = False
    if tls and server.certfile is not None and server.keyfile is not None:
        hc.certfile = str(server.certfile)
        hc.keyfile = str(server.keyfile)
    return hc


def serve(options: ServeOptions) -> int:
    setup_logging(options.log_level)
    cfg = config_mod.load(options.routes_path)  # a bad file at startup is fatal (ConfigError)
    server = cfg.server
    workers = options.workers or server.workers
    main = _hypercorn_config(options.listen or server.listen, server, options.access_log, tls=True)
    admin_binds = server.admin_listen if options.admin_listen is None else options.admin_listen
    admin = _hypercorn_config(admin_binds, server, False, tls=False) if admin_binds else None
    main.workers = workers
    sockets = main.create_sockets()
    admin_sockets = admin.create_sockets() if admin is not None else None
    for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
        name = sock.getsockname()
        log.info("listening on %s", name if isinstance(name, str) else f"{name[0]}:{name[1]}")
    if workers <= 1:
        run_loop(_serve_worker(options, server, main, sockets, admin, admin_sockets, None))
        return 0
    # With SO_REUSEPORT each worker listens on its own socket and the kernel spreads new
    # connections across them. One shared listening socket would let whichever worker wakes first
    # accept a whole burst of connections (asyncio accepts up to `backlog` per wake-up), leaving
    # the other workers idle under keep-alive load. Our bound, never-listening sockets keep the
    # address reserved and proved bindable; unix:/fd:// listeners are shared instead.
    worker_sockets = None if _reuseport_capable(main.bind) else sockets
    return _supervise(options, server, workers, main, worker_sockets, sockets, admin, admin_sockets)


def _reuseport_capable(binds: list[str]) -> bool:
    return hasattr(socket, "SO_REUSEPORT") and not any(b.startswith(("unix:", "fd://")) for b in binds)


def _worker_entry(options: ServeOptions, server: config_mod.ServerConfig, main: HyperConfig,
                  sockets: Sockets | None, admin: HyperConfig | None, admin_sockets: Sockets | None,
                  shutdown_event: EventType) -> None:
    """Entry point of a worker process (spawned: everything here must be picklable)."""
    setup_logging(options.log_level)
    run_loop(_serve_worker(options, server, main, sockets, admin, admin_sockets, shutdown_event))


async def _serve_worker(options: ServeOptions, server: config_mod.ServerConfig, main: HyperConfig,
                        sockets: Sockets | None, admin: HyperConfig | None, admin_sockets: Sockets | None,
                        shutdown_event: EventType | None) -> None:
    # [server] as validated at startup: a worker (re)started later does not depend on the file
    # being valid at that moment; the apps come from the manager's first reload.
    http1_head.install()  # reason phrases in HTTP/1 status lines (this process's hypercorn)
    telemetry.setup()  # OpenTelemetry, if the OTEL_* variables ask for it: each worker exports on its own
    loader = AppLoader(server.cache_dir, server.state_dir, server.registry)
    manager = AppManager(options.routes_path, loader, listen=options.listen or server.listen,
                         tls=server.certfile is not None)
    loader.runtime.app_directory = ServedApps(manager)  # guests calling http://<app>.lepton.internal
    app = RouterApp(manager, TrustedProxies(server.trusted_proxies), watch=options.watch)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if shutdown_event is None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    else:
        poller = loop.create_task(_poll_event(shutdown_event, stop))

    if sockets is None:
        sockets = main.create_sockets()  # this worker's own SO_REUSEPORT sockets (main.workers > 1)
    servers = [worker_serve(wrap_app(cast(Any, HttpGuard(cast(Any, app))), main.wsgi_max_body_size, "asgi"), main,
                            sockets=sockets, shutdown_trigger=stop.wait)]
    if admin is not None and admin_sockets is not None:
        admin_app = HttpGuard(cast(Any, create_admin_app(manager)))
        servers.append(worker_serve(wrap_app(cast(Any, admin_app), admin.wsgi_max_body_size, "asgi"), admin,
                                    sockets=admin_sockets, shutdown_trigger=stop.wait))
    try:
        await asyncio.gather(*servers)
    finally:
        if shutdown_event is not None:
            poller.cancel()
        loader.close()


async def _poll_event(event: EventType, stop: asyncio.Event) -> None:
    parent = os.getppid()
    # Stop when the supervisor says so, or when it is gone (killed hard): no orphaned workers.
    while not event.is_set() and os.getppid() == parent:
        await asyncio.sleep(0.2)
    stop.set()


def _supervise(options: ServeOptions, server: config_mod.ServerConfig, workers: int, main: HyperConfig,
               sockets: Sockets | None, reserved: Sockets, admin: HyperConfig | None,
               admin_sockets: Sockets | None) -> int:
    ctx = multiprocessing.get_context("spawn")
    shutdown_event = ctx.Event()
    processes: list[BaseProcess] = []
    stopping = False

    def spawn() -> None:
        process = ctx.Process(
            target=_worker_entry,
            args=(options, server, main, sockets, admin, admin_sockets, shutdown_event),
            name="lepton-router-worker",
        )
        process.start()
        processes.append(process)

    def on_stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True
        shutdown_event.set()

    def on_hup(*_: Any) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGHUP)

    # Workers inherit "ignore SIGINT", so a terminal's Ctrl-C reaches only us and we stop them
    # gracefully through the shared event.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for _ in range(workers):
        spawn()
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    log.info("started %d workers", workers)

    gave_up = False
    crashes: list[float] = []
    while processes:
        wait([p.sentinel for p in processes], timeout=1.0)
        for process in list(processes):
            if process.exitcode is None:
                continue
            process.join()
            processes.remove(process)
            if stopping:
                continue
            now = time.monotonic()
            crashes = [t for t in crashes if now - t < CRASH_WINDOW_S] + [now]
            if len(crashes) > CRASH_LIMIT:
                # Exiting again and again right after start (e.g. a broken environment): give up.
                log.error("workers keep exiting (%d in %ds); stopping", len(crashes), CRASH_WINDOW_S)
                gave_up = True
                on_stop()
                continue
            log.error("worker %s exited with %s; starting a new one", process.pid, process.exitcode)
            spawn()
    for sock in [*reserved.secure_sockets, *reserved.insecure_sockets]:
        sock.close()
    return 1 if gave_up else 0
