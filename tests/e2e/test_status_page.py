"""The live status page in a real headless chromium, against a real `lepton-router serve`.

One server, one browser, in the order an operator would see things: traffic (200s and 5xx) moves
the numbers and the SVG charts; an update pulled through a slow registry link shows its layers and
bytes moving, the version serving and the one being loaded, then the compile time; a broken edit
of routes.toml shows the problem with its file:line. Screenshots go to tmp_path, or to
$LEPTON_STATUS_SCREENSHOTS (how docs/images/status-page*.png are made).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.browser import page_attrs, page_text
from tests.support.server import RouterServer, echo_wasm, hello_wasm, push_app_to, write_routes
from tests.support.throttle import ThrottledProxy

T = TypeVar("T")
BIG_FILE = 6_000_000  # bytes of the update's extra file layer
PULL_RATE = 1_000_000  # bytes/s through the slow link: ~6 s for the update's pull
NONE = "\u2013"  # what the page shows for a number it does not have (an en dash)
OK_REQUESTS = 150
ERROR_REQUESTS = 30


def _routes(cache: Path, apps: dict[str, str]) -> str:
    text = f'[server]\ncache_dir = "{cache}"\n'
    for name, source in apps.items():
        text += f'\n[apps.{name}]\nsource = "{source}"\ninsecure = true\nhosts = ["{name}.test"]\n'
    return text


def _until(what: str, probe: Callable[[], T | None], timeout: float, server: RouterServer,
           driver: Any = None) -> T:
    """probe() until it returns something truthy; fails with the page's text and the server log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    page = page_text(driver, "body") if driver is not None else ""
    raise AssertionError(f"timed out waiting for {what}\npage: {page}\nserver log:\n{server.log()}")


class _Traffic(threading.Thread):
    """For the docs' screenshots only: a minute of traffic whose rate swells and ebbs, with a
    burst of 5xx and some slow answers, so the charts have a shape. Bounded by `seconds`."""

    def __init__(self, server: RouterServer, seconds: float) -> None:
        super().__init__(daemon=True)
        self.server, self.seconds, self.stop = server, seconds, threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        with httpx.Client(base_url=self.server.base_url, timeout=30) as client:
            while not self.stop.is_set() and (t := time.monotonic() - start) < self.seconds:
                rate = 25 + 18 * math.sin(t / 5)
                path = "/trap" if 14 < t % 30 < 19 and int(t * 10) % 3 == 0 else (
                    "/big/512" if int(t * 10) % 7 == 0 else "/item")
                client.get(path, headers={"host": "shop.test"})
                if int(t * 10) % 4 == 0:
                    client.get("/", headers={"host": "api.test"})
                time.sleep(1 / rate)


def _shot(driver: Any, name: str, tmp_path: Path) -> Path:
    target = Path(os.environ.get("LEPTON_STATUS_SCREENSHOTS") or tmp_path) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    # As tall as the content, so the picture has no empty bottom half.
    size = driver.get_window_size()
    height = driver.execute_script(  # the window's height counts the (headless) browser's own bars
        "return Math.ceil(document.body.getBoundingClientRect().bottom) + 16 + window.outerHeight - window.innerHeight"
    )
    driver.set_window_size(size["width"], min(int(height), size["height"]))
    try:
        assert driver.save_screenshot(str(target)), f"no screenshot at {target}"
    finally:
        driver.set_window_size(size["width"], size["height"])
    assert target.stat().st_size > 10_000
    return target


