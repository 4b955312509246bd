"""Errors raised while preparing an app's Spin host APIs (turned into load failures by runtime/)."""

from __future__ import annotations


class SpinConfigError(ValueError):
    """The app's lock asks for something invalid or unsatisfiable (a load error, not a guest error).

    The message always names the app and, where relevant, the component and the field, so the
    status page can show it as is. It never contains a secret value.
    """
