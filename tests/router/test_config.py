"""routes.toml parsing and validation: errors name file, line, app and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import EMPTY_MESSAGE, AppConfig, ConfigError, RouteConfig, load, parse, resolve_source
from router.units import format_duration, format_size, parse_duration, parse_size


def _parse(text: str, tmp_path: Path):
    return parse(text, tmp_path / "routes.toml")


def _problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _parse(text, tmp_path)
    return [str(p) for p in info.value.problems]


def test_full_example(tmp_path: Path) -> None:
    cfg = _parse(
        """
[server]
listen = "127.0.0.1:3000"
admin_listen = "127.0.0.1:3001"
cache_dir = "cache"
state_dir = ".lepton/state"
trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]

[defaults]
timeout = "10s"

[apps.hello]
source = "oci-layout:examples/hello:v1"
hosts = ["Hello.Localhost.", "*.hello.example.com"]
prefix = "/hello/"
memory = "64MiB"
max_body = "1MB"
variables = { greeting = "hi", count = 3 }

[apps.other]
source = "ghcr.io/acme/other:v2"
insecure = true
timeout = "1m30s"
""",
        tmp_path,
    )
    assert cfg.server.listen == ("127.0.0.1:3000",)
    assert cfg.server.admin_listen == ("127.0.0.1:3001",)
    assert cfg.server.cache_dir == tmp_path / "cache"
    assert cfg.server.state_dir == tmp_path / ".lepton/state"
    assert cfg.server.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8")
    hello = cfg.apps["hello"]
    assert hello.routes == (RouteConfig(("hello.localhost", "*.hello.example.com"), "/hello"),)
    assert hello.resolved_source == f"oci-layout:{tmp_path.resolve()}/examples/hello:v1"
    assert hello.memory_bytes == 64 * 1024 * 1024
    assert hello.max_body_bytes == 1_000_000
    assert hello.timeout_s == 10.0  # from [defaults]
    assert dict(hello.variables) == {"greeting": "hi", "count": "3"}
    settings = hello.settings(cfg.server.state_dir)
    assert settings.state_dir == tmp_path / ".lepton/state/hello"
    assert settings.memory_bytes == 64 * 1024 * 1024
    other = cfg.apps["other"]
    assert other.insecure is True and other.timeout_s == 90.0
    assert other.resolved_source == "ghcr.io/acme/other:v2"
    assert other.routes == (RouteConfig(),)


def test_defaults_with_an_empty_server_table(tmp_path: Path) -> None:
    cfg = _parse("[server]\n", tmp_path)
    assert cfg.server.listen == ("127.0.0.1:3000",)
    assert cfg.apps == {}


@pytest.mark.parametrize("text", ["", "\n  \n", "# only a comment\n", "[apps]\n", '[defaults]\ntimeout = "5s"\n'])
def test_no_server_and_no_apps_is_an_error(tmp_path: Path, text: str) -> None:
    # An editor's truncate-then-write shows the server such a file for a moment: applied, it
    # would remove every app (issue 11, item 5).
    problems = _problems(text, tmp_path)
    assert problems == [f"{tmp_path / 'routes.toml'}: {EMPTY_MESSAGE}"]


def test_errors_name_file_line_app_and_field(tmp_path: Path) -> None:
    problems = _problems(
        """[server]
listen = "127.0.0.1:3000"

[apps.good]
source = "x/y:1"

[apps.bad]
source = "x/z:1"
prefix = "nope"
timeout = "soon"
hostz = ["a"]
""",
        tmp_path,
    )
    file = str(tmp_path / "routes.toml")
    assert f"{file}:9: app 'bad': field 'prefix': 'nope' must start with '/'" in problems[0]
    assert problems[1].startswith(f"{file}:10: app 'bad': field 'timeout': invalid duration")
    assert problems[2] == f"{file}:11: app 'bad': field 'hostz': unknown key in [apps.bad] (did you mean 'hosts'?)"
    assert len(problems) == 3


def test_missing_source_names_app_line(tmp_path: Path) -> None:
    problems = _problems('[apps.a]\nsource = "r/a:1"\n\n[apps.b]\nhosts = ["b.test"]\n', tmp_path)
    assert problems == [
        f"{tmp_path / 'routes.toml'}:4: app 'b': `source` is required: an OCI reference or \"oci-layout:PATH[:TAG]\""
    ]


def test_syntax_error_has_line(tmp_path: Path) -> None:
    problems = _problems('[apps.a]\nsource = "r/a:1"\nhosts = [\n', tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'routes.toml'}:")
    assert "not valid TOML" in problems[0]


def test_conflict_names_both_apps(tmp_path: Path) -> None:
    problems = _problems(
        """[apps.one]
