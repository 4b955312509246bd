"""The names telemetry uses, in one place (docs/reference/telemetry.md lists them).

Span names are the ones Spin's spans are exported under: Spin names a span through tracing's
`otel.name` field where it sets one (the HTTP server span, the wasm execution span and outbound
HTTP), and by the instrumented function's span name otherwise. Attribute names are OpenTelemetry's
semantic conventions, as Spin records them, plus ``app``.
"""

from __future__ import annotations

# Ours: the name the router serves the app under (routes.toml [apps.NAME]). Spin serves one app
# per process and has no such dimension; here every span, metric point and log record has it.
APP = "app"

# The OpenTelemetry instrumentation scope of everything the server emits.
SCOPE = "lepton-router"

# -- HTTP server span (router/dispatch.py; Spin: spin_trigger_http.handle_http_request) --------
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_ROUTE = "http.route"
URL_PATH = "url.path"
URL_QUERY = "url.query"
URL_SCHEME = "url.scheme"
URL_FULL = "url.full"
CLIENT_ADDRESS = "client.address"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# -- wasm execution span (Spin: spin_trigger_http.execute_wasm / execute_wagi) -----------------
EXECUTE_WASM = "execute_wasm_component"  # + " <component id>"
EXECUTE_WAGI = "execute_wagi_component"  # + " <component id>"
COMPONENT_ID = "component_id"

# -- host API spans (Spin's factor crates) ------------------------------------------------------
DB_SYSTEM_NAME = "db.system.name"

# -- metrics (Spin: spin_telemetry::metrics macros) ---------------------------------------------
REQUEST_COUNT = "spin.request_count"  # counter: trigger_type, app_id, component_id (+ app)
COMPONENT_CPU_TIME = "spin.component_cpu_time"  # histogram, seconds: component_id (+ app)
TRIGGER_TYPE = "trigger_type"
APP_ID = "app_id"

# -- guest output log records (Spin: spin_telemetry::logs::handle_app_log) ----------------------
LOG_IOSTREAM = "log.iostream"  # "stdout" | "stderr"
