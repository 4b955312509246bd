"""Carry wasi:io stream bytes between guest and host as latin-1 strings instead of list<u8>.

Why: wasmtime's C API hands a host function's ``list<u8>`` over as one 32-byte value per byte,
so a 1 MiB body costs tens of milliseconds in conversion alone. A ``string`` crosses as one byte
buffer. A guest that stores a string as latin-1 (the component model's ``latin1+utf16``
encoding) can name any byte sequence with it, so bytes survive the trip unchanged.

How: when a component is compiled, it is wrapped in an outer component that

* declares the guest's own imports, byte for byte (its leading type/import/alias sections);
* imports ``lepton:io/latin1``: read, blocking-read, write and blocking-write-and-flush with
  ``string`` in place of ``list<u8>`` (served by runtime.capabilities.wasi.io);
* instantiates a small bridge component (WAT below): its ``wasi:io/streams`` export re-exports
  the host's stream resources and functions, except the four byte-carrying ones, which it lifts
  itself and forwards to ``lepton:io/latin1`` with latin-1 strings. Guest <-> bridge copies are
  wasmtime's compiled adapters (memcpy);
* instantiates the guest, unchanged, with the bridge's streams in place of the host's, and
  re-exports what the guest exports.

Only the streams the guest imports are bridged, with exactly the functions it imports. Anything
unexpected (other import kinds, several streams versions, a layout this code does not know) means
no bridge: the guest is compiled as it is and works as before, only slower on big bodies.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

import wasmtime
from wasmtime import Engine
from wasmtime.component import Component, ComponentInstanceType, FuncType, ResourceType

from runtime.engine import component_binary as binary

log = logging.getLogger("lepton.runtime")

# Part of the precompiled-cache key: change it whenever the composed output changes.
BRIDGE_VERSION = 1
LATIN1_INTERFACE = "lepton:io/latin1"
LATIN1_IMPORT = f"{LATIN1_INTERFACE}@0.1.0"
STREAMS_INTERFACE = "wasi:io/streams"

BRIDGE_ENV = "LEPTON_BYTE_BRIDGE"  # "0" compiles components as they are (for comparisons)


def enabled() -> bool:
    return os.environ.get(BRIDGE_ENV, "1") != "0"


# Names are pasted into the outer component's text: only what interface and function names use,
# so nothing in a guest can change that text's meaning.
_NAME = re.compile(r"[A-Za-z0-9:/@.\-\[\]+]+")

# wasi:io/streams@0.2.x, in the text format. {I} {O} {SE} {P}: input-stream, output-stream,
# stream-error, pollable. The last field names the bridged latin-1 function, if any.
_STREAM_FUNCS: tuple[tuple[str, str, str | None], ...] = (
    ("[method]input-stream.read", '(param "self" (borrow {I})) (param "len" u64) (result (result (list u8) (error {SE})))', "read"),
    ("[method]input-stream.blocking-read", '(param "self" (borrow {I})) (param "len" u64) (result (result (list u8) (error {SE})))', "blocking-read"),
    ("[method]input-stream.skip", '(param "self" (borrow {I})) (param "len" u64) (result (result u64 (error {SE})))', None),
    ("[method]input-stream.blocking-skip", '(param "self" (borrow {I})) (param "len" u64) (result (result u64 (error {SE})))', None),
    ("[method]input-stream.subscribe", '(param "self" (borrow {I})) (result (own {P}))', None),
    ("[method]output-stream.check-write", '(param "self" (borrow {O})) (result (result u64 (error {SE})))', None),
    ("[method]output-stream.write", '(param "self" (borrow {O})) (param "contents" (list u8)) (result (result (error {SE})))', "write"),
    ("[method]output-stream.blocking-write-and-flush", '(param "self" (borrow {O})) (param "contents" (list u8)) (result (result (error {SE})))', "blocking-write-and-flush"),
    ("[method]output-stream.flush", '(param "self" (borrow {O})) (result (result (error {SE})))', None),
    ("[method]output-stream.blocking-flush", '(param "self" (borrow {O})) (result (result (error {SE})))', None),
    ("[method]output-stream.subscribe", '(param "self" (borrow {O})) (result (own {P}))', None),
    ("[method]output-stream.write-zeroes", '(param "self" (borrow {O})) (param "len" u64) (result (result (error {SE})))', None),
    ("[method]output-stream.blocking-write-zeroes-and-flush", '(param "self" (borrow {O})) (param "len" u64) (result (result (error {SE})))', None),
    ("[method]output-stream.splice", '(param "self" (borrow {O})) (param "src" (borrow {I})) (param "len" u64) (result (result u64 (error {SE})))', None),
    ("[method]output-stream.blocking-splice", '(param "self" (borrow {O})) (param "src" (borrow {I})) (param "len" u64) (result (result u64 (error {SE})))', None),
)
_KNOWN_FUNCS = {name for name, _, _ in _STREAM_FUNCS}
_READS = ("read", "blocking-read")
_WRITES = ("write", "blocking-write-and-flush")


class _Unsupported(Exception):
    """Nothing to bridge, or nothing this bridge knows how to; compile the component as it is."""


# -- the bridge and the outer component, in the text format ----------------------------------------
@dataclass(frozen=True)
class _Plan:
    """What the guest imports of wasi:io/streams, which decides the bridge's shape."""

    streams: str  # the import name, e.g. "wasi:io/streams@0.2.0"
    funcs: frozenset[str]
    resources: frozenset[str]

    @property
    def version(self) -> str:
        return self.streams.partition("@")[2]

    @property
    def has_in(self) -> bool:
        return "input-stream" in self.resources

    @property
    def has_out(self) -> bool:
        return "output-stream" in self.resources

    @property
    def has_poll(self) -> bool:
        return "pollable" in self.resources

    @property
    def table(self) -> list[tuple[str, str, str | None]]:
        return [entry for entry in _STREAM_FUNCS if entry[0] in self.funcs]