source = "r/one:1"
hosts = ["a.test", "b.test"]
prefix = "/x"

[apps.two]
source = "r/two:1"
hosts = ["B.test."]
prefix = "/x/"
""",
        tmp_path,
    )
    assert problems == [
        f"{tmp_path / 'routes.toml'}:8: app 'two': field 'hosts': b.test /x is also claimed by app 'one'"
    ]


def test_conflict_any_host_root(tmp_path: Path) -> None:
    problems = _problems('[apps.one]\nsource = "r/1"\n[apps.two]\nsource = "r/2"\nprefix = "/"\n', tmp_path)
    assert len(problems) == 1 and "any host / is also claimed by app 'one'" in problems[0]


def test_same_prefix_different_hosts_is_fine(tmp_path: Path) -> None:
    cfg = _parse(
        '[apps.one]\nsource = "r/1"\nhosts = ["a.test"]\n[apps.two]\nsource = "r/2"\nhosts = ["*.a.test"]\n'
        '[apps.three]\nsource = "r/3"\n',
        tmp_path,
    )
    assert list(cfg.apps) == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ('["a.test:8080"]', "remove the port"),
        ('["*"]', "omit `hosts`"),
        ('["a b"]', "not a valid host name"),
        ('["*.*.x"]', "not a valid host name"),
        ('["[zz::1]"]', "not a valid IPv6"),
        ('"x" ', None),
    ],
)
def test_host_validation(tmp_path: Path, hosts: str, message: str | None) -> None:
    text = f'[apps.a]\nsource = "r/a"\nhosts = {hosts}\n'
    if message is None:
        assert _parse(text, tmp_path).apps["a"].routes[0].hosts == ("x",)
        return
    problems = _problems(text, tmp_path)
    assert message in problems[0] and "field 'hosts'" in problems[0] and ":3:" in problems[0]


@pytest.mark.parametrize("prefix", ["/a/../b", "/a//b", "/a?b", "/.well-known/lepton/x", "a"])
def test_bad_prefixes(tmp_path: Path, prefix: str) -> None:
    problems = _problems(f'[apps.a]\nsource = "r/a"\nprefix = "{prefix}"\n', tmp_path)
    assert "field 'prefix'" in problems[0]


def test_server_validation(tmp_path: Path) -> None:
    problems = _problems(
        '[server]\nlisten = []\ntrusted_proxies = ["nope"]\ncertfile = "c.pem"\nworkers = 0\nbogus = 1\n',
        tmp_path,
    )
    text = "\n".join(problems)
    assert ":2: field 'listen'" in text
    assert ":3: field 'trusted_proxies': 'nope' is not an IP" in text
    assert "field 'keyfile': TLS needs both" in text
    assert ":5: field 'workers'" in text
    assert ":6: field 'bogus': unknown key in [server]" in text


def test_registry_limits(tmp_path: Path) -> None:
    from registry.limits import DEFAULT_LIMITS, RegistryLimits

    assert _parse("[server]\n", tmp_path).server.registry == DEFAULT_LIMITS
    assert RegistryLimits(10.0, 30.0, 300.0, 4 * 1024**2, 1024**3) == DEFAULT_LIMITS
    cfg = _parse(
        '[server]\nregistry_connect_timeout = "2s"\nregistry_read_timeout = "500ms"\nregistry_deadline = "1m"\n'
        'max_manifest_size = "1MiB"\nmax_blob_size = "2GiB"\n',
        tmp_path,
    )
    assert cfg.server.registry == RegistryLimits(2.0, 0.5, 60.0, 1024**2, 2 * 1024**3)
    problems = _problems(
        '[server]\nregistry_read_timeout = "soon"\nmax_blob_size = 0\nregistry_deadline = true\n'
        'max_manifest_size = "4 parsecs"\nregistry_timeout = "1s"\n',
        tmp_path,
    )
    where = f"{tmp_path / 'routes.toml'}"
    assert problems == [
        f"{where}:2: field 'registry_read_timeout': invalid duration 'soon' (use e.g. \"30s\", \"250ms\", \"1m30s\")",
        f"{where}:3: field 'max_blob_size': size must be positive, got 0",
        f"{where}:4: field 'registry_deadline': expected a duration such as \"30s\", got a boolean",
        f"{where}:5: field 'max_manifest_size': invalid size '4 parsecs' (use e.g. \"10MiB\", \"256MiB\", \"1GB\")",
        f"{where}:6: field 'registry_timeout': unknown key in [server] (did you mean 'registry_read_timeout'?)",
    ]


def test_bad_app_name_and_inline_tables(tmp_path: Path) -> None:
    problems = _problems('[apps]\n"bad name" = { source = "r/a" }\nok = { source = "r/b", prefix = 3 }\n', tmp_path)
    assert "app 'bad name'" in problems[0] and ":2:" in problems[0]
    assert ":3: app 'ok': field 'prefix'" in problems[1]


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.toml")


def test_resolve_source(tmp_path: Path) -> None:
    assert resolve_source("ghcr.io/a/b:v1", tmp_path) == "ghcr.io/a/b:v1"
    assert resolve_source("oci-layout:dir:v1", tmp_path) == f"oci-layout:{tmp_path.resolve()}/dir:v1"
    assert resolve_source("oci-layout:dir", tmp_path) == f"oci-layout:{tmp_path.resolve()}/dir"
    assert resolve_source("oci-layout:/abs/d@sha256:ab", tmp_path) == "oci-layout:/abs/d@sha256:ab"
    assert resolve_source("oci-layout:a/b.c/d:t2", tmp_path) == f"oci-layout:{tmp_path.resolve()}/a/b.c/d:t2"


def test_units() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1m30s") == 90
    assert parse_duration("2h") == 7200
    assert parse_duration(5) == 5.0
    for bad in ("", "30", "s", "1x", "-1s", True, "0s"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_size("256MiB") == 256 * 1024 * 1024
    assert parse_size("10MB") == 10_000_000
    assert parse_size("512k") == 512 * 1024
    assert parse_size("1.5GiB") == 3 * 512 * 1024 * 1024
    assert parse_size(4096) == 4096
    for bad in ("", "10 parsecs", "-1", 0, False):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert format_size(256 * 1024 * 1024) == "256MiB" and format_size(1000) == "1000"
    assert format_duration(0.25) == "250ms" and format_duration(30.0) == "30s"


def test_several_routes(tmp_path: Path) -> None:
    cfg = _parse(
        """[apps.hello]
