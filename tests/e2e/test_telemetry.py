"""End to end: OpenTelemetry from `lepton-router serve` to an OTLP/HTTP receiver started by the test
(tests/support/otlp.py decodes what the exporters send with opentelemetry-proto).

Two apps from the test registry: `hello` (the WAT hello, on /hello of any host, callable from
`py`) and `py` (tests/fixtures/spin_py_kv, a Python spin-sdk app with key-value, sqlite,
variables and outbound HTTP, on host py.test). Each test sends its own `traceparent` and reads the
spans of that trace: span names and attributes as Spin names them, `app` on everything, and the
parent links of a request that calls out: through the router's own port (W3C traceparent out and
back in), to an upstream (which sees the header), and to another app in process.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import registry
from tests.support.fixtures import FIXTURES_DIR, build_python_app
from tests.support.otlp import (
    CLIENT_KIND,
    INTERNAL_KIND,
    SERVER_KIND,
    STATUS_ERROR,
    OtlpReceiver,
    SilentListener,
    Span,
)
from tests.support.registry_apps import AppComponent, write_local_app
from tests.support.server import RouterServer, free_port, hello_wasm, push_app_to
from tests.support.upstream import Upstream

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("registry")]

HELLO = "hello          \n"
WAIT_S = 20.0
# Quick exports, so a test waits a fraction of a second for what it checks.
FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300"}


class Served:
    def __init__(self, server: RouterServer, receiver: OtlpReceiver, upstream: Upstream) -> None:
        self.server = server
        self.receiver = receiver
        self.upstream = upstream

    def get(self, path: str, host: str, trace_id: str, **kw: Any) -> httpx.Response:
        headers = {"traceparent": f"00-{trace_id}-{'b7ad6b7169203331'}-01", **kw.pop("headers", {})}
        return self.server.get(path, host=host, headers=headers, **kw)

    def trace(self, trace_id: str, count: int) -> list[Span]:
        """The spans of one trace, once at least `count` have arrived."""
        self.receiver.wait_for(lambda: len(self._of(trace_id)) >= count, WAIT_S, f"{count} spans of {trace_id}")
        return self._of(trace_id)

    def _of(self, trace_id: str) -> list[Span]:
        return [s for s in self.receiver.spans() if s.trace_id == trace_id]


def new_trace() -> str:
    return secrets.token_hex(16)


def one(spans: list[Span], name: str, **attributes: Any) -> Span:
    found = [s for s in spans if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())]
    assert len(found) == 1, (name, attributes, spans)
    return found[0]


def py_app(registry_host: str, work: Path, allowed: list[str]) -> str:
    wasm = build_python_app(FIXTURES_DIR / "spin_py_kv").read_bytes()
    component = AppComponent(id="web", wasm=wasm, extra={
        "config": {"greeting": "hi"},
        "metadata": {"key_value_stores": ["default"], "databases": ["default"], "allowed_outbound_hosts": allowed},
    })
    lock = write_local_app(work / "py", [component], name="py-kv")
    reference = f"{registry_host}/otel/py:v1"
    registry.push_app(lock, reference, insecure=True)
    return reference


@pytest.fixture(scope="module")
def served(registry, tmp_path_factory: pytest.TempPathFactory, router_cache_dir: Path) -> Iterator[Served]:  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("otel")
    port = free_port()
    upstream = Upstream()
    receiver = OtlpReceiver().start()
    hello = push_app_to(registry.host, "otel/hello:v1", hello_wasm("hello"), work)
    py = py_app(registry.host, work, [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{upstream.port}",
                                      "http://hello.lepton.internal"])
    routes = work / "routes.toml"
    routes.write_text(f"""
[server]
cache_dir = "{router_cache_dir}"
state_dir = "{work / 'state'}"

[apps.hello]
source = "{hello}"
insecure = true
prefix = "/hello"
allow_callers = ["py"]

