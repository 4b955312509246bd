"""Reading a Spin artifact: which blob is the lock, and how layers map to content.

Spin v2+ pushes an OCI image config and the LockedApp as the *last* layer with media type
`application/vnd.fermyon.spin.application.v1+config`; Spin v1.x pushed the LockedApp *as* the
config blob. Spin decides by content (does the JSON have `spin_lock_version`?), and so do we.
"""

from __future__ import annotations

import dataclasses
import json

from registry.errors import LockError
from registry.locked import LockedApp
from registry.media import SPIN_APPLICATION, ImageManifest


def lock_blob_digest(manifest: ImageManifest) -> str:
    """The digest of the blob holding the LockedApp: the last lock layer, else the config."""
    for layer in reversed(manifest.layers):
        if layer.media_type == SPIN_APPLICATION:
            return layer.digest
    return manifest.config.digest


def read_lock(manifest: ImageManifest, data: bytes, app_name: str, where: str) -> LockedApp:
    """The app's LockedApp from the bytes of `lock_blob_digest(manifest)`.

    Like Spin's `OciLoader::load_from_cache`: JSON with `spin_lock_version` is a lock; anything
    else is a bare wasm package (as `wkg` pushes) and must have exactly one layer, which Spin runs
    as a single component behind `route = "/..."`.
    """
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise LockError(f"{where}: the OCI config / Spin lock is not valid JSON: {exc}") from exc
    if isinstance(obj, dict) and "spin_lock_version" in obj:
        return parse_lock(obj, where)
    if len(manifest.layers) != 1:
        raise LockError(
            f"{where}: not a Spin application (no LockedApp in the config, no {SPIN_APPLICATION} "
            f"layer) and not a single-layer wasm package ({len(manifest.layers)} layers)"
        )
    return wasm_package_lock(manifest.layers[0].digest, app_name)


def wasm_package_lock(digest: str, app_name: str) -> LockedApp:
    """The lock Spin's `from_wasm_file` builds: one inline component on one `/...` HTTP trigger.

    Ids follow Spin's normalisation of an inline component on an id-less trigger. Spin names the
    app after the wasm file's stem (a cache file name); we use the repository's last segment.
    """
    return LockedApp.from_json(
        {
            "spin_lock_version": 0,
            "metadata": {"name": app_name, "trigger": {"type": "http"}, "triggers": {"http": {}}},
            "triggers": [
                {
                    "id": "http-trigger1",
                    "trigger_type": "http",
                    "trigger_config": {"component": "http-trigger1-component", "route": "/..."},
                }
            ],
            "components": [
                {"id": "http-trigger1-component", "source": {"content_type": "application/wasm", "digest": digest}}
            ],
        }
    )


def parse_lock(obj: dict[str, object], where: str) -> LockedApp:
    try:
        locked = LockedApp.from_json(obj)
    except LockError as exc:
        raise LockError(f"{where}: {exc}") from exc
    return without_origin(locked)


def without_origin(locked: LockedApp) -> LockedApp:
    """Spin drops `metadata.origin` on push and sets its own on pull; the registry form has none."""
    if "origin" not in locked.metadata:
        return locked
    return dataclasses.replace(locked, metadata={k: v for k, v in locked.metadata.items() if k != "origin"})
