"""Spin application variables and component `config` templates, resolved as Spin v3 does.

An app declares `variables` (`default`, `secret`; no default = required). Components see values only
through their `config` map, whose values are templates such as `"https://{{ host }}/api"`
(`crates/expressions`): `{{ expr }}` with the expression trimmed, literal text elsewhere, and only
declared app variables may be referenced.

Where a value comes from, first match wins, in Spin's provider order (crates/runtime-config
variables.rs, runtime-factors build.rs): the app's `variables` in routes.toml
(`AppSettings.variables`, standing in for `spin up --variable`, which Spin asks first), then each
`[[variables_provider]]` of the app's runtime config in file order (`type = "env"`: the environment
`{prefix}_{NAME upper-cased}`, then its dotenv file), then Spin's always-present env provider
(`SPIN_VARIABLE_{NAME}` in the environment; Spin also reads `.env` in its working directory,
which this server does not: the server's directory is not the app's), then the declared default.
A required variable with no value fails the app load with an error that names the app and the
variable.

Everything is resolved once at load time, so a guest call is a dict lookup. Values are kept out of
every `repr` and error message: secrets must never reach logs or the status page.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from registry.locked import LockedApp
from runtime.capabilities.support.errors import SpinConfigError
from runtime.runtime_config import EnvVariablesProvider

ENV_PREFIX = "SPIN_VARIABLE_"
# Spin's provider that is always there, after the configured ones: the environment only.
_DEFAULT_ENV = EnvVariablesProvider()


class VariableErrorKind(enum.Enum):
    """The cases of `fermyon:spin/variables` `error` (and, mapped, of `wasi:config/store`)."""

    INVALID_NAME = "invalid-name"
    UNDEFINED = "undefined"
    PROVIDER = "provider"
    OTHER = "other"


class VariableError(Exception):
    """A guest-visible variables error; `message` is what the guest receives (never a value)."""

    def __init__(self, kind: VariableErrorKind, message: str) -> None:
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind
        self.message = message


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid variable name (Spin's `Key::validate`), or None when it is."""
    if not name:
        return "must not be empty"
    for ch in name:
        if not (("a" <= ch <= "z") or ("0" <= ch <= "9") or ch == "_"):
            return (
                f"invalid character {ch!r}. Variable names may contain only lower-case letters, "
                "numbers, and underscores."
            )
    if not ("a" <= name[0] <= "z"):
        return "must start with a lowercase ASCII letter"
    if name[-1] == "_":
        return "must end with a lowercase ASCII letter or digit"
    if "__" in name:
        return "must not contain multiple consecutive underscores"
    return None


