"""Just enough of the component binary format to wrap a component (see runtime/engine/byte_bridge.py).

It finds a component's sections, the leading ones that only declare imports (and how many types
and instances they define), and its top-level exports. Anything outside what wit-component and
the Spin toolchains produce raises LayoutError: the caller then leaves the component alone.
"""

from __future__ import annotations

from dataclasses import dataclass

PREAMBLE = b"\x00asm\x0d\x00\x01\x00"

# Section ids.
CUSTOM, CORE_MODULE, ALIAS, TYPE, IMPORT, EXPORT, COMPONENT = 0, 1, 6, 7, 10, 11, 4
CORE_PREAMBLE = b"\x00asm\x01\x00\x00\x00"
CORE_EXPORT = 7  # a core module's export section
_PREFIX_SECTIONS = {CUSTOM, ALIAS, TYPE, IMPORT}
# Sorts (binary encoding) and their names in the text format.
SORT_FUNC, SORT_TYPE, SORT_COMPONENT, SORT_INSTANCE = 0x01, 0x03, 0x04, 0x05
SORT_TEXT = {SORT_FUNC: "func", SORT_TYPE: "type", SORT_COMPONENT: "component", SORT_INSTANCE: "instance"}


class LayoutError(Exception):
    """Not a layout this module reads."""


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos, self.end = data, pos, len(data) if end is None else end

    def u32(self) -> int:
        result = shift = 0
        while True:
            if self.pos >= self.end:
                raise LayoutError("truncated LEB128")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def byte(self) -> int:
        if self.pos >= self.end:
            raise LayoutError("truncated section")
        self.pos += 1
        return self.data[self.pos - 1]

    def name(self) -> str:
        n = self.u32()
        self.pos += n
        try:
            return self.data[self.pos - n : self.pos].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LayoutError("a name that is not UTF-8") from exc


@dataclass
class Section:
    id: int
    start: int  # of the section id byte
    body: int  # first byte of the contents
    end: int


def sections(wasm: bytes) -> list[Section]:
    if wasm[:8] != PREAMBLE:
        raise LayoutError("not a component")
    return _sections(wasm, 8, len(wasm))


def _sections(wasm: bytes, pos: int, end: int) -> list[Section]:
    reader, found = _Reader(wasm, pos, end), []
    while reader.pos < end:
        start, sid = reader.pos, reader.byte()
        size = reader.u32()
        if reader.pos + size > end:
            raise LayoutError("section runs past its end")
        found.append(Section(sid, start, reader.pos, reader.pos + size))
        reader.pos += size
    return found


def core_module_exports(wasm: bytes) -> set[str]:
    """The export names of every core module the component holds, in it or in components nested
    in it (their bodies are not parsed beyond the export sections)."""
    names: set[str] = set()
    pending = [(8, len(wasm))]
    if wasm[:8] != PREAMBLE:
        raise LayoutError("not a component")
    while pending:
        pos, end = pending.pop()
        for section in _sections(wasm, pos, end):
            if section.id == COMPONENT:
                if wasm[section.body : section.body + 8] != PREAMBLE:
                    raise LayoutError("nested component without its preamble")
                pending.append((section.body + 8, section.end))
            elif section.id == CORE_MODULE:
                if wasm[section.body : section.body + 8] != CORE_PREAMBLE:
                    raise LayoutError("core module without its preamble")
                for inner in _sections(wasm, section.body + 8, section.end):
                    if inner.id == CORE_EXPORT:
                        reader = _Reader(wasm, inner.body, inner.end)
                        for _ in range(reader.u32()):
                            names.add(reader.name())
                            reader.byte()  # kind
                            reader.u32()  # index
    return names


@dataclass
class ImportPrefix:
    """A component's leading sections that only declare imports, and the index spaces they fill."""

    end: int  # byte offset where the component's own definitions begin
    types: int
    instance_imports: dict[str, int]  # import name -> instance index


def import_prefix(wasm: bytes, all_sections: list[Section]) -> ImportPrefix:
    counts = {SORT_TYPE: 0, SORT_INSTANCE: 0}
    imports: dict[str, int] = {}
    end = 8
    for section in all_sections:
        if section.id not in _PREFIX_SECTIONS:
            break
        end = section.end
        reader = _Reader(wasm, section.body, section.end)
        if section.id == TYPE:
            counts[SORT_TYPE] += reader.u32()
        elif section.id == ALIAS:
            for _ in range(reader.u32()):
                sort = reader.byte()
                if sort not in counts:  # core items or functions before any definition
                    raise LayoutError(f"alias of sort {sort:#x} among the imports")
                target = reader.byte()
                if target == 0x00:  # export of an instance
                    reader.u32()
                    reader.name()
                elif target == 0x02:  # outer
                    reader.u32()
                    reader.u32()
                else:
                    raise LayoutError("core alias among the imports")
                counts[sort] += 1
        elif section.id == IMPORT:
            for _ in range(reader.u32()):
                if reader.byte() != 0x00:
                    raise LayoutError("import name with a version suffix")
                name = reader.name()
                kind = reader.byte()
                if kind == SORT_INSTANCE:
                    imports[name] = counts[SORT_INSTANCE]
                    counts[SORT_INSTANCE] += 1
                    reader.u32()
                elif kind == SORT_TYPE:
                    bound = reader.byte()
                    if bound == 0x00:
                        reader.u32()
                    counts[SORT_TYPE] += 1
                else:
                    raise LayoutError(f"top-level import {name!r} is not an instance")
    if not imports:
        raise LayoutError("no imports")
    return ImportPrefix(end, counts[SORT_TYPE], imports)


def exports(wasm: bytes, all_sections: list[Section]) -> list[tuple[str, int]]:
    """The component's top-level exports: (name, sort)."""
    found = []
    for section in all_sections:
        if section.id != EXPORT:
            continue
        reader = _Reader(wasm, section.body, section.end)
        for _ in range(reader.u32()):
            if reader.byte() != 0x00:
                raise LayoutError("export name with a version suffix")
            name = reader.name()
            sort = reader.byte()
            if sort == 0x00:
                raise LayoutError("core export")
            reader.u32()
            if reader.byte() == 0x01:  # a type ascription follows; toolchains' exports have none
                raise LayoutError(f"export {name!r} with a type ascription")
            if sort not in SORT_TEXT:
                raise LayoutError(f"export of sort {sort:#x}")
            found.append((name, sort))
    return found


def component_section(component: bytes) -> bytes:
    """`component` as a nested-component section."""
    return bytes([COMPONENT]) + leb128(len(component)) + component


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


EMPTY_COMPONENT_SECTION = component_section(PREAMBLE)  # a nested `(component)` with nothing in it


def producers(wasm: bytes) -> dict[str, list[tuple[str, str]]]:
    """The top-level `producers` custom section: field ("language", "processed-by", "sdk") ->
    [(name, version)]. Empty when there is none (it is optional)."""
    for section in sections(wasm):
        if section.id != CUSTOM:
            continue
        reader = _Reader(wasm, section.body, section.end)
        if reader.name() != "producers":
            continue
        fields: dict[str, list[tuple[str, str]]] = {}
        for _ in range(reader.u32()):
            field = reader.name()
            fields[field] = [(reader.name(), reader.name()) for _ in range(reader.u32())]
        return fields
    return {}
