"""Desired-vs-running diff and the post-swap version set (pure)."""

from __future__ import annotations

from dataclasses import replace

from router.config import AppConfig, RouteConfig
from router.reconcile import compose, plan


def _app(name: str, source: str = "r/x:1", **kw: object) -> AppConfig:
    return AppConfig(name=name, source=source, resolved_source=source, **kw)  # type: ignore[arg-type]


def test_plan_add_change_keep_remove() -> None:
    serving = {"same": _app("same"), "routes": _app("routes"), "bumped": _app("bumped"), "gone": _app("gone"),
               "limits": _app("limits")}
    desired = {
        "same": _app("same"),
        "routes": _app("routes", routes=(RouteConfig(("new.test",), "/p"),)),
        "bumped": _app("bumped", "r/x:2"),
        "limits": replace(_app("limits"), timeout_s=1.0),
        "new": _app("new"),
    }
    p = plan(desired, serving)
    assert p.keep == ("same", "routes")
    assert p.load == ("bumped", "limits", "new")
    assert p.remove == ("gone",)
    assert not p.empty
    assert plan(serving, serving).empty


def test_variables_change_reloads() -> None:
    a = _app("a", variables={"x": "1"})
    assert plan({"a": _app("a", variables={"x": "2"})}, {"a": a}).load == ("a",)
    assert plan({"a": _app("a", variables={"x": "1"})}, {"a": a}).keep == ("a",)


def test_compose_failed_load_keeps_old_version() -> None:
    desired = {"a": _app("a"), "b": _app("b"), "c": _app("c"), "d": _app("d")}
    serving = {"a": "a1", "b": "b1", "gone": "g1"}
    out = compose(desired, serving, {"a": "a2", "c": "c1"})  # b failed again, d failed first load
    assert out.serving == {"a": "a2", "b": "b1", "c": "c1"}
    assert out.retired == ["a1", "g1"]
