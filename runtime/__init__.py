"""runtime/: LoadedApp -> callable components on wasmtime, with WASI and Spin host APIs.

The map (docs/explanation/runtime-design.md tells the story):

- ``types.py``, ``errors.py``: the boundary with router/ (AppSettings, IncomingRequest,
  OutgoingResponse; AppLoadError). Pure: importing them loads no wasmtime.
- ``runtime.py``: the composition root. ``Runtime`` lists the capabilities and executors.
- ``core/``: the contract between the runtime and its plug-ins (capabilities, executors), the
  per-request context, linking, guests. Knows no concrete capability.
- ``engine/``: wasmtime itself: engine config, epochs, the precompiled cache, the instance and
  worker pools, the byte bridge, the wasmtime-py patches. Knows nothing of Spin.
- ``http/``: the HTTP trigger: Spin routes and headers, RunningApp, scheduling, executors.
- ``capabilities/``: the host interfaces, one package per Spin factor, plus WASI.
- ``testing.py``: a LoadedApp from local wasm files, for tests.

Public API (router/ codes against it):

- ``Runtime(cache_dir)``: one per process. ``Runtime.close()`` stops its threads.
- ``await runtime.load_app(loaded_app, AppSettings) -> RunningApp``: compiles on cache misses (in
  a worker thread), links every routed component by its own import names, instantiates each once
  to check it, and raises ``AppLoadError`` (naming app, component and field) on failure. Safe to
  call while other apps serve traffic.
- ``await running_app.handle(IncomingRequest) -> OutgoingResponse``: never raises for guest
  faults; bodies stream both ways.
- ``running_app.close()``: release it (the router calls it when the last in-flight request on a
  swapped-out version ends).
- ``runtime.app_directory``: the hook through which guests reach the host's other apps
  (``http://<app>.lepton.internal``): a ``runtime.types.AppDirectory``, set by the router.

``Runtime`` and ``RunningApp`` are imported on first use, so that importing a pure module of this
package (``runtime.types``) costs nothing: wasmtime is loaded, and patched, when a Runtime is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.errors import AppLoadError

if TYPE_CHECKING:
    from runtime.http.app import RunningApp
    from runtime.runtime import Runtime

__all__ = ["AppLoadError", "RunningApp", "Runtime"]


def __getattr__(name: str) -> Any:
    if name == "Runtime":
        from runtime.runtime import Runtime

        return Runtime
    if name == "RunningApp":
        from runtime.http.app import RunningApp

        return RunningApp
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
