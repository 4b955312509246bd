"""Spin runtime-config.toml files: what is read, and what is refused with file:line (and, from
routes.toml, the app)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import ConfigError, parse
from router.runtime_config import RuntimeConfigError, load
from runtime.capabilities.support.blocked_networks import BlockedNetworks
from runtime.runtime_config import (
    EnvVariablesProvider,
    KeyValueStoreConfig,
    RuntimeConfig,
    SqliteDatabaseConfig,
)


def _write(tmp_path: Path, text: str, name: str = "runtime-config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = _write(tmp_path, text)
    with pytest.raises(RuntimeConfigError) as info:
        load(path)
    return [f"{p.line}: {p.message}" for p in info.value.problems]


def test_spin_syntax_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path, """
[key_value_store.default]
type = "spin"
path = "data/kv.db"

[key_value_store.cache]
type = "redis"
url = "redis://:secret@127.0.0.1:6379/1"

[key_value_store.shared]
type = "redis"
url = "redis://127.0.0.1:6379"
key_prefix = ""

[sqlite_database.default]
type = "spin"
path = "/var/lib/app/db.sqlite"

[outbound_pg]
max_connections = 4
""")
    cfg = load(path)
    assert cfg.key_value_stores == (
        KeyValueStoreConfig("default", "spin", path=(tmp_path / "data/kv.db").resolve()),
        KeyValueStoreConfig("cache", "redis", url="redis://:secret@127.0.0.1:6379/1"),
        KeyValueStoreConfig("shared", "redis", url="redis://127.0.0.1:6379", key_prefix=""),
    )
    assert cfg.sqlite_databases == (SqliteDatabaseConfig("default", Path("/var/lib/app/db.sqlite")),)
    assert cfg.max_connections_for("outbound_pg") == 4
    assert cfg.max_connections_for("outbound_mysql") is None
    assert "secret" not in repr(cfg)  # Redis URLs carry passwords
    hash(cfg)  # it is part of the app's load key


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    assert load(_write(tmp_path, "")) == RuntimeConfig((tmp_path / "runtime-config.toml").resolve())


def test_unknown_keys_and_types_are_refused_with_lines(tmp_path: Path) -> None:
    errors = _errors(tmp_path, """
[key_value_store.cache]
type = "redis"
uri = "redis://127.0.0.1"

[key_value_store.other]
type = "memcached"

[outbound_mysql]
max_conections = 3

[something]
x = 1
""")
    assert errors == [
        "2: key-value store 'cache': `url` must be a redis:// or rediss:// URL",
        "4: unknown key 'uri' in [key_value_store.cache] (did you mean 'url'?)",
        "7: key-value store 'other': unknown type 'memcached' (use \"spin\" or \"redis\")",
        "10: unknown key 'max_conections' in [outbound_mysql] (did you mean 'max_connections'?)",
        "12: unknown key 'something' in the top level",
    ]


def test_types_this_host_cannot_serve_are_named(tmp_path: Path) -> None:
    errors = _errors(tmp_path, """
[key_value_store.docs]
type = "azure_cosmos"
account = "a"

[key_value_store.table]
type = "aws_dynamo"

[sqlite_database.remote]
type = "libsql"
url = "https://example.turso.io"

[llm_compute]
type = "spin"
""")
    assert errors == [
        "3: key-value store 'docs': type 'azure_cosmos' is not served by this host (it serves \"spin\" and \"redis\")",
        "7: key-value store 'table': type 'aws_dynamo' is not served by this host (it serves \"spin\" and \"redis\")",
        "10: sqlite database 'remote': type 'libsql' is not served by this host (it serves \"spin\")",
        "13: [llm_compute] is Spin runtime config this host does not serve",
    ]


def test_spin_top_level_keys_this_host_does_not_serve_are_named(tmp_path: Path) -> None:
    errors = _errors(tmp_path, """
state_dir = "/srv/state"
log_dir = ""
max_instance_memory = 1000000

[outbound_http]
max_connections = 4

[[client_tls]]
component_ids = ["a"]
hosts = ["example.com"]

[outbound_networking]
max_total_connections = 3

[outbound_mqtt]
max_payload_size_bytes = 10

