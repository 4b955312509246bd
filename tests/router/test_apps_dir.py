"""The apps directory, pure parts: which names are app files, one file's validation (file:line,
field), the merge with routes.toml (a bad file costs only its own app), the Available Routes URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.apps_dir import FileResult, is_app_file, parse_app_file
from router.apps_merge import Owned, merge
from router.available_routes import available_routes, public_address, route_urls
from router.config import NO_DEFAULTS, AppConfig, Problem, RouteConfig, parse


@pytest.mark.parametrize(("name", "expected"), [
    ("hello.toml", True), ("hello.json", True), ("my-app_2.toml", True),
    (".hello.toml", False), ("hello.toml~", False), ("hello.toml.tmp", False), ("hello.tmp", False),
    (".hello.toml.swp", False), ("hello.toml.swp", False), ("..data", False), ("..2026_12_07", False),
    ("hello.yaml", False), ("README", False), (".toml", False),
])
def test_which_names_are_app_files(name: str, expected: bool) -> None:
    assert is_app_file(name) is expected


def _file(tmp_path: Path, name: str, text: str, defaults: AppConfig = NO_DEFAULTS) -> FileResult:
    return parse_app_file(tmp_path / name, text, defaults)


def test_a_toml_file_is_the_keys_of_one_app(tmp_path: Path) -> None:
    result = _file(tmp_path, "hello.toml", 'source = "oci-layout:layouts/hello:v1"\n'
                                          'routes = [{ hosts = ["Hello.Localhost"] }, { prefix = "/hello/" }]\n'
                                          'memory = "64MiB"\nvariables = { greeting = "hi" }\n')
    assert result.problems == ()
    app = result.app
    assert app is not None and app.name == "hello"
    assert app.routes == (RouteConfig(("hello.localhost",), ""), RouteConfig((), "/hello"))
    assert app.memory_bytes == 64 * 1024 * 1024 and app.variables == {"greeting": "hi"}
    # Relative to the directory holding the file.
    assert app.resolved_source == f"oci-layout:{tmp_path.resolve()}/layouts/hello:v1"


def test_a_json_file_has_the_same_keys(tmp_path: Path) -> None:
    result = _file(tmp_path, "api.json", '{\n  "source": "registry.test/api:v1",\n  "prefix": "/api"\n}\n')
    assert result.app is not None and result.app.routes == (RouteConfig((), "/api"),)


def test_problems_name_file_line_app_and_field(tmp_path: Path) -> None:
    result = _file(tmp_path, "bad.toml", 'source = "registry.test/bad:v1"\n\nprefix = "no-slash"\ntimeout = "soon"\n')
    assert result.app is None
    assert [str(p) for p in result.problems] == [
        f"{tmp_path}/bad.toml:3: app 'bad': field 'prefix': 'no-slash' must start with '/' and contain only plain "
        "path segments",
        f"{tmp_path}/bad.toml:4: app 'bad': field 'timeout': " + result.problems[1].message,
    ]
    json_result = _file(tmp_path, "bad.json", '{\n  "source": "x",\n  "hostz": ["a.test"]\n}\n')
    assert [(p.line, p.field) for p in json_result.problems] == [(3, "hostz")]
    assert "did you mean 'hosts'" in json_result.problems[0].message


@pytest.mark.parametrize(("name", "text", "line", "kind"), [
    ("half.toml", 'source = "registry.test/half:v1"\nhosts = ["half.te', 2, "not valid TOML"),
    ("half.json", '{\n  "source": "registry.test/half:v1",\n  "hosts": ["half', 3, "not valid JSON"),
])
def test_a_half_written_file_is_a_syntax_problem(tmp_path: Path, name: str, text: str, line: int, kind: str) -> None:
    result = _file(tmp_path, name, text)
    assert result.app is None and result.problems[0].line == line and kind in result.problems[0].message


def test_an_empty_file_is_a_problem_not_an_app_for_any_host(tmp_path: Path) -> None:
    result = _file(tmp_path, "empty.toml", "")
    assert result.app is None and "empty" in result.problems[0].message


def test_a_copied_apps_table_says_what_the_file_should_hold(tmp_path: Path) -> None:
    result = _file(tmp_path, "hello.toml", '# copied\n[apps.hello]\nsource = "x"\n')
    assert [(p.line, p.field) for p in result.problems] == [(2, "apps")]
    assert "without an [apps.NAME] header" in result.problems[0].message


def test_defaults_apply_to_app_files(tmp_path: Path) -> None:
    routes = parse('[server]\napps_dir = "apps.d"\n[defaults]\ntimeout = "7s"\n', tmp_path / "routes.toml")
    assert routes.server.apps_dir == tmp_path / "apps.d"
    app = _file(tmp_path, "a.toml", 'source = "x"\nhosts = ["a.test"]\n', routes.defaults).app
    assert app is not None and app.timeout_s == 7.0


def _app(name: str, host: str, source: str = "src") -> AppConfig:
    return AppConfig(name=name, source=f"{source}/{name}", resolved_source=f"{source}/{name}",
                     routes=(RouteConfig((host,), ""),))


def _result(name: str, host: str | None, source: str = "src", suffix: str = ".toml") -> FileResult:
    if host is None:
        return FileResult(f"/d/{name}{suffix}", name, None, ())
    return FileResult(f"/d/{name}{suffix}", name, _app(name, host, source), (), {"hosts": 2})


def test_merge_adds_files_next_to_routes_toml() -> None:
    merged = merge({"t": _app("t", "t.test")}, "/r/routes.toml", [_result("a", "a.test"), _result("b", "b.test")], {})
    assert sorted(merged.desired) == ["a", "b", "t"]
    assert merged.apps["a"].file == "/d/a.toml" and merged.apps["t"].file == "/r/routes.toml"
    assert merged.problems == () and merged.toml_problems == ()


def test_a_broken_file_keeps_its_last_good_version() -> None:
    before = merge({}, "/r/routes.toml", [_result("a", "a.test"), _result("b", "b.test")], {})
    broken = FileResult("/d/a.toml", "a", None, (Problem("/d/a.toml", 2, "a", "hosts", "bad"),))
    after = merge({}, "/r/routes.toml", [broken, _result("b", "b.test", "v2")], before.apps)
    assert after.desired["a"] == before.desired["a"]  # last good version
    assert after.desired["b"].source == "v2/b"  # the other file's change still applies
    assert [(p.file, p.line, p.field) for p in after.problems] == [("/d/a.toml", 2, "hosts")]
    new_broken = merge({}, "/r/routes.toml", [FileResult("/d/c.toml", "c", None, broken.problems)], {})
    assert new_broken.desired == {}  # a new app with problems is not served


def test_a_name_defined_twice_stays_with_its_owner() -> None:
    toml = {"a": _app("a", "a.test")}
    merged = merge(toml, "/r/routes.toml", [_result("a", "other.test")], {})
    assert merged.apps["a"].file == "/r/routes.toml"
    assert [str(p) for p in merged.problems] == ["/d/a.toml: app 'a': app 'a' is already defined in /r/routes.toml"]
    # NAME.toml serving, NAME.json dropped in: the newcomer is refused.
    first = merge({}, "/r/routes.toml", [_result("b", "b.test")], {})
    second = merge({}, "/r/routes.toml", [_result("b", "b.test"), _result("b", "x.test", suffix=".json")], first.apps)
    assert second.apps["b"].file == "/d/b.toml"
    assert [p.file for p in second.problems] == ["/d/b.json"] and "/d/b.toml" in second.problems[0].message
    # A file serving, routes.toml then defines the same name: routes.toml is the newcomer.
    third = merge({"b": _app("b", "y.test")}, "/r/routes.toml", [_result("b", "b.test")], first.apps)
    assert [p.file for p in third.toml_problems] == ["/r/routes.toml"] and "/d/b.toml" in str(third.toml_problems[0])


def test_route_conflicts_are_reported_against_the_newcomer() -> None:
    first = merge({}, "/r/routes.toml", [_result("b", "shared.test")], {})
    second = merge({}, "/r/routes.toml", [_result("a", "shared.test"), _result("b", "shared.test")], first.apps)
    assert sorted(second.desired) == ["b"]  # b held the host; a (sorted first, but new) is refused
    assert [(p.file, p.line, p.app, p.field) for p in second.problems] == [("/d/a.toml", 2, "a", "hosts")]
    assert "also claimed by app 'b' (/d/b.toml)" in second.problems[0].message
    # An edit of a serving app that takes another's host: refused, the app keeps its last good version.
    both = merge({}, "/r/routes.toml", [_result("a", "a.test"), _result("b", "b.test")], {})
    edit = merge({}, "/r/routes.toml", [_result("a", "b.test", "v2"), _result("b", "b.test")], both.apps)
    assert edit.desired["a"] == both.desired["a"] and edit.desired["b"] == both.desired["b"]
    assert [p.file for p in edit.problems] == ["/d/a.toml"]
    # Both new at once: routes.toml wins; then the first file by name.
    fresh = merge({"t": _app("t", "s.test")}, "/r/routes.toml", [_result("a", "s.test")], {})
    assert sorted(fresh.desired) == ["t"] and fresh.toml_problems == ()
    # routes.toml taking a host a file's app holds: routes.toml is rejected as a whole.
    held = merge({}, "/r/routes.toml", [_result("a", "a.test")], {})
    late = merge({"t": _app("t", "a.test")}, "/r/routes.toml", [_result("a", "a.test")], held.apps)
    assert [(p.file, p.app) for p in late.toml_problems] == [("/r/routes.toml", "t")]


def test_previous_owner_is_what_the_last_merge_returned() -> None:
    owned = {"a": Owned(_app("a", "a.test"), "/d/a.toml")}
    merged = merge({}, "/r/routes.toml", [_result("a", "a.test", "v2")], owned)
    assert merged.desired["a"].source == "v2/a"


def test_available_routes_are_pasteable_urls() -> None:
    app = AppConfig(name="hello", source="s", resolved_source="s", routes=(
        RouteConfig(("hello.localhost",), ""), RouteConfig((), "/hello"), RouteConfig(("*.example.com",), "/api"),
    ))
    assert available_routes(app, ("127.0.0.1:3000",)) == [
        "hello: http://hello.localhost:3000/",
        "hello: http://127.0.0.1:3000/hello/...",
        "hello: http://*.example.com:3000/api/... (any subdomain)",
    ]
    root = AppConfig(name="all", source="s", resolved_source="s")
    assert available_routes(root, ("0.0.0.0:8080",)) == ["all: http://127.0.0.1:8080/ (any host)"]
    assert route_urls(RouteConfig(("a.test",), ""), ("[::]:443",), "https") == ["https://a.test/"]
    assert public_address(("unix:/run/x.sock", "[::1]:3000")) == ("[::1]", "3000")
    assert available_routes(root, ("unix:/run/x.sock",)) == []
