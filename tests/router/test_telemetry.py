"""router/telemetry.py: which signals the OTEL_* variables switch on and with which protocol, read as
Spin reads them (crates/telemetry/src/env.rs), and that a server with none set loads no
OpenTelemetry at all. (What the exporters send: tests/e2e/test_telemetry.py.)"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.telemetry import DEFAULT_PROTOCOL, enabled, protocol

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, {"TRACES": False, "METRICS": False, "LOGS": False}),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, {"TRACES": True, "METRICS": True, "LOGS": True}),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, {"TRACES": False, "METRICS": False, "LOGS": False}),  # empty: unset
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
         {"TRACES": True, "METRICS": False, "LOGS": False}),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "y"},
         {"TRACES": False, "METRICS": True, "LOGS": True}),
        # Spin disables on any non-empty value, "false" included.
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_SDK_DISABLED": "true"}, {"TRACES": False, "METRICS": False, "LOGS": False}),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_SDK_DISABLED": "false"}, {"TRACES": False, "METRICS": False, "LOGS": False}),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_SDK_DISABLED": ""}, {"TRACES": True, "METRICS": True, "LOGS": True}),
    ],
)
def test_which_signals_are_on(environ: dict[str, str], on: dict[str, bool]) -> None:
    assert {signal: enabled(environ, signal) for signal in on} == on


def test_the_protocol_per_signal(caplog: pytest.LogCaptureFixture) -> None:
    assert protocol({}, "TRACES") == DEFAULT_PROTOCOL == "http/protobuf"
    general = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert protocol(general, "METRICS") == "grpc"
    assert protocol({**general, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"}, "METRICS") == "http/protobuf"
    assert protocol({**general, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"}, "LOGS") == "grpc"
    assert protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "LOGS") == "http/json"
    with caplog.at_level(logging.WARNING, "lepton.telemetry"):
        assert protocol({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "carrier-pigeon"}, "TRACES") == "http/protobuf"
        # Set but empty is a value, and not a valid one (as Spin's std::env::var reads it).
        assert protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": ""}, "TRACES") == "http/protobuf"
    assert "'carrier-pigeon' is not a valid OTLP protocol, defaulting to http/protobuf" in caplog.text


def _setup_in_subprocess(environ: dict[str, str]) -> dict[str, object]:
    """setup() in a fresh interpreter that imports what a serving worker imports: what it turned on,
    which OpenTelemetry modules got loaded, and its log."""
    code = (
        "import json, logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "import router.serve, router.dispatch, runtime.runtime\n"
        "from router import telemetry\n"
        "import runtime.telemetry as rt\n"
        "done = telemetry.setup()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "print(json.dumps({'signals': list(done.signals) if done else None, 'loaded': len(loaded),\n"
        "                  'tracer': rt.recorder is not None, 'metrics': rt.instruments is not None,\n"
        "                  'logs': rt.guest_logs is not None}))\n"
        "if done: done.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | environ
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    result["log"] = out.stderr
    return result


def test_off_loads_no_opentelemetry() -> None:
    result = _setup_in_subprocess({})
    assert result["signals"] is None and result["loaded"] == 0
    assert not (result["tracer"] or result["metrics"] or result["logs"])


def test_an_unsupported_protocol_leaves_its_signal_off() -> None:
    # Nothing listens on port 9 of loopback: the one metrics export at exit is refused at once.
    result = _setup_in_subprocess({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                                   "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
                                   "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json"})
    assert result["signals"] == ["metrics"]
    assert (result["tracer"], result["metrics"], result["logs"]) == (False, True, False)
    assert "the http/json OTLP protocol is not supported" in str(result["log"])


@pytest.mark.skipif(importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None,
                    reason="the grpc exporter is installed")
def test_grpc_without_its_exporter_says_what_to_install() -> None:
    result = _setup_in_subprocess({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                                   "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert result["signals"] is None
    assert "pip install 'lepton-router[otel-grpc]'" in str(result["log"])
