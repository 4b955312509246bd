"""End to end: in-process calls through `lepton-router serve`, with Python spin-sdk apps
(tests/fixtures/spin_py_chain) pulled from a real registry: a component calling a private sibling
(`http://back.spin.internal`), its own app (a relative URL), other apps of the server
(`http://<app>.lepton.internal`, gated by the caller's allow-list and the callee's
`allow_callers`), denials, a loop of two apps calling each other, and a deadline across apps.
After each fault an unrelated app still serves and the faulty apps serve again (their worker
threads came back)."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from runtime.capabilities.outbound_http.in_process import MAX_CHAIN_DEPTH
from tests.support.fixtures import FIXTURES_DIR, build_python_app
from tests.support.registry_apps import AppComponent, write_local_app
from tests.support.server import RouterServer, hello_wasm, push_app_to

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("registry")]

HELLO = "hello          \n"


def _component(wasm: bytes, who: str, route: Any = "/...", allowed: tuple[str, ...] = (), **config: str) -> AppComponent:
    return AppComponent(id=who, wasm=wasm, route=route, extra={
        "config": {"who": who, **config},
        "metadata": {"allowed_outbound_hosts": list(allowed)},
    })


def _push(registry_host: str, work: Path, name: str, components: list[AppComponent]) -> str:
    import registry

    lock = write_local_app(work / name, components, name=name)
    reference = f"{registry_host}/chain/{name}:v1"
    registry.push_app(lock, reference, insecure=True)
    return reference


@pytest.fixture(scope="module")
def served(registry, tmp_path_factory: pytest.TempPathFactory, router_cache_dir: Path):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("chain")
    wasm = build_python_app(FIXTURES_DIR / "spin_py_chain").read_bytes()
    shop_allowed = ("http://*.spin.internal", "http://self", "http://billing.lepton.internal",
                    "http://vault.lepton.internal", "http://slow.lepton.internal", "http://gone.lepton.internal")
    sources = {
        "shop": _push(registry.host, work, "shop", [
            _component(wasm, "front", "/front/...", shop_allowed),
            _component(wasm, "back", {"private": True}),
        ]),
        **{name: _push(registry.host, work, name, [_component(wasm, name)])
           for name in ("billing", "vault", "open", "slow")},
        **{name: _push(registry.host, work, name, [
            _component(wasm, name, "/...", (f"http://{peer}.lepton.internal",), peer=f"http://{peer}.lepton.internal")
        ]) for name, peer in (("ping", "pong"), ("pong", "ping"))},
        "hello": push_app_to(registry.host, "chain/hello:v1", hello_wasm("hello"), work),
    }
    apps = {
        "shop": 'hosts = ["shop.test"]\ntimeout = "3s"',
        "billing": 'hosts = ["billing.test"]\nprefix = "/billing"\nallow_callers = ["shop"]',
        "vault": 'hosts = ["vault.test"]',
        "open": 'hosts = ["open.test"]\nallow_callers = ["*"]',
        "slow": 'hosts = ["slow.test"]\nallow_callers = ["shop"]',
        "ping": 'hosts = ["ping.test"]\nallow_callers = ["pong"]',
        "pong": 'hosts = ["pong.test"]\nallow_callers = ["ping"]',
        "hello": 'hosts = ["hello.test"]',
    }
    text = f'[server]\ncache_dir = "{router_cache_dir}"\n'
    for name, settings in apps.items():
        text += f'\n[apps.{name}]\nsource = "{sources[name]}"\ninsecure = true\n{settings}\n'
    routes = work / "routes.toml"
    routes.write_text(text)
    server = RouterServer(routes).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def call(server: RouterServer, url: str, host: str = "shop.test", path: str = "/front/call", **kw: Any) -> tuple[int, Any]:
    response = server.get(f"{path}?url={quote(url, safe='')}", host=host, **kw)
    return response.status_code, response.json() if response.status_code == 200 else response.text


def echo_of(out: Any) -> dict[str, Any]:
    assert out["status"] == 200, out
    echo: dict[str, Any] = json.loads(out["body"])
    return echo


def healthy(server: RouterServer, *hosts: str) -> None:
    """An unrelated app serves, and so does each app named (its worker threads came back)."""
    assert server.get("/", host="hello.test").text == HELLO
    for host in hosts:
        response = server.get("/echo", host=host)
        assert response.status_code == 200 and response.json()["method"] == "GET", (host, response.text)


def test_a_component_calls_its_private_sibling(served: RouterServer) -> None:
    assert served.get("/back", host="shop.test").status_code == 404  # private: not routable
    status, out = call(served, "http://back.spin.internal/stock?item=7")
    assert status == 200, served.log()
    echo = echo_of(out)
    assert echo["who"] == "back" and echo["uri"] == "/stock?item=7"
    assert echo["headers"]["spin-client-addr"] == "0.0.0.0:0" and "host" not in echo["headers"]


def test_an_app_calls_itself_in_process(served: RouterServer) -> None:
    status, out = call(served, "/front/echo?x=1")
    assert status == 200, served.log()
    echo = echo_of(out)
    assert echo["who"] == "front" and echo["uri"] == "/front/echo?x=1"
    assert echo["headers"]["host"] == "shop.test"


def test_an_app_calls_another_that_allows_it(served: RouterServer) -> None:
    status, out = call(served, "http://billing.lepton.internal/invoice?id=7")
    assert status == 200, served.log()
    echo = echo_of(out)
    # The callee's own routes, with no mount prefix (billing is mounted at /billing on the port).
    assert echo["who"] == "billing" and echo["uri"] == "/invoice?id=7"
    headers = echo["headers"]
    assert headers["lepton-caller-app"] == "shop"  # the guest's forged value was replaced
    assert headers["host"] == "billing.lepton.internal" and headers["spin-base-path"] == "/"
    assert headers["x-from"] == "front"
    # The call counts as one of the callee's requests.
    billing = served.app_status("billing")
    assert billing is not None and billing["requests"] >= 1


def test_clients_cannot_forge_the_caller(served: RouterServer) -> None:
    response = served.get("/billing/who", host="billing.test", headers={"lepton-caller-app": "shop"})
    assert response.status_code == 200
    assert "lepton-caller-app" not in response.json()["headers"]
    # And a .lepton.internal Host on the shared port is just an unknown host.
    assert served.get("/invoice", host="billing.lepton.internal").status_code == 404


@pytest.mark.parametrize("url", [
    "http://vault.lepton.internal/",  # vault lists no callers
    "http://open.lepton.internal/",  # open allows any app, but shop's allow-list does not name it
    "http://gone.lepton.internal/",  # allowed by shop, but no such app serves
    "http://ghost.spin.internal/",  # *.spin.internal covers the app's own components only
])
def test_calls_that_are_not_allowed_are_denied(served: RouterServer, url: str) -> None:
    assert call(served, url) == (502, "ErrorCode_HttpRequestDenied"), served.log()
    healthy(served, "vault.test", "open.test")


def test_a_loop_between_two_apps_ends_with_an_error(served: RouterServer) -> None:
    started = time.monotonic()
    response = served.get("/bounce", host="ping.test")
    assert response.status_code == 508, served.log()
    assert response.text == "hop>" * MAX_CHAIN_DEPTH + "ErrorCode_LoopDetected"
    assert time.monotonic() - started < 10
    # Loops at once, more than the apps' worker threads can hold: each ends (a hop that finds no
    # thread within a second answers 503) and gives its threads back.
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: served.get("/bounce", host="ping.test").status_code, range(4)))
    assert set(statuses) <= {503, 508}, statuses
    assert time.monotonic() - started < 20
    for _ in range(5):  # more loops in a row than an app has threads: none were kept
        assert served.get("/bounce", host="pong.test").status_code == 508
    healthy(served, "ping.test", "pong.test")


def test_the_callees_time_counts_against_the_callers_timeout(served: RouterServer) -> None:
    started = time.monotonic()
    status, out = call(served, "http://slow.lepton.internal/sleep/20000")  # shop's timeout: 3 s
    elapsed = time.monotonic() - started
    # The callee's deadline is the caller's: either both answer 504 at it, or the caller answers
    # with the callee's 504 just before it.
    assert status == 504 or (status == 200 and out["status"] == 504), (status, out)
    assert elapsed < 6, elapsed
    healthy(served, "slow.test")  # the sleeping callee ended at the deadline too
    assert call(served, "http://back.spin.internal/")[0] == 200


def test_a_callee_that_is_not_allowed_sees_nothing(served: RouterServer) -> None:
    before = served.app_status("vault")
    assert call(served, "http://vault.lepton.internal/")[0] == 502
    after = served.app_status("vault")
    assert before is not None and after is not None and after["requests"] == before["requests"]


def test_calls_and_plain_requests_on_one_connection(served: RouterServer) -> None:
    with httpx.Client(base_url=served.base_url, timeout=30) as client:
        for _ in range(5):
            url = quote("http://billing.lepton.internal/x", safe="")
            assert client.get(f"/front/call?url={url}", headers={"host": "shop.test"}).status_code == 200
            assert client.get("/", headers={"host": "hello.test"}).text == HELLO
