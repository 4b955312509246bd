"""routes.toml: schema, validation and the typed configuration the rest of router/ uses.

Every problem is reported with the file, the line (when it can be found), the app and the field, and
all problems of a file are reported at once. Relative paths (cache_dir, state_dir, certificates and
`oci-layout:` sources) are relative to the directory holding routes.toml, so the file means the same
thing whatever the working directory of the server is.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from registry.limits import DEFAULT_LIMITS, RegistryLimits
from router import runtime_config as rtconfig
from router.tomlpos import locate
from router.units import parse_duration, parse_size, parse_workers
from runtime.http.spin_headers import normalize_prefix
from runtime.runtime_config import RuntimeConfig
from runtime.types import AppSettings

RESERVED_PREFIX = "/.well-known/lepton"
DEFAULT_LISTEN = "127.0.0.1:3000"

_APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$")
_PREFIX = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$")

@dataclass(frozen=True)
class RegistrySetting:
    """One registry limit: its [server] key, the CLI flag of pull/mirror/push, the
    RegistryLimits field and how its value is read."""

    key: str
    flag: str
    attr: str
    parse: Callable[[Any], float | int]
    help: str


REGISTRY_SETTINGS = (
    RegistrySetting("registry_connect_timeout", "--connect-timeout", "connect_timeout_s", parse_duration,
                    "TCP/TLS connect to a registry"),
    RegistrySetting("registry_read_timeout", "--read-timeout", "read_timeout_s", parse_duration,
                    "longest silence of a registry within a response"),
    RegistrySetting("registry_deadline", "--deadline", "deadline_s", parse_duration,
                    "a whole pull (manifests, tokens, every blob)"),
    RegistrySetting("max_manifest_size", "--max-manifest-size", "max_manifest_bytes", parse_size,
                    "largest manifest accepted"),
    RegistrySetting("max_blob_size", "--max-blob-size", "max_blob_bytes", parse_size,
                    "largest blob (layer, or file of an archive layer) accepted"),
)
SERVER_KEYS = (
    "listen",
    "admin_listen",
    "cache_dir",
    "state_dir",
    "trusted_proxies",
    "certfile",
    "keyfile",
    "workers",
    "apps_dir",
    *(setting.key for setting in REGISTRY_SETTINGS),
)
SETTING_KEYS = (
    "insecure", "timeout", "memory", "max_body", "max_concurrent", "max_instance_reuse_count", "idle_instance_timeout",
    "runtime_config",
)
APP_KEYS = ("source", "hosts", "prefix", "routes", "variables", "allow_callers", *SETTING_KEYS)
ROUTE_KEYS = ("hosts", "prefix")
TOP_KEYS = ("server", "defaults", "apps")
EMPTY_MESSAGE = (
    "no [server] table and no apps (an empty or half-written file?); refused rather than removing every app. "
    "To serve no apps on purpose, keep a [server] table"
)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    app: str | None
    field: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "app": self.app, "field": self.field, "message": self.message,
                "text": str(self)}

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.app is not None:
            parts.append(f"app {self.app!r}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return f"{': '.join(parts)}: {self.message}"


class ConfigError(Exception):
    """routes.toml is unreadable, not TOML, or invalid. `problems` lists each issue."""

    def __init__(self, problems: list[Problem]) -> None:
        # Reported in file order, which is how people fix them.
        self.problems = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class RouteConfig:
    """Where an app is reachable: any of `hosts` (none: any host) under `prefix` ("" is the root)."""

    hosts: tuple[str, ...] = ()  # normalised: lower case, no trailing dot; "*.x" for wildcards
    prefix: str = ""  # "" is the root; otherwise "/a/b" without trailing slash

    def describe(self) -> str:
        return f"{','.join(self.hosts) or '*'}{self.prefix or '/'}"


@dataclass(frozen=True)
class AppConfig:
    name: str
    source: str  # as written in routes.toml
    resolved_source: str  # what registry.load_app gets (oci-layout paths made absolute)
    # `hosts`/`prefix` in the file make one route; `routes = [{...}, ...]` several.
    routes: tuple[RouteConfig, ...] = (RouteConfig(),)
    insecure: bool = False
    timeout_s: float = AppSettings.timeout_s
    memory_bytes: int = AppSettings.memory_bytes
    max_body_bytes: int = AppSettings.max_body_bytes
    max_concurrent: int | None = None  # requests in flight for this app; more get 503
    max_instance_reuse_count: int = AppSettings.max_instance_reuse_count
    idle_instance_timeout_s: float = AppSettings.idle_instance_timeout_s
    variables: Mapping[str, str] = field(default_factory=dict)
    # Apps of this server whose guests may call this one in process (http://NAME.lepton.internal);
    # ("*",): any of them. Like routes, a change needs no new load.
    allow_callers: tuple[str, ...] = ()
    # `runtime_config = "PATH"` (absolute) and the file as read when routes.toml was last read: its
    # content is in load_key(), so an edit of the file reloads the app with the next reload.
    runtime_config_path: Path | None = None
    runtime_config: RuntimeConfig | None = None

    def allows_caller(self, caller: str) -> bool:
        return "*" in self.allow_callers or caller in self.allow_callers

    def load_key(self) -> tuple[Any, ...]:
        """Everything that needs a new load of the app when it changes (routes do not)."""
        return (
            self.resolved_source,
            self.insecure,
            self.timeout_s,
            self.memory_bytes,
            self.max_body_bytes,
            self.max_instance_reuse_count,
            self.idle_instance_timeout_s,
            tuple(sorted(self.variables.items())),
            self.runtime_config_path,
            self.runtime_config,
        )

    def settings(self, state_root: Path) -> AppSettings:
        return AppSettings(
            timeout_s=self.timeout_s,
            memory_bytes=self.memory_bytes,
            max_body_bytes=self.max_body_bytes,
            variables=dict(self.variables),
            state_dir=state_root / self.name,
            max_instance_reuse_count=self.max_instance_reuse_count,
            idle_instance_timeout_s=self.idle_instance_timeout_s,
            runtime_config=self.runtime_config,
            app_name=self.name,
        )


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    admin_listen: tuple[str, ...] = ()
    cache_dir: Path | None = None  # None: registry.default_cache_dir()
    state_dir: Path = Path(".lepton/state")
    trusted_proxies: tuple[str, ...] = ()  # IP networks, e.g. "127.0.0.1/32", "10.0.0.0/8"
    certfile: Path | None = None
    keyfile: Path | None = None
    workers: int = 1
    registry: RegistryLimits = DEFAULT_LIMITS  # registry_* timeouts and max_*_size caps
    apps_dir: Path | None = None  # one app per file (router/apps_dir.py), absolute


NO_DEFAULTS = AppConfig(name="", source="", resolved_source="")


@dataclass(frozen=True)
class RoutesConfig:
    path: Path
    server: ServerConfig
    apps: Mapping[str, AppConfig]
    defaults: AppConfig = NO_DEFAULTS  # [defaults]: the base of every app, the apps_dir ones too


def load(path: Path) -> RoutesConfig:
    """Read and validate routes.toml. Raises ConfigError naming file, line, app and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise unreadable(path, exc) from exc
    return parse(text, path)