[otel]
x = 1
""")
    assert errors == [
        "2: `state_dir` is Spin runtime config this host does not serve",
        "3: `log_dir` is Spin runtime config this host does not serve",
        "4: `max_instance_memory` is Spin runtime config this host does not serve",
        "6: [outbound_http] is Spin runtime config this host does not serve",
        "9: [client_tls] is Spin runtime config this host does not serve",
        "14: `max_total_connections` in [outbound_networking] is Spin runtime config this host does not serve",
        "17: `max_payload_size_bytes` in [outbound_mqtt] is Spin runtime config this host does not serve",
        "19: unknown key 'otel' in the top level",
    ]


# -- [[variables_provider]] ------------------------------------------------------------------


def test_env_variables_providers_are_read_in_order(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/app.env").write_text(
        "# comment\nSHOP_API_KEY=from-dotenv\nexport SHOP_QUOTED=\"a b\"\nOTHER_SECRET=not-kept\n"
        "SHOP_REF=${SHOP_API_KEY}-x\n"
    )
    cfg = load(_write(tmp_path, """
[[variables_provider]]
type = "env"
prefix = "SHOP"
dotenv_path = "conf/app.env"

[[variables_provider]]
type = "env"
"""))
    assert cfg.variables_providers == (
        EnvVariablesProvider("SHOP", (tmp_path / "conf/app.env").resolve(),
                             (("SHOP_API_KEY", "from-dotenv"), ("SHOP_QUOTED", "a b"), ("SHOP_REF", "from-dotenv-x"))),
        EnvVariablesProvider("SPIN_VARIABLE"),
    )
    assert cfg.variables_providers[0].env_name("api_key") == "SHOP_API_KEY"
    assert "from-dotenv" not in repr(cfg)  # dotenv values are secrets too
    hash(cfg)


def test_config_provider_is_the_old_name(tmp_path: Path) -> None:
    cfg = load(_write(tmp_path, '[[config_provider]]\ntype = "env"\nprefix = "OLD"\n'))
    assert cfg.variables_providers == (EnvVariablesProvider("OLD"),)
    # Next to [[variables_provider]] Spin leaves it unused, which is an error.
    errors = _errors(tmp_path, '[[variables_provider]]\ntype = "env"\n\n[[config_provider]]\ntype = "env"\n')
    assert len(errors) == 1 and errors[0].startswith("4: [[config_provider]] is the old name")


def test_a_missing_dotenv_file_gives_no_values(tmp_path: Path) -> None:
    cfg = load(_write(tmp_path, '[[variables_provider]]\ntype = "env"\ndotenv_path = "nope.env"\n'))
    assert cfg.variables_providers == (EnvVariablesProvider("SPIN_VARIABLE", (tmp_path / "nope.env").resolve()),)


def test_bad_variables_providers(tmp_path: Path) -> None:
    (tmp_path / "bad.env").write_text("SPIN_VARIABLE_A=1\nthis line is not a binding\n")
    errors = _errors(tmp_path, """
[[variables_provider]]
type = "vault"
url = "http://127.0.0.1:8200"

[[variables_provider]]
type = "azure_key_vault"

[[variables_provider]]
type = "static"
values = { a = "1" }

[[variables_provider]]
type = "consul"

[[variables_provider]]
type = "env"
prefx = "X"

[[variables_provider]]
type = "env"
dotenv_path = "bad.env"

[[variables_provider]]
prefix = "X"
""")
    bad = (tmp_path / "bad.env").resolve()
    assert errors == [
        "3: variables provider type 'vault' is not served by this host (it serves \"env\")",
        "7: variables provider type 'azure_key_vault' is not served by this host (it serves \"env\")",
        "10: variables provider type 'static' is not served by this host (it serves \"env\")",
        "14: unknown variables provider type 'consul' (use \"env\")",
        "18: unknown key 'prefx' in [[variables_provider]] number 5 (did you mean 'prefix'?)",
        f"22: {bad}:2: cannot parse this line of the dotenv file",
        "24: [[variables_provider]] needs `type` (a string)",
    ]
    with pytest.raises(RuntimeConfigError) as info:
        load(_write(tmp_path, '[[variables_provider]]\ntype = "env"\nprefix = 1\n'))
    assert [(p.line, p.field) for p in info.value.problems] == [(3, "variables_provider[0].prefix")]
    assert _errors(tmp_path, 'variables_provider = "env"\n') == [
        "1: `variables_provider` must be an array of tables ([[variables_provider]])"
    ]


# -- [outbound_networking] -------------------------------------------------------------------


def test_block_networks(tmp_path: Path) -> None:
    cfg = load(_write(tmp_path, '[outbound_networking]\nblock_networks = ["8.8.8.8/16", "private", "2001:db8::/32"]\n'))
    assert cfg.blocked_networks == BlockedNetworks.parse(["8.8.0.0/16", "private", "2001:db8::/32"])
    assert cfg.blocked_networks.private
    assert load(_write(tmp_path, "[outbound_networking]\n")).blocked_networks == BlockedNetworks()
    errors = _errors(tmp_path, """
