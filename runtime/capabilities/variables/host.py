"""Guest bindings for variables: `fermyon:spin/variables@2.0.0`, `wasi:config/store@0.2.0-draft-2024-09-27`
and the unversioned (Spin 1.x, componentized) `fermyon:spin/config`.

Errors map as Spin v3's `factor-variables/src/host.rs`:
- variables.get: invalid-name / undefined with Spin's messages;
- config.get-config: invalid-name -> invalid-key, undefined -> provider;
- wasi:config store.get: undefined or invalid name -> none (not an error); get-all -> all of the
  component's config keys.

`spin:variables/variables@3.0.0` is not served: it needs component-model async, which this runtime
(wasmtime-py 50) does not support; the components using it are wasi:http@0.3 ones it cannot run.
"""

from __future__ import annotations

import logging
from typing import Any

from registry.loaded import LoadedApp, LoadedComponent
from runtime.capabilities.support import per_app
from runtime.capabilities.support.errors import SpinConfigError
from runtime.capabilities.support.wit import case, err
from runtime.capabilities.variables.resolve import (
    AppVariables,
    ComponentVariables,
    VariableError,
    VariableErrorKind,
)
from runtime.core import context
from runtime.core.contract import BaseCapability, InterfaceImpl
from runtime.errors import AppLoadError
from runtime.telemetry.hooks import HostSpan, first_arg, traced
from runtime.types import AppSettings

log = logging.getLogger("lepton.runtime.spin")

NAME = "spin-variables"


def app_variables(app: LoadedApp, settings: AppSettings) -> AppVariables:
    """The app's resolved variables (once per app); AppLoadError if one cannot be resolved."""

    def resolve() -> AppVariables:
        try:
            config = settings.runtime_config
            providers = config.variables_providers if config is not None else ()
            resolved = AppVariables.resolve(app.locked, settings.variables, providers=providers)
        except SpinConfigError as exc:
            raise AppLoadError(app.name or app.reference, str(exc), field="variables") from None
        if resolved.undeclared:
            # Names only, never values: likely a typo in routes.toml.
            log.warning(
                "app %r: routes.toml sets variables the app does not declare (ignored): %s",
                app.name, ", ".join(resolved.undeclared),
            )
        return resolved

    return per_app.per_app(app, f"{NAME}:{per_app.settings_key(settings)}", resolve)


def _component_vars() -> ComponentVariables:
    ctx = context.current()
    prepared = ctx.prepared.get(NAME)
    if isinstance(prepared, ComponentVariables):
        return prepared
    return app_variables(ctx.app, ctx.settings).component(ctx.component.id)


def _spin_get(store: Any, name: str) -> Any:
    try:
        return _component_vars().get(name)
    except VariableError as exc:
        return err(case(exc.kind.value, exc.message))


def _config_get(store: Any, key: str) -> Any:
    try:
        return _component_vars().get(key)
    except VariableError as exc:
        if exc.kind is VariableErrorKind.INVALID_NAME:
            return err(case("invalid-key", exc.message))
        if exc.kind is VariableErrorKind.UNDEFINED:
            return err(case("provider", exc.message))
        return err(case("other", f"{exc.kind.value}: {exc.message}"))


def _wasi_get(store: Any, key: str) -> Any:
    try:
        return _component_vars().get(key)
    except VariableError:
        return None  # wasi-runtime-config guidance: unknown or invalid names are `none`


def _wasi_get_all(store: Any) -> Any:
    return _component_vars().get_all()


# Spin's spans (factor-variables/src/host.rs): the name asked for is recorded as `key`.
_SPANS = {
    "fermyon:spin/variables": {"get": HostSpan("spin_variables.get", from_args=first_arg("key"))},
    "fermyon:spin/config": {"get-config": HostSpan("spin_config.get", from_args=first_arg("key"))},
    "wasi:config/store": {"get": HostSpan("wasi_config.get", from_args=first_arg("key")),
                          "get-all": HostSpan("wasi_config.get_all")},
}


class VariablesCapability(BaseCapability):
    name = NAME
    blocking = False
    interfaces = frozenset({"fermyon:spin/variables", "fermyon:spin/config", "wasi:config/store"})

    def implement(self, interface: str, version: str | None) -> InterfaceImpl:
        if interface == "fermyon:spin/variables":
            funcs: dict[str, Any] = {"get": _spin_get}
        elif interface == "fermyon:spin/config":
            funcs = {"get-config": _config_get}
        else:
            funcs = {"get": _wasi_get, "get-all": _wasi_get_all}
        return InterfaceImpl(funcs=traced(funcs, _SPANS.get(interface, {})))

    def prepare(self, app: LoadedApp, component: LoadedComponent, settings: AppSettings) -> Any:
        return app_variables(app, settings).component(component.id)

    def prepare_app(self, app: LoadedApp, settings: AppSettings) -> None:
        """Every app: names, templates and required values are checked at load, as Spin does."""
        app_variables(app, settings)