def unreadable(path: Path, exc: Exception) -> ConfigError:
    return ConfigError([Problem(str(path), None, None, None, f"cannot read: {exc}")])


def parse(text: str, path: Path) -> RoutesConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = None
        match = re.search(r"at line (\d+)", str(exc))
        if match:
            line = int(match.group(1))
        raise ConfigError([Problem(str(path), line, None, None, f"not valid TOML: {exc}")]) from exc
    return _Validator(text, path).run(doc)


def _split_layout(source: str) -> tuple[Path, str] | None:
    """An `oci-layout:PATH[:TAG|@DIGEST]` source's path and its tag or digest suffix; None for an
    OCI reference."""
    if not source.startswith("oci-layout:"):
        return None
    rest = source[len("oci-layout:") :]
    suffix = ""
    if "@" in rest:
        rest, digest = rest.rsplit("@", 1)
        suffix = "@" + digest
    else:
        head, sep, tag = rest.rpartition(":")
        # A colon after the last slash separates the tag ("dir:v1"); a leading "C:" style is a path.
        if sep and "/" not in tag and head:
            rest, suffix = head, ":" + tag
    return Path(rest).expanduser(), suffix


def resolve_source(source: str, base_dir: Path) -> str:
    """Make the path of an `oci-layout:PATH[:TAG|@DIGEST]` source absolute; OCI references unchanged."""
    split = _split_layout(source)
    if split is None:
        return source
    layout, suffix = split
    if not layout.is_absolute():
        layout = (base_dir / layout).resolve()
    return f"oci-layout:{layout}{suffix}"


