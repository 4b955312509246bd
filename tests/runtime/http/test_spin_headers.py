"""spin-* headers, mount-prefix stripping and reserved routes (runtime/http/spin_headers.py)."""

from __future__ import annotations

import json

import pytest

from registry.locked import LockedTrigger
from runtime.http.routes import RouteMatch, Router, http_route
from runtime.http.spin_headers import (
    AppPath,
    format_client_addr,
    full_url,
    guest_request_headers,
    normalize_prefix,
    path_match_header,
    spin_headers,
    strip_mount_prefix,
    well_known_response,
)


def match(route: str, path: str) -> RouteMatch:
    r = http_route(
        LockedTrigger(id="t", trigger_type="http", trigger_config={"route": route, "component": "c"})
    )
    assert r is not None
    m = Router([r]).match(path)
    assert m is not None
    return m


def test_conformance_request_shape() -> None:
    """Route /base/:path_segment/:path_end/..., GET /base/path/end/rest?key=value, Host example.com."""
    app_path = strip_mount_prefix("/base/path/end/rest", "key=value", "")
    assert app_path == AppPath("/base/path/end/rest", "key=value")
    assert app_path.path_with_query == "/base/path/end/rest?key=value"
    m = match("/base/:path_segment/:path_end/...", app_path.path)
    headers = spin_headers(
        scheme="http",
        host="example.com",
        path="/base/path/end/rest",
        query="key=value",
        mount_prefix="",
        match=m,
        client_addr=("127.0.0.1", 54321),
    )
    assert headers == [
        ("spin-path-info", "/rest"),
        ("spin-full-url", "http://example.com/base/path/end/rest?key=value"),
        ("spin-matched-route", "/base/:path_segment/:path_end/..."),
        ("spin-base-path", "/"),
        ("spin-raw-component-route", "/base/:path_segment/:path_end/..."),
        ("spin-component-route", "/base/:path_segment/:path_end"),
        ("spin-client-addr", "127.0.0.1:54321"),
        ("spin-path-match-path-segment", "path"),
        ("spin-path-match-path-end", "end"),
    ]


def test_spins_default_headers_case() -> None:
    m = match("/foo/...", "/foo/bar")
    h = dict(
        spin_headers(
            scheme="https",
            host="fermyon.dev",
            path="/foo/bar",
            query="key1=value1&key2=value2",
            mount_prefix="",
            match=m,
            client_addr=("127.0.0.1", 8777),
        )
    )
    assert h == {
        "spin-full-url": "https://fermyon.dev/foo/bar?key1=value1&key2=value2",
        "spin-path-info": "/bar",
        "spin-matched-route": "/foo/...",
        "spin-base-path": "/",
        "spin-raw-component-route": "/foo/...",
        "spin-component-route": "/foo",
        "spin-client-addr": "127.0.0.1:8777",
    }


def test_spins_named_wildcard_case() -> None:
    m = match("/foo/:userid/...", "/foo/42/bar")
    h = dict(
        spin_headers(
            scheme="https",
            host="fermyon.dev",
            path="/foo/42/bar",
            query="",
            mount_prefix="",
            match=m,
            client_addr=("127.0.0.1", 8777),
        )
    )
    assert h["spin-full-url"] == "https://fermyon.dev/foo/42/bar"
    assert h["spin-path-info"] == "/bar"
    assert h["spin-matched-route"] == "/foo/:userid/..."
    assert h["spin-component-route"] == "/foo/:userid"
    assert h["spin-path-match-userid"] == "42"


def test_mounted_app_headers() -> None:
    app_path = strip_mount_prefix("/hello/api/items/7", "x=1", "/hello")
    assert app_path is not None and app_path.path_with_query == "/api/items/7?x=1"
    m = match("/api/:kind/...", app_path.path)
    h = spin_headers(
        scheme="https",
        host="apps.example:8443",
        path="/hello/api/items/7",
        query="x=1",
        mount_prefix="/hello",
        match=m,
        client_addr=("::1", 40000),
    )
    assert h == [
        ("spin-path-info", "/7"),
        ("spin-full-url", "https://apps.example:8443/hello/api/items/7?x=1"),
        ("spin-matched-route", "/api/:kind/..."),
        ("spin-base-path", "/hello"),
        ("spin-raw-component-route", "/api/:kind/..."),
        ("spin-component-route", "/api/:kind"),
        ("spin-client-addr", "[::1]:40000"),
        ("spin-path-match-kind", "items"),
    ]


def test_route_root_and_exact_route_values() -> None:
    m = match("/", "/")
    h = dict(
        spin_headers(
            scheme="http", host="", path="/", query="", mount_prefix="", match=m, client_addr=("1.2.3.4", 5)
        )
    )
    assert h["spin-matched-route"] == ""
    assert h["spin-raw-component-route"] == "/"
    assert h["spin-component-route"] == "/"
    assert h["spin-path-info"] == ""
    assert h["spin-full-url"] == "http://localhost/"  # no Host header -> localhost
    m = match("/...", "/")
    h = dict(
        spin_headers(
            scheme="http", host="h", path="/", query="", mount_prefix="", match=m, client_addr=("1.2.3.4", 5)
        )
    )
    assert (h["spin-matched-route"], h["spin-component-route"], h["spin-path-info"]) == ("/...", "", "/")


