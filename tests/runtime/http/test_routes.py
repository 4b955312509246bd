"""Spin v3 route matching (runtime/http/routes.py): table tests, no wasm, no sockets.

Expected values follow Spin v3.6.3 (`crates/routes`) on routefinder 0.5.4 (see docs/reference/spin-compat.md, Route matching).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from registry.locked import LockedApp, LockedTrigger
from runtime.http.routes import (
    RouteError,
    Router,
    StaticResponse,
    http_route,
    normalize_route,
    parse_spec,
    wildcard_path_info,
)


def trigger(tid: str, route: Any, component: str | None = None, **extra: Any) -> LockedTrigger:
    config: dict[str, Any] = {"route": route, **extra}
    if component is not None:
        config["component"] = component
    return LockedTrigger(id=tid, trigger_type="http", trigger_config=config)


def router(*pairs: tuple[str, str]) -> Router:
    """(component id, route) pairs, in declaration order."""
    routes = [http_route(trigger(f"t{i}", r, c)) for i, (c, r) in enumerate(pairs)]
    return Router([r for r in routes if r is not None])


def app(
    *triggers: LockedTrigger, components: tuple[str, ...] = (), metadata: dict[str, Any] | None = None
) -> LockedApp:
    comps = components or tuple(
        sorted({t.trigger_config["component"] for t in triggers if "component" in t.trigger_config})
    )
    return LockedApp.from_json(
        {
            "spin_lock_version": 0,
            "metadata": metadata or {"name": "test"},
            "triggers": [t.to_json() for t in triggers],
            "components": [
                {"id": c, "source": {"content_type": "application/wasm", "digest": "sha256:00"}}
                for c in comps
            ],
        }
    )


def hit(r: Router, path: str) -> str | None:
    m = r.match(path)
    return None if m is None else m.route.lookup_key


# ------------------------------------------------------------------------------------------------
# Normalisation and parsing


@pytest.mark.parametrize(
    ("raw", "based"),
    [
        ("/", ""),
        ("", ""),
        ("/foo", "/foo"),
        ("foo", "/foo"),
        ("/foo/", "/foo"),
        ("/foo//", "/foo/"),  # only one trailing slash goes
        ("/...", "/..."),
        ("/foo/...", "/foo/..."),
        ("/users/:id/...", "/users/:id/..."),
    ],
)
def test_normalize_route(raw: str, based: str) -> None:
    assert normalize_route(raw) == based


@pytest.mark.parametrize("bad", ["/*named", "/:", "/a/:/b", "/*/x", "/x/*.json"])
def test_unparseable_routes_are_refused(bad: str) -> None:
    with pytest.raises(RouteError):
        parse_spec(bad)
    with pytest.raises(RouteError, match="associated with component c"):
        router(("c", bad))


def test_spec_segments_split_at_slashes_and_dots() -> None:
    kinds = [(s.kind.name, s.text) for s in parse_spec("/:a/:b.txt")]
    assert kinds == [("PARAM", "a"), ("SLASH", ""), ("PARAM", "b"), ("DOT", ""), ("EXACT", "txt")]
    kinds = [(s.kind.name, s.text) for s in parse_spec("/a//b.json")]
    assert kinds == [("EXACT", "a"), ("SLASH", ""), ("EXACT", "b."), ("EXACT", "json")]
    assert parse_spec("/") == ()


# ------------------------------------------------------------------------------------------------
# Spin's own routing cases


def test_exact_routes() -> None:
    r = router(("foo", "/foo"), ("foobar", "/foo/bar"))
    assert hit(r, "/foo") == "foo"
    assert hit(r, "/foo/bar") == "foobar"
    assert hit(r, "/foo/baz") is None
    assert hit(r, "/foobar") is None  # literal prefixes stop at segment boundaries
    assert hit(r, "/fo") is None


def test_wildcard_catches_everything() -> None:
    r = router(("all", "/..."))
    for path in ("/foo/bar", "/abc/", "/", "/this/should/be/captured"):
        assert hit(r, path) == "all"


@pytest.mark.parametrize("order", [1, -1])
def test_longest_wildcard_prefix_wins_regardless_of_order(order: int) -> None:
    pairs = [("one", "/one/..."), ("onetwo", "/one/two/..."), ("onetwothree", "/one/two/three/...")][::order]
    r = router(*pairs)
    assert hit(r, "/one/two/three/four") == "onetwothree"
    assert hit(r, "/one/two/x") == "onetwo"
    assert hit(r, "/one/two") == "onetwo"
    assert hit(r, "/one") == "one"


@pytest.mark.parametrize("order", [1, -1])
def test_exact_beats_wildcard(order: int) -> None:
    r = router(*[("exact", "/one"), ("wild", "/...")][::order])
    assert hit(r, "/one") == "exact"
    assert hit(r, "/one/") == "exact"
    assert hit(r, "/two") == "wild"


@pytest.mark.parametrize("order", [1, -1])
def test_exact_beats_param_beats_wildcard_segment_by_segment(order: int) -> None:
    pairs = [("wild", "/users/..."), ("param", "/users/:id"), ("exact", "/users/me"), ("deep", "/:any/me/x")]
    r = router(*pairs[::order])
    assert hit(r, "/users/me") == "exact"
    assert hit(r, "/users/42") == "param"
    assert hit(r, "/users/42/posts") == "wild"
    assert hit(r, "/users") == "wild"
    assert hit(r, "/users/me/x") == "wild"  # "users" (exact) beats ":any" at the first segment
    assert hit(r, "/other/me/x") == "deep"


def test_routefinder_priority_order() -> None:
    r = router(
        ("1", "/*"),
        ("2", "/hello"),
        ("3", "/:greeting"),
        ("4", "/hey/:world"),
        ("5", "/hey/earth"),
        ("6", "/:greeting/:world/*"),
    )
    assert [x.lookup_key for x in r.routes] == ["2", "5", "4", "3", "6", "1"]
    assert hit(r, "/hey/earth") == "5"
    m = r.match("/hey/mars")
    assert m is not None and m.named_params == {"world": "mars"}
    m = r.match("/hey/earth/wildcard/stuff")
    assert m is not None and m.route.lookup_key == "6"
    assert m.params == (("greeting", "hey"), ("world", "earth"))
    assert m.path_info == "/wildcard/stuff"
    assert hit(r, "/") == "1"


def test_several_params() -> None:
    r = router(("1", "/:a"), ("2", "/:a/:b"), ("3", "/:a/:b/:c"), ("4", "/:param1/specific/:param2"))
    assert hit(r, "/hi") == "1"
    assert hit(r, "/hi/there") == "2"
    assert hit(r, "/hi/there/hey") == "3"
    assert hit(r, "/hi/specific/anything") == "4"
    assert hit(r, "/") is None
    assert hit(r, "/a/b/c/d") is None


def test_dots() -> None:
    r = router(("1", "/:a.:b"), ("2", "/:a/:b.:c"), ("3", "/:a/:b"), ("4", "/:a/:b.txt"))
    assert hit(r, "/hello.world") == "1"
    assert hit(r, "/hi/there.world") == "2"
    assert hit(r, "/hi/yep") == "3"
    assert hit(r, "/hi/planet.txt") == "4"
    m = r.match("/hi/planet.txt")
    assert m is not None and m.params == (("a", "hi"), ("b", "planet"))


@pytest.mark.parametrize(
    ("route", "path", "captures"),
    [
        ("/:param", "/a.b.c.d", ["a.b.c.d"]),
        ("/:a.:b", "/a.b.c.d", ["a", "b.c.d"]),
        ("/:a.:b.:c", "/a.b.c.d", ["a", "b", "c.d"]),
        ("/:a.:b.:c.:d", "/a.b.c.d", ["a", "b", "c", "d"]),
        ("/:a.:b", "/a", None),
        ("/a.:b", "/a.hello", ["hello"]),
        ("/:a.:b", "/a.hello", ["a", "hello"]),
        ("/files/:name.json", "/files/x.json", ["x"]),
        ("/files/:name.json", "/files/x.yaml", None),
        ("/files/:name.json", "/files/x/y.json", None),
    ],
)
def test_param_captures(route: str, path: str, captures: list[str] | None) -> None:
    m = router(("c", route)).match(path)
    if captures is None:
        assert m is None
    else:
        assert m is not None
        assert [v for _, v in m.params] == captures


def test_trailing_and_leading_slashes_on_the_request_are_ignored() -> None:
    for route in ("/a", "/a/"):
        r = router(("c", route))
        for path in ("/a", "/a/", "//a//"):
            assert hit(r, path) == "c", (route, path)


def test_root_route() -> None:
    r = router(("root", "/"), ("foo", "/foo"))
    assert hit(r, "/") == "root"
    assert hit(r, "") == "root"
    assert hit(r, "/bar") is None
    m = r.match("/")
    assert m is not None and m.matched_route == "" and m.raw_route == "/"


@pytest.mark.parametrize(
    ("route", "path", "info"),
    [
        ("/...", "/1/2/3", "/1/2/3"),
        ("/1/...", "/1/2/3", "/2/3"),
        ("/test/...", "/test", ""),
        ("/test/...", "/test/", "/"),
        ("/test/...", "/test/hello", "/hello"),
        ("/test/...", "/test/hello/", "/hello/"),
        ("/...", "/", "/"),
        ("/test/*", "/test/a", "/a"),
        ("/test", "/test/", ""),  # exact routes have no path info
        ("/a/%2F/...", "/a/%2F/b%20c", "/b%20c"),  # raw, not decoded
    ],
)
def test_path_info_keeps_spins_trailing_slash_rule(route: str, path: str, info: str) -> None:
    m = router(("c", route)).match(path)
    assert m is not None
    assert m.path_info == info


def test_wildcard_path_info_helper() -> None:
    assert wildcard_path_info("", "/foo") == ""
    assert wildcard_path_info("", "/foo/") == "/"
    assert wildcard_path_info("bar", "/foo/bar") == "/bar"
    assert wildcard_path_info("bar", "/foo/bar/") == "/bar/"


def test_named_wildcard_with_trailing_wildcard() -> None:
    m = router(("c", "/1/:two/...")).match("/1/2/3")
    assert m is not None
    assert m.named_params == {"two": "2"}
    assert m.path_info == "/3"
    assert m.component_route == "/1/:two"


def test_wildcard_matches_with_or_without_trailing_part() -> None:
    r = router(("c", "/something/:anything/*"))
    assert hit(r, "/something/1/") == "c"
    assert hit(r, "/something/1") == "c"
    assert hit(r, "/something") is None


def test_match_values() -> None:
    m = router(("c", "/foo/...")).match("/foo/bar")
    assert m is not None
    assert (m.matched_route, m.raw_route, m.component_route, m.path_info) == (
        "/foo/...",
        "/foo/...",
        "/foo",
        "/bar",
    )
    m = router(("c", "foo/")).match("/foo")
    assert m is not None
    assert (m.matched_route, m.raw_route, m.component_route) == ("/foo", "foo/", "foo/")
    m = router(("c", "/...")).match("/x")
    assert m is not None
    assert (m.matched_route, m.component_route) == ("/...", "")


def test_equal_shapes_keep_declaration_order() -> None:
    # "/:x" and "/:y" tie in routefinder's order: the first declared is tried first.
    assert hit(router(("x", "/:x"), ("y", "/:y")), "/v") == "x"
    assert hit(router(("y", "/:y"), ("x", "/:x")), "/v") == "y"
    # "/a/..." and "/a/*" are different route strings with the same pattern
    assert hit(router(("dots", "/a/..."), ("star", "/a/*")), "/a/b") == "dots"


# ------------------------------------------------------------------------------------------------
# Building from a LockedApp


def test_from_locked_routes_components_and_static_responses() -> None:
    locked = app(
        trigger("hello-http", "/hello/...", "hello"),
        trigger(
            "static-http",
            "/static",
            static_response={"status_code": 201, "headers": {"x-a": "b"}, "body": "hi"},
        ),
        trigger("redis", "/ignored", "hello").__class__(id="redis", trigger_type="redis", trigger_config={}),
    )
    r = Router.from_locked(locked)
    m = r.match("/hello/x")
    assert m is not None and m.route.component_id == "hello" and m.route.trigger_id == "hello-http"
    m = r.match("/static")
    assert m is not None and m.route.component_id is None
    assert m.route.static_response == StaticResponse(201, (("x-a", "b"),), b"hi")
    assert m.route.lookup_key == "static-http"
    assert len(r.routes) == 2


def test_static_response_defaults() -> None:
    route = http_route(trigger("t", "/s", static_response={}))
    assert route is not None and route.static_response == StaticResponse(200, (), None)


def test_private_routes_are_never_routable() -> None:
    r = Router.from_locked(app(trigger("a", {"private": True}, "a"), trigger("b", "/...", "b")))
    assert [x.lookup_key for x in r.routes] == ["b"]
    assert hit(r, "/anything") == "b"


def test_private_false_is_an_error_naming_the_component() -> None:
    with pytest.raises(RouteError, match="'bad-component' has \\{ private = false \\}"):
        Router.from_locked(app(trigger("a", {"private": False}, "bad-component")))


@pytest.mark.parametrize(
    "config",
    [
        {"route": "/a"},  # neither component nor static_response
        {"route": "/a", "component": "c", "static_response": {}},  # both
        {"component": "c"},  # no route
        {"route": 5, "component": "c"},
        {"route": {"private": True, "extra": 1}, "component": "c"},
        {"route": "/a", "component": "c", "unknown": 1},
        {"route": "/a", "static_response": {"status_code": 42}},
        {"route": "/a", "static_response": {"headers": {"a": 1}}},
        {"route": "/a", "component": "c", "executor": "wagi"},
    ],
)
def test_invalid_trigger_configs(config: dict[str, Any]) -> None:
    with pytest.raises(RouteError):
        http_route(LockedTrigger(id="t", trigger_type="http", trigger_config=config))


def test_unknown_component_is_an_error() -> None:
    with pytest.raises(RouteError, match="unknown component 'ghost'"):
        Router.from_locked(app(trigger("t", "/", "ghost"), components=("real",)))


def test_duplicate_routes_last_wins_and_an_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="runtime.http.routes"):
        r = Router.from_locked(
            app(
                trigger("t0", "/", "root"),
                trigger("t1", "/foo", "first"),
                trigger("t2", "/foo", "second"),
                trigger("t3", "/whee/...", "whee"),
            )
        )
    assert hit(r, "/foo") == "second"
    assert sorted(x.lookup_key for x in r.routes) == ["root", "second", "whee"]
    assert "first" in caplog.text and "/foo" in caplog.text and "second" in caplog.text


def test_same_pattern_different_string_is_not_a_duplicate(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="runtime.http.routes"):
        r = Router.from_locked(app(trigger("a", "/foo", "a"), trigger("b", "/foo/", "b")))
    assert len(r.routes) == 2
    assert hit(r, "/foo") == "a"
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("route", "reserved"),
    [
        ("/.well-known/spin/...", True),
        ("/.well-known/spin/fie", True),
        ("/.well-known/spindle/...", False),
        ("/.well-known/spi/...", False),
        ("/.well-known/spin", False),
    ],
)
def test_reserved_routes_are_reported(route: str, reserved: bool, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="runtime.http.routes"):
        r = Router.from_locked(app(trigger("t", route, "c")))
    assert r.contains_reserved_route() is reserved
    assert ("never be reached" in caplog.text) is reserved


def test_trigger_base(caplog: pytest.LogCaptureFixture) -> None:
    t = trigger("t", "/a", "c")
    Router.from_locked(app(t, metadata={"name": "x", "trigger": {"type": "http"}}))
    with caplog.at_level(logging.WARNING, logger="runtime.http.routes"):
        Router.from_locked(app(t, metadata={"name": "x", "trigger": {"type": "http", "base": "/"}}))
    assert "deprecated" in caplog.text
    with pytest.raises(RouteError, match="deprecated trigger 'base'"):
        Router.from_locked(app(t, metadata={"name": "x", "triggers": {"http": {"base": "/api"}}}))
    with pytest.raises(RouteError):
        Router.from_locked(app(t, metadata={"name": "x", "trigger": {"type": "http", "base": "/v1"}}))
    # a legacy `trigger` of another type is not the http trigger's metadata
    Router.from_locked(app(t, metadata={"name": "x", "trigger": {"type": "redis", "base": "/v1"}}))


def test_empty_app_routes_nothing() -> None:
    r = Router.from_locked(app(components=("c",)))
    assert r.match("/") is None


# ------------------------------------------------------------------------------------------------
# The compiled regexes against a literal transcription of routefinder's left-to-right matcher


def _reference_match(segments: tuple[Any, ...], path: str) -> list[str] | None:
    """routefinder 0.5.4 `RouteSpec::matches`, step by step (the specification of `Router.match`)."""
    from runtime.http.routes import Seg

    rest = path.strip("/")
    captures: list[str] = []
    for i, seg in enumerate(segments):
        nxt = segments[i + 1].kind if i + 1 < len(segments) else None
        if seg.kind is Seg.EXACT:
            if not rest.startswith(seg.text):
                return None
            rest = rest[len(seg.text) :]
        elif seg.kind is Seg.PARAM:
            if not rest:
                return None
            if nxt in (None, Seg.SLASH):
                capture = rest.split("/", 1)[0]
                captures.append(capture)
                rest = rest[len(capture) :]
            else:  # followed by a dot
                idx = min((j for j in (rest.find("."), rest.find("/")) if j >= 0), default=-1)
                if idx < 0 or rest[idx] != ".":
                    return None
                captures.append(rest[:idx])
                rest = rest[idx:]
        elif seg.kind is Seg.WILDCARD:
            captures.append(rest)
            rest = ""
        elif seg.kind is Seg.SLASH:
            if rest.startswith("/") and nxt is not None:
                rest = rest[1:]
            elif not (rest == "" and nxt in (None, Seg.WILDCARD)):
                return None
        else:  # dot
            if not rest.startswith("."):
                return None
            rest = rest[1:]
    return captures if rest in ("", "/") else None


def test_compiled_matching_agrees_with_routefinders_algorithm() -> None:
    import random

    from runtime.http.routes import _spec_regex

    rng = random.Random(7)
    atoms = ["a", "b", "ab", ":x", ":y", "*", "a.b", ":p.json", "x.:q", ""]
    path_atoms = ["a", "b", "ab", "a.b", "c.json", ".", "", "x.y", "%2F", "a.b.c"]
    checked = 0
    for _ in range(400):
        parts = [rng.choice(atoms) for _ in range(rng.randrange(0, 4))]
        route = "/" + "/".join(parts)
        try:
            segments = parse_spec(route)
        except RouteError:
            continue
        regex = _spec_regex(segments)
        for _ in range(25):
            path = "/" + "/".join(rng.choice(path_atoms) for _ in range(rng.randrange(0, 5)))
            if rng.random() < 0.2:
                path += "/"
            m = regex.match(path.strip("/"))
            got = None if m is None else list(m.groups())
            assert got == _reference_match(segments, path), (route, path)
            checked += 1
    assert checked > 5000