def rebase_source(source: str, from_dir: Path, to_dir: Path) -> str:
    """A relative `oci-layout:` source meant from `from_dir`, rewritten to mean the same layout
    from `to_dir` (e.g. routes.toml's directory to the apps directory); others unchanged."""
    split = _split_layout(source)
    if split is None or split[0].is_absolute():
        return source
    layout, suffix = split
    return f"oci-layout:{os.path.relpath((from_dir / layout).resolve(), to_dir.resolve())}{suffix}"


def normalise_host(host: str) -> str:
    """A configured host pattern in canonical form (lower case, no trailing dot)."""
    return host.strip().lower().rstrip(".")


Locator = Callable[[tuple[str, ...], str | None], int | None]


class _Validator:
    def __init__(self, text: str, path: Path, *, base: Path | None = None, locator: Locator | None = None) -> None:
        self.text = text
        self.path = path
        self.base = path.resolve().parent if base is None else base
        self.locate: Locator = locator or (lambda table, key: locate(text, table, key))
        self.problems: list[Problem] = []
        self.broken: set[str] = set()  # apps with problems: left out of the conflict check
        # Runtime config files read during this validation: apps sharing one (say, through
        # [defaults]) read it once; an error is still reported for each app it refuses.
        self.runtime_configs: dict[Path, RuntimeConfig | rtconfig.RuntimeConfigError] = {}

    def problem(self, table: tuple[str, ...], app: str | None, key: str | None, message: str) -> None:
        line = self.locate(table, key)
        if app is not None:
            self.broken.add(app)
        self.problems.append(Problem(str(self.path), line, app, key, message))

    def unknown_keys(
        self, obj: Mapping[str, Any], allowed: tuple[str, ...], table: tuple[str, ...], app: str | None
    ) -> None:
        for key in obj:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                where = f"[{'.'.join(table)}]" if table else "the top level"
                self.problem(table, app, key, f"unknown key in {where}{hint}")

    def run(self, doc: dict[str, Any]) -> RoutesConfig:
        if "server" not in doc and not doc.get("apps"):
            # An editor that truncates before writing, or a copy caught half-way, shows us such a
            # file for a moment; applied, it would remove every app. Serving nothing on purpose
            # is still possible: keep a [server] table (it may be empty).
            self.problems.append(Problem(str(self.path), None, None, None, EMPTY_MESSAGE))
        self.unknown_keys(doc, TOP_KEYS, (), None)
        server = self.server(self.table(doc, "server"))
        defaults_doc = self.table(doc, "defaults")
        self.unknown_keys(defaults_doc, SETTING_KEYS, ("defaults",), None)
        defaults = self.settings(defaults_doc, ("defaults",), None, NO_DEFAULTS)
        apps_doc = self.table(doc, "apps")
        apps: dict[str, AppConfig] = {}
        for name, body in apps_doc.items():
            app = self.app(name, body, defaults)
            if app is not None:
                apps[name] = app
        self.conflicts(apps)
        if self.problems:
            raise ConfigError(self.problems)
        return RoutesConfig(path=self.path, server=server, apps=apps, defaults=defaults)

    def table(self, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            self.problem((), None, key, "must be a table")
            return {}
        return value

    # -- [server] ------------------------------------------------------------------------------

    def server(self, doc: dict[str, Any]) -> ServerConfig:
        table = ("server",)
        self.unknown_keys(doc, SERVER_KEYS, table, None)
        listen = self.addresses(doc, "listen", table) or (DEFAULT_LISTEN,)
        admin = self.addresses(doc, "admin_listen", table)
        cache_dir = self.optional_path(doc, "cache_dir", table)
        state_dir = self.optional_path(doc, "state_dir", table) or (self.base / ".lepton/state")
        certfile = self.optional_path(doc, "certfile", table)
        keyfile = self.optional_path(doc, "keyfile", table)
        if (certfile is None) != (keyfile is None):
            self.problem(table, None, "certfile" if certfile is None else "keyfile",
                         "TLS needs both certfile and keyfile")
        proxies: list[str] = []
        raw = doc.get("trusted_proxies", [])
        if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
            self.problem(table, None, "trusted_proxies", "must be a list of IP addresses or networks")
        else:
            for entry in raw:
                try:
                    proxies.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
                except ValueError:
                    self.problem(table, None, "trusted_proxies", f"{entry!r} is not an IP address or network")
        try:
            workers = parse_workers(doc.get("workers", 1))
        except ValueError as exc:
            self.problem(table, None, "workers", str(exc))
            workers = 1
        limits: dict[str, Any] = {}
        for setting in REGISTRY_SETTINGS:
            if setting.key in doc:
                try:
                    limits[setting.attr] = setting.parse(doc[setting.key])
                except ValueError as exc:
                    self.problem(table, None, setting.key, str(exc))
        return ServerConfig(
            listen=listen,
            admin_listen=admin,
            cache_dir=cache_dir,
            state_dir=state_dir,
            trusted_proxies=tuple(proxies),
            certfile=certfile,
            keyfile=keyfile,
            workers=workers,
            registry=replace(DEFAULT_LIMITS, **limits),
            apps_dir=self.optional_path(doc, "apps_dir", table),
        )

    def addresses(self, doc: Mapping[str, Any], key: str, table: tuple[str, ...]) -> tuple[str, ...]:
        value = doc.get(key)
        if value is None:
            return ()
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            self.problem(table, None, key, 'must be an address such as "127.0.0.1:3000" or a list of them')
            return ()
        return tuple(v.strip() for v in values)

    def optional_path(self, doc: Mapping[str, Any], key: str, table: tuple[str, ...]) -> Path | None:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(table, None, key, "must be a path")
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    # -- [apps.NAME] ---------------------------------------------------------------------------

    def app(self, name: str, body: Any, defaults: AppConfig, table: tuple[str, ...] | None = None) -> AppConfig | None:
        """One app's keys (`table`: where they sit in the file, [apps.NAME] by default)."""
        table = ("apps", name) if table is None else table
        if not _APP_NAME.match(name):
            self.problem(table, name, None, "app names use letters, digits, '-' and '_' (at most 63)")
        if not isinstance(body, dict):
            self.problem(("apps",), name, None, "must be a table with at least `source`")
            return None
        self.unknown_keys(body, APP_KEYS, table, name)
        source = body.get("source")
        if not isinstance(source, str) or not source.strip():
            self.problem(table, name, "source" if "source" in body else None,
                         ("must be a non-empty string" if "source" in body else "`source` is required")
                         + ": an OCI reference or \"oci-layout:PATH[:TAG]\"")
            source = ""
        source = source.strip()
        routes = self.routes(body, table, name)
        variables: dict[str, str] = {}
        raw_vars = body.get("variables", {})
        if not isinstance(raw_vars, dict):
            self.problem(table, name, "variables", "must be a table of name = \"value\"")
        else:
            for key, value in raw_vars.items():
                if isinstance(value, bool) or not isinstance(value, str | int | float):
                    self.problem(table, name, "variables", f"variable {key!r} must be a string")
                    continue
                variables[key] = str(value)
        base = AppConfig(
            name=name,
            source=source,
            resolved_source=resolve_source(source, self.base) if source else "",
            routes=routes,
            variables=variables,
            allow_callers=self.allow_callers(body, table, name),
            insecure=defaults.insecure,
            timeout_s=defaults.timeout_s,
            memory_bytes=defaults.memory_bytes,
            max_body_bytes=defaults.max_body_bytes,
            max_concurrent=defaults.max_concurrent,
            max_instance_reuse_count=defaults.max_instance_reuse_count,
            idle_instance_timeout_s=defaults.idle_instance_timeout_s,
            runtime_config_path=defaults.runtime_config_path,
        )
        app = self.settings(body, table, name, base)
        if app.runtime_config_path is not None:
            where = table if "runtime_config" in body else ("defaults",)
            app = replace(app, runtime_config=self.runtime_config(app.runtime_config_path, where, name))
        return app

    def runtime_config(self, path: Path, table: tuple[str, ...], app: str) -> RuntimeConfig | None:
        """The app's runtime config file, read and validated; its problems are the app's."""
        loaded = self.runtime_configs.get(path)
        if loaded is None:
            try:
                loaded = rtconfig.load(path)
            except rtconfig.RuntimeConfigError as exc:
                loaded = exc
            self.runtime_configs[path] = loaded
        if isinstance(loaded, RuntimeConfig):
            return loaded
        self.broken.add(app)
        for p in loaded.problems:
            if p.line is None and p.field is None:  # unreadable: point at the routes.toml line naming it
                self.problem(table, app, "runtime_config", f"{loaded.path}: {p.message}")
            else:
                self.problems.append(Problem(str(loaded.path), p.line, app, p.field, p.message))
        return None

    def settings(self, doc: Mapping[str, Any], table: tuple[str, ...], app: str | None,
                 base: AppConfig) -> AppConfig:
        values: dict[str, Any] = {}

        def convert(key: str, attr: str, func: Callable[[Any], Any]) -> None:
            if key not in doc:
                return
            try:
                values[attr] = func(doc[key])
            except ValueError as exc:
                self.problem(table, app, key, str(exc))

        convert("timeout", "timeout_s", parse_duration)
        convert("memory", "memory_bytes", parse_size)
        convert("max_body", "max_body_bytes", parse_size)
        convert("insecure", "insecure", _boolean)
        convert("max_concurrent", "max_concurrent", _positive_int)
        convert("max_instance_reuse_count", "max_instance_reuse_count", _positive_int)
        convert("idle_instance_timeout", "idle_instance_timeout_s", parse_duration)
        convert("runtime_config", "runtime_config_path", self.path_setting)
        return _replace(base, values)

    def allow_callers(self, body: Mapping[str, Any], table: tuple[str, ...], app: str) -> tuple[str, ...]:
        raw = body.get("allow_callers", [])
        if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
            self.problem(table, app, "allow_callers", 'must be a list of app names, or ["*"] for any app')
            return ()
        callers: list[str] = []
        for caller in raw:
            if caller != "*" and not _APP_NAME.match(caller):
                self.problem(table, app, "allow_callers", f"{caller!r} is not an app name (or \"*\" for any app)")
            elif caller not in callers:
                callers.append(caller)
        return tuple(callers)

    def routes(self, body: Mapping[str, Any], table: tuple[str, ...], app: str) -> tuple[RouteConfig, ...]:
        if "routes" not in body:
            return (RouteConfig(self.hosts(body, table, app, "hosts"), self.prefix(body, table, app, "prefix")),)
        if "hosts" in body or "prefix" in body:
            self.problem(table, app, "routes", "use either `routes` or `hosts`/`prefix`, not both")
            return ()
        raw = body["routes"]
        if not isinstance(raw, list) or not raw or not all(isinstance(r, dict) for r in raw):
            self.problem(table, app, "routes", 'must be a list such as [{ hosts = ["a.example"] }, { prefix = "/a" }]')
            return ()
        routes: list[RouteConfig] = []
        for entry in raw:
            for key in entry:
                if key not in ROUTE_KEYS:
                    self.problem(table, app, "routes", f"unknown key {key!r} in a route (use hosts, prefix)")
            route = RouteConfig(self.hosts(entry, table, app, "routes"), self.prefix(entry, table, app, "routes"))
            if route in routes:
                self.problem(table, app, "routes", f"route {route.describe()} is listed twice")
            routes.append(route)
        return tuple(routes)

    def hosts(self, body: Mapping[str, Any], table: tuple[str, ...], app: str, key: str) -> tuple[str, ...]:
        raw = body.get("hosts", [])
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(h, str) for h in raw):
            self.problem(table, app, key, "`hosts` must be a list of host names")
            return ()
        hosts: list[str] = []
        for entry in raw:
            host = normalise_host(entry)
            error = host_pattern_error(host)
            if error:
                self.problem(table, app, key, f"{entry!r}: {error}")
            elif host not in hosts:
                hosts.append(host)
        return tuple(hosts)

    def prefix(self, body: Mapping[str, Any], table: tuple[str, ...], app: str, key: str) -> str:
        raw = body.get("prefix", "")
        if not isinstance(raw, str):
            self.problem(table, app, key, '`prefix` must be a path such as "/hello"')
            return ""
        if raw.strip() and not raw.strip().startswith("/"):
            self.problem(table, app, key, f"{raw!r} must start with '/' and contain only plain path segments")
            return ""
        prefix = normalize_prefix(raw)  # the runtime strips mount prefixes by the same rule
        if not prefix:
            return ""
        segments = prefix.split("/")[1:]
        if not _PREFIX.match(prefix) or any(s in (".", "..") for s in segments):
            self.problem(table, app, key, f"{raw!r} must start with '/' and contain only plain path segments")
            return ""
        if prefix == RESERVED_PREFIX or prefix.startswith(RESERVED_PREFIX + "/"):
            self.problem(table, app, key, f"{RESERVED_PREFIX} is reserved for the router")
            return ""
        return prefix

    def conflicts(self, apps: Mapping[str, AppConfig]) -> None:
        claims: dict[tuple[str, str], str] = {}
        for app in apps.values():
            if app.name in self.broken:
                continue
            for key in route_keys(app):
                other = claims.get(key)
                if other is not None and other != app.name:
                    self.problem(("apps", app.name), app.name, conflict_field(app, key), claimed_message(key, other))
                else:
                    claims[key] = app.name


    def path_setting(self, value: Any) -> Path:
        """A path relative to routes.toml (ValueError names what is wrong)."""
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a path (relative to routes.toml)")
        path = Path(value).expanduser()
        return (path if path.is_absolute() else self.base / path).resolve()