def _func_type(signature: str, **names: str) -> str:
    return f"(func {signature.format(**names)})"


def _latin1_type(plan: _Plan) -> str:
    """The `lepton:io/latin1` instance type, in a scope that has $in, $out and $stream-error."""
    lines = ['(alias outer 1 $stream-error (type $se-l)) (export "stream-error" (type $se2 (eq $se-l)))']
    if plan.has_in:
        lines.append('(alias outer 1 $in (type $in-l)) (export "input-stream" (type $in2 (eq $in-l)))')
        lines += [
            f'(export "{name}" (func (param "self" (borrow $in2)) (param "len" u64) (result (result string (error $se2)))))'
            for name in _READS
        ]
    if plan.has_out:
        lines.append('(alias outer 1 $out (type $out-l)) (export "output-stream" (type $out2 (eq $out-l)))')
        lines += [
            f'(export "{name}" (func (param "self" (borrow $out2)) (param "contents" string) (result (result (error $se2)))))'
            for name in _WRITES
        ]
    body = "\n    ".join(lines)
    return f'(type $latin1-type (instance\n    {body}\n  ))\n  (import "{LATIN1_IMPORT}" (instance $latin1 (type $latin1-type)))'


def _stream_aliases(plan: _Plan, instance: str) -> str:
    lines = [f'(alias export {instance} "stream-error" (type $stream-error))']
    if plan.has_in:
        lines.append(f'(alias export {instance} "input-stream" (type $in))')
    if plan.has_out:
        lines.append(f'(alias export {instance} "output-stream" (type $out))')
    return "\n  ".join(lines)


def _shim_func(fast: str) -> tuple[str, str, str]:
    """(core import, core function, component type) of one bridged function."""
    if fast in _READS:
        return (
            f'(import "host" "{fast}" (func ${fast} (param i32 i64 i32)))',
            # The bytes handed back must outlive this call (the caller copies them after we
            # return), so the heap is reset when the next call starts, not when this one ends.
            f'(func (export "{fast}") (param $self i32) (param $len i64) (result i32)\n'
            f"      (global.set $bump (i32.const 64))\n"
            f"      (call ${fast} (local.get $self) (local.get $len) (i32.const 16))\n"
            # A borrow of a resource this component does not define must be dropped before
            # returning, or wasmtime fails the call.
            f"      (call $drop-in (local.get $self))\n"
            f"      (i32.const 16))",
            '(param "self" (borrow $in)) (param "len" u64) (result (result (list u8) (error $stream-error)))',
        )
    return (
        f'(import "host" "{fast}" (func ${fast} (param i32 i32 i32 i32)))',
        f'(func (export "{fast}") (param $self i32) (param $ptr i32) (param $len i32) (result i32)\n'
        f"      (call ${fast} (local.get $self) (local.get $ptr) (local.get $len) (i32.const 16))\n"
        f"      (call $drop-out (local.get $self))\n"
        f"      (global.set $bump (i32.const 64))\n"
        f"      (i32.const 16))",
        '(param "self" (borrow $out)) (param "contents" (list u8)) (result (result (error $stream-error)))',
    )