[apps.py]
source = "{py}"
insecure = true
hosts = ["py.test"]
""")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "otel-e2e", **FAST}
    server = RouterServer(routes, port=port, env=env).start()
    try:
        server.wait_ready()
        yield Served(server, receiver, upstream)
    finally:
        server.stop()
        receiver.stop()
        upstream.close()
    assert receiver.errors == []


def test_a_request_has_a_server_span_and_a_wasm_execution_span(served: Served) -> None:
    trace_id = new_trace()
    response = served.get("/hello/some/path?q=1", "anything.test", trace_id)
    assert (response.status_code, response.text) == (200, HELLO), served.server.log()

    spans = served.trace(trace_id, 2)
    server = one(spans, "GET /hello/...")
    assert server.kind == SERVER_KIND
    assert server.parent_span_id == "b7ad6b7169203331"  # the client's traceparent is continued
    assert server.attributes == {
        "app": "hello",
        "http.request.method": "GET",
        "http.route": "/hello/...",
        "http.response.status_code": 200,
        "url.path": "/hello/some/path",
        "url.query": "q=1",
        "url.scheme": "http",
        "client.address": "127.0.0.1",
    }
    wasm = one(spans, "execute_wasm_component main")
    assert wasm.parent_span_id == server.span_id and wasm.kind == INTERNAL_KIND
    assert wasm.attributes == {"app": "hello"}
    assert server.resource["service.name"] == "otel-e2e"
    assert server.scope == "lepton-router"


def test_the_parent_link_crosses_an_outbound_call_through_the_router(served: Served) -> None:
    trace_id = new_trace()
    url = f"http://127.0.0.1:{served.server.port}/hello/x?secret=1"
    response = served.get(f"/out?url={url}", "py.test", trace_id)
    assert (response.status_code, response.text) == (200, "200 " + HELLO), served.server.log()

    spans = served.trace(trace_id, 5)
    py_server = one(spans, "GET /...", app="py")
    py_wasm = one(spans, "execute_wasm_component web")
    client = one(spans, "GET", app="py")
    hello_server = one(spans, "GET /hello/...", app="hello")
    hello_wasm_span = one(spans, "execute_wasm_component main")
    assert py_wasm.parent_span_id == py_server.span_id
    assert client.parent_span_id == py_wasm.span_id
    # The callee's server span continues the traceparent the client span sent.
    assert hello_server.parent_span_id == client.span_id
    assert hello_wasm_span.parent_span_id == hello_server.span_id
    assert client.kind == CLIENT_KIND
    assert client.attributes == {
        "app": "py",
        "http.request.method": "GET",
        "url.full": f"http://127.0.0.1:{served.server.port}/hello/x",  # the query is left out
        "server.address": "127.0.0.1",
        "server.port": served.server.port,
        "http.response.status_code": 200,
    }


def test_an_upstream_gets_the_traceparent_of_the_client_span(served: Served) -> None:
    trace_id = new_trace()
    url = f"http://127.0.0.1:{served.upstream.port}/up"
    response = served.get(f"/out?url={url}", "py.test", trace_id)
    assert response.status_code == 200 and response.text.startswith("201 "), served.server.log()

    client = one(served.trace(trace_id, 3), "GET", app="py")
    sent = [h for method, path, h, _ in served.upstream.requests if path == "/up"]
    assert sent, served.upstream.requests
    assert sent[-1]["traceparent"] == f"00-{trace_id}-{client.span_id}-01"
    assert client.attributes["http.response.status_code"] == 201


def test_an_in_process_call_to_another_app_continues_the_trace(served: Served) -> None:
    trace_id = new_trace()
    response = served.get("/out?url=http://hello.lepton.internal/", "py.test", trace_id)
    assert (response.status_code, response.text) == (200, "200 " + HELLO), served.server.log()

    spans = served.trace(trace_id, 4)
    client = one(spans, "GET", app="py")
    callee = one(spans, "execute_wasm_component main")
    assert callee.parent_span_id == client.span_id
    assert callee.attributes["app"] == "hello"
    assert client.attributes["url.full"] == "http://hello.lepton.internal/"


def test_key_value_sqlite_and_variables_have_their_spans(served: Served) -> None:
    trace_ids = {path: new_trace() for path in ("/kv/default/color", "/sql", "/var/greeting", "/kv/nope/x")}
    stored = served.server.get("/kv/default/color", host="py.test")  # warm: the store exists
    assert stored.status_code in (200, 404), served.server.log()
    put = httpx.put(f"{served.server.base_url}/kv/default/color", content=b"teal", timeout=30,
                    headers={"host": "py.test", "traceparent": f"00-{trace_ids['/kv/default/color']}-b7ad6b7169203331-01"})
    assert put.status_code == 200, served.server.log()
    assert served.get("/sql", "py.test", trace_ids["/sql"]).status_code == 200
    assert served.get("/var/greeting", "py.test", trace_ids["/var/greeting"]).text == "hi"
    assert served.get("/kv/nope/x", "py.test", trace_ids["/kv/nope/x"]).status_code == 403

    kv = served.trace(trace_ids["/kv/default/color"], 4)
    wasm = one(kv, "execute_wasm_component web")
    opened = one(kv, "spin_key_value.open")
    assert opened.attributes == {"app": "py", "name": "default"}
    stored_span = one(kv, "spin_key_value.set")
    for span in (opened, stored_span):
        assert span.parent_span_id == wasm.span_id and span.kind == CLIENT_KIND

    sql = served.trace(trace_ids["/sql"], 6)
    assert one(sql, "spin_sqlite.open").attributes == {"app": "py", "db.system.name": "sqlite", "database": "default"}
    executed = [s for s in sql if s.name == "spin_sqlite.execute"]
    assert [s.attributes["query"] for s in executed] == [
        "CREATE TABLE IF NOT EXISTS hits (id INTEGER PRIMARY KEY, note TEXT)",
        "INSERT INTO hits (note) VALUES (?)",
        "SELECT COUNT(*) FROM hits",
    ]

    variables = served.trace(trace_ids["/var/greeting"], 3)
    assert one(variables, "spin_variables.get").attributes == {"app": "py", "key": "greeting"}

    denied = one(served.trace(trace_ids["/kv/nope/x"], 3), "spin_key_value.open")
    assert denied.status_code == STATUS_ERROR and denied.status_message == "access-denied"


def test_metrics_count_requests_per_app_and_component(served: Served) -> None:
    for _ in range(3):
        assert served.server.get("/hello/", host="x.test").status_code == 200

    def counted() -> dict[str, Any] | None:
        points = [p for p in served.receiver.metric_points()
                  if p.name == "spin.request_count" and p.attributes.get("app") == "hello"]
        return points[-1].attributes | {"value": points[-1].value} if points else None

    served.receiver.wait_for(lambda: (counted() or {}).get("value", 0) >= 3, WAIT_S, "spin.request_count >= 3")
    point = counted()
    assert point is not None
    assert {k: v for k, v in point.items() if k != "value"} == {
        "app": "hello", "app_id": "otel-hello-v1", "component_id": "main", "trigger_type": "http",
    }
    cpu = [p for p in served.receiver.metric_points() if p.name == "spin.component_cpu_time"
           and p.attributes.get("app") == "hello"]
    assert cpu and cpu[-1].unit == "s" and cpu[-1].value >= 3


def test_guest_stderr_becomes_log_records_of_its_request(served: Served) -> None:
    trace_id = new_trace()
    # No `url` parameter: the Python guest raises; spin-sdk prints the traceback to stderr and
    # answers 500 itself (the guest does not trap).
    assert served.get("/out", "py.test", trace_id).status_code == 500
    spans = served.trace(trace_id, 2)
    wasm = one(spans, "execute_wasm_component web")
    server = one(spans, "GET /...")
    assert server.attributes["http.response.status_code"] == 500 and server.attributes["error.type"] == "500"
    assert server.status_code == STATUS_ERROR

    def lines() -> list[Any]:
        return [r for r in served.receiver.log_records() if r.trace_id == trace_id]

    served.receiver.wait_for(lambda: any("KeyError" in str(r.body) for r in lines()), WAIT_S, "the traceback")
    record = next(r for r in lines() if "KeyError" in str(r.body))
    assert record.attributes == {"app": "py", "component_id": "web", "log.iostream": "stderr"}
    assert record.span_id == wasm.span_id and record.severity_text == "WARN"


def test_a_collector_that_never_answers_costs_requests_nothing(
    router_server, tmp_path: Path, router_cache_dir: Path, registry  # type: ignore[no-untyped-def]
) -> None:
    source = push_app_to(registry.host, "otel/silent:v1", hello_wasm("hello"), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[server]\ncache_dir = "{router_cache_dir}"\n\n'
                      f'[apps.hello]\nsource = "{source}"\ninsecure = true\n')
    silent = SilentListener().start()
    try:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": silent.endpoint, **FAST,
               # A small queue (full at once: spans are dropped) and exports that would wait 30 s.
               "OTEL_BSP_MAX_QUEUE_SIZE": "16", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8",
               "OTEL_EXPORTER_OTLP_TIMEOUT": "30"}
        server: RouterServer = router_server(routes, env=env)
        server.wait_ready()
        times = []
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for _ in range(300):
                started = time.perf_counter()
                response = client.get("/x")
                times.append(time.perf_counter() - started)
                assert (response.status_code, response.text) == (200, HELLO)
        times.sort()
        # An export waits 30 s for this listener: no request waited for one.
        assert times[-1] < 2.0, times[-5:]
        assert times[len(times) // 2] < 0.1, times[len(times) // 2]
        assert server.proc is not None
        exporters = exporter_processes(server.proc.pid)
        assert len(exporters) == 1, exporters  # the worker's span exporter process
        started = time.perf_counter()
        assert server.stop() == 0
        assert time.perf_counter() - started < 15.0  # the exit does not wait for the collector either
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{pid}").exists() for pid in exporters) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(Path(f"/proc/{pid}").exists() for pid in exporters), "the exporter outlived its worker"
    finally:
        silent.stop()


def exporter_processes(parent: int) -> list[int]:
    """The span exporter processes (router/telemetry_export.py) started by process `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"router.telemetry_export" in cmdline:
            found.append(int(entry.name))
    return found


def test_each_worker_exports_on_its_own(router_server, tmp_path: Path, router_cache_dir: Path,  # type: ignore[no-untyped-def]
                                        registry) -> None:
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores for 2 workers")
    source = push_app_to(registry.host, "otel/workers:v1", hello_wasm("hello"), tmp_path)
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[server]\ncache_dir = "{router_cache_dir}"\n\n'
                      f'[apps.hello]\nsource = "{source}"\ninsecure = true\n')
    receiver = OtlpReceiver().start()
    try:
        server: RouterServer = router_server(routes, workers=2, env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":
                                                                     f"{receiver.endpoint}/v1/traces", **FAST})
        for _ in range(20):  # fresh connections: both workers must have loaded the app
            server.wait_ready()

        def instances() -> set[str]:
            return {s.resource["service.instance.id"] for s in receiver.spans()}

        for _ in range(200):  # a new connection each time: the kernel spreads them over the workers
            assert server.get("/").status_code == 200
            if len(instances()) >= 2:
                break
        receiver.wait_for(lambda: len(instances()) >= 2, WAIT_S, "spans from both workers")
        assert receiver.posts.keys() == {"/v1/traces"}  # only traces were switched on
    finally:
        receiver.stop()
