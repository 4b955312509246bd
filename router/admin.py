"""The admin listener (`admin_listen`): the live status page, its JSON, Prometheus metrics.

It is a separate Quart app on its own address so internals (app names, sources, errors) are never
exposed on the shared public port. With --workers N each worker answers for itself (the JSON
carries its pid).

`/` is the page an operator keeps open (router/status_page/: static HTML, CSS and JS that poll
`/status.json` and `/status/history.json`); `/plain` is the former server-rendered table, for a
browser without JavaScript.
"""

from __future__ import annotations

import html
import json
import os
import time
from typing import Any

from quart import Quart, Response, request

from router import status_page
from router.history import HISTORY_S, Window, now_second
from router.manager import AppManager
from router.metrics import prometheus

RECENT_S = 10  # the page's headline numbers: the last this many whole seconds
STEPS = (1, 2, 5, 10, 15, 30, 60)  # chart resolutions offered, in seconds per point


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
            "file": owned.file if (owned := manager.owned.get(name)) is not None else None,
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
            # The load under way (the version being loaded: phase, pull progress) or the last one.
            "load": status.load.to_json() if status.load is not None else None,
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
        "now": time.time(),
        "routes_file": str(manager.routes_path.resolve()),
        "ready": manager.ready,
        "reloads": manager.reloads,
        "config_error": manager.config_error,
        "apps_dir": None if manager.apps_dir is None else str(manager.apps_dir),
        # Problems of the apps directory's files (each costs only its own app), as last read.
        "app_file_problems": [p.to_json() for p in manager.file_problems],
        "unmatched_requests": manager.unmatched,
        "recent_reloads": [r.to_json() for r in reversed(manager.reload_log)],  # latest first
        "apps": apps,
    }


def history_json(manager: AppManager, window_s: int, step_s: int) -> dict[str, Any]:
    """Per app, window_s // step_s points of step_s seconds each (oldest first, the last one
    ending at most step_s seconds ago), and the last RECENT_S seconds summed."""
    now = now_second()
    apps = {}
    for name, status in manager.status.items():
        history = status.stats.history
        series = history.series(now, window_s, step_s)
        recent = history.window(now - RECENT_S, RECENT_S)
        apps[name] = {
            "requests": [w.requests for w in series],
            "errors": [w.errors for w in series],
            "p99_ms": [_ms(w.quantile(0.99)) for w in series],
            "recent": _summary(recent),
        }
    return {"now": time.time(), "window_s": window_s, "step_s": step_s, "apps": apps}


def _summary(window: Window) -> dict[str, Any]:
    ratio = window.error_ratio
    return {
        "seconds": window.seconds,
        "requests": window.requests,
        "errors": window.errors,
        "rps": round(window.rate, 3),
        "error_pct": None if ratio is None else round(100 * ratio, 3),
        "p99_ms": _ms(window.quantile(0.99)),
    }


def _history_args(args: Any) -> tuple[int, int] | str:
    """(window, step) from the query string, or why not."""
    try:
        window_s = int(args.get("window", 300))
        step_s = int(args.get("step", 5))
    except ValueError:
        return "window and step are whole seconds"
    if step_s not in STEPS:
        return f"step must be one of {', '.join(map(str, STEPS))}"
    if not step_s <= window_s <= HISTORY_S:
        return f"window must be between step and {HISTORY_S}"
    return window_s, step_s


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
    if data.get("app_file_problems"):
        config_error += "<p class=err>app files with problems (each costs only its own app):<ul>" + "".join(
            f"<li>{e(p['text'])}</li>" for p in data["app_file_problems"]) + "</ul>"
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
        return await _asset("index.html")

    @app.get("/<any('page.css', 'page.js'):name>")
    async def page_asset(name: str) -> Response:
        return await _asset(name)

    @app.get("/plain")
    async def plain() -> Response:
        return Response(status_html(status_json(manager)), content_type="text/html; charset=utf-8")

    @app.get("/status.json")
    async def status() -> Response:
        return Response(json.dumps(status_json(manager), indent=2) + "\n", content_type="application/json")

    @app.get("/status/history.json")
    async def history() -> Response:
        parsed = _history_args(request.args)
        if isinstance(parsed, str):
            return Response(parsed + "\n", status=400, content_type="text/plain; charset=utf-8")
        return Response(json.dumps(history_json(manager, *parsed)) + "\n", content_type="application/json")

    @app.get("/metrics")
    async def metrics() -> Response:
        stats = {name: s.stats for name, s in manager.status.items()}
        states = {name: s.state for name, s in manager.status.items()}
        return Response(
            prometheus(stats, states, manager.unmatched), content_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return app


async def _asset(name: str) -> Response:
    response = Response(await status_page.asset(name), content_type=status_page.ASSETS[name])
    response.headers["Content-Security-Policy"] = status_page.CSP
    response.headers["Cache-Control"] = "no-cache"  # a new release's page is picked up at once
    return response
