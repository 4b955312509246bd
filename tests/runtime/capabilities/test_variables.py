"""Spin variables: names, templates, resolution order, required variables, secrets (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.locked import LockedApp
from runtime.capabilities.support.errors import SpinConfigError
from runtime.capabilities.variables.resolve import (
    AppVariables,
    Template,
    VariableError,
    VariableErrorKind,
    name_problem,
)
from runtime.runtime_config import EnvVariablesProvider


def lock(variables: dict, config: dict | None = None, name: str = "vars-app") -> LockedApp:
    return LockedApp.from_json(
        {
            "spin_lock_version": 0,
            "metadata": {"name": name},
            "variables": variables,
            "triggers": [],
            "components": [
                {"id": "web", "source": {"content_type": "application/wasm", "digest": "sha256:00"},
                 "config": config or {}},
            ],
        }
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a", True), ("api_key", True), ("k8s_host2", True),
        ("", False), ("Api", False), ("1abc", False), ("_a", False), ("a_", False),
        ("a__b", False), ("a-b", False), ("aé", False),
    ],
)
def test_variable_name_rules(name: str, ok: bool) -> None:
    assert (name_problem(name) is None) is ok


def test_template_parsing_and_rendering() -> None:
    assert Template.parse("").parts == ()
    t = Template.parse("a-{{ x }}-b{{y}}")
    assert t.parts == ((False, "a-"), (True, "x"), (False, "-b"), (True, "y"))
    assert t.render({"x": "1", "y": "2"}) == "a-1-b2"
    assert Template.parse("plain").is_literal
    with pytest.raises(ValueError, match="unmatched"):
        Template.parse("{{ matched }} {{ unmatched")


def test_resolution_order_settings_then_env_then_default() -> None:
    app = lock(
        {"a": {"default": "da"}, "b": {"default": "db"}, "c": {"default": "dc"}},
        {"a": "{{ a }}", "b": "{{b}}", "c": "x{{ c }}y", "lit": "literal"},
    )
    env = {"SPIN_VARIABLE_A": "env-a", "SPIN_VARIABLE_B": "env-b"}
    resolved = AppVariables.resolve(app, {"a": "routes-a"}, env)
    web = resolved.component("web")
    assert web.get("a") == "routes-a"
    assert web.get("b") == "env-b"
    assert web.get("c") == "xdcy"
    assert web.get("lit") == "literal"
    assert [s for _, s, _ in resolved.describe()] == ["routes.toml", "environment", "default"]


def test_runtime_config_providers_come_between_routes_toml_and_the_default_env_provider() -> None:
    """Spin's order: --variable (routes.toml here), each [[variables_provider]] in file order
    (environment, then its dotenv file), the always-present SPIN_VARIABLE_ environment, the default."""
    names = ["a", "b", "c", "d", "e", "f"]
    app = lock({n: {"default": f"default-{n}"} for n in names}, {n: f"{{{{ {n} }}}}" for n in names})
    first = EnvVariablesProvider("FIRST", Path("/x/first.env"), (("FIRST_B", "dotenv-first-b"), ("FIRST_C", "dotenv-first-c")))
    second = EnvVariablesProvider("SECOND", None, ())
    env = {
        "FIRST_A": "env-first-a", "SECOND_A": "env-second-a", "SPIN_VARIABLE_A": "env-spin-a",
        "SECOND_B": "env-second-b",  # a later provider's environment loses to an earlier one's dotenv
        "SECOND_D": "env-second-d", "SPIN_VARIABLE_D": "env-spin-d",
        "SPIN_VARIABLE_E": "env-spin-e",
        "first_f": "lower-case names are other variables",
    }
    resolved = AppVariables.resolve(app, {"c": "routes-c"}, env, providers=(first, second))
    web = resolved.component("web")
    assert [web.get(n) for n in names] == [
        "env-first-a", "dotenv-first-b", "routes-c", "env-second-d", "env-spin-e", "default-f",
    ]
    assert [s for _, s, _ in resolved.describe()] == [
        "environment", "dotenv file", "routes.toml", "environment", "environment", "default",
    ]


def test_a_required_variable_names_every_provider_in_its_error() -> None:
    with pytest.raises(SpinConfigError) as info:
        AppVariables.resolve(lock({"api_key": {"required": True}}), {}, {}, providers=(EnvVariablesProvider("SHOP"),))
    assert "SHOP_API_KEY, SPIN_VARIABLE_API_KEY" in str(info.value)


def test_component_sees_only_its_config_keys() -> None:
    resolved = AppVariables.resolve(lock({"secret_token": {"default": "s"}}, {"token": "{{ secret_token }}"}), {}, {})
    web = resolved.component("web")
    with pytest.raises(VariableError) as undefined:
        web.get("secret_token")  # an app variable, but not a config key of this component
    assert undefined.value.kind is VariableErrorKind.UNDEFINED
    with pytest.raises(VariableError) as invalid:
        web.get("Bad-Name")
    assert invalid.value.kind is VariableErrorKind.INVALID_NAME
    assert resolved.component("other").get_all() == []


def test_required_variable_from_env() -> None:
    app = lock({"api_key": {"secret": True}}, {"key": "{{ api_key }}"})
    resolved = AppVariables.resolve(app, {}, {"SPIN_VARIABLE_API_KEY": "hunter2"})
    assert resolved.component("web").get("key") == "hunter2"


def test_required_variable_missing_fails_naming_app_and_variable() -> None:
    app = lock({"api_key": {"secret": True}, "other": {}}, {"key": "{{ api_key }}"}, name="billing")
    with pytest.raises(SpinConfigError) as err:
        AppVariables.resolve(app, {}, {})
    message = str(err.value)
    assert "billing" in message and "'api_key'" in message and "'other'" in message
    assert "SPIN_VARIABLE_API_KEY" in message


def test_template_referencing_undeclared_variable_fails() -> None:
    with pytest.raises(SpinConfigError, match=r"component 'web'.*unknown variable 'nope'"):
        AppVariables.resolve(lock({"a": {"default": "1"}}, {"k": "{{ nope }}"}), {}, {})


def test_invalid_config_key_fails() -> None:
    with pytest.raises(SpinConfigError, match="config key 'BadKey'"):
        AppVariables.resolve(lock({}, {"BadKey": "x"}), {}, {})


def test_secrets_never_in_repr_or_describe() -> None:
    app = lock({"password": {"secret": True}, "greeting": {"default": "hi"}}, {"p": "{{ password }}"})
    resolved = AppVariables.resolve(app, {"password": "hunter2"}, {})
    assert "hunter2" not in repr(resolved)
    assert "hunter2" not in repr(resolved.component("web"))
    assert ("password", "routes.toml", "<secret>") in resolved.describe()
    assert ("greeting", "default", "hi") in resolved.describe()
    assert "hunter2" not in str(resolved.describe())


def test_app_settings_repr_hides_variable_values() -> None:
    from runtime.types import AppSettings

    assert "hunter2" not in repr(AppSettings(variables={"password": "hunter2"}))


def test_undeclared_settings_are_reported_by_name() -> None:
    resolved = AppVariables.resolve(lock({"a": {"default": "1"}}), {"a": "x", "typo_name": "hunter2"}, {})
    assert resolved.undeclared == ("typo_name",)
    assert "hunter2" not in repr(resolved)
