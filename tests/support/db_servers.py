"""Real database servers for the outbound database tests, each a child process of the test run
in its own temporary directory, listening only on 127.0.0.1 on a free port, stopped by the
fixture (a server killed mid-test is simply not restarted).

Debian's packages (installed by .ci/run): redis-server, postgresql (15), mariadb-server,
mosquitto. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (its
directory is handed to that user); MariaDB runs with `--user` set to the current user. A missing
server is a skip locally and a failure under CI (tests.support.tools.require_tool).
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.tools import require_tool

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {text}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S}s")


def wait_until_connects(connect: Callable[[], object], what: str) -> None:
    """A listening server may still be starting up (PostgreSQL answers "the database system is
    starting up"): wait until a client really gets in."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            conn = connect()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        conn.close()  # type: ignore[attr-defined]
        return


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class _Server:
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    def stop(self) -> None:
        """Stop the server (fast shutdown: it closes its clients' connections)."""
        _stop(self.proc)

    def kill(self) -> None:
        _stop(self.proc, signal.SIGKILL)


class RedisServer(_Server):
    def __init__(self, root: Path) -> None:
        binary = require_tool("redis-server", "apt-get install redis-server")
        self.port = free_port()
        log = root / "redis.log"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(root), "--logfile", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.proc, "redis-server", log)
        self._admin: object | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self) -> object:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)

    def connections_received(self) -> int:
        """Every connection the server ever accepted (INFO stats total_connections_received),
        asked over one connection kept for it, so asking does not change the answer."""
        if self._admin is None:
            self._admin = self.client()
        return int(self._admin.info("stats")["total_connections_received"])  # type: ignore[attr-defined]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return require_tool(found[-1] if found else name, "apt-get install postgresql")


class PostgresServer(_Server):
    """PostgreSQL with trust authentication for user `postgres`, database `postgres`, and every
    connection logged (`connections()` counts them)."""

    def __init__(self) -> None:
        initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
        self.root = Path(tempfile.mkdtemp(prefix="lepton-pg-"))
        as_root = os.geteuid() == 0
        user = "postgres" if as_root else None
        if as_root:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        subprocess.run(
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, user=user, cwd=self.root, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120,
        )
        self.port = free_port()
        self.log = self.root / "postgres.log"
        self.proc = subprocess.Popen(
            [postgres, "-D", str(data), "-p", str(self.port), "-k", str(self.root),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "log_connections=on",
             "-c", "max_connections=60", "-c", "logging_collector=off"],
            user=user, cwd=self.root, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"),  # noqa: SIM115
        )
        wait_for_port(self.port, self.proc, "postgres", self.log)
        wait_until_connects(self.connect, "postgres")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def connect(self) -> object:
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True)

    def connections(self) -> int:
        """Connections the server ever received (its log, `log_connections`)."""
        return self.log.read_text(errors="replace").count("connection received:")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class MariaDbServer(_Server):
    """MariaDB with user `spin` (password `secret`) owning database `spin`."""

    USER, PASSWORD, DATABASE = "spin", "secret", "spin"

    def __init__(self) -> None:
        install = require_tool("mariadb-install-db", "apt-get install mariadb-server")
        server = require_tool("/usr/sbin/mariadbd", "apt-get install mariadb-server")
        self.root = Path(tempfile.mkdtemp(prefix="lepton-mariadb-"))
        data = self.root / "data"
        user = getpass.getuser()
        installed = subprocess.run(
            [install, "--no-defaults", f"--datadir={data}", f"--user={user}", "--skip-test-db",
             "--auth-root-authentication-method=normal"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180,
        )
        if installed.returncode != 0:  # say why: the exit status alone tells nothing
            raise RuntimeError(f"mariadb-install-db failed ({installed.returncode}):\n{installed.stdout.decode(errors='replace')}")
        init = self.root / "init.sql"
        init.write_text(
            f"CREATE DATABASE IF NOT EXISTS {self.DATABASE};\n"
            f"CREATE USER IF NOT EXISTS '{self.USER}'@'%' IDENTIFIED BY '{self.PASSWORD}';\n"
            f"GRANT ALL ON *.* TO '{self.USER}'@'%';\n"
        )
        self.port = free_port()
        log = self.root / "mariadb.log"
        self.proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={data}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.root / 'sock'}", f"--pid-file={self.root / 'pid'}", f"--user={user}",
             f"--init-file={init}", "--skip-name-resolve", f"--log-error={log}", "--innodb-buffer-pool-size=16M",
             "--max-connections=60", "--skip-log-bin", "--character-set-server=utf8mb4",
             "--collation-server=utf8mb4_general_ci"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.proc, "mariadbd", log)
        self._admin: object | None = None
        wait_until_connects(self.connect, "mariadbd")

    @property
    def url(self) -> str:
        return f"mysql://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/{self.DATABASE}"

    def connect(self) -> object:
        import MySQLdb

        return MySQLdb.connect(
            host="127.0.0.1", port=self.port, user=self.USER, password=self.PASSWORD, database=self.DATABASE,
            autocommit=True,
        )

    def connections(self) -> int:
        """Connection attempts the server ever received (status `Connections`), asked over one
        connection kept for it, so asking does not change the answer."""
        if self._admin is None:
            self._admin = self.connect()
        cur = self._admin.cursor()  # type: ignore[attr-defined]
        cur.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
        return int(cur.fetchone()[1])

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()  # type: ignore[attr-defined]
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class MosquittoBroker(_Server):
    def __init__(self, root: Path) -> None:
        binary = require_tool("mosquitto", "apt-get install mosquitto")
        if not os.path.isabs(binary):
            binary = shutil.which(binary) or "/usr/sbin/mosquitto"
        self.port = free_port()
        conf = root / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"user {getpass.getuser()}\nlog_dest file {root / 'mosquitto.log'}\nlog_type all\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, self.proc, "mosquitto", root / "mosquitto.log")
        self.log = root / "mosquitto.log"

    def connections(self) -> int:
        return self.log.read_text(errors="replace").count("New connection from")


class SilentListener:
    """A TCP listener that accepts connections and never answers (a hung server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def mariadb_server() -> Iterator[MariaDbServer]:
    server = MariaDbServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    broker.stop()


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()
