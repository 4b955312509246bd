"""HTTP/1.1 on the shared port, attacked with raw sockets (issue 11): smuggling with both
Content-Length and Transfer-Encoding, a chunked upload past max_body, absolute-form request
targets, and the response head (the guest's own `server`/`date` once, a reason phrase).

Each fault is followed by a request to an unrelated app on a new connection: the neighbour still
serves. Every socket read is bounded (READ_TIMEOUT_S), so a connection the server wrongly keeps
open fails the test instead of hanging it.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from tests.support.fixtures import FIXTURES_DIR, build_python_app
from tests.support.server import RouterServer, echo_wasm, hello_wasm, push_app_to

pytestmark = pytest.mark.usefixtures("registry")

READ_TIMEOUT_S = 8.0
GUEST_SERVER = "lepton-test-guest/1.0"  # tests/fixtures/python_own_headers/app.py
GUEST_DATE = "Tue, 15 Nov 1994 08:12:31 GMT"
STATUS_LINE = re.compile(rb"HTTP/1\.[01] \d{3}[^\r\n]*\r\n")


@pytest.fixture(scope="module")
def served(registry, tmp_path_factory: pytest.TempPathFactory, router_cache_dir: Path):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("http")
    alpha = push_app_to(registry.host, "http/alpha:v1", hello_wasm("alpha"), work)
    neighbour = push_app_to(registry.host, "http/neighbour:v1", hello_wasm("neighbour"), work)
    echo = push_app_to(registry.host, "http/echo:v1", echo_wasm(), work)
    guest = push_app_to(registry.host, "http/guest:v1",
                        build_python_app(FIXTURES_DIR / "python_own_headers").read_bytes(), work)
    routes = work / "routes.toml"
    routes.write_text(f"""
[server]
cache_dir = "{router_cache_dir}"

[apps.alpha]
source = "{alpha}"
insecure = true
hosts = ["alpha.test"]

[apps.neighbour]
source = "{neighbour}"
insecure = true
hosts = ["neighbour.test"]

[apps.echo]
source = "{echo}"
insecure = true
hosts = ["echo.test"]
max_body = "64KiB"

[apps.guest]
source = "{guest}"
insecure = true
hosts = ["guest.test"]
max_body = "64KiB"
""")
    server = RouterServer(routes).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@dataclass
class Exchange:
    data: bytes  # everything the server sent
    closed: bool  # the server closed the connection (FIN or RST) within READ_TIMEOUT_S

    @property
    def status_lines(self) -> list[bytes]:
        return STATUS_LINE.findall(self.data)

    @property
    def status(self) -> int:
        return int(self.data.split(b" ", 2)[1])

    def headers(self) -> list[tuple[str, str]]:
        """The first response's header fields, names lower-cased, in order."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in head)]

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers() if k == name]


def _read_all(sock: socket.socket, data: bytes = b"") -> Exchange:
    sock.settimeout(READ_TIMEOUT_S)
    chunks = [data]
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return Exchange(b"".join(chunks), closed=True)
            chunks.append(chunk)
    except ConnectionResetError:
        return Exchange(b"".join(chunks), closed=True)
    except TimeoutError:
        return Exchange(b"".join(chunks), closed=False)


def _exchange(server: RouterServer, request: bytes) -> Exchange:
    with socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT_S) as sock:
        sock.sendall(request)
        return _read_all(sock)


def _assert_neighbour_serves(server: RouterServer) -> None:
    response = server.get("/", host="neighbour.test", timeout=10.0)
    assert (response.status_code, response.text) == (200, "neighbour      \n"), server.log()


# -- Content-Length with Transfer-Encoding --------------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: neighbour.test\r\n\r\n"


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 48\r\n",
        b"Content-Length: 0\r\nTransfer-Encoding: CHUNKED\r\n",
    ],
    ids=["cl-then-te", "te-then-cl", "te-upper-case"],
)
@pytest.mark.parametrize("target", [b"/", b"/.well-known/lepton/health"], ids=["app", "reserved"])
def test_content_length_with_transfer_encoding_is_refused_and_closed(served: RouterServer, framing: bytes,
                                                                     target: bytes) -> None:
    request = b"POST " + target + b" HTTP/1.1\r\nHost: alpha.test\r\n" + framing + b"\r\n0\r\n\r\n" + SMUGGLED
    answer = _exchange(served, request)
    assert len(answer.status_lines) == 1, answer.data  # the request behind it was not served
    assert answer.status == 400
    assert answer.closed, answer.data
    assert answer.values("connection") == ["close"]
    _assert_neighbour_serves(served)


