"""Building small local Spin apps (spin.lock with file:// sources) for registry tests.

`write_local_app(dir, [AppComponent(...)])` writes the wasm and files of each component under `dir`
and a `spin.lock` as `spin up` would for a local app (sources as file:// URLs, each component's
files as one directory mount at "/"); pass its path to `registry.push_app`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime


def wat_module(body: str = "") -> bytes:
    """A tiny valid core module; `body` goes inside `(module ...)`."""
    return bytes(wasmtime.wat2wasm(f"(module {body})"))


def sized_module(size: int, salt: str = "") -> bytes:
    """A valid module of roughly `size` bytes (a data segment of filler), distinct per `salt`."""
    filler = (salt.encode() + b"lepton") * (size // (len(salt) + 6) + 1)
    escaped = "".join(f"\\{b:02x}" for b in filler[:size])
    return wat_module(f'(memory 1) (data (i32.const 0) "{escaped}")')


@dataclass
class AppComponent:
    id: str
    wasm: bytes
    files: dict[str, bytes] = field(default_factory=dict)  # path relative to the mount -> content
    route: str = "/..."
    extra: dict[str, Any] = field(default_factory=dict)  # merged into the lock's component entry


def write_local_app(
    root: Path, components: list[AppComponent], *, name: str = "demo", version: str = "0.1.0"
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    locked_components = []
    triggers = []
    for comp in components:
        wasm_path = root / f"{comp.id}.wasm"
        wasm_path.write_bytes(comp.wasm)
        entry: dict[str, Any] = {
            "id": comp.id,
            "source": {"content_type": "application/wasm", "source": wasm_path.as_uri()},
        }
        if comp.files:
            files_dir = root / f"{comp.id}-files"
            for rel, data in comp.files.items():
                target = files_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            entry["files"] = [{"source": files_dir.as_uri(), "path": "/"}]
        entry.update(comp.extra)
        locked_components.append(entry)
        triggers.append(
            {
                "id": f"{comp.id}-http-trigger",
                "trigger_type": "http",
                "trigger_config": {"component": comp.id, "route": comp.route},
            }
        )
    lock = {
        "spin_lock_version": 0,
        "metadata": {
            "name": name,
            "version": version,
            "origin": (root / "spin.toml").as_uri(),
            "trigger": {"type": "http"},
            "triggers": {"http": {}},
        },
        "triggers": triggers,
        "components": locked_components,
    }
    lockfile = root / "spin.lock"
    lockfile.write_text(json.dumps(lock, indent=2))
    return lockfile


def wat_hello_layout(work: Path, tag: str, wasm: bytes) -> str:
    """Push a one-component HTTP app (`wasm` at route "/...") to the OCI layout `work/layout` under
    `tag`, as `spin registry push` would; return its `oci-layout:` source."""
    import registry

    app_dir = work / f"app-{tag}"
    app_dir.mkdir()
    wasm_path = app_dir / "hello.wasm"
    wasm_path.write_bytes(wasm)
    lock = {
        "spin_lock_version": 0,
        "metadata": {"name": "hello", "version": tag, "trigger": {"type": "http"}, "triggers": {"http": {}}},
        "triggers": [{"id": "t", "trigger_type": "http", "trigger_config": {"component": "hello", "route": "/..."}}],
        "components": [{"id": "hello", "source": {"content_type": "application/wasm", "source": wasm_path.as_uri()}}],
    }
    (app_dir / "spin.lock").write_text(json.dumps(lock))
    source = f"oci-layout:{work / 'layout'}:{tag}"
    registry.push_app(app_dir / "spin.lock", source)
    return source
