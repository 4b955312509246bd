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


def parse_lock(data: bytes, where: str) -> LockedApp:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise LockError(f"{where}: the Spin lock is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict) or "spin_lock_version" not in obj:
        raise LockError(
            f"{where}: not a Spin application: no LockedApp in the config and no "
            f"{SPIN_APPLICATION} layer"
        )
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