def _bridge_wat(plan: _Plan) -> str:
    """The bridge component for the guest's `wasi:io/streams` import, function for function."""
    version, table = plan.version, plan.table
    bridged = sorted({fast for _, _, fast in table if fast})
    outer = {"I": "$in-o", "O": "$out-o", "SE": "$se-o", "P": "$p-o"}
    inner = {"I": "$I", "O": "$O", "SE": "$SE", "P": "$P"}
    named = {"I": "$ie", "O": "$oe", "SE": "$see", "P": "$pe"}
    streams_type = (
        (['(export "input-stream" (type $in-o (sub resource)))'] if plan.has_in else [])
        + (['(export "output-stream" (type $out-o (sub resource)))'] if plan.has_out else [])
        + [
            '(alias outer 1 $error (type $error-o)) (export "error" (type $e (eq $error-o)))',
            '(type $se-def (variant (case "last-operation-failed" (own $e)) (case "closed")))',
            '(export "stream-error" (type $se-o (eq $se-def)))',
        ]
        + (['(alias outer 1 $pollable (type $pollable-o)) (export "pollable" (type $p-o (eq $pollable-o)))'] if plan.has_poll else [])
        + [f'(export "{name}" {_func_type(sig, **outer)})' for name, sig, _ in table]
    )
    shims = [_shim_func(fast) for fast in bridged]
    lowered = [
        f'(core func $l-{fast} (canon lower (func $latin1 "{fast}") (memory $memory)'
        + (" (realloc $realloc)" if fast in _READS else "")
        + " string-encoding=latin1+utf16))"
        for fast in bridged
    ]
    lifted = [
        f"(type $t-{fast} (func {ty}))\n"
        f'  (func $b-{fast} (type $t-{fast}) (canon lift (core func $shim "{fast}") (memory $memory) (realloc $realloc)))'
        for fast, (_, _, ty) in zip(bridged, shims, strict=True)
    ]
    drops, drop_imports, drop_exports = [], [], []
    for resource, alias, short in (("input-stream", "$in", "in"), ("output-stream", "$out", "out")):
        if resource in plan.resources:
            drops.append(f"(core func $drop-{short} (canon resource.drop {alias}))")
            drop_imports.append(f'(import "host" "drop-{short}" (func $drop-{short} (param i32)))')
            drop_exports.append(f'(export "drop-{short}" (func $drop-{short}))')
    host_exports = [f'(export "{fast}" (func $l-{fast}))' for fast in bridged] + drop_exports

    # Exporting an imported resource needs a component boundary: the re-export names the host's
    # resource types in the new instance, and `[method]` exports must refer to those names.
    reexport = (
        (['(import "in" (type $I (sub resource)))', '(export $ie "input-stream" (type $I))'] if plan.has_in else [])
        + (['(import "out" (type $O (sub resource)))', '(export $oe "output-stream" (type $O))'] if plan.has_out else [])
        + (['(import "poll" (type $P (sub resource)))', '(export $pe "pollable" (type $P))'] if plan.has_poll else [])
        + [
            '(import "err" (type $E (sub resource)))',
            '(type $se-def (variant (case "last-operation-failed" (own $E)) (case "closed")))',
            '(import "se" (type $SE (eq $se-def)))',
            '(export $ee "error" (type $E))',
            '(type $see-def (variant (case "last-operation-failed" (own $ee)) (case "closed")))',
            '(export $see "stream-error" (type $see-def))',
        ]
        + [f'(import "f{i}" (func $f{i} {sig.format(**inner)}))' for i, (_, sig, _) in enumerate(table)]
        + [f'(export "{name}" (func $f{i}) {_func_type(sig, **named)})' for i, (name, sig, _) in enumerate(table)]
    )
    reexport_args = (
        (['(with "in" (type $in))'] if plan.has_in else [])
        + (['(with "out" (type $out))'] if plan.has_out else [])
        + (['(with "poll" (type $pollable))'] if plan.has_poll else [])
        + ['(with "err" (type $error))', '(with "se" (type $stream-error))']
        + [
            f'(with "f{i}" (func $b-{fast}))' if fast else f'(with "f{i}" (func $streams "{name}"))'
            for i, (name, _, fast) in enumerate(table)
        ]
    )
    poll_import = (
        f'(import "wasi:io/poll@{version}" (instance $poll (export "pollable" (type (sub resource)))))\n'
        '  (alias export $poll "pollable" (type $pollable))'
        if plan.has_poll
        else ""
    )
    nl2, nl4, nl6 = "\n  ", "\n    ", "\n      "
    return f"""(component
  (import "wasi:io/error@{version}" (instance $err (export "error" (type (sub resource)))))
  (alias export $err "error" (type $error))
  {poll_import}
  (type $streams-type (instance
    {nl4.join(streams_type)}
  ))
  (import "{plan.streams}" (instance $streams (type $streams-type)))
  {_stream_aliases(plan, "$streams")}
  {_latin1_type(plan)}

  (core module $heap
    (memory (export "memory") 1)
    (global (export "bump") (mut i32) (i32.const 64))
    ;; A bump allocator: whatever it hands out lives until the next stream call resets it.
    (func (export "realloc") (param $old i32) (param $old-size i32) (param $align i32) (param $size i32) (result i32)
      (local $ptr i32) (local $end i32) (local $have i32)
      ;; Shrinking (wasmtime trims a transcoded string to its length) happens in place.
      (if (i32.and (i32.ne (local.get $old) (i32.const 0)) (i32.le_u (local.get $size) (local.get $old-size)))
        (then (return (local.get $old))))
      ;; latin1+utf16 strings must be 2-aligned, and the bytes written to us become strings.
      (if (i32.lt_u (local.get $align) (i32.const 2)) (then (local.set $align (i32.const 2))))
      (local.set $ptr (i32.and (i32.add (global.get 0) (i32.sub (local.get $align) (i32.const 1)))
                               (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $size)))
      (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                                                  (i32.const 16)))
                          (i32.const -1))
          (then unreachable))))
      (if (local.get $old-size) (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old-size))))
      (global.set 0 (local.get $end))
      (local.get $ptr))
  )
  (core instance $heap (instantiate $heap))
  (alias core export $heap "memory" (core memory $memory))
  (alias core export $heap "realloc" (core func $realloc))
  {nl2.join(lowered + drops)}
  (core module $shim
    (import "heap" "bump" (global $bump (mut i32)))
    {nl4.join([imp for imp, _, _ in shims] + drop_imports)}
    {nl4.join(fn for _, fn, _ in shims)}
  )
  (core instance $host {" ".join(host_exports)})
  (core instance $shim (instantiate $shim (with "heap" (instance $heap)) (with "host" (instance $host))))
  {nl2.join(lifted)}
  (component $reexport
    {nl4.join(reexport)}
  )
  (instance $bridged (instantiate $reexport
    {nl6.join(reexport_args)}
  ))
  (export "{plan.streams}" (instance $bridged))
)"""