def validate_name(name: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise VariableError(VariableErrorKind.INVALID_NAME, f"{name!r}: {problem}")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


@dataclass(frozen=True)
class Template:
    """A parsed `{{ expr }}` template: parts are (is_expression, text)."""

    parts: tuple[tuple[bool, str], ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[tuple[bool, str]] = []
        rest = text
        while rest:
            if rest.startswith("{{"):
                expr, sep, after = rest[2:].partition("}}")
                if not sep:
                    raise ValueError("unmatched '{{' in template")
                parts.append((True, expr.strip()))
                rest = after
            else:
                idx = rest.find("{{")
                if idx < 0:
                    parts.append((False, rest))
                    rest = ""
                else:
                    parts.append((False, rest[:idx]))
                    rest = rest[idx:]
        return cls(tuple(parts))

    @property
    def is_literal(self) -> bool:
        return not any(is_expr for is_expr, _ in self.parts)

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(text for is_expr, text in self.parts if is_expr)

    def render(self, values: Mapping[str, str]) -> str:
        # Callers validate references first; a KeyError here is a bug, not a guest error.
        return "".join(values[text] if is_expr else text for is_expr, text in self.parts)


class ValueSource(enum.Enum):
    SETTINGS = "routes.toml"
    ENVIRONMENT = "environment"
    DOTENV = "dotenv file"
    DEFAULT = "default"


def _from_providers(
    name: str, providers: Sequence[EnvVariablesProvider], environ: Mapping[str, str]
) -> tuple[str, ValueSource] | None:
    for provider in providers:
        key = provider.env_name(name)
        if key in environ:
            return environ[key], ValueSource.ENVIRONMENT
        for dotenv_key, value in provider.dotenv:
            if dotenv_key == key:
                return value, ValueSource.DOTENV
    return None


@dataclass(frozen=True)
class ComponentVariables:
    """What one component may read: its `config` keys, already rendered."""

    component_id: str
    _values: Mapping[str, str] = field(repr=False)

    def get(self, key: str) -> str:
        """`fermyon:spin/variables.get`: invalid-name for a bad key, undefined for an unknown one."""
        validate_name(key)
        try:
            return self._values[key]
        except KeyError:
            raise VariableError(
                VariableErrorKind.UNDEFINED, f"no variable for {self.component_id!r}.{key!r}"
            ) from None

    def get_all(self) -> list[tuple[str, str]]:
        return sorted(self._values.items())


@dataclass(frozen=True)
class AppVariables:
    """Resolved app variables plus every component's rendered `config`."""

    app_name: str
    _values: Mapping[str, str] = field(repr=False)
    sources: Mapping[str, ValueSource]
    secrets: frozenset[str]
    _components: Mapping[str, ComponentVariables] = field(repr=False)
    undeclared: tuple[str, ...] = ()  # names set in routes.toml that the app does not declare

    @classmethod
    def resolve(
        cls,
        app: LockedApp,
        provided: Mapping[str, str],
        environ: Mapping[str, str] | None = None,
        providers: Sequence[EnvVariablesProvider] = (),
    ) -> AppVariables:
        """Validate names and templates and resolve every value; SpinConfigError if impossible."""
        environ = os.environ if environ is None else environ
        chain = (*providers, _DEFAULT_ENV)
        app_name = app.name or "<unnamed>"
        values: dict[str, str] = {}
        sources: dict[str, ValueSource] = {}
        missing: list[str] = []
        for name, var in sorted(app.variables.items()):
            problem = name_problem(name)
            if problem is not None:
                raise SpinConfigError(f"app {app_name!r}: invalid variable name {name!r}: {problem}")
            found = _from_providers(name, chain, environ)
            if name in provided:
                values[name], sources[name] = str(provided[name]), ValueSource.SETTINGS
            elif found is not None:
                values[name], sources[name] = found
            elif var.default is not None:
                values[name], sources[name] = var.default, ValueSource.DEFAULT
            else:
                missing.append(name)
        if missing:
            names = ", ".join(repr(n) for n in missing)
            hints = ", ".join(dict.fromkeys(p.env_name(n) for n in missing for p in chain))
            raise SpinConfigError(
                f"app {app_name!r}: no value for required variable(s) {names}; set them in the app's "
                f"`variables` in routes.toml or in the environment ({hints})"
            )
        components = {
            comp.id: ComponentVariables(comp.id, _render_config(app_name, comp.id, comp.config, values))
            for comp in app.components
        }
        secrets = frozenset(n for n, v in app.variables.items() if v.secret)
        undeclared = tuple(sorted(n for n in provided if n not in app.variables))
        return cls(app_name, values, sources, secrets, components, undeclared)

    def component(self, component_id: str) -> ComponentVariables:
        return self._components.get(component_id) or ComponentVariables(component_id, {})

    def render(self, text: str, where: str) -> str:
        """Render a template over app variables (used for `allowed_outbound_hosts` entries)."""
        try:
            template = Template.parse(text)
        except ValueError as exc:
            raise SpinConfigError(f"app {self.app_name!r}: {where}: invalid template: {exc}") from None
        unknown = [r for r in template.references if r not in self._values]
        if unknown:
            raise SpinConfigError(f"app {self.app_name!r}: {where}: unknown variable {unknown[0]!r}")
        return template.render(self._values)

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, source, shown value) for a status page: secret values are replaced by `<secret>`."""
        return [
            (name, self.sources[name].value, "<secret>" if name in self.secrets else self._values[name])
            for name in sorted(self._values)
        ]


def _render_config(
    app_name: str, component_id: str, config: Mapping[str, str], values: Mapping[str, str]
) -> dict[str, str]:
    rendered: dict[str, str] = {}
    for key, text in config.items():
        where = f"app {app_name!r}: component {component_id!r}: config key {key!r}"
        problem = name_problem(key)
        if problem is not None:
            raise SpinConfigError(f"{where}: invalid variable name: {problem}")
        try:
            template = Template.parse(text)
        except ValueError as exc:
            raise SpinConfigError(f"{where}: invalid template: {exc}") from None
        _check_references(where, template.references, values)
        rendered[key] = template.render(values)
    return rendered


def _check_references(where: str, references: Iterable[str], values: Mapping[str, str]) -> None:
    for ref in references:
        if ref not in values:
            raise SpinConfigError(f"{where}: template references unknown variable {ref!r}")
