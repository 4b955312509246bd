"""Failed outbound calls leave one INFO line under the app's logger, as denied calls do (issue 11).

A guest (tests/fixtures/spin_py_kv) calls an allowed destination that refuses the connection,
database addresses its allow-list does not name (redis, mqtt, mysql, postgres) and an interface
this host has no backend for (llm). Each call must leave exactly one INFO record under
`lepton.app.<app>` naming what failed. After the failures an unrelated app in the same Runtime still serves.

The logging lives in runtime/capabilities/outbound_http/host.py (`_handle`, `spin_send`) and
runtime/capabilities/unsupported.py (`_failing`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.locked import Variable
from runtime import Runtime
from runtime.testing import component, loaded_app
from runtime.types import AppSettings, MiB
from tests.support.fixtures import FIXTURES_DIR, build_python_app, cache_root
from tests.support.runtime_helpers import HELLO_WAT, read, request

pytestmark = pytest.mark.slow

APP = "py-outbound"
UNSUPPORTED = ("redis", "mqtt", "mysql", "postgres", "llm")


@pytest.fixture(scope="module")
def wasm() -> Path:
    return build_python_app(FIXTURES_DIR / "spin_py_kv")


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    runtime = Runtime(cache_root() / "runtime-spin")  # shared with test_spin_python_app: compiled once
    yield runtime
    runtime.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port with nobody listening (bound, never listened on: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _app(wasm: Path, allowed: str) -> object:
    return loaded_app(
        component("web", wasm, metadata={"key_value_stores": ["default"], "databases": ["default"],
                                         "allowed_outbound_hosts": [allowed]},
                  config={"greeting": "{{ greeting }}", "api_key": "{{ api_key }}",
                          "both": "{{greeting}}-{{ api_key }}"}),
        name=APP,
        variables={"greeting": Variable(default="hello"), "api_key": Variable(secret=True)},
    )


def _settings(state_dir: Path) -> AppSettings:
    return AppSettings(timeout_s=20.0, memory_bytes=256 * MiB, variables={"api_key": "k"}, state_dir=state_dir)


def _app_info(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.INFO and (r.name == f"lepton.app.{APP}" or r.name.startswith(f"lepton.app.{APP}."))]


async def _assert_neighbour_serves(rt: Runtime, tmp_path: Path) -> None:
    hello = await rt.load_app(loaded_app(component("hello", HELLO_WAT), name="neighbour"),
                              AppSettings(timeout_s=5.0, memory_bytes=32 * MiB, state_dir=tmp_path / "n"))
    try:
        response = await hello.handle(request("/"))
        assert response.status == 200 and await read(response)
    finally:
        hello.close()


async def test_refused_connection_to_an_allowed_host_is_logged_once(
    rt: Runtime, wasm: Path, closed_port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{closed_port}/nobody-home"
    running = await rt.load_app(_app(wasm, f"http://127.0.0.1:{closed_port}"), _settings(tmp_path))  # type: ignore[arg-type]
    try:
        caplog.set_level(logging.INFO, logger="lepton.app")
        response = await running.handle(request("/out", query=f"url={url}"))
        assert (response.status, await read(response)) == (502, b"ErrorCode_ConnectionRefused")
        lines = _app_info(caplog)
        assert len([line for line in lines if url in line]) == 1, lines
        assert any("connection-refused" in line for line in lines), lines
    finally:
        running.close()
    await _assert_neighbour_serves(rt, tmp_path)


async def test_refused_database_opens_and_calls_without_a_backend_are_logged_once_each(
    rt: Runtime, wasm: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await rt.load_app(_app(wasm, "http://127.0.0.1:1"), _settings(tmp_path))  # type: ignore[arg-type]
    try:
        caplog.set_level(logging.INFO, logger="lepton.app")
        response = await running.handle(request("/unsupported"))
        assert response.status == 200, await read(response)
        lines = _app_info(caplog)
        for what in UNSUPPORTED:
            # postgres is called twice by the guest (two interface versions): one line per call.
            expected = 2 if what == "postgres" else 1
            assert len([line for line in lines if what in line]) == expected, (what, lines)
    finally:
        running.close()
    await _assert_neighbour_serves(rt, tmp_path)