def _outer_wat(prefix: binary.ImportPrefix, plan: _Plan, exports: list[tuple[str, int]]) -> str:
    # Placeholders fill the index spaces exactly as the guest's import sections do; they are cut
    # out of the encoded result and the guest's own sections put in their place.
    imports, version = prefix.instance_imports, plan.version
    placeholders = [f'(import "t{i}" (type (sub resource)))' for i in range(prefix.types)]
    placeholders += [f'(import "i{i}" (instance (type 0)))' for i in range(len(imports))]
    bridge_args = [f'(with "wasi:io/error@{version}" (instance {imports[f"wasi:io/error@{version}"]}))']
    if plan.has_poll:
        bridge_args.append(f'(with "wasi:io/poll@{version}" (instance {imports[f"wasi:io/poll@{version}"]}))')
    bridge_args += [f'(with "{plan.streams}" (instance {imports[plan.streams]}))', f'(with "{LATIN1_IMPORT}" (instance $latin1))']
    guest_args = [
        f'(with "{name}" (instance {"$bridged" if name == plan.streams else index}))' for name, index in imports.items()
    ]
    export_lines = []
    for i, (name, sort) in enumerate(exports):
        text = binary.SORT_TEXT[sort]
        export_lines += [f'(alias export $guest "{name}" ({text} $x{i}))', f'(export "{name}" ({text} $x{i}))']
    nl2 = "\n  "
    # The first definition after the placeholders must not be an import (see _splice). The
    # guest's place is an empty component without a name (a name would add a custom section);
    # its index is 1, after the bridge, as the guest's import sections define no components.
    return f"""(component
  {nl2.join(placeholders)}
  {_stream_aliases(plan, str(imports[plan.streams]))}
  {_latin1_type(plan)}
  (component $bridge-c {_bridge_wat(plan).removeprefix("(component")}
  (instance $bridge (instantiate $bridge-c {" ".join(bridge_args)}))
  (alias export $bridge "{plan.streams}" (instance $bridged))
  (component)
  (instance $guest (instantiate 1 {" ".join(guest_args)}))
  {nl2.join(export_lines)}
)"""