source = "r/hello"
routes = [{ hosts = ["hello.localhost"] }, { prefix = "/hello" }]

[apps.other]
source = "r/other"

[[apps.other.routes]]
hosts = ["o.test", "*.o.test"]
prefix = "/o"
""",
        tmp_path,
    )
    assert cfg.apps["hello"].routes == (RouteConfig(("hello.localhost",), ""), RouteConfig((), "/hello"))
    assert cfg.apps["other"].routes == (RouteConfig(("o.test", "*.o.test"), "/o"),)


def test_routes_errors(tmp_path: Path) -> None:
    problems = _problems(
        """[apps.a]
source = "r/a"
hosts = ["a.test"]
routes = [{ prefix = "/a" }]

[apps.b]
source = "r/b"
routes = [{ prefix = "/x", port = 1 }, { prefix = "/y" }, { prefix = "/y/" }]

[apps.c]
source = "r/c"
routes = [{ hosts = ["c.test"] }, { prefix = "/y" }]
""",
        tmp_path,
    )
    text = "\n".join(problems)
    assert ":4: app 'a': field 'routes': use either `routes` or `hosts`/`prefix`" in text
    assert ":8: app 'b': field 'routes': unknown key 'port'" in text
    assert "app 'b': field 'routes': route */y is listed twice" in text
    assert len(problems) == 3  # b is broken, so c's /y is not reported as a conflict with it


def test_routes_conflict_between_apps(tmp_path: Path) -> None:
    problems = _problems(
        '[apps.a]\nsource = "r/a"\nroutes = [{ prefix = "/x" }]\n[apps.b]\nsource = "r/b"\nprefix = "/x"\n',
        tmp_path,
    )
    assert problems == [f"{tmp_path / 'routes.toml'}:6: app 'b': field 'prefix': any host /x is also claimed by app 'a'"]


@pytest.mark.parametrize(("prefix", "expected"), [("/hello/", "/hello"), ("/", ""), ("//", ""), (" /a/b ", "/a/b")])
def test_prefix_is_normalised_as_the_runtime_strips_it(tmp_path: Path, prefix: str, expected: str) -> None:
    # One rule for both: the prefix routes.toml declares is the one the runtime strips.
    from runtime.http.spin_headers import normalize_prefix

    config = _parse(f'[apps.a]\nsource = "r/a"\nprefix = "{prefix}"\n', tmp_path)
    assert config.apps["a"].routes[0].prefix == expected == normalize_prefix(prefix)


def test_instance_reuse_settings(tmp_path: Path) -> None:
    config = _parse(
        '[defaults]\nmax_instance_reuse_count = 8\n[apps.a]\nsource = "r/a"\n'
        '[apps.b]\nsource = "r/b"\nprefix = "/b"\nmax_instance_reuse_count = 1\nidle_instance_timeout = "250ms"\n',
        tmp_path,
    )
    a, b = config.apps["a"].settings(tmp_path), config.apps["b"].settings(tmp_path)
    assert (a.max_instance_reuse_count, a.idle_instance_timeout_s) == (8, 1.0)
    assert (b.max_instance_reuse_count, b.idle_instance_timeout_s) == (1, 0.25)
    problems = _problems('[apps.a]\nsource = "r/a"\nmax_instance_reuse_count = 0\n', tmp_path)
    assert "max_instance_reuse_count" in problems[0] and "integer >= 1" in problems[0]


def test_workers_auto_is_one_per_cpu(tmp_path: Path) -> None:
    import os

    assert _parse('[server]\nworkers = "auto"\n', tmp_path).server.workers == len(os.sched_getaffinity(0))
    assert _parse("[server]\nworkers = 3\n", tmp_path).server.workers == 3
    problems = _problems('[server]\nworkers = "many"\n', tmp_path)
    assert "field 'workers'" in problems[0] and '"auto"' in problems[0]


def test_allow_callers(tmp_path: Path) -> None:
    cfg = _parse(
        """
