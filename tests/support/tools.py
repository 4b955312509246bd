"""Finding external tools: in CI a missing tool is a failure, locally it is a skip."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str, hint: str = "") -> str:
    path = shutil.which(name) or (name if os.path.exists(name) else None)
    if path:
        return path
    message = f"{name} not found{': ' + hint if hint else ''}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