def _splice(outer: bytes, guest: bytes, prefix: binary.ImportPrefix) -> bytes:
    own = next(s for s in binary.sections(outer) if s.id != binary.IMPORT)  # placeholders: imports
    rest = outer[own.start :]
    if rest.count(binary.EMPTY_COMPONENT_SECTION) != 1:
        raise binary.LayoutError("cannot find the guest's place in the outer component")
    spliced = rest.replace(binary.EMPTY_COMPONENT_SECTION, binary.component_section(guest))
    return binary.PREAMBLE + guest[8 : prefix.end] + spliced


# -- entry point ---------------------------------------------------------------------------------------
def _plan(engine: Engine, guest: bytes, prefix: binary.ImportPrefix) -> _Plan:
    # wasmtime reads the import types: a component made of the guest's import sections alone
    # compiles in about a millisecond.
    probe = Component(engine, guest[: prefix.end])
    found = []
    for name, item in probe.type.imports(engine).items():
        if name.partition("@")[0] == STREAMS_INTERFACE and isinstance(item.ty, ComponentInstanceType):
            exports = item.ty.exports(engine)
            funcs = frozenset(n for n, e in exports.items() if isinstance(e.ty, FuncType))
            resources = frozenset(n for n, e in exports.items() if isinstance(e.ty, ResourceType))
            found.append(_Plan(name, funcs, resources))
    if len(found) != 1:
        raise _Unsupported(f"{len(found)} wasi:io/streams imports")
    plan = found[0]
    if not any(fast for _, _, fast in plan.table):
        raise _Unsupported("the guest moves no stream bytes")
    if plan.funcs - _KNOWN_FUNCS:
        raise _Unsupported(f"unknown stream functions {sorted(plan.funcs - _KNOWN_FUNCS)}")
    for needed in (f"wasi:io/error@{plan.version}",) + ((f"wasi:io/poll@{plan.version}",) if plan.has_poll else ()):
        if needed not in prefix.instance_imports:
            raise _Unsupported(f"no {needed} import")
    return plan


def bridge(engine: Engine, guest: bytes) -> bytes | None:
    """The guest wrapped with the byte bridge, or None when it cannot (or need not) be bridged.

    The result is not validated here: compiling it does that, and a caller falls back to the
    guest itself if that fails."""
    try:
        sections = binary.sections(guest)
        prefix = binary.import_prefix(guest, sections)
        exports = binary.exports(guest, sections)
        odd = [name for name in (*prefix.instance_imports, *(name for name, _ in exports)) if not _NAME.fullmatch(name)]
        if odd:
            raise _Unsupported(f"unexpected name {odd[0]!r}")
        plan = _plan(engine, guest, prefix)
        outer = wasmtime.wat2wasm(_outer_wat(prefix, plan, exports))
        return _splice(bytes(outer), guest, prefix)
    except (_Unsupported, binary.LayoutError, wasmtime.WasmtimeError) as exc:
        log.debug("no byte bridge for this component: %s", exc)
        return None
