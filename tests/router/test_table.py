"""Routing table semantics (pure): host groups, wildcards, segment-boundary prefixes, 1,000 apps."""

from __future__ import annotations

import pytest

from router.table import RouteConflict, RoutingTable, request_host


def _table() -> RoutingTable[str]:
    return RoutingTable.build(
        [
            ("exact", ["hello.localhost"], "", "exact"),
            ("exact-api", ["hello.localhost"], "/api", "exact-api"),
            ("wild", ["*.example.com"], "", "wild"),
            ("wild-deep", ["*.eu.example.com"], "", "wild-deep"),
            ("any-root", [], "", "any-root"),
            ("any-hello", [], "/hello", "any-hello"),
            ("any-deep", [], "/hello/world/deep", "any-deep"),
        ]
    )


@pytest.mark.parametrize(
    ("host", "path", "app"),
    [
        ("hello.localhost", "/", "exact"),
        ("hello.localhost", "/api", "exact-api"),
        ("hello.localhost", "/api/", "exact-api"),
        ("hello.localhost", "/api/x/y", "exact-api"),
        ("hello.localhost", "/apix", "exact"),
        ("a.example.com", "/anything", "wild"),
        ("a.b.example.com", "/", "wild"),
        ("a.eu.example.com", "/", "wild-deep"),
        ("eu.example.com", "/", "wild"),
        ("example.com", "/", "any-root"),  # *.example.com does not match the bare domain
        ("other.test", "/hello", "any-hello"),
        ("other.test", "/hello/", "any-hello"),
        ("other.test", "/hello/x", "any-hello"),
        ("other.test", "/helloworld", "any-root"),
        ("other.test", "/hello/world", "any-hello"),
        ("other.test", "/hello/world/deep", "any-deep"),
        ("other.test", "/hello/world/deep/er/and/more", "any-deep"),
        ("other.test", "/hello/world/deeper", "any-hello"),
        ("", "/hello", "any-hello"),
        ("", "", "any-root"),
    ],
)
def test_lookup(host: str, path: str, app: str) -> None:
    route = _table().lookup(host, path)
    assert route is not None and route.app == app


def test_host_group_falls_through_when_no_prefix_matches() -> None:
    table = RoutingTable.build([("api", ["a.test"], "/api", 1), ("site", [], "", 2)])
    assert table.lookup("a.test", "/api/x").app == "api"  # type: ignore[union-attr]
    assert table.lookup("a.test", "/other").app == "site"  # type: ignore[union-attr]


def test_no_match_and_prefix_reported() -> None:
    table = RoutingTable.build([("a", ["a.test"], "/x", "t")])
    assert table.lookup("a.test", "/y") is None
    assert table.lookup("b.test", "/x") is None
    route = table.lookup("a.test", "/x/1")
    assert route is not None and route.prefix == "/x" and route.target == "t"


def test_conflict() -> None:
    with pytest.raises(RouteConflict, match="'one' and 'two'"):
        RoutingTable.build([("one", ["a.test"], "/p", 1), ("two", ["b.test", "a.test"], "/p", 2)])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello.Localhost", "hello.localhost"),
        ("hello.localhost:3000", "hello.localhost"),
        ("hello.localhost.", "hello.localhost"),
        ("HELLO.localhost.:8080", "hello.localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:3000", "[::1]"),
        ("[::1]", "[::1]"),
        ("", ""),
        (None, ""),
        ("a b", ""),
        ("evil/x", ""),
        ("a:b:c", ""),
        ("host:port", ""),
        ("[::1", ""),
        ("user@host", ""),
    ],
)
def test_request_host(raw: str | None, expected: str) -> None:
    assert request_host(raw) == expected


def test_thousand_apps_lookup_probes_do_not_scan() -> None:
    """Lookups with 1,000 apps touch only dict entries for the host and the path's segments."""
    entries = [(f"app{i}", [f"app{i}.test"], "", i) for i in range(500)]
    entries += [(f"p{i}", [], f"/p{i}", i) for i in range(500)]
    table = RoutingTable.build(entries)
    assert len(table) == 1000
    assert table.lookup("app499.test", "/x").app == "app499"  # type: ignore[union-attr]
    assert table.lookup("nope.test", "/p250/z").app == "p250"  # type: ignore[union-attr]
    assert table.lookup("nope.test", "/p2500") is None

    class CountingDict(dict):  # counts probes to prove the lookup does not iterate the apps
        probes = 0

        def get(self, key, default=None):  # type: ignore[override]
            CountingDict.probes += 1
            return super().get(key, default)

    table._any.routes = CountingDict(table._any.routes)
    table._exact = CountingDict(table._exact)
    table.lookup("nope.test", "/p250/a/b/c/d")
    assert CountingDict.probes <= 3
