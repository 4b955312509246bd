"""Desired (routes.toml) vs running apps: what to load, what to keep, what to retire. Pure.

An app is (re)loaded when it is new, when anything that affects loading changed (source, insecure,
limits, variables; see AppConfig.load_key), or when it has no serving version (a previous load
failed: a reload retries it). Host and prefix changes alone need no reload: the next routing table
simply carries the running version under the new routes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from router.config import AppConfig

V = TypeVar("V")


@dataclass(frozen=True)
class Plan:
    load: tuple[str, ...]  # new, changed, or not serving
    keep: tuple[str, ...]  # serving and unchanged (their routes may still change)
    remove: tuple[str, ...]  # serving but no longer in routes.toml

    @property
    def empty(self) -> bool:
        return not self.load and not self.remove


def plan(desired: Mapping[str, AppConfig], serving: Mapping[str, AppConfig]) -> Plan:
    """serving: the config each currently serving version was loaded with."""
    load: list[str] = []
    keep: list[str] = []
    for name, app in desired.items():
        current = serving.get(name)
        if current is not None and current.load_key() == app.load_key():
            keep.append(name)
        else:
            load.append(name)
    remove = [name for name in serving if name not in desired]
    return Plan(load=tuple(load), keep=tuple(keep), remove=tuple(remove))


@dataclass(frozen=True)
class Outcome(Generic[V]):
    serving: dict[str, V]  # name -> version that serves after the swap (routes from desired)
    retired: list[V]  # versions to release once their in-flight requests end


def compose(
    desired: Mapping[str, AppConfig],
    serving: Mapping[str, V],
    loaded: Mapping[str, V],
) -> Outcome[V]:
    """The versions after a reload: freshly loaded ones win; a failed load keeps the old version.

    `loaded` holds only the apps whose load succeeded. Apps in neither map are not served (their
    first load failed); apps not desired any more are retired.
    """
    after: dict[str, V] = {}
    retired: list[V] = []
    for name in desired:
        if name in loaded:
            after[name] = loaded[name]
            old = serving.get(name)
            if old is not None and old is not loaded[name]:
                retired.append(old)
        elif name in serving:
            after[name] = serving[name]
    retired.extend(version for name, version in serving.items() if name not in desired)
    return Outcome(serving=after, retired=retired)
