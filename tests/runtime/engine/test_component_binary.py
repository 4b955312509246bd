"""runtime.engine.component_binary: the sections, import prefix and exports the byte bridge relies on."""

from __future__ import annotations

import pytest
import wasmtime

from runtime.engine import component_binary as binary

WITH_IMPORTS = """(component
  (import "a:b/c@1.0.0" (instance $c (export "r" (type (sub resource)))))
  (alias export $c "r" (type $r))
  (type $t (instance (alias outer 1 $r (type $r2)) (export "r" (type (eq $r2)))))
  (import "a:b/d@1.0.0" (instance (type $t)))
  (core module $m)
  (core instance (instantiate $m))
  (instance $e)
  (export "x:y/z@2.0.0" (instance $e))
)"""


def encode(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def test_the_import_prefix_counts_what_it_defines() -> None:
    wasm = encode(WITH_IMPORTS)
    sections = binary.sections(wasm)
    prefix = binary.import_prefix(wasm, sections)
    # Types: the first instance type, the alias of "r", $t (the import's own type comes first).
    assert prefix.instance_imports == {"a:b/c@1.0.0": 0, "a:b/d@1.0.0": 1}
    assert prefix.types == 3
    # The prefix ends where the core module section starts.
    module = next(s for s in sections if s.id == 1)
    assert prefix.end == module.start
    assert binary.exports(wasm, sections) == [("x:y/z@2.0.0", binary.SORT_INSTANCE)]
    # wasmtime agrees: a component made of the prefix alone declares the same imports.
    engine = wasmtime.Engine()
    probe = wasmtime.component.Component(engine, wasm[: prefix.end])
    assert set(probe.type.imports(engine)) == set(prefix.instance_imports)


@pytest.mark.parametrize(
    "text, message",
    [
        ('(component (import "f" (func)))', "is not an instance"),
        ("(component)", "no imports"),
    ],
)
def test_layouts_it_does_not_read_are_refused(text: str, message: str) -> None:
    wasm = encode(text)
    with pytest.raises(binary.LayoutError, match=message):
        binary.import_prefix(wasm, binary.sections(wasm))


def test_not_a_component() -> None:
    with pytest.raises(binary.LayoutError, match="not a component"):
        binary.sections(encode("(module)"))
    with pytest.raises(binary.LayoutError, match="truncated"):
        binary.sections(binary.PREAMBLE + b"\x07\xff")


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**20, 2**32 - 1])
def test_leb128(n: int) -> None:
    encoded = binary.leb128(n)
    value = shift = 0
    for byte in encoded:
        value |= (byte & 0x7F) << shift
        shift += 7
    assert value == n
    assert encoded[-1] < 0x80 and all(b >= 0x80 for b in encoded[:-1])


def test_a_component_section_wraps_a_component() -> None:
    inner = encode("(component)")
    assert inner == binary.PREAMBLE  # wat2wasm encodes an empty component as just the preamble
    section = binary.component_section(inner)
    assert section == binary.EMPTY_COMPONENT_SECTION == b"\x04\x08" + binary.PREAMBLE


NESTED = """(component
  (core module $a (func (export "run")) (func (export "cabi_post_run")))
  (component $inner
    (core module $b (memory (export "memory") 1))
  )
  (core module $c)
)"""


def test_core_module_exports_come_from_every_module_nested_or_not() -> None:
    assert binary.core_module_exports(encode(NESTED)) == {"run", "cabi_post_run", "memory"}
    with pytest.raises(binary.LayoutError, match="not a component"):
        binary.core_module_exports(encode("(module)"))
    cut = encode(NESTED)[:-3]
    with pytest.raises(binary.LayoutError):
        binary.core_module_exports(cut)