def test_chunked_request_alone_keeps_the_connection(served: RouterServer) -> None:
    """The refusal is for the pair of headers only: plain chunked requests are served and pipelined."""
    request = (b"POST / HTTP/1.1\r\nHost: alpha.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: neighbour.test\r\nConnection: close\r\n\r\n")
    answer = _exchange(served, request)
    assert [line.split(b" ")[1] for line in answer.status_lines] == [b"200", b"200"], answer.data
    assert answer.data.endswith(b"neighbour      \n")


# -- a chunked upload past max_body -------------------------------------------------------------

CHUNK = b"%x\r\n" % 8192 + b"u" * 8192 + b"\r\n"


def _send_chunks(sock: socket.socket, count: int) -> None:
    """Send `count` chunks of 8 KiB, never the last chunk; stop early if the server closes."""
    for _ in range(count):
        try:
            sock.sendall(CHUNK)
        except (BrokenPipeError, ConnectionResetError):
            return


def _read_head(sock: socket.socket) -> bytes:
    sock.settimeout(READ_TIMEOUT_S)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


UPLOAD = b"POST /upload HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_chunked_upload_past_max_body_is_413_and_closed(served: RouterServer) -> None:
    # guest reads the whole body before answering: the host refuses it at 64 KiB.
    with socket.create_connection(("127.0.0.1", served.port), timeout=READ_TIMEOUT_S) as sock:
        sock.sendall(UPLOAD % b"guest.test")
        # Sent whole, as a client uploading a file does: it reads the answer only afterwards.
        _send_chunks(sock, 40)
        answer = _read_all(sock)
    assert answer.closed, f"the connection stayed open after: {answer.data!r}"
    assert answer.status == 413
    assert answer.values("connection") == ["close"]
    _assert_neighbour_serves(served)


def test_streamed_answer_to_an_upload_past_max_body_closes(served: RouterServer) -> None:
    # echo answers (200) at once and then echoes the body as it reads it; past 64 KiB the rest is
    # not read, and not waited for either: the response ends and the connection closes.
    with socket.create_connection(("127.0.0.1", served.port), timeout=READ_TIMEOUT_S) as sock:
        sock.sendall(UPLOAD % b"echo.test")
        head = _read_head(sock)
        _send_chunks(sock, 40)  # 320 KiB, and no last chunk
        answer = _read_all(sock, head)
    assert answer.closed, f"the connection stayed open after: {answer.data[:300]!r}"
    assert answer.status == 200
    _assert_neighbour_serves(served)


# -- absolute-form request targets (RFC 9112 3.2.2) -----------------------------------------------


@pytest.mark.parametrize("target", [b"http://alpha.test/any?q=1", b"HTTP://Alpha.Test:80/", b"http://alpha.test"])
def test_absolute_form_routes_by_its_authority(served: RouterServer, target: bytes) -> None:
    answer = _exchange(served, b"GET " + target + b" HTTP/1.1\r\nHost: neighbour.test\r\nConnection: close\r\n\r\n")
    assert (answer.status, len(answer.status_lines)) == (200, 1), answer.data
    assert answer.data.endswith(b"alpha          \n")
    _assert_neighbour_serves(served)


def test_absolute_form_gives_the_guest_the_authority_and_the_origin_form_path(served: RouterServer) -> None:
    answer = _exchange(served, b"GET http://echo.test:8080/a/b%20c?x=1 HTTP/1.1\r\nHost: other.test\r\n"
                               b"Connection: close\r\n\r\n")
    assert answer.status == 200, answer.data
    assert answer.values("x-echo-path") == ["/a/b%20c?x=1"]
    assert answer.values("x-echo-authority") == ["echo.test:8080"]
    assert answer.values("x-req-host") == ["echo.test:8080"]
    assert answer.values("x-req-spin-full-url") == ["http://echo.test:8080/a/b%20c?x=1"]


