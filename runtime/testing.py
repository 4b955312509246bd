"""Build a LoadedApp from local wasm files, without a registry (tests, benchmarks, demos).

    app = loaded_app([component("hello", Path("hello.wasm"), route="/...")], name="hello")

A ``.wat`` source (core or component text) is compiled to a ``.wasm`` next to the app dir.
The lock is made the way a registry pull leaves it: sources by digest, files as a directory
mount at "/", http triggers `<id>-http-trigger`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime

from registry.digest import sha256_digest
from registry.loaded import LoadedApp, LoadedComponent
from registry.locked import (
    ContentPath,
    ContentRef,
    LockedApp,
    LockedComponent,
    LockedComponentSource,
    LockedTrigger,
    Variable,
)


@dataclass
class ComponentSpec:
    id: str
    wasm: Path
    route: str | dict[str, Any] = "/..."
    files_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    executor: dict[str, Any] | None = None


def component(id: str, wasm: Path | str, **kwargs: Any) -> ComponentSpec:
    return ComponentSpec(id=id, wasm=Path(wasm), **kwargs)


def wasm_bytes(path: Path) -> bytes:
    if path.suffix == ".wat":
        return bytes(wasmtime.wat2wasm(path.read_text()))
    return path.read_bytes()


def loaded_app(
    components: Sequence[ComponentSpec] | ComponentSpec,
    *,
    name: str = "test-app",
    version: str | None = "0.1.0",
    variables: Mapping[str, Variable] | None = None,
    app_dir: Path | None = None,
    static_routes: Sequence[tuple[str, dict[str, Any]]] = (),
    manifest_digest: str | None = None,
    source: str = "local",
) -> LoadedApp:
    specs = [components] if isinstance(components, ComponentSpec) else list(components)
    app_dir = Path(app_dir) if app_dir is not None else Path(tempfile.mkdtemp(prefix="lepton-app-"))
    app_dir.mkdir(parents=True, exist_ok=True)
    locked_components = []
    loaded: dict[str, LoadedComponent] = {}
    triggers = []
    for spec in specs:
        data = wasm_bytes(spec.wasm)
        digest = sha256_digest(data)
        wasm_path = spec.wasm
        if spec.wasm.suffix == ".wat":
            wasm_path = app_dir / f"{digest.split(':')[1]}.wasm"
            wasm_path.write_bytes(data)
        files: tuple[ContentPath, ...] = ()
        if spec.files_dir is not None:
            files = (ContentPath(ContentRef(source=spec.files_dir.resolve().as_uri()), "/"),)
        locked = LockedComponent(
            id=spec.id,
            source=LockedComponentSource("application/wasm", ContentRef(digest=digest)),
            metadata=dict(spec.metadata),
            env=dict(spec.env),
            files=files,
            config=dict(spec.config),
        )
        locked_components.append(locked)
        loaded[spec.id] = LoadedComponent(spec.id, wasm_path, digest, spec.files_dir, locked)
        trigger_config: dict[str, Any] = {"component": spec.id, "route": spec.route}
        if spec.executor is not None:
            trigger_config["executor"] = spec.executor
        triggers.append(LockedTrigger(f"{spec.id}-http-trigger", "http", trigger_config))
    for i, (route, static) in enumerate(static_routes):
        triggers.append(LockedTrigger(f"static-{i}", "http", {"route": route, "static_response": static}))
    metadata: dict[str, Any] = {"name": name, "trigger": {"type": "http"}, "triggers": {}}
    if version is not None:
        metadata["version"] = version
    lock = LockedApp(
        triggers=tuple(triggers),
        components=tuple(locked_components),
        metadata=metadata,
        variables=dict(variables or {}),
    )
    digest = manifest_digest or sha256_digest(lock.to_bytes())
    return LoadedApp(
        source=source,
        reference=source,
        manifest_digest=digest,
        locked=lock,
        components=loaded,
        app_dir=app_dir,
    )
