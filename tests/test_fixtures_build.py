"""The fixture builders in tests/support/fixtures.py produce valid wasm with the expected shape.

Behaviour of the wasi:http components is exercised by the runtime's tests (they need our host);
here: validity (every builder runs ``wasm-tools validate`` before caching), the component's
imports/exports, the WAGI modules actually run under wasmtime's WASI, and the cache keeps its
promises (hit without rebuild, miss on any source change, one build under concurrency).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import wasmtime

from tests.support import fixtures as fx


def component_world(wasm: Path) -> tuple[set[str], set[str]]:
    """(imports, exports) of a component, as interface names with versions."""
    wit = subprocess.run(
        ["wasm-tools", "component", "wit", str(wasm)], capture_output=True, text=True, check=True
    ).stdout
    imports = set(re.findall(r"^\s*import ([\w:/.@-]+);", wit, re.MULTILINE))
    exports = set(re.findall(r"^\s*export ([\w:/.@-]+);", wit, re.MULTILINE))
    return imports, exports


def core_exports(wasm: Path) -> set[str]:
    text = subprocess.run(
        ["wasm-tools", "print", "--skeleton", str(wasm)], capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r'\(export "([^"]+)"', text))


def is_component(wasm: Path) -> bool:
    # Component binaries carry layer 1 in the version field (bytes 6..8), core modules layer 0.
    return wasm.read_bytes()[4:8] == b"\r\x00\x01\x00"


def run_wagi(wasm: Path, env: dict[str, str], stdin: bytes, tmp_path: Path) -> bytes:
    """Run a WASI preview1 command the way a WAGI host does (env, stdin body) and return stdout."""
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, str(wasm))
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    (tmp_path / "stdin").write_bytes(stdin)
    config = wasmtime.WasiConfig()
    config.env = list(env.items())
    config.argv = ["app.wasm"]
    config.stdin_file = str(tmp_path / "stdin")
    config.stdout_file = str(tmp_path / "stdout")
    store.set_wasi(config)
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    try:
        start(store)
    except wasmtime.ExitTrap as exit_trap:  # Go ends with proc_exit(0)
        assert exit_trap.code == 0
    return (tmp_path / "stdout").read_bytes()


# ---- the named fixtures --------------------------------------------------------------------


def test_c_http_hello_is_a_wasi_http_component() -> None:
    wasm = fx.build_c_http_hello()
    assert is_component(wasm)
    imports, exports = component_world(wasm)
    assert exports == {"wasi:http/incoming-handler@0.2.0"}
    assert "wasi:http/types@0.2.0" in imports
    # The preview1 adapter brings the environment (for /env/NAME) at its own 0.2.x version.
    assert any(name.startswith("wasi:cli/environment@0.2.") for name in imports)


def test_c_files_imports_the_filesystem() -> None:
    wasm = fx.build_c_files()
    imports, exports = component_world(wasm)
    assert exports == {"wasi:http/incoming-handler@0.2.0"}
    assert any(name.startswith("wasi:filesystem/preopens@0.2.") for name in imports)
    assert (fx.C_FILES_STATIC_DIR / "hello.txt").read_text() == "hello from a static file\n"


@pytest.mark.slow
def test_python_echo_is_a_spin_http_component() -> None:
    wasm = fx.build_python_echo()
    imports, exports = component_world(wasm)
    assert exports == {"wasi:http/incoming-handler@0.2.0"}
    # The spin-http world imports every Spin interface.
    assert {"fermyon:spin/key-value@2.0.0", "fermyon:spin/variables@2.0.0"} <= imports
    # Stripped of custom sections: well under the 37 MB componentize-py writes.
    assert wasm.stat().st_size < 25_000_000


@pytest.mark.slow
def test_js_echo_is_a_wasi_http_component() -> None:
    wasm = fx.build_js_echo()
    imports, exports = component_world(wasm)
    assert len(exports) == 1
    assert next(iter(exports)).startswith("wasi:http/incoming-handler@0.2.")
    assert any(name.startswith("wasi:http/types@0.2.") for name in imports)


@pytest.mark.slow
def test_js_app_can_import_spin_interfaces_from_the_sdk_wit(tmp_path: Path) -> None:
    app = tmp_path / "js_spin_imports"
    (app / "src").mkdir(parents=True)
    (app / "package.json").write_text(
        textwrap.dedent("""\
        {
          "name": "js-spin-imports",
          "private": true,
          "type": "module",
          "dependencies": {"@spinframework/wasi-http-proxy": "1.0.1"},
          "config": {"witDependencies": [
            {"witPath": "${SPIN_SDK_WIT}", "package": "fermyon:spin@2.0.0", "world": "spin-imports"}
          ]}
        }
        """)
    )
    (app / "src" / "index.js").write_text(
        textwrap.dedent("""\
        import { get } from "fermyon:spin/variables@2.0.0";
        addEventListener("fetch", (event) => event.respondWith(new Response(get("greeting"))));
        """)
    )
    imports, exports = component_world(fx.build_js_app(app))
    assert "fermyon:spin/variables@2.0.0" in imports
    assert next(iter(exports)).startswith("wasi:http/incoming-handler@0.2.")


def test_c_wagi_runs_as_a_wasi_command(tmp_path: Path) -> None:
    wasm = fx.build_c_wagi(fx.FIXTURES_DIR / "c_wagi_hello")
    assert not is_component(wasm)
    assert "_start" in core_exports(wasm)
    out = run_wagi(wasm, {"REQUEST_METHOD": "POST", "PATH_INFO": "/p"}, b"body!", tmp_path)
    assert out == b"Content-Type: text/plain\n\nhello from C WAGI: POST /p\nbody!"


def test_go_wagi_runs_and_exits_zero(tmp_path: Path) -> None:
    wasm = fx.build_go_wagi(fx.FIXTURES_DIR / "go_wagi_hello")
    assert "_start" in core_exports(wasm)
    out = run_wagi(wasm, {"REQUEST_METHOD": "PUT", "PATH_INFO": "/go"}, b"gopher", tmp_path)
    assert out == b"Content-Type: text/plain\n\nhello from Go WAGI: PUT /go\ngopher"


def test_c_reactor_core_module_exports_its_functions(tmp_path: Path) -> None:
    src = tmp_path / "spin1.c"
    src.write_text('__attribute__((export_name("answer"))) int answer(void) { return 42; }\n')
    wasm = fx.build_c_core_module(src, exec_model="reactor")
    assert {"answer", "_initialize"} <= core_exports(wasm)


# ---- builder behaviour ---------------------------------------------------------------------


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LEPTON_TEST_CACHE", str(cache))
    return cache


def test_cache_hits_without_rebuilding_and_misses_on_change(private_cache: Path, tmp_path: Path) -> None:
    src = tmp_path / "wagi"
    shutil.copytree(fx.FIXTURES_DIR / "c_wagi_hello", src)
    first = fx.build_c_wagi(src)
    assert first.parent == private_cache / "fixtures"
    stamp = first.stat().st_mtime_ns
    assert fx.build_c_wagi(src) == first
    assert first.stat().st_mtime_ns == stamp  # not rewritten

    (src / "hello.c").write_text((src / "hello.c").read_text().replace("hello from", "hi from"))
    changed = fx.build_c_wagi(src)
    assert changed != first
    assert b"hi from C WAGI" in changed.read_bytes()
    # Build parameters are part of the key too.
    assert fx.build_c_wagi(src, cflags=["-DEXTRA=1"]) not in (first, changed)
    # Nothing half-written or temporary is left behind.
    leftovers = [
        p.name for p in (private_cache / "fixtures").iterdir() if not p.name.endswith((".wasm", ".lock"))
    ]
    assert leftovers == []


def test_concurrent_builds_produce_one_entry(private_cache: Path, tmp_path: Path) -> None:
    src = tmp_path / "hello"
    shutil.copytree(fx.FIXTURES_DIR / "c_http_hello", src)
    script = "import sys; from pathlib import Path; from tests.support import fixtures as fx; "
    script += "print(fx.build_c_component(Path(sys.argv[1])))"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "LEPTON_TEST_CACHE": str(private_cache), "PYTHONPATH": str(root)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(src)], cwd=root, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=300)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert len(set(outputs)) == 1
    assert sorted(p.name for p in (private_cache / "fixtures").glob("*.wasm")) == [Path(outputs[0]).name]


def test_a_wrong_canonical_abi_signature_fails_the_build(private_cache: Path, tmp_path: Path) -> None:
    # The handler takes (request, response-outparam); a one-argument export must not link.
    src = tmp_path / "bad.c"
    src.write_text(
        '#include "lepton_http.h"\n'
        '__attribute__((export_name("wasi:http/incoming-handler@0.2.0#handle")))\n'
        "void handle(lh_handle request) { lh_drop_incoming_request(request); }\n"
    )
    with pytest.raises(fx.FixtureBuildError, match="component new"):
        fx.build_c_component(src)
    assert list((private_cache / "fixtures").glob("*.wasm")) == []


def test_c_component_takes_a_wit_folder_and_another_world(private_cache: Path, tmp_path: Path) -> None:
    wit = tmp_path / "wit"
    wit.mkdir()
    (wit / "a.wit").write_text("package test:two;\n\nworld empty {}\n")
    (wit / "b.wit").write_text(
        "package test:two;\n\nworld handler {\n  export wasi:http/incoming-handler@0.2.0;\n}\n"
    )
    # The export's interface pulls in wasi:http/types (and wasi:io) through its `use`.
    wasm = fx.build_c_component(fx.FIXTURES_DIR / "c_http_hello", wit=wit, world="handler")
    imports, exports = component_world(wasm)
    assert exports == {"wasi:http/incoming-handler@0.2.0"}
    assert "wasi:http/types@0.2.0" in imports
    # The world is part of the key, and one without the interfaces the C code imports cannot link.
    with pytest.raises(fx.FixtureBuildError, match="component new"):
        fx.build_c_component(fx.FIXTURES_DIR / "c_http_hello", wit=wit, world="empty")