[outbound_networking]
block_networks = ["10.0.0.1", "300.0.0.0/8", 7, "private"]
block_network = []
""")
    assert errors == [
        "3: block_networks: '10.0.0.1' is not an IP network in CIDR notation (\"10.0.0.0/8\") or the keyword \"private\"",
        "3: block_networks: '300.0.0.0/8' is not an IP network in CIDR notation (\"10.0.0.0/8\") or the keyword \"private\"",
        "3: block_networks: 7 is not an IP network in CIDR notation (\"10.0.0.0/8\") or the keyword \"private\"",
        "4: unknown key 'block_network' in [outbound_networking] (did you mean 'block_networks'?)",
    ]


def test_bad_values(tmp_path: Path) -> None:
    errors = _errors(tmp_path, """
[key_value_store.Bad]
type = "spin"

[key_value_store.notype]
path = "x"

[outbound_redis]
max_connections = 0
""")
    assert errors == [
        "2: 'Bad': labels use lower-case letters, digits, '-' and '_'",
        "5: [key_value_store.notype] needs `type` (a string)",
        "9: `max_connections` must be an integer >= 1",
    ]


def test_not_toml(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "[key_value_store.x\n")
    assert len(errors) == 1 and errors[0].startswith("1: not valid TOML")


# -- routes.toml `runtime_config` ------------------------------------------------------------


ROUTES = """
[defaults]
runtime_config = "rc/shared.toml"

[apps.a]
source = "ghcr.io/x/a:1"
prefix = "/a"

[apps.b]
source = "ghcr.io/x/b:1"
prefix = "/b"
runtime_config = "rc/b.toml"
"""


def test_routes_toml_carries_the_file_into_settings_and_load_key(tmp_path: Path) -> None:
    (tmp_path / "rc").mkdir()
    _write(tmp_path, '[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1"\n', "rc/shared.toml")
    _write(tmp_path, "", "rc/b.toml")
    cfg = parse(ROUTES, tmp_path / "routes.toml")
    a, b = cfg.apps["a"], cfg.apps["b"]
    assert a.runtime_config_path == (tmp_path / "rc/shared.toml").resolve()
    assert b.runtime_config_path == (tmp_path / "rc/b.toml").resolve()
    settings = a.settings(tmp_path / "state")
    assert settings.runtime_config is not None
    store = settings.runtime_config.key_value_store("default")
    assert store is not None and store.type == "redis"

    # The file is re-read with routes.toml: an edit changes the load key, so the app reloads.
    key = a.load_key()
    _write(tmp_path, '[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:6380"\n', "rc/shared.toml")
    assert parse(ROUTES, tmp_path / "routes.toml").apps["a"].load_key() != key
    assert parse(ROUTES, tmp_path / "routes.toml").apps["b"].load_key() == b.load_key()


def test_routes_toml_reports_runtime_config_problems_per_app(tmp_path: Path) -> None:
    (tmp_path / "rc").mkdir()
    _write(tmp_path, '[key_value_store.default]\ntype = "aws_dynamo"\n', "rc/shared.toml")
    with pytest.raises(ConfigError) as info:
        parse(ROUTES, tmp_path / "routes.toml")
    shared = (tmp_path / "rc/shared.toml").resolve()
    rt = tmp_path / "routes.toml"
    assert [str(p) for p in info.value.problems] == [
        f"{shared}:2: app 'a': field 'key_value_store.default.type': key-value store 'default': "
        "type 'aws_dynamo' is not served by this host (it serves \"spin\" and \"redis\")",
        f"{rt}:12: app 'b': field 'runtime_config': {(tmp_path / 'rc/b.toml').resolve()}: cannot read: "
        f"[Errno 2] No such file or directory: '{(tmp_path / 'rc/b.toml').resolve()}'",
    ]


def test_runtime_config_must_be_a_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse('[apps.a]\nsource = "ghcr.io/x/a:1"\nruntime_config = 3\n', tmp_path / "routes.toml")
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'routes.toml'}:3: app 'a': field 'runtime_config': must be a path (relative to routes.toml)"
    ]
