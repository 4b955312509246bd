"""The admin listener (`admin_listen`): status page (HTML), the same as JSON, Prometheus metrics.

It is a separate Quart app on its own address so internals (app names, sources, errors) are never
exposed on the shared public port. With --workers N each worker answers for itself (the JSON
carries its pid).
"""

from __future__ import annotations

import html
import json
import os
import time
from typing import Any

from quart import Quart, Response

from router.manager import AppManager
from router.metrics import prometheus


def status_json(manager: AppManager) -> dict[str, Any]:
    apps = []
    for name, status in manager.status.items():
        app = status.config
        version = manager.serving.get(name)
        stats = status.stats
        entry: dict[str, Any] = {
            "name": name,
            "state": status.state,
            "error": status.error,
            "source": app.source,
            "routes": [{"hosts": list(r.hosts), "prefix": r.prefix or "/"} for r in app.routes],
            "inflight": stats.inflight,
            "requests": stats.requests,
            "responses": dict(stats.by_class),
            "rejected": stats.rejected,
            "latency_ms": {
                "mean": _ms(stats.mean),
                "p50_le": _ms(stats.quantile(0.5)),
                "p99_le": _ms(stats.quantile(0.99)),
            },
            "version": None,
        }
        if version is not None:
            entry["version"] = {
                "digest": version.info.digest,
                "reference": version.info.reference,
                "app_name": version.info.name,
                "app_version": version.info.version,
                "loaded_at": version.loaded_at,
                "source": version.config.source,
            }
        apps.append(entry)
    return {
        "pid": os.getpid(),
        "routes_file": str(manager.routes_path.resolve()),
        "ready": manager.ready,
        "reloads": manager.reloads,
        "config_error": manager.config_error,
        "unmatched_requests": manager.unmatched,
        "apps": apps,
    }


def _ms(seconds: float | None) -> float | None:
    if seconds is None or seconds == float("inf"):
        return None
    return round(seconds * 1000, 3)


def status_html(data: dict[str, Any]) -> str:
    e = html.escape
    rows = []
    for app in data["apps"]:
        version = app["version"] or {}
        latency = app["latency_ms"]
        rows.append(
            "<tr>"
            f"<td>{e(app['name'])}</td>"
            f"<td class=\"{e(app['state'])}\">{e(app['state'])}"
            + (f"<div class=err>{e(app['error'])}</div>" if app["error"] else "")
            + "</td>"
            f"<td>{e(app['source'])}<br><code>{e(version.get('digest') or '-')}</code></td>"
            f"<td>{'<br>'.join(e((', '.join(r['hosts']) or 'any host') + ' ' + r['prefix']) for r in app['routes'])}</td>"
            f"<td>{app['requests']} ({', '.join(f'{k}: {v}' for k, v in app['responses'].items() if v)})</td>"
            f"<td>{app['inflight']}</td>"
            f"<td>{latency['mean'] if latency['mean'] is not None else '-'} / "
            f"&le;{latency['p99_le'] if latency['p99_le'] is not None else '-'}</td>"
            "</tr>"
        )
    config_error = (
        f"<p class=err>routes.toml rejected (previous configuration still serving):<pre>{e(data['config_error'])}</pre>"
        if data["config_error"]
        else ""
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>lepton-router</title>
<meta http-equiv="refresh" content="5">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .6em; vertical-align: top; }}
.ready {{ color: #070; }} .failed, .err {{ color: #b00; }} .loading, .updating {{ color: #a60; }}
code {{ font-size: .8em; }}
</style></head><body>
<h1>lepton-router</h1>
<p>{e(data['routes_file'])} &middot; pid {data['pid']} &middot; {'ready' if data['ready'] else 'not ready'}
&middot; {data['reloads']} swaps &middot; {data['unmatched_requests']} unmatched requests
&middot; <a href="status.json">JSON</a> &middot; <a href="metrics">metrics</a>
&middot; {e(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>
{config_error}
<table><tr><th>app</th><th>state</th><th>source / digest</th><th>routes (hosts prefix)</th>
<th>requests</th><th>in flight</th><th>latency ms (mean / p99)</th></tr>
{''.join(rows)}
</table></body></html>
"""


def create_admin_app(manager: AppManager) -> Quart:
    app = Quart("lepton_router_admin")

    @app.get("/")
    async def index() -> Response:
        return Response(status_html(status_json(manager)), content_type="text/html; charset=utf-8")

    @app.get("/status.json")
    async def status() -> Response:
        return Response(json.dumps(status_json(manager), indent=2) + "\n", content_type="application/json")

    @app.get("/metrics")
    async def metrics() -> Response:
        stats = {name: s.stats for name, s in manager.status.items()}
        states = {name: s.state for name, s in manager.status.items()}
        return Response(
            prometheus(stats, states, manager.unmatched), content_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return app
