"""Spin v3 HTTP route matching, as pure functions over a LockedApp's http triggers.

Behaves as Spin v3.6 (`crates/routes/src/lib.rs` on routefinder 0.5.4; see docs/reference/spin-compat.md, Route matching):

- A trigger's route is normalised to its *based route*: a leading ``/`` is added and **one**
  trailing ``/`` removed (Spin v3 always uses base ``/``), so route ``/`` becomes ``""``.
- ``/x/...`` is the routefinder pattern ``/x/*``; ``/x/*`` is accepted as written. ``:name``
  matches one segment (up to the next ``/``, or ``.`` when the route continues with one) and is
  captured. Leading and trailing slashes of the request path are ignored; repeated ``/`` in a
  route collapse.
- Best match: routes are ordered as routefinder orders them (segment by segment, Exact > Param >
  Wildcard at the first difference; then more dots first; then fewer segments first; ties in
  insertion order) and the first that matches wins. Exact beats wildcard and a longer literal
  prefix beats a shorter one, independent of declaration order.
- ``route = {private = true}`` is never routable; ``{private = false}`` is an error.
- Duplicates (same route string as written): the last trigger wins, an error is logged.
- Routes under ``/.well-known/spin/`` are logged as unreachable (the host answers those itself).
- The remainder captured by a trailing wildcard (``path_info``) keeps Spin's trailing-slash rule:
  route ``/foo/...``: ``/foo`` -> ``""``, ``/foo/`` -> ``/``, ``/foo/bar`` -> ``/bar``,
  ``/foo/bar/`` -> ``/bar/``.

Matching works on the raw (percent-encoded) path, as Spin does. Where routefinder would panic at
request time (a ``*`` that is not the last segment) the route is refused when the router is built.

A :class:`Router` is built once per app (``Router.from_locked``); ``match(path)`` runs one
precompiled regular expression per candidate route, in priority order, and nothing else.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from registry.locked import LockedApp, LockedTrigger

log = logging.getLogger(__name__)

WELL_KNOWN_PREFIX = "/.well-known/spin/"
HTTP_TRIGGER = "http"
_TRIGGER_CONFIG_KEYS = frozenset({"component", "static_response", "route", "executor"})


class RouteError(ValueError):
    """An app's http triggers cannot be routed (Spin refuses to load such an app)."""


# ------------------------------------------------------------------------------------------------
# Result types (public: the runtime and the WAGI executor read them)


