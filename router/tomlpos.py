"""Find where a table or key sits in TOML text, so config errors can name a line.

tomllib gives values but no positions; we re-scan the text for table headers and `key =` lines.
This is deliberately tolerant: when nothing is found the caller just reports no line.
"""

from __future__ import annotations

import re
import tomllib

_HEADER = re.compile(r"^\s*\[\[?\s*(?P<key>[^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_LINE = re.compile(r"^\s*(?P<key>[A-Za-z0-9_\-\"'. ]+?)\s*=")


def _key_path(dotted: str) -> tuple[str, ...] | None:
    """Split a TOML dotted key (quoted parts allowed) by letting tomllib parse it."""
    try:
        doc = tomllib.loads(f"{dotted} = 0\n")
    except tomllib.TOMLDecodeError:
        return None
    path: list[str] = []
    node: object = doc
    while isinstance(node, dict) and len(node) == 1:
        key = next(iter(node))
        path.append(key)
        node = node[key]
    return tuple(path)


def locate(text: str, table: tuple[str, ...], key: str | None = None) -> int | None:
    """1-based line of `key` inside `table` (or of the table header itself when key is None).

    Handles `[a.b]` headers, `[a.b.key]` sub-tables and `key = ...` lines inside the section.
    """
    current: tuple[str, ...] | None = ()
    header_line: int | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = _key_path(header.group("key"))
            if current == table and header_line is None:
                header_line = lineno
                if key is None:
                    return lineno
            if key is not None and current == (*table, key):
                return lineno
            continue
        if current is None:
            continue
        keyline = _KEY_LINE.match(line)
        if not keyline:
            continue
        path = _key_path(keyline.group("key"))
        if path is None:
            continue
        # `key = ...` inside [table], or `table.key = ...` / `app.key = ...` from a parent table.
        full = (*current, *path)
        if key is not None and full == table:
            # An inline table (`name = { key = ... }`): the key is on this line or it is absent.
            if re.search(rf"[{{,]\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
                return lineno
            header_line = header_line or lineno
            continue
        if key is None:
            if full[: len(table)] == table:
                return lineno
        elif full[: len(table) + 1] == (*table, key):
            return lineno
    if key is not None:
        return header_line
    return None
