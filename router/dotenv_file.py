"""A `[[variables_provider]]` env provider's `dotenv_path`, read with python-dotenv.

As Spin's env provider (crates/variables-env, dotenvy): a file that does not exist gives no
values (not an error); a line that cannot be parsed is an error. `${NAME}` in a value is
expanded (python-dotenv's interpolation: earlier lines of the file, then the environment).
Only the entries named with the provider's prefix are kept: the others could never be read.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

log = logging.getLogger("lepton.router.config")


class DotenvError(Exception):
    pass


def read(path: Path, prefix: str) -> tuple[tuple[str, str], ...]:
    """The file's `prefix*` entries, sorted; () when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.warning("dotenv file %s does not exist: it gives no variables", path)
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        raise DotenvError(f"cannot read dotenv file {path}: {exc}") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise DotenvError(f"{path}:{binding.original.line}: cannot parse this line of the dotenv file")
    values = dotenv_values(stream=io.StringIO(text), interpolate=True)
    return tuple(sorted((k, v) for k, v in values.items() if k.startswith(prefix) and v is not None))
