"""WAGI pure parts: argv template, CGI environment, stdout parsing (Spin v3 rules)."""

from __future__ import annotations

import pytest

from runtime.http.executors.wagi_cgi import (
    INSUFFICIENT_RESPONSE,
    WagiConfig,
    WagiConfigError,
    WagiRequest,
    build_argv,
    build_env,
    compose_response,
)


def test_argv_template() -> None:
    assert build_argv("${SCRIPT_NAME} ${ARGS}", "/wagi/x", "a=1&b=2") == ["/wagi/x", "a=1", "b=2"]
    assert build_argv("${SCRIPT_NAME} ${ARGS}", "/wagi/x", "") == ["/wagi/x", ""]
    assert build_argv("prog --path ${SCRIPT_NAME}", "/p", "q") == ["prog", "--path", "/p"]
    # raw, not decoded
    assert build_argv("${ARGS}", "/", "x=%20y") == ["x=%20y"]


def test_executor_config() -> None:
    assert WagiConfig.from_executor({"type": "wagi"}).argv == "${SCRIPT_NAME} ${ARGS}"
    assert WagiConfig.from_executor({"type": "wagi", "argv": "a ${ARGS}", "entrypoint": "_start"}).argv == "a ${ARGS}"
    with pytest.raises(WagiConfigError):
        WagiConfig.from_executor({"type": "wagi", "entrypoint": "main"})


SPIN_HEADERS = [
    ("spin-path-info", "/rest%20x"),
    ("spin-full-url", "http://example.com:3000/base/path/end/rest%20x?key=value&b"),
    ("spin-matched-route", "/base/:path_segment/:path_end/..."),
    ("spin-base-path", "/"),
    ("spin-raw-component-route", "/base/:path_segment/:path_end/..."),
    ("spin-component-route", "/base/:path_segment/:path_end"),
    ("spin-client-addr", "[::1]:5555"),
    ("spin-path-match-path-segment", "path"),
    ("spin-path-match-path-end", "end"),
]


def test_cgi_environment_is_exactly_spins() -> None:
    req = WagiRequest(
        method="POST",
        path="/base/path/end/rest%20x",
        query="key=value&b",
        headers=[
            ("host", "example.com:3000"),
            ("content-type", "text/plain"),
            ("x-custom-thing", "1"),
            ("authorization", "Bearer secret"),
            ("connection", "keep-alive"),
        ],
        body_length=11,
        client_ip="::1",
        http_version="1.1",
        spin_headers=SPIN_HEADERS,
    )
    env = build_env(req, {"FROM_COMPONENT": "yes"})
    assert env == {
        "FROM_COMPONENT": "yes",
        "AUTH_TYPE": "",
        "CONTENT_LENGTH": "11",
        "CONTENT_TYPE": "",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "QUERY_STRING": "key=value&b",
        "REMOTE_ADDR": "::1",
        "REMOTE_HOST": "::1",
        "REMOTE_USER": "",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/base/:path_segment/:path_end",
        "X_RAW_PATH_INFO": "/rest%20x",
        "PATH_INFO": "/rest%20x",  # the spin value (raw) overrides the decoded CGI one
        "PATH_TRANSLATED": "/rest x",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "3000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "WAGI/1",
        "HTTP_HOST": "example.com:3000",
        "HTTP_CONTENT_TYPE": "text/plain",
        "HTTP_X_CUSTOM_THING": "1",
        "X_FULL_URL": "http://example.com:3000/base/path/end/rest%20x?key=value&b",
        "X_MATCHED_ROUTE": "/base/:path_segment/:path_end/...",
        "X_BASE_PATH": "/",
        "X_RAW_COMPONENT_ROUTE": "/base/:path_segment/:path_end/...",
        "X_COMPONENT_ROUTE": "/base/:path_segment/:path_end",
        "X_CLIENT_ADDR": "[::1]:5555",
        "X_PATH_MATCH_PATH_SEGMENT": "path",
        "X_PATH_MATCH_PATH_END": "end",
    }


def test_server_name_defaults_without_host() -> None:
    req = WagiRequest("GET", "/", "", [], 0, "127.0.0.1", "2", [("spin-matched-route", "")])
    env = build_env(req)
    assert (env["SERVER_NAME"], env["SERVER_PORT"], env["SERVER_PROTOCOL"]) == ("default_host", "80", "HTTP/2.0")
    assert env["SCRIPT_NAME"] == ""


@pytest.mark.parametrize(
    ("stdout", "status", "headers", "body"),
    [
        (b"Content-Type: text/plain\n\nhello", 200, [("content-type", "text/plain")], b"hello"),
        (b"Content-Type: text/plain\r\n\r\nhi\r\nthere", 200, [("content-type", "text/plain")], b"hi\r\nthere"),
        (b"Status: 404 Not Found\nContent-Type: text/plain\n\nnope", 404, [("content-type", "text/plain")], b"nope"),
        (b"Location: /elsewhere\n\n", 302, [("location", "/elsewhere")], b""),
        (b"Location: /x\nStatus: 301\n\n", 301, [("location", "/x")], b""),
        (b"Status: 301\nLocation: /x\n\n", 301, [("location", "/x")], b""),
        (b"Status: abc\n\n", 502, [], b""),
        (b"Status: 99\n\n", 502, [], b""),
        (b"Content-Type: a\nX-Thing:  v  \nbroken line\n\nb", 200, [("content-type", "a"), ("x-thing", "v")], b"b"),
        (b"X-Only: 1\n\nbody", 500, [], INSUFFICIENT_RESPONSE.encode()),
        (b"Content-Type: text/plain", 500, [], INSUFFICIENT_RESPONSE.encode()),  # no blank line
    ],
)
def test_compose_response(stdout: bytes, status: int, headers: list, body: bytes) -> None:
    resp = compose_response(stdout)
    assert (resp.status, resp.headers, resp.body) == (status, headers, body)
