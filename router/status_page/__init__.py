"""The admin listener's live status page: one HTML file, its stylesheet and script, shipped as
package data (pyproject's [tool.setuptools.package-data]) and served from memory. Nothing is
fetched from anywhere else: the page must work on an air-gapped host, so the charts are inline SVG
drawn by page.js from /status.json and /status/history.json.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

# name -> content type; only these are served.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "page.css": "text/css; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
}

# Same-origin only: a browser on the operator's desk refuses anything the page might try to load
# from elsewhere, which also keeps the air-gapped promise honest.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@cache
def asset(name: str) -> bytes:
    if name not in ASSETS:
        raise KeyError(name)
    return resources.files(__name__).joinpath(name).read_bytes()
