"""The admin listener's live status page: one HTML file, its stylesheet and script, shipped as
package data (pyproject's [tool.setuptools.package-data]) and served from memory. Nothing is
fetched from anywhere else: the page must work on an air-gapped host, so the charts are inline SVG
drawn by page.js from /status.json and /status/history.json.
"""

from __future__ import annotations

from importlib import resources

import aiofiles

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


_loaded: dict[str, bytes] = {}


async def asset(name: str) -> bytes:
    """An asset's bytes, read once (through aiofiles: it is read on the event loop's behalf, and
    a slow disk must not stall the admin listener) and then served from memory."""
    if name not in ASSETS:
        raise KeyError(name)
    data = _loaded.get(name)
    if data is None:
        with resources.as_file(resources.files(__name__).joinpath(name)) as path:
            async with aiofiles.open(path, "rb") as f:
                data = _loaded[name] = await f.read()
    return data
