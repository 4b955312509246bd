"""`?` parameters in a MySQL statement, bound client-side.

Spin's mysql_async prepares every statement (server-side `?` parameters). mysqlclient has no
prepared statements, so the parameters are sent as SQL literals in their place, escaped by the
client library (`mysql_real_escape_string`) or hex-encoded for binary data. A `?` counts as a
parameter only outside quoted strings, quoted identifiers and comments, as MySQL's parser reads
it. The substitution is the only thing done to the statement.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence


class ParameterCountError(ValueError):
    pass


@functools.lru_cache(maxsize=1024)
def placeholders(statement: str) -> tuple[int, ...]:
    """Offsets of the `?` parameters in `statement` (remembered: apps repeat their statements)."""
    if "?" not in statement:
        return ()
    out: list[int] = []
    i, n = 0, len(statement)
    while i < n:
        c = statement[i]
        if c in ("'", '"', "`"):
            i = _skip_quoted(statement, i, c)
            continue
        if c == "#" or (c == "-" and statement.startswith("--", i) and (i + 2 >= n or statement[i + 2] in " \t\r\n")):
            end = statement.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c == "/" and statement.startswith("/*", i):
            end = statement.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if c == "?":
            out.append(i)
        i += 1
    return tuple(out)


def _skip_quoted(text: str, start: int, quote: str) -> int:
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and quote != "`":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and text[i + 1] == quote:  # a doubled quote stands for itself
                i += 2
                continue
            return i + 1
        i += 1
    return n


def bind(statement: str, literals: Sequence[bytes]) -> bytes:
    """The statement with each `?` replaced by its literal (UTF-8 bytes)."""
    marks = placeholders(statement)
    if len(marks) != len(literals):
        raise ParameterCountError(
            f"Statement takes {len(marks)} parameters but {len(literals)} was supplied"
        )
    if not marks:
        return statement.encode("utf-8")
    parts: list[bytes] = []
    last = 0
    for offset, literal in zip(marks, literals, strict=True):
        parts.append(statement[last:offset].encode("utf-8"))
        parts.append(literal)
        last = offset + 1
    parts.append(statement[last:].encode("utf-8"))
    return b"".join(parts)