@dataclass(frozen=True)
class StaticResponse:
    """v3.5 ``static_response``: served by the host without instantiating anything."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass(frozen=True)
class HttpRoute:
    """One routable http trigger."""

    trigger_id: str
    raw_route: str  # the route exactly as the trigger wrote it, e.g. "/users/:id/..."
    based_route: str  # normalised (leading "/", one trailing "/" removed); "/" -> ""
    component_id: str | None  # exactly one of component_id / static_response is set
    static_response: StaticResponse | None
    executor: Mapping[str, Any] | None  # trigger_config.executor as written (None if absent/null)
    is_wildcard: bool  # ends in "/..." or "/*"

    @property
    def lookup_key(self) -> str:
        """What Spin logs for this route: the component id, or the trigger id for static responses."""
        return self.component_id if self.component_id is not None else self.trigger_id

    @property
    def component_route(self) -> str:
        """The raw route without a trailing ``/...`` (spin-component-route); ``/...`` -> ``""``."""
        return self.raw_route.removesuffix("/...")


@dataclass(frozen=True)
class RouteMatch:
    """The best route for a path, with what Spin derives from the match."""

    route: HttpRoute
    path: str  # the (app-relative, raw) path that was matched
    params: tuple[tuple[str, str], ...]  # ":name" captures in route order, raw
    path_info: str  # trailing-wildcard remainder per Spin's slash rule; "" for exact routes

    @property
    def matched_route(self) -> str:
        """spin-matched-route: the based route, e.g. ``/foo/...``; route ``/`` gives ``""``."""
        return self.route.based_route

    @property
    def raw_route(self) -> str:
        return self.route.raw_route

    @property
    def component_route(self) -> str:
        return self.route.component_route

    @property
    def named_params(self) -> dict[str, str]:
        """Captures by name; a repeated name keeps the last value (Spin collects into a HashMap)."""
        return dict(self.params)


# ------------------------------------------------------------------------------------------------
# routefinder 0.5.4 route specs


class Seg(enum.IntEnum):
    SLASH = 0
    DOT = 1
    EXACT = 2
    PARAM = 3
    WILDCARD = 4


@dataclass(frozen=True)
class Segment:
    kind: Seg
    text: str = ""  # literal text of EXACT, name of PARAM


_EQUAL_KINDS = frozenset(
    {
        (Seg.EXACT, Seg.EXACT),
        (Seg.SLASH, Seg.SLASH),
        (Seg.DOT, Seg.SLASH),
        (Seg.SLASH, Seg.DOT),
        (Seg.DOT, Seg.DOT),
        (Seg.PARAM, Seg.PARAM),
        (Seg.WILDCARD, Seg.WILDCARD),
    }
)


def _segment_cmp(a: Seg, b: Seg) -> int:
    """routefinder `Segment::cmp` (1: a ranks higher). Not a total order; reproduced as is."""
    if (a, b) in _EQUAL_KINDS:
        return 0
    if a in (Seg.DOT, Seg.EXACT):
        return 1
    if a is Seg.PARAM:
        return -1 if b is Seg.EXACT else 1
    if a is Seg.WILDCARD:
        return -1 if b in (Seg.EXACT, Seg.PARAM) else 1
    return -1  # SLASH against EXACT / PARAM / WILDCARD


def parse_spec(pattern: str) -> tuple[Segment, ...]:
    """routefinder `RouteSpec::from_str`: segments split at ``/`` and ``.``."""
    trimmed = pattern.strip("/")
    segments: list[Segment] = []
    start = 0
    bounds = [m.start() for m in re.finditer(r"[./]", trimmed)] + [len(trimmed)]
    for end in bounds:
        before = trimmed[start - 1] if start > 0 else None
        section = trimmed[start:end]
        start = end + 1
        seg: Segment | None
        if section == "*":
            seg = Segment(Seg.WILDCARD)
        elif section.startswith("*"):
            raise RouteError(
                f"since there can only be one wildcard, it doesn't need a name. replace `{section}` with `*`"
            )
        elif section == ":":
            raise RouteError("params must be named")
        elif section.startswith(":"):
            seg = Segment(Seg.PARAM, section[1:])
        elif section == "":
            seg = None
        else:
            seg = Segment(Seg.EXACT, section)
        if before == ".":
            # A dot after literal text becomes part of that text; otherwise it is its own segment.
            if segments and segments[-1].kind is Seg.EXACT:
                segments[-1] = Segment(Seg.EXACT, segments[-1].text + ".")
            else:
                segments.append(Segment(Seg.DOT))
        if seg is not None:
            if before == "/":
                segments.append(Segment(Seg.SLASH))
            segments.append(seg)
    for i, seg in enumerate(segments):
        # routefinder panics on these at request time; refuse them up front instead.
        if seg.kind is Seg.WILDCARD and i != len(segments) - 1:
            raise RouteError("a wildcard must be the last segment of a route")
        if (
            seg.kind is Seg.PARAM
            and i + 1 < len(segments)
            and segments[i + 1].kind not in (Seg.SLASH, Seg.DOT)
        ):
            raise RouteError(f"param :{seg.text} must be followed by '/', '.' or the end of the route")
    return tuple(segments)


def _spec_cmp(a: tuple[Segment, ...], b: tuple[Segment, ...]) -> int:
    """routefinder `RouteSpec::cmp`; negative means `a` is tried first. Never 0 (ties: Greater)."""
    for sa, sb in zip(a, b, strict=False):
        c = _segment_cmp(sa.kind, sb.kind)
        if c:
            return -c
    dots_a = sum(1 for s in a if s.kind is Seg.DOT)
    dots_b = sum(1 for s in b if s.kind is Seg.DOT)
    if dots_a != dots_b:
        return -1 if dots_a > dots_b else 1
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    return 1


def _spec_regex(segments: tuple[Segment, ...]) -> re.Pattern[str]:
    """A regex over the slash-trimmed path equivalent to routefinder's left-to-right matcher."""
    parts: list[str] = []
    for i, seg in enumerate(segments):
        nxt = segments[i + 1].kind if i + 1 < len(segments) else None
        if seg.kind is Seg.EXACT:
            parts.append(re.escape(seg.text))
        elif seg.kind is Seg.DOT:
            parts.append(r"\.")
        elif seg.kind is Seg.PARAM:
            # Needs a non-empty rest of path, captures up to the next "/" (possibly nothing), or up
            # to a "." that must come before any "/".
            parts.append(r"(?=.)([^/]*)" if nxt is not Seg.DOT else r"([^./]*)(?=\.)")
        elif seg.kind is Seg.WILDCARD:
            parts.append(r"(.*)")
        elif nxt is Seg.WILDCARD:
            # A slash before the wildcard may also match the end of the path (wildcard = "").
            parts.append(r"(?:/|(?=\Z))")
        else:
            parts.append("/")
    return re.compile("".join(parts) + r"/?\Z", re.DOTALL)