[apps.billing]
source = "r/billing:v1"
allow_callers = ["shop", "admin_1", "shop"]

[apps.public]
source = "r/public:v1"
prefix = "/p"
allow_callers = ["*"]

[apps.closed]
source = "r/closed:v1"
prefix = "/c"
""",
        tmp_path,
    )
    billing, public, closed = cfg.apps["billing"], cfg.apps["public"], cfg.apps["closed"]
    assert billing.allow_callers == ("shop", "admin_1")
    assert billing.allows_caller("shop") and not billing.allows_caller("other")
    assert public.allows_caller("anyone") and not closed.allows_caller("shop")
    # Not a load setting: changing who may call an app needs no new load (as routes).
    assert billing.load_key() == AppConfig(name="billing", source="r/billing:v1", resolved_source="r/billing:v1").load_key()


def test_allow_callers_errors(tmp_path: Path) -> None:
    problems = _problems(
        """
[apps.a]
source = "r/a:v1"
allow_callers = "shop"

[apps.b]
source = "r/b:v1"
prefix = "/b"
allow_callers = ["ok", "not a name", 3]
""",
        tmp_path,
    )
    assert problems == [
        f"{tmp_path / 'routes.toml'}:4: app 'a': field 'allow_callers': must be a list of app names, or [\"*\"] for any app",
        f"{tmp_path / 'routes.toml'}:9: app 'b': field 'allow_callers': must be a list of app names, or [\"*\"] for any app",
    ]
    problems = _problems('[apps.b]\nsource = "r/b:v1"\nallow_callers = ["ok", "not a name"]\n', tmp_path)
    assert problems == [
        f"{tmp_path / 'routes.toml'}:3: app 'b': field 'allow_callers': 'not a name' is not an app name (or \"*\" for any app)"
    ]
