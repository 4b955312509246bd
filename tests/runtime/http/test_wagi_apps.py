"""WAGI executor end to end: a C app that dumps its whole CGI environment, a Go app ending with
proc_exit(0), and the failure rules (non-zero exit, no output, Location)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import Runtime
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.fixtures import FIXTURES_DIR, NODE_MODULES, build_c_wagi, build_go_wagi, fixture_cache_dir
from tests.support.runtime_helpers import read, request
from tests.support.tools import require_tool

SETTINGS = AppSettings(timeout_s=20.0, memory_bytes=64 * MiB)
WAGI = {"type": "wagi"}


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = Runtime(tmp_path_factory.mktemp("wagi-rt"))
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def c_wagi() -> Path:
    return build_c_wagi(FIXTURES_DIR / "spin_c_wagi")


def parse_dump(body: bytes) -> tuple[list[str], dict[str, str], str, str]:
    argv: list[str] = []
    env: dict[str, str] = {}
    stdin = file = ""
    for line in body.decode().split("\n"):
        if line.startswith("ARGV "):
            argv.append(line.split("=", 1)[1])
        elif line.startswith("ENV "):
            key, _, value = line[4:].partition("=")
            env[key] = value
        elif line.startswith("STDIN "):
            stdin = line[6:]
        elif line.startswith("FILE "):
            file = line[5:]
    return argv, env, stdin, file


async def test_c_wagi_sees_exactly_spins_cgi_environment(rt: Runtime, c_wagi: Path, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("mounted")
    app = loaded_app(
        component("cgi", c_wagi, route="/wagi/...", executor=WAGI, files_dir=tmp_path, env={"FROM_ENV": "1"}),
        name="wagi-c",
    )
    running = await rt.load_app(app, SETTINGS)
    resp = await running.handle(
        request(
            "/wagi/a%20b/c",
            query="x=1&y=2",
            method="POST",
            body=b"hello",
            host="example.com:3000",
            headers=[("x-custom", "v"), ("authorization", "Bearer s3cret"), ("connection", "close")],
            client_addr=("127.0.0.1", 40000),
        )
    )
    assert resp.status == 200
    assert ("x-wagi", "yes") in [(k, v.decode() if isinstance(v, bytes) else v) for k, v in resp.headers]
    argv, env, stdin, file = parse_dump(await read(resp))
    assert argv == ["/wagi/a%20b/c", "x=1", "y=2"]
    assert stdin == "hello"
    assert file == "mounted"
    assert env == {
        "FROM_ENV": "1",
        "AUTH_TYPE": "",
        "CONTENT_LENGTH": "5",
        "CONTENT_TYPE": "",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "QUERY_STRING": "x=1&y=2",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_HOST": "127.0.0.1",
        "REMOTE_USER": "",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/wagi",
        "PATH_INFO": "/a%20b/c",
        "X_RAW_PATH_INFO": "/a%20b/c",
        "PATH_TRANSLATED": "/a b/c",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "3000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "WAGI/1",
        "HTTP_HOST": "example.com:3000",
        "HTTP_X_CUSTOM": "v",
        "HTTP_CONTENT_LENGTH": "5",
        "X_FULL_URL": "http://example.com:3000/wagi/a%20b/c?x=1&y=2",
        "X_MATCHED_ROUTE": "/wagi/...",
        "X_BASE_PATH": "/",
        "X_RAW_COMPONENT_ROUTE": "/wagi/...",
        "X_COMPONENT_ROUTE": "/wagi",
        "X_CLIENT_ADDR": "127.0.0.1:40000",
    }


async def test_c_wagi_route_params_and_mount_prefix(rt: Runtime, c_wagi: Path) -> None:
    app = loaded_app(component("cgi", c_wagi, route="/u/:user_id/...", executor=WAGI), name="wagi-params")
    running = await rt.load_app(app, SETTINGS)
    resp = await running.handle(request("/apps/w/u/42/more", mount_prefix="/apps/w"))
    assert resp.status == 200
    argv, env, _, _ = parse_dump(await read(resp))
    assert env["X_PATH_MATCH_USER_ID"] == "42"
    assert env["PATH_INFO"] == "/more"
    assert env["SCRIPT_NAME"] == "/u/:user_id"
    assert env["X_BASE_PATH"] == "/apps/w"
    assert env["HTTP_X_FORWARDED_PREFIX"] == "/apps/w"
    assert argv == ["/u/42/more", ""]  # app path; an empty query leaves an empty argument


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ("mode=status", 418, None),
        ("mode=location", 302, b""),
        ("mode=silent", 500, b""),  # no stdout at all
        ("mode=fail", 500, b""),  # exit code 3
    ],
)
async def test_c_wagi_response_rules(rt: Runtime, c_wagi: Path, query: str, status: int, body: bytes | None) -> None:
    running = await rt.load_app(loaded_app(component("cgi", c_wagi, executor=WAGI), name="wagi-rules"), SETTINGS)
    resp = await running.handle(request("/", query=query))
    assert resp.status == status
    data = await read(resp)
    if body is not None:
        assert data == body


async def test_custom_argv_template(rt: Runtime, c_wagi: Path) -> None:
    executor = {"type": "wagi", "argv": "prog --script ${SCRIPT_NAME} -- ${ARGS}"}
    running = await rt.load_app(loaded_app(component("cgi", c_wagi, executor=executor), name="wagi-argv"), SETTINGS)
    resp = await running.handle(request("/p", query="a&b"))
    argv, _, _, _ = parse_dump(await read(resp))
    assert argv == ["prog", "--script", "/p", "--", "a", "b"]


async def test_go_wagi_proc_exit_zero_is_success(rt: Runtime) -> None:
    wasm = build_go_wagi(FIXTURES_DIR / "spin_go_wagi")
    running = await rt.load_app(
        loaded_app(component("go", wasm, route="/go/...", executor=WAGI), name="wagi-go"), SETTINGS
    )
    resp = await running.handle(request("/go/x", method="PUT", body=b"data"))
    assert resp.status == 200
    text = (await read(resp)).decode()
    assert text.startswith('go PUT /go/... args=["/go/x" ""]')
    assert "stdin=data" in text
    failed = await running.handle(request("/go/x", query="exit=2"))
    assert failed.status == 500


async def test_memory_limit_applies_to_wagi(rt: Runtime, c_wagi: Path) -> None:
    app = loaded_app(component("cgi", c_wagi, executor=WAGI), name="wagi-oom")
    roomy = await rt.load_app(app, AppSettings(timeout_s=20.0, memory_bytes=128 * MiB))
    resp = await roomy.handle(request("/", query="mode=oom"))
    assert (resp.status, await read(resp)) == (200, b"allocated 1\n")
    tight = await rt.load_app(app, AppSettings(timeout_s=20.0, memory_bytes=32 * MiB))
    assert (await tight.handle(request("/", query="mode=oom"))).status == 500


def componentize_command(core: Path) -> Path:
    """What Spin >= 3.2 pushes for a WAGI module: the module adapted into a wasi:cli/run component
    (wasm-tools with the preview1 *command* adapter shipped in npm @bytecodealliance/jco)."""
    adapter = NODE_MODULES / "@bytecodealliance" / "jco" / "lib" / "wasi_snapshot_preview1.command.wasm"
    require_tool(str(adapter), "run `npm ci` in tests/fixtures")
    key = hashlib.sha256(core.read_bytes() + adapter.read_bytes()).hexdigest()[:24]
    out = fixture_cache_dir() / f"wagi-component-{key}.wasm"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            ["wasm-tools", "component", "new", str(core), "--adapt", f"wasi_snapshot_preview1={adapter}", "-o", str(tmp)],
            check=True,
            capture_output=True,
        )
        os.replace(tmp, out)
    return out


async def test_componentized_wagi_runs_wasi_cli_run(rt: Runtime, c_wagi: Path, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("mounted")
    wasm = componentize_command(c_wagi)
    app = loaded_app(
        component("cgi", wasm, route="/wagi/...", executor=WAGI, files_dir=tmp_path, env={"FROM_ENV": "1"}),
        name="wagi-component",
    )
    running = await rt.load_app(app, SETTINGS)
    resp = await running.handle(request("/wagi/x", query="a=1", method="POST", body=b"in", headers=[("x-k", "v")]))
    assert resp.status == 200
    argv, env, stdin, file = parse_dump(await read(resp))
    assert argv == ["/wagi/x", "a=1"]
    assert (stdin, file) == ("in", "mounted")
    assert env["FROM_ENV"] == "1" and env["HTTP_X_K"] == "v" and env["X_MATCHED_ROUTE"] == "/wagi/..."
    assert env["PATH_INFO"] == "/x" and env["CONTENT_LENGTH"] == "2" and env["REQUEST_METHOD"] == "POST"
    for query, status in [("mode=location", 302), ("mode=fail", 500), ("mode=silent", 500), ("mode=status", 418)]:
        assert (await running.handle(request("/wagi/x", query=query))).status == status, query
