"""The import structure of router/, runtime/ and registry/, read from the source with `ast`.

- No cycles: an import made inside a function counts too (a lazy import still ties the modules
  together); imports under `if TYPE_CHECKING:` do not (they never run).
- Pure modules (configuration, route matching, the shared data types) load nothing heavy: no
  wasmtime, oras or requests, directly or through anything they import, package `__init__`s
  included (importing `a.b` runs `a/__init__`).
- Data flows one way: registry/ imports neither runtime/ nor router/; runtime/ does not import
  router/.
- runtime/core/ knows no concrete capability or executor.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("router", "runtime", "registry")
HEAVY = ("wasmtime", "oras", "requests", "httpx", "hypercorn", "quart")
PURE = (
    "router.config",
    "router.runtime_config",
    "router.tomlpos",
    "router.units",
    "runtime.types",
    "runtime.runtime_config",
    "runtime.errors",
    "runtime.http.routes",
    "runtime.http.spin_headers",
    "runtime.http.executors.wagi_cgi",
    "runtime.capabilities.variables.resolve",
    "runtime.capabilities.support.allowed_hosts",
    "registry.locked",
    "registry.loaded",
    "registry.reference",
)


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: set[str] = field(default_factory=set)  # every import, incl. inside functions
    top_level: set[str] = field(default_factory=set)  # what runs when the module is imported


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: Module) -> Iterator[tuple[str, bool]]:
    """(imported name, runs at import time) for every import statement outside TYPE_CHECKING."""

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.name.split(".")
        if not module.is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def walk(node: ast.AST, top: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    yield from walk(sub, top)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, top
            elif isinstance(child, ast.ImportFrom):
                base = resolve(child)
                yield base, top
                for alias in child.names:
                    yield f"{base}.{alias.name}", top  # a submodule, when it is one
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, top and not nested)

    yield from walk(tree, True)


def _load() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name, is_package = _module_name(path)
            modules[name] = Module(name, path, is_package)
    for module in modules.values():
        tree = ast.parse(module.path.read_text(), str(module.path))
        for name, top in _imports(tree, module):
            root = name.split(".")[0]
            if root in PACKAGES and name not in modules:
                continue  # `from pkg import attr` where attr is not a submodule
            if root not in PACKAGES:
                name = root  # third-party: the distribution is what counts
            if name == module.name:
                continue
            module.imports.add(name)
            if top:
                module.top_level.add(name)
    return modules


MODULES = _load()


def _cycle(modules: dict[str, Module]) -> list[str] | None:
    """One import cycle among the project's modules, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(modules, WHITE)
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        colour[name] = GREY
        stack.append(name)
        for dep in sorted(modules[name].imports):
            if dep not in modules:
                continue
            if colour[dep] == GREY:
                return [*stack[stack.index(dep) :], dep]
            if colour[dep] == WHITE and (found := visit(dep)):
                return found
        stack.pop()
        colour[name] = BLACK
        return None

    for name in sorted(modules):
        if colour[name] == WHITE and (found := visit(name)):
            return found
    return None


def _loaded_by(name: str) -> set[str]:
    """Everything importing `name` runs: its top-level imports, transitively, with the package
    __init__ of every project module on the way."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        parts = current.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in MODULES)
        module = MODULES.get(current)
        if module is not None:
            todo.extend(module.top_level)
    return seen


def test_the_graph_is_read() -> None:
    # Guards the reader itself: if parsing silently found nothing, every check below would pass.
    assert len(MODULES) > 80
    assert "runtime.core.contract" in MODULES["runtime.core.linking"].imports
    assert "wasmtime" in _loaded_by("runtime.runtime")
    assert "oras" in _loaded_by("registry.pull")


def test_no_import_cycles() -> None:
    assert _cycle(MODULES) is None, " -> ".join(_cycle(MODULES) or [])


def test_a_cycle_is_found() -> None:
    a = Module("x.a", Path("a.py"), False, {"x.b"})
    b = Module("x.b", Path("b.py"), False, {"x.c"})
    c = Module("x.c", Path("c.py"), False, {"x.a"})
    assert _cycle({"x.a": a, "x.b": b, "x.c": c}) == ["x.a", "x.b", "x.c", "x.a"]
    c.imports = set()
    assert _cycle({"x.a": a, "x.b": b, "x.c": c}) is None


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_load_nothing_heavy(name: str) -> None:
    assert name in MODULES
    heavy = sorted(_loaded_by(name) & set(HEAVY))
    assert not heavy, f"importing {name} loads {heavy}"


def test_data_flows_one_way() -> None:
    for module in MODULES.values():
        package = module.name.split(".")[0]
        roots = {dep.split(".")[0] for dep in module.imports}
        if package == "registry":
            assert not roots & {"runtime", "router"}, module.name
        if package == "runtime":
            assert "router" not in roots, module.name


def test_the_core_knows_no_capability_or_executor() -> None:
    for name, module in MODULES.items():
        if name.startswith("runtime.core"):
            plugins = {d for d in module.imports if d.startswith(("runtime.capabilities", "runtime.http"))}
            assert not plugins, f"{name} imports {sorted(plugins)}"


@pytest.mark.parametrize("name", ["router.config", "runtime.types", "runtime.http.routes", "registry.locked"])
def test_importing_a_pure_module_really_loads_nothing_heavy(name: str) -> None:
    # The same check by the interpreter itself, as `python -X importtime -c "import NAME"` shows it.
    import subprocess
    import sys

    code = f"import sys, {name}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