# ------------------------------------------------------------------------------------------------
# Router


@dataclass(frozen=True)
class _Compiled:
    route: HttpRoute
    segments: tuple[Segment, ...]
    regex: re.Pattern[str]
    param_names: tuple[str, ...]
    wildcard: bool


def normalize_route(raw: str) -> str:
    """Spin's ``sanitize_with_base("/", raw)``: absolutise, then strip one trailing ``/``."""
    path = raw if raw.startswith("/") else "/" + raw
    return path.removesuffix("/")


def wildcard_path_info(captured: str, path: str) -> str:
    """Spin's trailing-wildcard value: routefinder drops trailing slashes, Spin puts them back."""
    if not captured:
        return "/" if path.endswith("/") else ""
    return f"/{captured}/" if path.endswith("/") else f"/{captured}"


class Router:
    """Routes of one app, ordered once; :meth:`match` is the per-request hot path."""

    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        ordered: list[_Compiled] = []
        for route in routes:
            pattern = route.based_route
            if pattern.endswith("/..."):
                pattern = pattern.removesuffix("/...") + "/*"
            try:
                segments = parse_spec(pattern)
            except RouteError as exc:
                raise RouteError(
                    f"Error parsing route {route.based_route} associated with component {route.lookup_key}: {exc}"
                ) from exc
            compiled = _Compiled(
                route=route,
                segments=segments,
                regex=_spec_regex(segments),
                param_names=tuple(s.text for s in segments if s.kind is Seg.PARAM),
                wildcard=bool(segments) and segments[-1].kind is Seg.WILDCARD,
            )
            # routefinder keeps routes in a BTreeMap whose comparison never says Equal: a new route
            # goes before the first one it ranks above, i.e. after every route it ties with.
            at = next((i for i, c in enumerate(ordered) if _spec_cmp(segments, c.segments) < 0), len(ordered))
            ordered.insert(at, compiled)
        self._ordered = tuple(ordered)

    @property
    def routes(self) -> tuple[HttpRoute, ...]:
        """Routable routes in the order they are tried."""
        return tuple(c.route for c in self._ordered)

    def contains_reserved_route(self) -> bool:
        return any(c.route.based_route.startswith(WELL_KNOWN_PREFIX) for c in self._ordered)

    def match(self, path: str) -> RouteMatch | None:
        """The best route for a raw request path (without query), or None (-> 404)."""
        trimmed = path.strip("/")
        for c in self._ordered:
            m = c.regex.match(trimmed)
            if m is None:
                continue
            groups = m.groups()
            if c.wildcard:
                params = tuple(zip(c.param_names, groups[:-1], strict=True))
                path_info = wildcard_path_info(groups[-1], path)
            else:
                params = tuple(zip(c.param_names, groups, strict=True))
                path_info = ""
            return RouteMatch(route=c.route, path=path, params=params, path_info=path_info)
        return None

    @classmethod
    def from_locked(cls, app: LockedApp) -> Router:
        """Build from the app's http triggers (validated as Spin v3 does; errors -> RouteError)."""
        check_base(app)
        component_ids = {c.id for c in app.components}
        routes: dict[str, HttpRoute] = {}  # by raw route; insertion order = first appearance
        for trigger in app.triggers:
            if trigger.trigger_type != HTTP_TRIGGER:
                continue
            route = http_route(trigger)
            if route is None:
                continue  # private
            if route.component_id is not None and route.component_id not in component_ids:
                raise RouteError(f"trigger {trigger.id!r} refers to unknown component {route.component_id!r}")
            replaced = routes.get(route.raw_route)
            routes[route.raw_route] = route
            if replaced is not None:
                log.error(
                    "Duplicate route: %s: %s (duplicate of %s) will never be used",
                    replaced.lookup_key,
                    replaced.based_route or "/",
                    route.lookup_key,
                )
        router = cls(routes.values())
        if router.contains_reserved_route():
            log.error("Routes under %s are handled by the host and will never be reached", WELL_KNOWN_PREFIX)
        return router


