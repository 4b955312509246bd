"""Spin's LockedApp (the lock JSON), as typed dataclasses.

Parsing follows Spin v3 (`crates/locked-app/src/locked.rs`): unknown fields are ignored, except
unknown `must_understand` values and unsupported required `host_requirements`, which are errors.
Serialisation reproduces serde's output byte for byte: struct fields in declaration order, empty
collections omitted, maps (BTreeMap / serde_json::Map) with sorted keys, compact separators.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry.errors import LockError

KNOWN_MUST_UNDERSTAND = frozenset({"host_requirements", "component_host_requirements"})
# Host features lepton-router implements; a lock that *requires* anything else is refused.
SUPPORTED_HOST_REQUIREMENTS: frozenset[str] = frozenset()

WASM_CONTENT_TYPE = "application/wasm"


def _b64decode_no_pad(text: str, where: str) -> bytes:
    # Spin uses BASE64_STANDARD_NO_PAD, which rejects padding.
    if "=" in text:
        raise LockError(f"{where}: inline content must be base64 without padding")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise LockError(f"{where}: inline content is not valid base64: {exc}") from exc


def b64encode_no_pad(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _sorted_value(value: Any) -> Any:
    """serde_json::Map (without preserve_order) serialises keys sorted, at every depth."""
    if isinstance(value, Mapping):
        return {k: _sorted_value(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_value(v) for v in value]
    return value


def _expect(obj: Any, kind: type, where: str) -> Any:
    if not isinstance(obj, kind):
        raise LockError(f"{where}: expected {kind.__name__}, got {type(obj).__name__}")
    return obj


def _str_map(obj: Any, where: str) -> dict[str, str]:
    if obj is None:
        return {}
    mapping = _expect(obj, dict, where)
    for key, value in mapping.items():
        if not isinstance(value, str):
            raise LockError(f"{where}.{key}: expected string, got {type(value).__name__}")
    return dict(mapping)


@dataclass(frozen=True)
class ContentRef:
    """Where bytes come from: a URI, inline bytes, and/or a sha256 digest (flattened in JSON)."""

    source: str | None = None
    inline: bytes | None = None
    digest: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], where: str) -> ContentRef:
        source = obj.get("source")
        inline = obj.get("inline")
        digest = obj.get("digest")
        if source is not None and not isinstance(source, str):
            raise LockError(f"{where}.source: expected string")
        if digest is not None and not isinstance(digest, str):
            raise LockError(f"{where}.digest: expected string")
        inline_bytes = None
        if inline is not None:
            inline_bytes = _b64decode_no_pad(_expect(inline, str, f"{where}.inline"), f"{where}.inline")
        return cls(source=source, inline=inline_bytes, digest=digest)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.source is not None:
            out["source"] = self.source
        if self.inline is not None:
            out["inline"] = b64encode_no_pad(self.inline)
        if self.digest is not None:
            out["digest"] = self.digest
        return out


@dataclass(frozen=True)
class LockedComponentSource:
    content_type: str
    content: ContentRef

    @classmethod
    def from_json(cls, obj: Any, where: str) -> LockedComponentSource:
        obj = _expect(obj, dict, where)
        content_type = obj.get("content_type", WASM_CONTENT_TYPE)
        return cls(content_type=str(content_type), content=ContentRef.from_json(obj, where))

    def to_json(self) -> dict[str, Any]:
        return {"content_type": self.content_type, **self.content.to_json()}


@dataclass(frozen=True)
class ContentPath:
    """One `files` entry: content plus a path (relative in registry form, `/` once mounted)."""

    content: ContentRef
    path: str

    @classmethod
    def from_json(cls, obj: Any, where: str) -> ContentPath:
        obj = _expect(obj, dict, where)
        path = obj.get("path")
        if not isinstance(path, str):
            raise LockError(f"{where}.path: expected string")
        return cls(content=ContentRef.from_json(obj, where), path=path)

    def to_json(self) -> dict[str, Any]:
        return {**self.content.to_json(), "path": self.path}


@dataclass(frozen=True)
class LockedComponentDependency:
    source: LockedComponentSource
    export: str | None = None
    inherit: Any = None  # "All" | {"Some": [...]}; None means omitted (= Some([]), deny all)

    @classmethod
    def from_json(cls, obj: Any, where: str) -> LockedComponentDependency:
        obj = _expect(obj, dict, where)
        return cls(
            source=LockedComponentSource.from_json(obj.get("source"), f"{where}.source"),
            export=obj.get("export"),
            inherit=obj.get("inherit"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source.to_json(), "export": self.export}
        if self.inherit is not None:
            out["inherit"] = _sorted_value(self.inherit)
        return out


@dataclass(frozen=True)
class LockedComponent:
    id: str
    source: LockedComponentSource
    metadata: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    files: tuple[ContentPath, ...] = ()
    config: dict[str, str] = field(default_factory=dict)
    dependencies: dict[str, LockedComponentDependency] = field(default_factory=dict)
    host_requirements: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any, where: str) -> LockedComponent:
        obj = _expect(obj, dict, where)
        cid = obj.get("id")
        if not isinstance(cid, str) or not cid:
            raise LockError(f"{where}.id: expected a non-empty string")
        where = f"component {cid!r}"
        files = tuple(
            ContentPath.from_json(f, f"{where}.files[{i}]")
            for i, f in enumerate(_expect(obj.get("files") or [], list, f"{where}.files"))
        )
        deps = {
            name: LockedComponentDependency.from_json(dep, f"{where}.dependencies.{name}")
            for name, dep in _expect(obj.get("dependencies") or {}, dict, f"{where}.dependencies").items()
        }
        return cls(
            id=cid,
            source=LockedComponentSource.from_json(obj.get("source"), f"{where}.source"),
            metadata=dict(_expect(obj.get("metadata") or {}, dict, f"{where}.metadata")),
            env=_str_map(obj.get("env"), f"{where}.env"),
            files=files,
            config=_str_map(obj.get("config"), f"{where}.config"),
            dependencies=deps,
            host_requirements=_host_requirements(obj.get("host_requirements"), where),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.metadata:
            out["metadata"] = _sorted_value(self.metadata)
        out["source"] = self.source.to_json()
        if self.env:
            out["env"] = _sorted_value(self.env)
        if self.files:
            out["files"] = [f.to_json() for f in self.files]
        if self.config:
            out["config"] = _sorted_value(self.config)
        if self.dependencies:
            out["dependencies"] = {k: self.dependencies[k].to_json() for k in sorted(self.dependencies)}
        if self.host_requirements:
            out["host_requirements"] = _sorted_value(self.host_requirements)
        return out

    # Convenience accessors for the metadata keys runtime/ cares about.
    def metadata_list(self, key: str) -> tuple[str, ...]:
        value = self.metadata.get(key) or []
        return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True)
class LockedTrigger:
    id: str
    trigger_type: str
    trigger_config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any, where: str) -> LockedTrigger:
        obj = _expect(obj, dict, where)
        tid = obj.get("id")
        ttype = obj.get("trigger_type")
        if not isinstance(tid, str) or not isinstance(ttype, str):
            raise LockError(f"{where}: `id` and `trigger_type` must be strings")
        config = obj.get("trigger_config")
        return cls(id=tid, trigger_type=ttype, trigger_config=config if isinstance(config, dict) else {})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trigger_type": self.trigger_type,
            "trigger_config": _sorted_value(self.trigger_config),
        }


@dataclass(frozen=True)
class Variable:
    default: str | None = None
    secret: bool = False
    description: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Variable:
        obj = _expect(obj or {}, dict, where)
        default = obj.get("default")
        if default is not None and not isinstance(default, str):
            raise LockError(f"{where}.default: expected string")
        return cls(default=default, secret=bool(obj.get("secret", False)), description=obj.get("description"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.description is not None:
            out["description"] = self.description
        if self.default is not None:
            out["default"] = self.default
        if self.secret:
            out["secret"] = True
        return out


def _host_requirements(obj: Any, where: str) -> dict[str, str]:
    """Drop `optional` entries (as Spin does) and refuse required features we do not support."""
    reqs = _expect(obj or {}, dict, f"{where}.host_requirements")
    required = {k: v for k, v in reqs.items() if v != "optional"}
    bad_values = sorted(k for k, v in required.items() if v != "required")
    if bad_values:
        raise LockError(f"{where}.host_requirements: invalid value for {', '.join(bad_values)}")
    unsupported = sorted(k for k in required if k not in SUPPORTED_HOST_REQUIREMENTS)
    if unsupported:
        raise LockError(
            f"{where}: this host does not support the following features required by the application: "
            + ", ".join(unsupported)
        )
    return dict(required)


@dataclass(frozen=True)
class LockedApp:
    triggers: tuple[LockedTrigger, ...]
    components: tuple[LockedComponent, ...]
    spin_lock_version: int = 0
    must_understand: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    host_requirements: dict[str, str] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def version(self) -> str | None:
        version = self.metadata.get("version")
        return str(version) if version is not None else None

    def component(self, component_id: str) -> LockedComponent:
        for comp in self.components:
            if comp.id == component_id:
                return comp
        raise KeyError(component_id)

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any]) -> LockedApp:
        if isinstance(data, bytes | str):
            try:
                obj = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise LockError(f"lock is not valid JSON: {exc}") from exc
        else:
            obj = data
        obj = _expect(obj, dict, "lock")
        version = obj.get("spin_lock_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise LockError("lock: `spin_lock_version` is missing or not an integer")
        if version not in (0, 1):
            raise LockError(f"lock: unsupported spin_lock_version {version} (this host reads 0 and 1)")
        must = tuple(_expect(obj.get("must_understand") or [], list, "lock.must_understand"))
        unknown = sorted(str(m) for m in must if m not in KNOWN_MUST_UNDERSTAND)
        if unknown:
            raise LockError(
                "lock: this host cannot understand features the application requires (must_understand): "
                + ", ".join(unknown)
            )
        triggers = tuple(
            LockedTrigger.from_json(t, f"triggers[{i}]")
            for i, t in enumerate(_expect(obj.get("triggers"), list, "lock.triggers"))
        )
        components = tuple(
            LockedComponent.from_json(c, f"components[{i}]")
            for i, c in enumerate(_expect(obj.get("components"), list, "lock.components"))
        )
        variables = {
            name: Variable.from_json(v, f"variables.{name}")
            for name, v in _expect(obj.get("variables") or {}, dict, "lock.variables").items()
        }
        return cls(
            spin_lock_version=version,
            must_understand=tuple(str(m) for m in must),
            metadata=dict(_expect(obj.get("metadata") or {}, dict, "lock.metadata")),
            host_requirements=_host_requirements(obj.get("host_requirements"), "lock"),
            variables=variables,
            triggers=triggers,
            components=components,
        )

    def to_json(self) -> dict[str, Any]:
        # Spin writes 1 only when must_understand or host_requirements is non-empty.
        needs_v1 = bool(self.must_understand or self.host_requirements) or any(
            c.host_requirements for c in self.components
        )
        out: dict[str, Any] = {"spin_lock_version": 1 if needs_v1 else 0}
        if self.must_understand:
            out["must_understand"] = list(self.must_understand)
        if self.metadata:
            out["metadata"] = _sorted_value(self.metadata)
        if self.host_requirements:
            out["host_requirements"] = _sorted_value(self.host_requirements)
        if self.variables:
            out["variables"] = {k: self.variables[k].to_json() for k in sorted(self.variables)}
        out["triggers"] = [t.to_json() for t in self.triggers]
        out["components"] = [c.to_json() for c in self.components]
        return out

    def to_bytes(self) -> bytes:
        """Compact JSON exactly as `serde_json::to_vec` would write it (the pushed lock layer)."""
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
