"""Every relative link in README.md and docs/**/*.md resolves.

A link to a file must name a file or directory that exists inside the repository; a link with a
`#anchor` into one of our Markdown files (or a bare `#anchor` within the same file) must match a
heading there, by GitHub's slug rules. Links in fenced code blocks and code spans are not links.
Absolute URLs (`https:`, `mailto:` ...) are not checked: this is about the docs tree holding
together, offline.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the text may hold one level of nested brackets.
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]+(?:\([^\s()]*\)[^\s()]*)*)")
# [label]: target
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with code spans blanked out."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            continue
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        lines.append((number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)))
    return lines


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition."""
    found: list[tuple[int, str]] = []
    for number, line in _prose_lines(text):
        definition = _REFERENCE_DEF.match(line)
        if definition:
            found.append((number, definition.group(1)))
            continue
        found.extend((number, m.group(1)) for m in _INLINE_LINK.finditer(line))
    return [(n, t[1:-1] if t.startswith("<") and t.endswith(">") else t) for n, t in found]


def _heading_text(raw: str) -> str:
    """A heading as GitHub renders it to text: code, emphasis and link syntax removed."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "")
    return re.sub(r"(\*{1,3}|_{1,3})(\S(?:.*?\S)?)\1", r"\2", text)  # emphasis


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case; letters, digits, '-', '_' and spaces kept;
    spaces become '-'."""
    kept = []
    for ch in _heading_text(heading).strip().lower():
        category = unicodedata.category(ch)
        if ch in "-_" or category[0] in "LN" or category == "Mn":
            kept.append(ch)
        elif ch == " ":
            kept.append("-")
    return "".join(kept)


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown file defines: heading slugs (repeats get -1, -2 ...) and HTML ids."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for _, line in _prose_lines(text):
        result.update(_HTML_ANCHOR.findall(line))
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with each relative link in `path`, a Markdown file under `root`."""
    text = path.read_text(encoding="utf-8")
    problems = []
    for number, target in links(text):
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # an absolute URL
        where = f"{path.relative_to(root)}:{number}: {target}"
        file_part, _, anchor = target.partition("#")
        file_part = file_part.split("?", 1)[0]
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(root):
            problems.append(f"{where}: points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: no such file")
            continue
        is_markdown = resolved.suffix == ".md" and resolved.is_file()
        if anchor and is_markdown and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{where}: no heading with the anchor #{anchor}")
    return problems


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_docs_tree_exists() -> None:
    # The index and the four kinds of pages the README links into.
    for name in ("README.md", "tutorial", "how-to", "reference", "explanation"):
        assert (ROOT / "docs" / name).exists(), name


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Route matching", "route-matching"),
        ("Spin 1.x ABI", "spin-1x-abi"),
        ("`cache_dir`", "cache_dir"),
        ("wasi:http incoming-handler", "wasihttp-incoming-handler"),
        ("runtime-config.toml outline", "runtime-configtoml-outline"),
        ("[apps.NAME]", "appsname"),
        ("TLS and HTTP/2", "tls-and-http2"),
        ("Spin 2 and later layout", "spin-2-and-later-layout"),
    ],
)
def test_slug_follows_github(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    text = (
        "# Title\n\n## Same name\n\n## Same name\n\n"
        "[ok](#title) [ok](#same-name-1) [bad](#nope)\n"
        "`[not a link](missing.md)`\n\n```\n[not a link](missing.md)\n```\n"
        "[bad file](missing.md) [web](https://example.com/missing)\n"
    )
    assert [t for _, t in links(text)] == ["#title", "#same-name-1", "#nope", "missing.md",
                                          "https://example.com/missing"]
    assert {"title", "same-name", "same-name-1"} <= anchors(text)
    root = tmp_path.resolve()
    (root / "docs").mkdir()
    page = root / "docs" / "page.md"
    page.write_text(text + "[outside](../../elsewhere.md) [up](../docs/page.md#title)\n", encoding="utf-8")
    problems = broken_links(page, root)
    assert len(problems) == 3, problems
    assert "#nope" in problems[0] and "no heading" in problems[0]
    assert "missing.md" in problems[1] and "no such file" in problems[1]
    assert "elsewhere.md" in problems[2] and "outside the repository" in problems[2]


# A repository path named in a code span: `tests/e2e/test_x.py`, `benchmarks/*.py`, `router/`.
_REPO_PATH = re.compile(r"`((?:tests|benchmarks|router|runtime|registry|examples|docs)/[A-Za-z0-9_./*{},-]*)`")


def missing_paths(text: str, root: Path = ROOT) -> list[str]:
    """Repository paths named in code spans (globs allowed) that match nothing: pages that still
    name a file after it moved."""
    missing = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _REPO_PATH.finditer(line):
            name = match.group(1)
            if "{" in name or "NAME" in name:  # a pattern for the reader, not a file
                continue
            if not any(root.glob(name.rstrip("/"))):
                missing.append(f"line {number}: {name}")
    return missing


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_named_in_docs_exist(path: Path) -> None:
    assert missing_paths(path.read_text(encoding="utf-8")) == []


def test_a_moved_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "tests" / "e2e").mkdir(parents=True)
    (tmp_path / "tests" / "e2e" / "test_here.py").write_text("")
    text = "`tests/e2e/test_here.py` `tests/test_gone.py` `tests/e2e/test_*.py` `tests/e2e/`\n"
    assert missing_paths(text, tmp_path) == ["line 1: tests/test_gone.py"]