def validate_app(name: str, body: dict[str, Any], defaults: AppConfig, *, text: str, path: Path, base: Path,
                 locator: Locator) -> tuple[AppConfig | None, list[Problem]]:
    """The keys of one app given as a whole document (a file of the apps directory): the same
    checks as an [apps.NAME] table; relative paths are relative to `base`."""
    validator = _Validator(text, path, base=base, locator=locator)
    app = validator.app(name, body, defaults, table=())
    if validator.problems:
        return None, validator.problems
    return app, []


def route_keys(app: AppConfig) -> list[tuple[str, str]]:
    """The (host, prefix) pairs an app claims ("" host: any host), in the order of its routes."""
    return [(host, route.prefix) for route in app.routes for host in route.hosts or ("",)]


def conflict_field(app: AppConfig, key: tuple[str, str]) -> str:
    """The field to name when `key` of `app` is claimed twice."""
    if len(app.routes) != 1:
        return "routes"
    return "hosts" if key[0] else "prefix"


def claimed_message(key: tuple[str, str], other: str) -> str:
    return f"{key[0] or 'any host'} {key[1] or '/'} is also claimed by app {other!r}"


def host_pattern_error(host: str) -> str | None:
    """Why a configured host pattern is invalid, or None. Patterns: name, *.suffix, IP, [IPv6]."""
    if not host:
        return "empty host"
    if host == "*":
        return "omit `hosts` to match any host"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "not a valid IPv6 address"
        return None
    if ":" in host:
        return "hosts are matched without a port; remove the port"
    name = host[2:] if host.startswith("*.") else host
    labels = name.split(".")
    if not all(_HOST_LABEL.match(label) for label in labels) or len(name) > 253:
        return "not a valid host name (use e.g. \"app.example.com\" or \"*.example.com\")"
    return None


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _positive_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("must be an integer >= 1")
    return value


def _replace(app: AppConfig, values: Mapping[str, Any]) -> AppConfig:
    return replace(app, **values) if values else app
