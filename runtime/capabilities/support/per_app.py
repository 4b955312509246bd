"""Per-app (and per-state-dir) objects shared by every component and request of an app.

Capabilities get `prepare(app, component, settings)` once per component; objects that must be
one per app (resolved variables, a SQLite connection per state file) are looked up here. Objects
keyed by the app live as long as the LoadedApp; objects keyed by a state directory are shared by
every app version using it (the old and the new version during a hot swap), so they see the
same data through one connection.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from runtime.types import AppSettings

T = TypeVar("T")

_lock = threading.Lock()
_by_app: dict[tuple[int, str], Any] = {}
_by_key: dict[Hashable, Any] = {}


def per_app(app: object, kind: str, factory: Callable[[], T]) -> T:
    """One object of `kind` per live app object (created on first use, dropped with the app)."""
    key = (id(app), kind)
    with _lock:
        if key in _by_app:
            return _by_app[key]
    value = factory()  # outside the lock: factories may be slow (and may raise)
    with _lock:
        if key not in _by_app:
            _by_app[key] = value
            weakref.finalize(app, _by_app.pop, key, None)
        return _by_app[key]


def settings_key(settings: AppSettings) -> str:
    """A short digest of the settings Spin objects derive from: resolved variables and rendered
    allow-lists are cached per (app, settings), since one app can be loaded again with other
    routes.toml values. A digest, so no secret value is kept in a key."""
    # The runtime config's hash covers its variables providers (and their dotenv values).
    material = repr((sorted(settings.variables.items()), str(settings.state_dir), hash(settings.runtime_config)))
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def per_key(key: Hashable, factory: Callable[[], T]) -> T:
    """One object per key for the life of the process (state files: a handful per host)."""
    with _lock:
        if key not in _by_key:
            _by_key[key] = factory()
        return _by_key[key]
