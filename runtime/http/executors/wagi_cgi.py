"""WAGI (`executor = { type = "wagi" }`): argv, CGI environment and stdout parsing, as Spin v3.

Pure functions; the executor (runtime/http/executors/wagi.py) runs the module with them. Sources:
`crates/http/src/wagi/mod.rs` (`build_headers`, `compose_response`) and
`crates/trigger-http/src/wagi.rs` in Spin v3.6.3.

- argv: the trigger's `argv` template (default `${SCRIPT_NAME} ${ARGS}`) with `${SCRIPT_NAME}` =
  the request path and `${ARGS}` = the raw query with `&` replaced by a space, split on `' '`
  (so an empty query leaves a trailing empty argument, as in Spin).
- environment: CGI variables, `HTTP_*` for every request header but Authorization and
  Connection, then the spin values under their WAGI names (`X_FULL_URL`, `PATH_INFO` (raw),
  `X_MATCHED_ROUTE`, `X_BASE_PATH`, `X_RAW_COMPONENT_ROUTE`, `X_COMPONENT_ROUTE`,
  `X_CLIENT_ADDR`, `X_PATH_MATCH_<NAME>`), which override the CGI ones of the same name.
- stdout: CRs are dropped in the header block, which ends at the first blank line; one of
  Content-Type / Location / Status is required (else 500 with Spin's message); `Status: 404 Not
  Found` sets the code (unparsable: 502); Location without Status gives 302.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_ARGV = "${SCRIPT_NAME} ${ARGS}"
GATEWAY_INTERFACE = "CGI/1.1"
SERVER_SOFTWARE = "WAGI/1"
INSUFFICIENT_RESPONSE = "Exactly one of 'location' or 'content-type' must be specified"
_SKIPPED_HEADERS = frozenset({"HTTP_AUTHORIZATION", "HTTP_CONNECTION"})
# spin-* header -> WAGI variable (headers.rs: the second name of each pair).
_SPIN_TO_WAGI = {
    "spin-full-url": "X_FULL_URL",
    "spin-path-info": "PATH_INFO",
    "spin-matched-route": "X_MATCHED_ROUTE",
    "spin-base-path": "X_BASE_PATH",
    "spin-raw-component-route": "X_RAW_COMPONENT_ROUTE",
    "spin-component-route": "X_COMPONENT_ROUTE",
    "spin-client-addr": "X_CLIENT_ADDR",
}
_PATH_MATCH_PREFIX = "spin-path-match-"


class WagiConfigError(ValueError):
    """A WAGI executor config Spin v3 refuses."""


@dataclass(frozen=True)
class WagiConfig:
    argv: str = DEFAULT_ARGV

    @classmethod
    def from_executor(cls, executor: Mapping[str, object]) -> WagiConfig:
        """From the trigger's `executor` table; `entrypoint` is deprecated and must be `_start`."""
        entrypoint = executor.get("entrypoint", "_start")
        if entrypoint not in (None, "_start"):
            raise WagiConfigError(
                f"WAGI entrypoint {entrypoint!r} is not supported: only `_start` (wasi:cli/run) is"
            )
        argv = executor.get("argv", DEFAULT_ARGV)
        if argv is None:
            argv = DEFAULT_ARGV
        if not isinstance(argv, str):
            raise WagiConfigError("WAGI `argv` must be a string")
        return cls(argv=argv)


def build_argv(template: str, path: str, query: str) -> list[str]:
    return template.replace("${SCRIPT_NAME}", path).replace("${ARGS}", query.replace("&", " ")).split(" ")


@dataclass(frozen=True)
class WagiRequest:
    """What the environment is computed from (the app's view: mount prefix already stripped)."""

    method: str
    path: str  # raw path as routed inside the app
    query: str
    headers: Sequence[tuple[str, str]]  # as received (lower-case names), without spin-* added
    body_length: int
    client_ip: str
    http_version: str  # "1.1", "2", ...
    spin_headers: Sequence[tuple[str, str]]  # the computed spin-* (name, value) pairs


