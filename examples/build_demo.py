"""Build the bundled offline demo: examples/hello, an OCI image-layout directory holding a Spin app.

The app is built only from sources in this repository: examples/src/hello.wat (a component-text
wasi:http component answering "Hi from lepton!") and the static files under examples/src/static/.
It is packed with registry.push_app into the Spin v3 layout, exactly as `spin registry push`
would, at `oci-layout:examples/hello:v1`, which the top-level routes.toml serves.

    python examples/build_demo.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import wasmtime

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
LAYOUT = HERE / "hello"
TAG = "v1"


def write_lock(workdir: Path) -> Path:
    wasm = workdir / "hello.wasm"
    wasm.write_bytes(wasmtime.wat2wasm((SRC / "hello.wat").read_text()))
    lock = {
        "spin_lock_version": 0,
        "metadata": {
            "name": "hello",
            "version": "0.1.0",
            "description": "lepton-router's bundled demo",
            "trigger": {"type": "http"},
            "triggers": {"http": {}},
        },
        "triggers": [
            {"id": "hello-http-trigger", "trigger_type": "http",
             "trigger_config": {"component": "hello", "route": "/..."}},
        ],
        "components": [
            {
                "id": "hello",
                "source": {"content_type": "application/wasm", "source": wasm.as_uri()},
                "files": [{"source": (SRC / "static").as_uri(), "path": "/"}],
            }
        ],
    }
    path = workdir / "spin.lock"
    path.write_text(json.dumps(lock, indent=2))
    return path


def main() -> int:
    import registry

    if LAYOUT.exists():
        shutil.rmtree(LAYOUT)
    with tempfile.TemporaryDirectory() as tmp:
        digest = registry.push_app(write_lock(Path(tmp)), f"oci-layout:{LAYOUT}:{TAG}")
    size = sum(p.stat().st_size for p in LAYOUT.rglob("*") if p.is_file())
    print(f"wrote {LAYOUT.relative_to(HERE.parent)} ({size} bytes), tag {TAG}, manifest {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
