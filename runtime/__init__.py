"""runtime/: LoadedApp -> callable components on wasmtime, with WASI and Spin host APIs."""