def private_components(app: LockedApp) -> dict[str, Mapping[str, Any] | None]:
    """Components behind a ``route = { private = true }`` trigger, with that trigger's executor:
    never routable, reachable only by service chaining (``http://<id>.spin.internal``)."""
    found: dict[str, Mapping[str, Any] | None] = {}
    for trigger in app.triggers:
        config = trigger.trigger_config
        component = config.get("component")
        if trigger.trigger_type == HTTP_TRIGGER and isinstance(config.get("route"), dict) and isinstance(component, str):
            executor = config.get("executor")
            found[component] = executor if isinstance(executor, dict) else None
    return found


def check_base(app: LockedApp) -> None:
    """Spin v3 removed the http trigger ``base``: ``/`` only warns, anything else is refused."""
    base = trigger_metadata(app, HTTP_TRIGGER).get("base")
    if base is None:
        return
    if base == "/":
        log.warning(
            "app %r sets the deprecated http trigger 'base' to the default '/'; it is ignored", app.name
        )
        return
    raise RouteError(
        f"This application is using the deprecated trigger 'base' field ({base!r}). "
        "The base must be prepended to each [[trigger.http]]'s 'route'."
    )


def trigger_metadata(app: LockedApp, trigger_type: str) -> dict[str, Any]:
    """Spin's `get_trigger_metadata`: ``metadata.triggers[type]``, else ``metadata.trigger`` if its type matches."""
    triggers = app.metadata.get("triggers")
    if isinstance(triggers, dict) and isinstance(triggers.get(trigger_type), dict):
        return dict(triggers[trigger_type])
    legacy = app.metadata.get("trigger")
    if isinstance(legacy, dict) and legacy.get("type") == trigger_type:
        return {k: v for k, v in legacy.items() if k != "type"}
    return {}


def http_route(trigger: LockedTrigger) -> HttpRoute | None:
    """Parse one http trigger's config; None for a private route."""
    config = trigger.trigger_config
    where = f"trigger {trigger.id!r}"
    unknown = sorted(set(config) - _TRIGGER_CONFIG_KEYS)
    if unknown:
        raise RouteError(f"{where}: unknown field(s) in trigger_config: {', '.join(unknown)}")
    if "route" not in config:
        raise RouteError(f"{where}: missing field `route`")
    component = config.get("component")
    static = config.get("static_response")
    if component is not None and not isinstance(component, str):
        raise RouteError(f"{where}: `component` must be a string")
    if (component is None) == (static is None):
        which = "neither" if component is None else "both"
        raise RouteError(
            f"Triggers must specify either component or static_response - {trigger.id} has {which}"
        )
    executor = config.get("executor")
    if executor is not None and not isinstance(executor, dict):
        raise RouteError(f"{where}: `executor` must be a table")
    raw = config["route"]
    if isinstance(raw, dict):
        if set(raw) != {"private"} or not isinstance(raw["private"], bool):
            raise RouteError(f"{where}: route must be a string pattern or '{{ private = true }}'")
        if not raw["private"]:
            raise RouteError(
                f"route must be a string pattern or '{{ private = true }}': "
                f"'{component if component is not None else trigger.id}' has {{ private = false }}"
            )
        return None
    if not isinstance(raw, str):
        raise RouteError(f"{where}: route must be a string pattern or '{{ private = true }}'")
    based = normalize_route(raw)
    return HttpRoute(
        trigger_id=trigger.id,
        raw_route=raw,
        based_route=based,
        component_id=component,
        static_response=None if static is None else parse_static_response(static, where),
        executor=executor,
        is_wildcard=based.endswith(("/...", "/*")),
    )


def parse_static_response(obj: Any, where: str) -> StaticResponse:
    if not isinstance(obj, dict):
        raise RouteError(f"{where}: `static_response` must be a table")
    status = obj.get("status_code")
    if status is None:
        status = 200
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
        raise RouteError(f"{where}: static_response.status_code must be an HTTP status (100-999)")
    headers = obj.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise RouteError(f"{where}: static_response.headers must map strings to strings")
    body = obj.get("body")
    if body is not None and not isinstance(body, str):
        raise RouteError(f"{where}: static_response.body must be a string")
    return StaticResponse(
        status=status,
        headers=tuple(headers.items()),
        body=None if body is None else body.encode("utf-8"),
    )
