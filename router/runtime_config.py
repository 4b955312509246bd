"""Spin's `runtime-config.toml`, read for one app (routes.toml `runtime_config = "PATH"`).

The syntax is Spin's (`crates/runtime-config`, `factor-key-value`, `factor-sqlite`): a file
written for `spin up --runtime-config-file` means the same here, or is refused. As in Spin, an
unknown key is an error, not a silent no-op: a misspelt `url` would otherwise quietly put an
app's data in the default store. Types and tables Spin knows but this host cannot serve are
refused by name, so the operator learns what to change rather than that a key is "unknown".

Relative paths are relative to the directory holding the runtime config file.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router import dotenv_file
from router.tomlpos import locate
from runtime.capabilities.support.blocked_networks import PRIVATE, BlockedNetworks, parse_network
from runtime.runtime_config import (
    DEFAULT_ENV_PREFIX,
    OUTBOUND_FAMILIES,
    EnvVariablesProvider,
    KeyValueStoreConfig,
    RuntimeConfig,
    SqliteDatabaseConfig,
)

TOP_KEYS = (
    "key_value_store", "sqlite_database", "variables_provider", "config_provider", "outbound_networking",
    *OUTBOUND_FAMILIES,
)
# Spin runtime config this host does not serve (yet): named, not "unknown". (Spin's own keys,
# crates/runtime-config: every other top-level key is "unused", an error there too.)
UNSUPPORTED_TOP = ("llm_compute", "client_tls", "outbound_http", "state_dir", "log_dir", "max_instance_memory")
UNSUPPORTED_KV_TYPES = ("azure_cosmos", "aws_dynamo")
UNSUPPORTED_SQLITE_TYPES = ("libsql",)
VARIABLES_PROVIDER_TYPES = ("env",)
UNSUPPORTED_VARIABLES_PROVIDER_TYPES = ("static", "vault", "azure_key_vault")
# Keys of Spin's tables this host does not serve: refused by name.
UNSUPPORTED_KEYS = {
    "outbound_networking": ("max_socket_connections", "max_total_connections"),
    "outbound_mqtt": ("max_payload_size_bytes",),
}
_LABEL = re.compile(r"^[a-z0-9_-]+$")  # Spin's store/database labels
_ARRAY_ENTRY = re.compile(r"^\[(\d+)\]$")


def _locate_array_entry(text: str, name: str, index: int, key: str | None) -> int | None:
    """1-based line of the `index`-th `[[name]]` header, or of `key = ...` inside that entry."""
    seen = -1
    header: int | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("["):
            if header is not None:
                break  # the entry ends at the next header
            if re.match(rf"^\[\[\s*{re.escape(name)}\s*\]\]", stripped):
                seen += 1
                if seen == index:
                    header = lineno
                    if key is None:
                        return lineno
            continue
        if header is not None and key is not None and re.match(rf"^{re.escape(key)}\s*=", stripped):
            return lineno
    return header


@dataclass(frozen=True)
class RuntimeConfigProblem:
    line: int | None
    field: str | None  # dotted TOML path of the key, e.g. "key_value_store.cache.url"
    message: str


class RuntimeConfigError(Exception):
    def __init__(self, path: Path, problems: list[RuntimeConfigProblem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(f"{path}:{p.line or '?'}: {p.message}" for p in problems))


def load(path: Path) -> RuntimeConfig:
    """Read and validate a runtime config file. Raises RuntimeConfigError listing every problem."""
    path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeConfigError(path, [RuntimeConfigProblem(None, None, f"cannot read: {exc}")]) from exc
    return parse(text, path)


def parse(text: str, path: Path) -> RuntimeConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        raise RuntimeConfigError(path, [RuntimeConfigProblem(line, None, f"not valid TOML: {exc}")]) from exc
    return _Parser(text, path).run(doc)


class _Parser:
    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path
        self.base = path.parent
        self.problems: list[RuntimeConfigProblem] = []

    def problem(self, table: tuple[str, ...], key: str | None, message: str) -> None:
        entry = _ARRAY_ENTRY.match(table[1]) if len(table) == 2 else None
        if entry is not None:  # the n-th [[table]] of an array of tables: `name[n].key`
            line = _locate_array_entry(self.text, table[0], int(entry.group(1)), key)
            dotted: str | None = table[0] + table[1] + (f".{key}" if key else "")
        else:
            line = locate(self.text, table, key)
            dotted = ".".join((*table, key) if key else table) or None
        self.problems.append(RuntimeConfigProblem(line, dotted, message))

    def run(self, doc: Mapping[str, Any]) -> RuntimeConfig:
        for key in doc:
            if key in UNSUPPORTED_TOP:
                shown = f"[{key}]" if isinstance(doc[key], dict | list) else f"`{key}`"
                self.problem((), key, f"{shown} is Spin runtime config this host does not serve")
            elif key not in TOP_KEYS:
                self.unknown((), key, TOP_KEYS)
        stores = tuple(self.stores(self.tables(doc, "key_value_store"), self.kv_store))
        databases = tuple(self.stores(self.tables(doc, "sqlite_database"), self.sqlite_database))
        caps: list[tuple[str, int]] = []
        for family in OUTBOUND_FAMILIES:
            cap = self.outbound(doc, family)
            if cap is not None:
                caps.append((family, cap))
        providers = self.variables_providers(doc)
        blocked = self.outbound_networking(doc)
        if self.problems:
            self.problems.sort(key=lambda p: (p.line is None, p.line or 0))
            raise RuntimeConfigError(self.path, self.problems)
        return RuntimeConfig(self.path, stores, databases, tuple(caps), providers, blocked)

    # -- [[variables_provider]] ----------------------------------------------------------------
    def variables_providers(self, doc: Mapping[str, Any]) -> tuple[EnvVariablesProvider, ...]:
        """Spin reads `variables_provider`, or `config_provider` (its old name) only when the
        former is absent: with both, `config_provider` is an unused key, an error."""
        key = "variables_provider" if "variables_provider" in doc else "config_provider"
        if "variables_provider" in doc and "config_provider" in doc:
            self.problem((), "config_provider", "[[config_provider]] is the old name of [[variables_provider]]: "
                                                "give one or the other (Spin ignores it next to "
                                                "[[variables_provider]] and reports it unused)")
        entries = doc.get(key)
        if entries is None:
            return ()
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            self.problem((), key, f"`{key}` must be an array of tables ([[{key}]])")
            return ()
        found = []
        for index, body in enumerate(entries):
            provider = self.variables_provider(key, index, body)
            if provider is not None:
                found.append(provider)
        return tuple(found)

    def variables_provider(self, key: str, index: int, body: Mapping[str, Any]) -> EnvVariablesProvider | None:
        table = (key, f"[{index}]")
        type_ = body.get("type")
        if not isinstance(type_, str):
            self.problem(table, "type" if "type" in body else None, f"[[{key}]] needs `type` (a string)")
            return None
        if type_ in UNSUPPORTED_VARIABLES_PROVIDER_TYPES:
            self.problem(table, "type", f"variables provider type {type_!r} is not served by this host "
                                        "(it serves \"env\")")
            return None
        if type_ not in VARIABLES_PROVIDER_TYPES:
            self.problem(table, "type", f"unknown variables provider type {type_!r} (use \"env\")")
            return None
        self.only(body, ("type", "prefix", "dotenv_path"), table)
        prefix = body.get("prefix", DEFAULT_ENV_PREFIX)
        if not isinstance(prefix, str):
            self.problem(table, "prefix", "`prefix` must be a string")
            return None
        if "dotenv_path" not in body:
            return EnvVariablesProvider(prefix)
        path = self.path_value(body, table, "dotenv_path")
        if path is None:
            return None
        try:
            entries = dotenv_file.read(path, prefix + "_")
        except dotenv_file.DotenvError as exc:
            self.problem(table, "dotenv_path", str(exc))
            return None
        return EnvVariablesProvider(prefix, path, entries)

    # -- [outbound_networking] ---------------------------------------------------------------
    def outbound_networking(self, doc: Mapping[str, Any]) -> BlockedNetworks:
        body = doc.get("outbound_networking")
        if body is None:
            return BlockedNetworks()
        table = ("outbound_networking",)
        if not isinstance(body, dict):
            self.problem((), "outbound_networking", "[outbound_networking] must be a table")
            return BlockedNetworks()
        self.only(body, ("block_networks",), table, UNSUPPORTED_KEYS["outbound_networking"])
        entries = body.get("block_networks", [])
        if not isinstance(entries, list):
            self.problem(table, "block_networks", "`block_networks` must be a list of CIDRs or \"private\"")
            return BlockedNetworks()
        good: list[str] = []
        for entry in entries:
            if isinstance(entry, str) and (entry == PRIVATE or parse_network(entry) is not None):
                good.append(entry)
            else:
                self.problem(table, "block_networks", f"block_networks: {entry!r} is not an IP network in CIDR "
                                                      "notation (\"10.0.0.0/8\") or the keyword \"private\"")
        return BlockedNetworks.parse(good)

    def unknown(self, table: tuple[str, ...], key: str, allowed: tuple[str, ...]) -> None:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        entry = _ARRAY_ENTRY.match(table[1]) if len(table) == 2 else None
        if entry is not None:
            where = f"[[{table[0]}]] number {int(entry.group(1)) + 1}"
        else:
            where = f"[{'.'.join(table)}]" if table else "the top level"
        self.problem(table, key, f"unknown key {key!r} in {where}{hint}")

    def tables(self, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            self.problem((), key, f"`{key}` must be a table of [{key}.NAME] tables")
            return {}
        return value

    def stores(self, tables: Mapping[str, Any], parse_one: Any) -> list[Any]:
        found = []
        for name, body in tables.items():
            item = parse_one(name, body)
            if item is not None:
                found.append(item)
        return found

    def typed(self, kind: str, name: str, body: Any) -> str | None:
        """The `type` of `[kind.name]`, or None after reporting why there is none."""
        table = (kind, name)
        if not _LABEL.match(name):
            self.problem(table, None, f"{name!r}: labels use lower-case letters, digits, '-' and '_'")
        if not isinstance(body, dict):
            self.problem((kind,), name, f"[{kind}.{name}] must be a table")
            return None
        type_ = body.get("type")
        if not isinstance(type_, str):
            self.problem(table, "type" if "type" in body else None, f"[{kind}.{name}] needs `type` (a string)")
            return None
        return type_

    def kv_store(self, name: str, body: Any) -> KeyValueStoreConfig | None:
        kind, table = "key_value_store", ("key_value_store", name)
        type_ = self.typed(kind, name, body)
        if type_ is None:
            return None
        if type_ in UNSUPPORTED_KV_TYPES:
            self.problem(table, "type", f"key-value store {name!r}: type {type_!r} is not served by this host "
                                        "(it serves \"spin\" and \"redis\")")
            return None
        if type_ == "spin":
            self.only(body, ("type", "path"), table)
            return KeyValueStoreConfig(name, "spin", path=self.path_value(body, table))
        if type_ == "redis":
            self.only(body, ("type", "url", "key_prefix"), table)
            url = body.get("url")
            if not isinstance(url, str) or not url.startswith(("redis://", "rediss://")):
                self.problem(table, "url" if "url" in body else None,
                             f"key-value store {name!r}: `url` must be a redis:// or rediss:// URL")
                return None
            prefix = body.get("key_prefix")
            if prefix is not None and not isinstance(prefix, str):
                self.problem(table, "key_prefix", "`key_prefix` must be a string (\"\" for none)")
                return None
            return KeyValueStoreConfig(name, "redis", url=url, key_prefix=prefix)
        self.problem(table, "type", f"key-value store {name!r}: unknown type {type_!r} (use \"spin\" or \"redis\")")
        return None

    def sqlite_database(self, name: str, body: Any) -> SqliteDatabaseConfig | None:
        kind, table = "sqlite_database", ("sqlite_database", name)
        type_ = self.typed(kind, name, body)
        if type_ is None:
            return None
        if type_ in UNSUPPORTED_SQLITE_TYPES:
            self.problem(table, "type", f"sqlite database {name!r}: type {type_!r} is not served by this host "
                                        "(it serves \"spin\")")
            return None
        if type_ != "spin":
            self.problem(table, "type", f"sqlite database {name!r}: unknown type {type_!r} (use \"spin\")")
            return None
        self.only(body, ("type", "path"), table)
        return SqliteDatabaseConfig(name, self.path_value(body, table))

    def outbound(self, doc: Mapping[str, Any], family: str) -> int | None:
        if family not in doc:
            return None
        body = doc[family]
        if not isinstance(body, dict):
            self.problem((), family, f"[{family}] must be a table")
            return None
        self.only(body, ("max_connections",), (family,), UNSUPPORTED_KEYS.get(family, ()))
        cap = body.get("max_connections")
        if cap is None:
            return None
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            self.problem((family,), "max_connections", "`max_connections` must be an integer >= 1")
            return None
        return cap

    def only(self, body: Mapping[str, Any], allowed: tuple[str, ...], table: tuple[str, ...],
             unsupported: tuple[str, ...] = ()) -> None:
        for key in body:
            if key in unsupported:
                self.problem(table, key, f"`{key}` in [{table[0]}] is Spin runtime config this host does not serve")
            elif key not in allowed:
                self.unknown(table, key, allowed)

    def path_value(self, body: Mapping[str, Any], table: tuple[str, ...], key: str = "path") -> Path | None:
        raw = body.get(key)
        if raw is None:
            return None
        if not isinstance(raw, str) or not raw.strip():
            self.problem(table, key, f"`{key}` must be a file path")
            return None
        path = Path(raw).expanduser()
        return path if path.is_absolute() else (self.base / path).resolve()
