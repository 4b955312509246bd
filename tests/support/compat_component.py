"""A component-text WAT "pass-through" component for testing value conversion both ways.

For every case NAME the component imports a host function ``h-NAME: func(x: T) -> T`` and exports
``f-NAME: func(x: T) -> T`` whose core code calls the import with its own flat arguments and returns
what the host returned. One call therefore exercises all four conversions: host -> guest params
(lowering in ``Func.__call__``), guest -> host params (lifting in the host-call callback),
host -> guest result (lowering in the callback) and guest -> host result (lifting in ``Func.__call__``).
The canonical ABI stores the import's result at a return pointer with the same layout the export's
return area must have, so one generic core function shape serves every type.

``repeat-num(n, x) -> u64`` and ``repeat-text(n, x) -> u32`` call ``h-num`` / ``h-text`` n times
from one export call (the last reply, or the byte length of the last reply), to time host calls.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    name: str
    wit: str  # component value type; named types are written as {rec} and resolved per side
    flat: tuple[str, ...]  # core flat params of the type
    flat_result: str | None = None  # core result type when the result is returned flat


# Named types (records, variants, enums, flags must be imported/exported to appear in signatures).
NAMED = {
    "rec": '(record (field "id" u64) (field "name" string) (field "tags" (list string)) '
    '(field "data" (list u8)) (field "flag" bool) (field "note" (option string)))',
    "var": '(variant (case "num" u32) (case "text" string) (case "empty"))',
    "tvar": '(variant (case "a" u32) (case "b" u32) (case "c"))',
    "color": '(enum "red" "green" "blue")',
    "perms": '(flags "read" "write" "exec")',
    # as wide as wasi:http's error-code (~40 cases): re-reading such a type per call is what hurts
    "wide": "(variant " + " ".join(f'(case "c{i}"{(" u32", " string", "")[i % 3]})' for i in range(40)) + ")",
}

CASES = (
    Case("bytes", "(list u8)", ("i32", "i32")),
    Case("res", "(result string (error u32))", ("i32", "i32", "i32")),
    Case("tres", "(result u32 (error u32))", ("i32", "i32")),
    Case("unit-res", "(result (error string))", ("i32", "i32", "i32")),
    Case("opt", "(option (list u8))", ("i32", "i32", "i32")),
    Case("optres", "(result (option (list u8)) (error u32))", ("i32", "i32", "i32", "i32")),
    Case("var", "{var}", ("i32", "i32", "i32")),
    Case("tvar", "{tvar}", ("i32", "i32")),
    Case("rec", "{rec}", ("i64",) + ("i32",) * 10),
    Case("recs", "(list {rec})", ("i32", "i32")),
    Case("tup", "(tuple s32 f64 char string)", ("i32", "f64", "i32", "i32", "i32")),
    Case("color", "{color}", ("i32",), flat_result="i32"),
    Case("perms", "{perms}", ("i32",), flat_result="i32"),
    Case("wide", "{wide}", ("i32", "i32", "i32")),
    Case("text", "string", ("i32", "i32")),
    Case("num", "u64", ("i64",), flat_result="i64"),
)

RETAREA = 16  # static return area; each instance has its own memory
HEAP_START = 1024


def _resolve(wit: str, side: str) -> str:
    for name in NAMED:
        wit = wit.replace("{" + name + "}", f"${name}-{side}")
    return wit


def _libc() -> str:
    # memory + a bump allocator that grows memory on demand (cabi_realloc never frees here).
    return f"""
  (core module $libc
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const {HEAP_START}))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32) (local $need i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
      (global.set $heap (i32.add (local.get $p) (local.get 3)))
      (local.set $need (i32.sub (i32.shr_u (i32.add (global.get $heap) (i32.const 65535)) (i32.const 16))
                                (memory.size)))
      (if (i32.gt_s (local.get $need) (i32.const 0))
        (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1)) (then unreachable))))
      (local.get $p)))
  (core instance $libc (instantiate $libc))"""


def passthrough_wat(cases: tuple[Case, ...] = CASES) -> str:
    out = ["(component"]
    for name, body in NAMED.items():
        out.append(f"  (type ${name}-def {body})")
        out.append(f'  (import "{name}" (type ${name}-imp (eq ${name}-def)))')
    for c in cases:
        t = _resolve(c.wit, "imp")
        out.append(f'  (import "h-{c.name}" (func $h-{c.name} (param "x" {t}) (result {t})))')
    out.append(_libc())
    imports, funcs = [], []
    for c in cases:
        params = " ".join(c.flat)
        gets = " ".join(f"(local.get {i})" for i in range(len(c.flat)))
        if c.flat_result:
            imports.append(
                f'    (import "host" "h-{c.name}" (func $h-{c.name} (param {params}) (result {c.flat_result})))'
            )
            funcs.append(
                f'    (func (export "f-{c.name}") (param {params}) (result {c.flat_result})'
                f" (call $h-{c.name} {gets}))"
            )
        else:
            imports.append(f'    (import "host" "h-{c.name}" (func $h-{c.name} (param {params} i32)))')
            funcs.append(
                f'    (func (export "f-{c.name}") (param {params}) (result i32)'
                f" (call $h-{c.name} {gets} (i32.const {RETAREA})) (i32.const {RETAREA}))"
            )
    names = {c.name for c in cases}
    loops = []
    if "num" in names:
        # repeat-num(n, x): calls h-num(x) n times; isolates the cost of a host call
        loops.append(
            '    (func (export "repeat-num") (param $n i32) (param $x i64) (result i64) (local $r i64)\n'
            "      (block $done (loop $again (br_if $done (i32.eqz (local.get $n)))\n"
            "        (local.set $r (call $h-num (local.get $x)))\n"
            "        (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br $again)))\n"
            "      (local.get $r))"
        )
    if "text" in names:
        loops.append(
            '    (func (export "repeat-text") (param $n i32) (param $p i32) (param $l i32) (result i32)\n'
            "      (block $done (loop $again (br_if $done (i32.eqz (local.get $n)))\n"
            f"        (call $h-text (local.get $p) (local.get $l) (i32.const {RETAREA}))\n"
            "        (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br $again)))\n"
            f"      (i32.load offset=4 (i32.const {RETAREA})))"
        )
    imports.append('    (import "libc" "memory" (memory 1))')
    core = ["  (core module $m", *imports, *funcs, *loops, "  )"]
    out.extend(core)
    opts = '(memory (core memory $libc "memory")) (realloc (core func $libc "realloc")) string-encoding=utf8'
    for c in cases:
        out.append(f"  (core func $lower-{c.name} (canon lower (func $h-{c.name}) {opts}))")
    exports = " ".join(f'(export "h-{c.name}" (func $lower-{c.name}))' for c in cases)
    out.append(f"  (core instance $host {exports})")
    out.append(
        '  (core instance $mi (instantiate $m (with "host" (instance $host)) (with "libc" (instance $libc))))'
    )
    for name in NAMED:
        out.append(f'  (export ${name}-exp "{name}" (type ${name}-def))')
    for c in cases:
        t = _resolve(c.wit, "exp")
        out.append(
            f'  (func (export "f-{c.name}") (param "x" {t}) (result {t})'
            f' (canon lift (core func $mi "f-{c.name}") {opts}))'
        )
    if "num" in names:
        out.append(
            '  (func (export "repeat-num") (param "n" u32) (param "x" u64) (result u64)'
            ' (canon lift (core func $mi "repeat-num")))'
        )
    if "text" in names:
        out.append(
            '  (func (export "repeat-text") (param "n" u32) (param "x" string) (result u32)'
            f' (canon lift (core func $mi "repeat-text") {opts}))'
        )
    out.append(")")
    return "\n".join(out)
