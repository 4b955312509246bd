"""A real headless browser for the status page tests: Debian's chromium driven by selenium through
Debian's chromium-driver.

`browser` fixture: a selenium WebDriver on a fresh profile, closed at teardown. Chromium is told
not to reach anything by itself (no sync, component updates, background networking or QUIC): the
tests only ever point it at 127.0.0.1. Both paths are given explicitly, so selenium never looks
for (or downloads) a driver of its own.

`page_text(driver, css)` / `page_attr(...)` read the live DOM through JavaScript, which is immune
to the page replacing elements between two calls (no stale element references).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.tools import require_tool

__all__ = ["browser"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 860)
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    require_tool(CHROMIUM, "apt install chromium")
    require_tool(CHROMEDRIVER, "apt install chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


def page_text(driver: Any, css: str) -> str | None:
    """textContent of the first element matching css, or None."""
    result = driver.execute_script(
        "const n = document.querySelector(arguments[0]); return n ? n.textContent : null;", css
    )
    return None if result is None else str(result)


def page_attrs(driver: Any, css: str, attr: str) -> list[str]:
    """The attribute of every element matching css (elements without it are left out)."""
    result = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(n => n.getAttribute(arguments[1]))"
        ".filter(v => v !== null);",
        css, attr,
    )
    return [str(v) for v in result]