@pytest.mark.parametrize(
    ("path", "query", "prefix", "expected"),
    [
        ("/hello/a", "x", "/hello", "/a?x"),
        ("/hello", "", "/hello", "/"),
        ("/hello/", "", "/hello", "/"),
        ("/hello", "q=1", "/hello/", "/?q=1"),
        ("/hello/a/b/", "", "hello", "/a/b/"),
        ("/a", "x=1&y", "", "/a?x=1&y"),
        ("/a", "", "/", "/a"),
        ("", "", "", "/"),
        ("/hello%20x/y", "", "/hello%20x", "/y"),  # raw prefix, raw path
    ],
)
def test_strip_mount_prefix(path: str, query: str, prefix: str, expected: str) -> None:
    app_path = strip_mount_prefix(path, query, prefix)
    assert app_path is not None
    assert app_path.path_with_query == expected


@pytest.mark.parametrize(
    ("path", "prefix"), [("/helloworld", "/hello"), ("/other", "/hello"), ("/", "/hello")]
)
def test_paths_outside_the_prefix(path: str, prefix: str) -> None:
    assert strip_mount_prefix(path, "", prefix) is None


def test_normalize_prefix() -> None:
    assert normalize_prefix("") == ""
    assert normalize_prefix("/") == ""
    assert normalize_prefix("//") == ""
    assert normalize_prefix("/hello/") == "/hello"
    assert normalize_prefix("hello") == "/hello"
    assert normalize_prefix("/a/b") == "/a/b"


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("user_id", "spin-path-match-user-id"),
        ("userid", "spin-path-match-userid"),
        ("userId", "spin-path-match-userid"),
        ("path_segment", "spin-path-match-path-segment"),
        ("a-b", "spin-path-match-a-b"),
    ],
)
def test_path_match_header_names(name: str, header: str) -> None:
    assert path_match_header(name) == header


def test_invalid_param_header_names_are_dropped_like_spin() -> None:
    m = match("/:naïve/:ok", "/x/y")
    names = [
        n
        for n, _ in spin_headers(
            scheme="http",
            host="h",
            path="/x/y",
            query="",
            mount_prefix="",
            match=m,
            client_addr=("1.1.1.1", 1),
        )
    ]
    assert "spin-path-match-ok" in names
    assert not [n for n in names if "na" in n and "match" in n]


def test_repeated_param_name_keeps_the_last_value() -> None:
    m = match("/:a/:a", "/x/y")
    h = spin_headers(
        scheme="http", host="h", path="/x/y", query="", mount_prefix="", match=m, client_addr=("1.1.1.1", 1)
    )
    assert [v for n, v in h if n == "spin-path-match-a"] == ["y"]


@pytest.mark.parametrize(
    ("addr", "text"),
    [(("127.0.0.1", 80), "127.0.0.1:80"), (("::1", 8080), "[::1]:8080"), (("fe80::1", 1), "[fe80::1]:1")],
)
def test_client_addr(addr: tuple[str, int], text: str) -> None:
    assert format_client_addr(addr) == text


def test_full_url() -> None:
    assert full_url("https", "example.com", "/a%20b", "x=%2F") == "https://example.com/a%20b?x=%2F"
    assert full_url("http", "", "/", "") == "http://localhost/"


def test_guest_request_headers() -> None:
    client = [
        ("host", b"example.com"),
        ("spin-path-info", b"/spoofed"),
        ("x-forwarded-prefix", b"/evil"),
        ("a", b"1"),
    ]
    spin = [("spin-path-info", "/real")]  # the host's own, as text
    # without a mount prefix: client headers as they came (Spin keeps client spin-*), then spin-*
    assert guest_request_headers(client, spin, "") == [*client, ("spin-path-info", b"/real")]
    # mounted: x-forwarded-prefix carries the prefix and replaces the client's
    assert guest_request_headers(client, spin, "/hello/") == [
        ("host", b"example.com"),
        ("spin-path-info", b"/spoofed"),
        ("a", b"1"),
        ("x-forwarded-prefix", b"/hello"),
        ("spin-path-info", b"/real"),
    ]


def test_well_known_health() -> None:
    r = well_known_response("/.well-known/spin/health", name="app", version=None, oci_image_digest=None)
    assert r is not None and (r.status, r.headers, r.body) == (200, (), b"OK")


def test_well_known_info() -> None:
    r = well_known_response(
        "/.well-known/spin/info", name="hello", version="0.1.0", oci_image_digest="sha256:ab"
    )
    assert r is not None
    assert r.status == 200
    assert r.headers == (("content-type", "application/json"),)
    assert r.body == b'{\n  "name": "hello",\n  "version": "0.1.0",\n  "oci_image_digest": "sha256:ab"\n}'
    r = well_known_response("/.well-known/spin/info", name="hello", version=None, oci_image_digest=None)
    assert r is not None and json.loads(r.body) == {"name": "hello"}


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/spin/",
        "/.well-known/spin/other",
        "/.well-known/spin/health/",
        "/.well-known/spin/info/x",
    ],
)
def test_well_known_other_paths_are_404(path: str) -> None:
    r = well_known_response(path, name="a", version=None, oci_image_digest=None)
    assert r is not None and (r.status, r.body) == (404, b"")


@pytest.mark.parametrize(
    "path", ["/", "/.well-known/spin", "/.well-known/spinach", "/x/.well-known/spin/health"]
)
def test_not_reserved(path: str) -> None:
    assert well_known_response(path, name="a", version=None, oci_image_digest=None) is None
