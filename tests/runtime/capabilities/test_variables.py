"""Spin variables: names, templates, resolution order, required variables, secrets (pure)."""

from __future__ import annotations

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
