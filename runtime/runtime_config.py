"""An app's runtime config (Spin's `runtime-config.toml`), as parsed by router/runtime_config.py.

Plain frozen data: it travels in AppSettings and in the app's load key (so a changed file means a
new load), hence hashable, and its repr never shows a URL (Redis URLs carry passwords).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runtime.capabilities.support.blocked_networks import BlockedNetworks

# The outbound families whose `[outbound_X] max_connections` caps the app's pool.
OUTBOUND_FAMILIES = ("outbound_redis", "outbound_pg", "outbound_mysql", "outbound_mqtt")


@dataclass(frozen=True)
class KeyValueStoreConfig:
    """`[key_value_store.NAME]`: `type = "spin"` (SQLite, optional `path`) or `"redis"` (`url`)."""

    name: str
    type: str  # "spin" | "redis"
    path: Path | None = None  # spin: the SQLite file (absolute); None: the app's state dir file
    url: str | None = field(default=None, repr=False)  # redis
    # redis: prepended to every key. None: the default namespace `lepton:{app}:{store}:`, so two
    # apps (or two stores) on one Redis never see each other's keys; "" shares keys with Spin.
    key_prefix: str | None = None


@dataclass(frozen=True)
class SqliteDatabaseConfig:
    """`[sqlite_database.NAME]` with `type = "spin"`: a SQLite file (None: the default place)."""

    name: str
    path: Path | None = None


# Spin's env provider prefix when `[[variables_provider]]` gives none (crates/variables-env).
DEFAULT_ENV_PREFIX = "SPIN_VARIABLE"


@dataclass(frozen=True)
class EnvVariablesProvider:
    """`[[variables_provider]] type = "env"`: variable `name` is read from `{prefix}_{NAME}`
    (the name upper-cased) in the process environment, else from the dotenv file."""

    prefix: str = DEFAULT_ENV_PREFIX
    dotenv_path: Path | None = None  # absolute
    # The dotenv file's `{prefix}_*` entries, read with the runtime config (so an edited file
    # means a new load); values stay out of every repr.
    dotenv: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def env_name(self, variable: str) -> str:
        return f"{self.prefix}_{variable.upper()}"


@dataclass(frozen=True)
class RuntimeConfig:
    path: Path  # the file it came from (absolute)
    key_value_stores: tuple[KeyValueStoreConfig, ...] = ()
    sqlite_databases: tuple[SqliteDatabaseConfig, ...] = ()
    max_connections: tuple[tuple[str, int], ...] = ()  # (family, cap), e.g. ("outbound_pg", 4)
    # `[[variables_provider]]` in file order (Spin asks them in this order).
    variables_providers: tuple[EnvVariablesProvider, ...] = ()
    # `[outbound_networking] block_networks`: applies to outbound HTTP and every database connection.
    blocked_networks: BlockedNetworks = field(default_factory=BlockedNetworks)

    def key_value_store(self, name: str) -> KeyValueStoreConfig | None:
        return next((s for s in self.key_value_stores if s.name == name), None)

    def sqlite_database(self, name: str) -> SqliteDatabaseConfig | None:
        return next((d for d in self.sqlite_databases if d.name == name), None)

    def max_connections_for(self, family: str) -> int | None:
        return dict(self.max_connections).get(family)
