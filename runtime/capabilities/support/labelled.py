"""Label-scoped storage shared by key-value and SQLite: one manager per app (or per state dir).

Both follow the same Spin rule: a component may open only the labels it lists in its metadata
(`key_value_stores`, `databases`); the app's manager knows every label any component lists plus
`default`. With a state dir the manager is keyed by that dir and the label set, so the old and
the new app version of a hot swap share it; without one it lives as long as the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from registry.loaded import LoadedApp, LoadedComponent
from runtime.capabilities.support import per_app
from runtime.core import context
from runtime.core.context import StateKey
from runtime.types import AppSettings

M = TypeVar("M")


@dataclass(frozen=True)
class PreparedLabels(Generic[M]):
    """What one component's requests need: the app's manager and the labels it may open."""

    manager: M
    allowed: frozenset[str]


@dataclass(frozen=True)
class LabelledStorage(Generic[M]):
    name: str  # the capability name: keys the shared manager and the request's prepared state
    metadata_key: str  # the component metadata field listing its labels
    new_manager: Callable[[Path | None, frozenset[str]], M]
    # Memo for components whose prepare() did not run (Spin 1.x modules reach storage directly).
    _memo: StateKey[PreparedLabels[M]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", StateKey(self.name + ".prepared"))

    def app_labels(self, app: LoadedApp) -> frozenset[str]:
        labels = {"default"}
        for comp in app.locked.components:
            labels.update(comp.metadata_list(self.metadata_key))
        return frozenset(labels)

    def manager_for(self, app: LoadedApp, settings: AppSettings) -> M:
        labels = self.app_labels(app)
        if settings.state_dir is None:
            return per_app.per_app(app, self.name, lambda: self.new_manager(None, labels))
        state = settings.state_dir.resolve()
        return per_app.per_key((self.name, state, labels), lambda: self.new_manager(state, labels))

    def prepare(self, app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> PreparedLabels[M]:
        return PreparedLabels(
            self.manager_for(app, settings), frozenset(component.locked.metadata_list(self.metadata_key))
        )

    def current(self) -> PreparedLabels[M]:
        """The current request's prepared state (prepared now if the capability's was not kept)."""
        ctx = context.current()
        prepared = ctx.prepared.get(self.name) or ctx.get(self._memo)
        if not isinstance(prepared, PreparedLabels):
            prepared = self.prepare(ctx.app, ctx.component, ctx.settings)
            ctx.set(self._memo, prepared)
        return prepared