def test_absolute_form_reaches_the_reserved_paths(served: RouterServer) -> None:
    answer = _exchange(served, b"GET http://anything.test/.well-known/lepton/health HTTP/1.1\r\n"
                               b"Host: anything.test\r\nConnection: close\r\n\r\n")
    assert answer.status == 200 and answer.data.endswith(b"\r\n\r\nok\n"), answer.data


@pytest.mark.parametrize("target", [b"http:///x", b"http://user:pw@alpha.test/", b"http://alpha.test:port/"],
                         ids=["no-host", "userinfo", "bad-port"])
def test_absolute_form_without_a_usable_authority_is_400(served: RouterServer, target: bytes) -> None:
    # RFC 9110 4.2.1 and 4.2.4: an http URI with an empty host, or with userinfo, is invalid.
    answer = _exchange(served, b"GET " + target + b" HTTP/1.1\r\nHost: alpha.test\r\nConnection: close\r\n\r\n")
    assert (answer.status, len(answer.status_lines)) == (400, 1), answer.data
    _assert_neighbour_serves(served)


# -- the response head ---------------------------------------------------------------------------


def _assert_one_fresh_date(answer: Exchange) -> None:
    dates = answer.values("date")
    assert len(dates) == 1, answer.data
    assert parsedate_to_datetime(dates[0]).year >= 2024  # the server's clock, in IMF-fixdate


def test_guest_server_and_date_headers_are_sent_once_as_set(served: RouterServer) -> None:
    answer = _exchange(served, b"GET / HTTP/1.1\r\nHost: guest.test\r\nConnection: close\r\n\r\n")
    assert answer.status_lines == [b"HTTP/1.1 200 OK\r\n"], answer.data
    assert answer.values("server") == [GUEST_SERVER]
    assert answer.values("date") == [GUEST_DATE]
    assert answer.data.endswith(b"read 0 bytes\n")


def test_guest_headers_once_over_http2(served: RouterServer) -> None:
    with httpx.Client(http1=False, http2=True, timeout=10.0) as client:
        response = client.get(f"{served.base_url}/", headers={"host": "guest.test"})
        assert response.http_version == "HTTP/2"
        assert response.headers.get_list("server") == [GUEST_SERVER]
        assert response.headers.get_list("date") == [GUEST_DATE]
        plain = client.get(f"{served.base_url}/", headers={"host": "alpha.test"})
        assert plain.headers.get_list("server") == []
        assert len(plain.headers.get_list("date")) == 1


@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (b"GET / HTTP/1.1\r\nHost: alpha.test\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200 OK\r\n"),
        (b"GET / HTTP/1.1\r\nHost: nobody.test\r\nConnection: close\r\n\r\n", b"HTTP/1.1 404 Not Found\r\n"),
        (b"GET /.well-known/lepton/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200 OK\r\n"),
        (b"POST / HTTP/1.1\r\nHost: guest.test\r\nContent-Length: 70000\r\nConnection: close\r\n\r\n",
         b"HTTP/1.1 413 Payload Too Large\r\n"),  # hyper's wording (Python's is "Request Entity ...")
        (b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n"),  # answered by hypercorn itself
    ],
    ids=["app", "unmatched", "reserved", "too-large", "malformed"],
)
def test_responses_carry_a_reason_phrase_one_date_and_no_server(served: RouterServer, request_bytes: bytes,
                                                                 status_line: bytes) -> None:
    answer = _exchange(served, request_bytes)
    assert answer.status_lines == [status_line], answer.data
    assert answer.values("server") == []  # as Spin: no server header unless the guest sets one
    _assert_one_fresh_date(answer)
    _assert_neighbour_serves(served)


def test_admin_listener_head(served: RouterServer) -> None:
    response = httpx.get(f"{served.admin_url}/status.json", timeout=10.0)
    assert response.status_code == 200 and response.reason_phrase == "OK"
    assert response.headers.get_list("server") == []
    assert len(response.headers.get_list("date")) == 1
