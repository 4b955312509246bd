"""Errors raised while preparing an app's Spin host APIs (turned into load failures by runtime/)."""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

K = TypeVar("K", bound=enum.Enum)


class SpinConfigError(ValueError):
    """The app's lock asks for something invalid or unsatisfiable (a load error, not a guest error).

    The message always names the app and, where relevant, the component and the field, so the
    status page can show it as is. It never contains a secret value.
    """


class GuestVisibleError(Exception, Generic[K]):
    """A host API failure the guest receives as one case of its interface's error variant.

    `kind` names the case; `message` is the text the guest may see (empty for payload-less cases).
    """

    def __init__(self, kind: K, message: str = "") -> None:
        super().__init__(f"{kind.value}: {message}" if message else kind.value)
        self.kind = kind
        self.message = message