def _server_protocol(version: str) -> str:
    # Spin prints hyper's `Version` with {:?}: HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3.0.
    return {"1.0": "HTTP/1.0", "1.1": "HTTP/1.1", "2": "HTTP/2.0", "2.0": "HTTP/2.0", "3": "HTTP/3.0"}.get(
        version, f"HTTP/{version}"
    )


def _server_name_port(headers: Sequence[tuple[str, str]]) -> tuple[str, str]:
    # Spin passes the literal default host "default_host"; the request URI has no port (80).
    host, port = "default_host", "80"
    for name, value in headers:
        if name == "host":
            h, _, p = value.partition(":")
            host = h or host
            port = p or port
            break
    return host, port


def build_env(req: WagiRequest, component_env: Mapping[str, str] | None = None) -> dict[str, str]:
    env: dict[str, str] = dict(component_env or {})
    spin = dict(req.spin_headers)
    matched = spin.get("spin-matched-route", "")
    path_info_raw = spin.get("spin-path-info", "")
    decoded = urllib.parse.unquote(path_info_raw, errors="replace")
    server_name, server_port = _server_name_port(req.headers)
    env.update(
        {
            "AUTH_TYPE": "",
            "CONTENT_LENGTH": str(req.body_length),
            "CONTENT_TYPE": "",  # Spin reads a header literally named CONTENT_TYPE: never present
            "GATEWAY_INTERFACE": GATEWAY_INTERFACE,
            "QUERY_STRING": req.query,
            "REMOTE_ADDR": req.client_ip,
            "REMOTE_HOST": req.client_ip,
            "REMOTE_USER": "",
            "REQUEST_METHOD": req.method,
            "SCRIPT_NAME": matched.removesuffix("/..."),
            "X_RAW_PATH_INFO": path_info_raw,
            "PATH_INFO": decoded,
            "PATH_TRANSLATED": decoded,
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": _server_protocol(req.http_version),
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
        }
    )
    for name, value in req.headers:
        key = "HTTP_" + name.upper().replace("-", "_")
        if key not in _SKIPPED_HEADERS:
            env[key] = value  # a repeated header: the last value wins, as Spin's HashMap insert
    for name, value in req.spin_headers:
        if name in _SPIN_TO_WAGI:
            env[_SPIN_TO_WAGI[name]] = value
        elif name.startswith(_PATH_MATCH_PREFIX):
            env["X_PATH_MATCH_" + name[len(_PATH_MATCH_PREFIX) :].upper().replace("-", "_")] = value
    return env


@dataclass(frozen=True)
class WagiResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def compose_response(stdout: bytes) -> WagiResponse:
    """Turn a WAGI program's stdout into a response (Spin's `compose_response`)."""
    header_block = bytearray()
    body = stdout
    last = 0
    for i, byte in enumerate(stdout):
        if byte == 13:
            continue
        if byte == 10 and last == 10:
            body = stdout[i + 1 :]
            break
        last = byte
        header_block.append(byte)
    else:
        header_block, body = bytearray(), stdout  # no blank line: everything is body, no headers
    try:
        text = header_block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"WAGI response headers are not UTF-8: {exc}") from None

    parsed: dict[str, str] = {}
    for line in text.strip().split("\n"):
        name, sep, value = line.partition(":")
        if sep:
            parsed[name.strip()] = value.strip()  # corrupt lines (no colon) are skipped

    status = 200
    explicit_status = False
    sufficient = False
    headers: dict[str, tuple[str, str]] = {}
    for name, value in parsed.items():
        lower = name.lower()
        if lower == "content-type":
            sufficient = True
            headers["content-type"] = ("content-type", value)
        elif lower == "status":
            sufficient = explicit_status = True
            code = value.split(" ", 1)[0]
            status = int(code) if code.isdigit() and len(code) == 3 and 100 <= int(code) <= 999 else 502
        elif lower == "location":
            sufficient = True
            headers["location"] = ("location", value)
            if not explicit_status:
                status = 302
        elif _valid_header_name(lower):
            headers[lower] = (lower, value)
    if not sufficient:
        return WagiResponse(500, [], INSUFFICIENT_RESPONSE.encode())
    return WagiResponse(status, list(headers.values()), bytes(body))


_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


def _valid_header_name(name: str) -> bool:
    return bool(name) and all(c in _TCHARS for c in name)