@pytest.fixture(scope="module")
def sources(registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("status-apps")
    big = os.urandom(BIG_FILE)  # fresh bytes: nothing of the update is in any cache
    return {
        "shop": push_app_to(registry.host, "status/shop:v1", echo_wasm(), work),
        "api-v1": push_app_to(registry.host, "status/api:v1", hello_wasm("api v1"), work),
        "api-v2": push_app_to(registry.host, "status/api:v2", hello_wasm("api v2"), work,
                              files={"assets/big.bin": big}),
    }


def test_status_page_live(router_server, browser, registry, sources: dict[str, str],  # type: ignore[no-untyped-def]
                          tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    routes = tmp_path / "routes.toml"
    routes.write_text(_routes(cache, {"shop": sources["shop"], "api": sources["api-v1"]}))
    server: RouterServer = router_server(routes)
    server.wait_ready()
    driver = browser

    # -- the page loads, everything it uses comes from the admin listener -----------------------
    driver.get(server.admin_url + "/")
    row = 'tr[data-app="shop"]'
    _until("the shop row", lambda: page_text(driver, f"{row} .badge") == "ready", 20, server, driver)
    assert page_text(driver, "#ready") == "ready"
    assert page_text(driver, f'{row} .value[data-metric="rps"]') == "0.0/s"
    assert page_text(driver, f'{row} .value[data-metric="errors"]') == NONE
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(url.startswith(server.admin_url + "/") for url in resources), resources

    # Per-second points, so a chart moves within a second or two of the traffic.
    driver.execute_script(
        "const s = document.getElementById('window'); s.value = '60:1'; s.dispatchEvent(new Event('change'));"
    )
    rps_chart = f'{row} svg[data-metric="rps"] polyline'
    _until("the per-second chart", lambda: len(page_attrs(driver, rps_chart, "points")) == 1
           and len(page_attrs(driver, rps_chart, "points")[0].split()) == 60, 10, server, driver)
    flat = page_attrs(driver, rps_chart, "points")[0]
    assert {p.split(",")[1] for p in flat.split()} == {"38.0"}  # no traffic yet: the baseline

    # -- traffic: 200s and 5xx (the echo guest traps on /trap) -----------------------------------
    with httpx.Client(base_url=server.base_url, headers={"host": "shop.test"}, timeout=30) as client:
        for i in range(OK_REQUESTS):
            assert client.get(f"/item/{i}").status_code == 200
            if i % 5 == 0 and i // 5 < ERROR_REQUESTS:
                assert client.get("/trap").status_code == 500
            if i % 50 == 49:
                time.sleep(0.5)  # spread over a few seconds: several points of the chart move

    def moved() -> bool:
        points = page_attrs(driver, rps_chart, "points")
        return bool(points) and points[0] != flat and any(float(p.split(",")[1]) < 38 for p in points[0].split())

    _until("the request-rate chart to move", moved, 15, server, driver)
    # (The chart may have moved on a poll made while the traffic still ran.)
    answered = f"{OK_REQUESTS + ERROR_REQUESTS} answered"
    _until("every request counted", lambda: answered in (page_text(driver, f"{row} td.name") or ""), 10, server,
           driver)
    rps = page_text(driver, f'{row} .value[data-metric="rps"]') or ""
    assert re.fullmatch(r"\d+(\.\d)?/s", rps) and rps != "0.0/s", rps
    errors = page_text(driver, f'{row} .value[data-metric="errors"]') or ""
    assert re.fullmatch(r"\d+(\.\d)? %", errors) and errors != "0 %", errors
    assert page_text(driver, f'{row} .value[data-metric="p99"]').endswith(" ms")  # type: ignore[union-attr]
    assert page_attrs(driver, f'{row} svg[data-metric="errors"] polyline', "points"), "no error-rate line"
    assert page_attrs(driver, f'{row} svg[data-metric="p99"] polyline', "points"), "no p99 line"
    history = httpx.get(f"{server.admin_url}/status/history.json?window=60&step=1", timeout=5).json()
    assert sum(history["apps"]["shop"]["requests"]) + history["apps"]["shop"]["recent"]["requests"] >= 1
    traffic_shot = _shot(driver, "status-page-traffic.png", tmp_path)
    background = None
    if os.environ.get("LEPTON_STATUS_SCREENSHOTS"):
        background = _Traffic(server, 90)
        background.start()
        time.sleep(45)

    # -- an update pulled through a slow link: layers and bytes move, then the compile -----------
    serving_digest = page_text(driver, 'tr[data-app="api"] code.serving-digest')
    assert serving_digest and serving_digest.startswith("sha256:")
    proxy = ThrottledProxy(registry.port, PULL_RATE).start()
    try:
        slow_v2 = sources["api-v2"].replace(registry.host, proxy.host)
        write_routes(routes, _routes(cache, {"shop": sources["shop"], "api": slow_v2}))
        api = 'tr[data-app="api"]'
        pulling = re.compile(r"pulling: (\d+)/(\d+) layers · ([\d.]+) MB / ([\d.]+) MB")
        seen: list[re.Match[str]] = []

        def progress() -> bool:
            match = pulling.search(page_text(driver, f"{api} td.state") or "")
            if match and (not seen or float(match[3]) > float(seen[-1][3])):
                seen.append(match)
            return len(seen) >= 2

        _until("the pull's bytes to move on the page", progress, 60, server, driver)
        proxy.pause()  # the pull holds still while the page is checked (and photographed)
        assert float(seen[-1][4]) >= BIG_FILE / 1e6 and float(seen[-1][3]) < float(seen[-1][4]), seen[-1]
        assert page_text(driver, f"{api} .badge") == "updating"
        assert page_text(driver, f"{api} code.serving-digest") == serving_digest  # v1 still serves
        assert slow_v2 in (page_text(driver, f"{api} .loading-version") or "")
        width = page_attrs(driver, f"{api} .progress > div", "style")
        assert width and "width:" in width[0]
        assert server.get("/", host="api.test").text == "api v1         \n"
        _shot(driver, "status-page.png", tmp_path)
        proxy.resume()

        _until("the update to finish", lambda: "compiled in" in (page_text(driver, f"{api} td.state") or ""),
               90, server, driver)
    finally:
        proxy.stop()
        if background is not None:
            background.stop.set()
            background.join(timeout=30)
    state = page_text(driver, f"{api} td.state") or ""
    assert re.search(r"loaded \d\d:\d\d:\d\d .*: pulled [\d.]+ MB \(\d layers\) in [\d.]+ s, compiled in [\d.]+ s", state), state
    assert page_text(driver, f"{api} .badge") == "ready"
    new_digest = page_text(driver, f"{api} code.serving-digest")
    assert new_digest and new_digest != serving_digest
    assert server.get("/", host="api.test").text == "api v2         \n"
    assert "loaded api" in (page_text(driver, "#reload-summary") or "")

    # -- a broken edit: the problem with file:line; the previous configuration serves on ---------
    broken = routes.read_text() + '\n[apps.broken]\nsource = "x"\nprefix = "no-slash"\n'
    line = broken.splitlines().index('prefix = "no-slash"') + 1
    write_routes(routes, broken)
    _until("the config error", lambda: page_attrs(driver, "#config-error", "hidden") == [], 30, server, driver)
    assert page_text(driver, "#config-problems .where") == f"{routes}:{line}"
    assert "app 'broken': field 'prefix'" in (page_text(driver, "#config-problems") or "")
    assert (page_text(driver, "#reload-summary") or "").endswith("rejected")
    assert server.get("/", host="shop.test").status_code == 200
    _shot(driver, "status-page-config-error.png", tmp_path)
    assert traffic_shot.exists()


def test_status_page_lists_app_file_problems(router_server, browser, sources: dict[str, str],  # type: ignore[no-untyped-def]
                                             tmp_path: Path) -> None:
    """A broken file of the apps directory: its own banner with file:line and field, while the
    other apps (and that app's last good version) serve on; gone once the file is fixed."""
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[server]\ncache_dir = "{tmp_path / "cache"}"\napps_dir = "apps.d"\n')
    apps = tmp_path / "apps.d"
    apps.mkdir()
    good = f'source = "{sources["api-v1"]}"\ninsecure = true\nhosts = ["api.test"]\n'
    (apps / "api.toml").write_text(good)
    server: RouterServer = router_server(routes)
    server.wait_ready()
    driver = browser
    driver.get(server.admin_url + "/")
    _until("the api row", lambda: page_text(driver, 'tr[data-app="api"] .badge') == "ready", 20, server, driver)
    assert page_attrs(driver, "#file-problems", "hidden") != []

    write_routes(apps / "api.toml", good + 'timeout = "soon"\n')
    _until("the file problem", lambda: page_attrs(driver, "#file-problems", "hidden") == [], 30, server, driver)
    assert page_text(driver, "#file-problem-list .where") == f"{apps / 'api.toml'}:4"
    assert "app 'api': field 'timeout'" in (page_text(driver, "#file-problem-list") or "")
    assert page_attrs(driver, "#config-error", "hidden") != []  # routes.toml itself is fine
    assert server.get("/", host="api.test").text == "api v1         \n"  # the last good version

    write_routes(apps / "api.toml", good)
    _until("the problem gone", lambda: page_attrs(driver, "#file-problems", "hidden") != [], 30, server, driver)
