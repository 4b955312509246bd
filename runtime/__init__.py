"""runtime/: LoadedApp -> callable components on wasmtime, with WASI and Spin host APIs.

Public API (router/ codes against it):

- ``Runtime(cache_dir)``: one per process (one Engine, an epoch ticker thread, the precompiled
  cache at ``cache_dir/"compiled"`` keyed by wasm digest, wasmtime version and engine config, and
  a pool of guest worker threads). ``Runtime.close()`` stops them.
- ``await runtime.load_app(loaded_app, AppSettings) -> RunningApp``: compiles on cache misses (in
  a worker thread), links every routed component by its own import names, instantiates each once
  to check it, and raises ``runtime.errors.AppLoadError`` (naming app, component and field) on
  failure. Safe to call while other apps serve traffic.
- ``await running_app.handle(IncomingRequest) -> OutgoingResponse``: routing inside the app
  (Spin v3 rules), mount-prefix stripping, spin-* headers, limits (timeout -> 504, memory -> 500,
  body size -> 413) and error mapping (no route -> 404, guest fault -> 500). Never raises for
  guest faults. Bodies stream both ways.
- ``running_app.close()``: release it (the router calls it when the last in-flight request on a
  swapped-out version ends).
- ``runtime.testing.loaded_app(...)``: a LoadedApp from local wasm files, without a registry.
- Host capabilities and executors plug in through ``runtime.capabilities`` (see its docstring).
"""

from runtime import compat

compat.apply()

from runtime.app import RunningApp  # noqa: E402
from runtime.errors import AppLoadError  # noqa: E402
from runtime.runtime import Runtime  # noqa: E402

__all__ = ["AppLoadError", "RunningApp", "Runtime"]
