"""Spin runtime-config.toml files: what is read, and what is refused with file:line (and, from
routes.toml, the app)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import ConfigError, parse
from router.runtime_config import RuntimeConfigError, load
from runtime.runtime_config import KeyValueStoreConfig, RuntimeConfig, SqliteDatabaseConfig


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
