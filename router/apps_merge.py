"""routes.toml's apps + the apps directory's files -> the desired table. Pure.

The rules, so that a change in one file never costs another file's app:
* A file with problems keeps its app's last good version (the one in `previous`, from the same
  file), if it had one.
* A name defined twice (routes.toml and a file, or NAME.toml and NAME.json) stays with whichever
  defined it before; the newcomer is refused, naming both files. Both new at once: routes.toml
  wins, then the first file by name.
* A (host, prefix) claimed by two apps stays with the app that held it before; if neither did,
  routes.toml's app wins, then the first file by name. A file's app that loses falls back to its
  last good version (or is left out), reported against that file.
* routes.toml is still accepted or rejected as a whole: a conflict it introduces with a file's app
  is returned in `toml_problems`, and the caller keeps the previous routes.toml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from router.apps_dir import FileResult
from router.config import AppConfig, Problem, claimed_message, conflict_field, route_keys


@dataclass(frozen=True)
class Owned:
    """An app of the desired table and the file that defines it."""

    config: AppConfig
    file: str
    result: FileResult | None = None  # for an app file: how it was read (lines for problems)


@dataclass(frozen=True)
class Merged:
    apps: dict[str, Owned]
    problems: tuple[Problem, ...]  # of app files: each costs only its own app
    toml_problems: tuple[Problem, ...]  # conflicts routes.toml introduced: reject routes.toml

    @property
    def desired(self) -> dict[str, AppConfig]:
        return {name: owned.config for name, owned in self.apps.items()}


@dataclass(frozen=True)
class _Candidate:
    owned: Owned
    fallback: AppConfig | None  # the last good version, to fall back to when the new one conflicts


def merge(toml_apps: Mapping[str, AppConfig], toml_file: str, files: Iterable[FileResult],
          previous: Mapping[str, Owned]) -> Merged:
    """`previous`: the apps of the last merge (who held what)."""
    problems: list[Problem] = []
    toml_problems: list[Problem] = []
    candidates: dict[str, _Candidate] = {
        name: _Candidate(Owned(app, toml_file), None) for name, app in toml_apps.items()
    }
    for result in sorted(files, key=lambda r: r.file):
        problems.extend(result.problems)
        before = previous.get(result.name)
        last_good = before.config if before is not None and before.file == result.file else None
        config = result.app or last_good
        candidate = _Candidate(Owned(config, result.file, result), last_good if result.app else None) \
            if config is not None else None
        other = candidates.get(result.name)
        if other is None:
            if candidate is not None:
                candidates[result.name] = candidate
            continue
        holder = before.file if before is not None else None
        if holder != result.file:  # the newcomer is this file
            problems.append(_twice(result.file, result.name, other.owned.file))
            continue
        if other.owned.file == toml_file:
            toml_problems.append(_twice(toml_file, result.name, result.file))
        else:
            problems.append(_twice(other.owned.file, result.name, result.file))
        if candidate is not None:
            candidates[result.name] = candidate
        else:
            del candidates[result.name]
    held = {key: name for name, owned in previous.items() for key in route_keys(owned.config)}
    while True:
        losers = _losers(candidates, held, toml_file)
        if not losers:
            break
        for name, (key, winner) in losers.items():
            candidate = candidates[name]
            owned = candidate.owned
            message = f"{claimed_message(key, winner)} ({candidates[winner].owned.file})"
            field = conflict_field(owned.config, key)
            if owned.file == toml_file:
                toml_problems.append(Problem(toml_file, None, name, field, message))
                return Merged({n: c.owned for n, c in candidates.items()}, tuple(problems), tuple(toml_problems))
            line = owned.result.line_of(field) if owned.result is not None else None
            problems.append(Problem(owned.file, line, name, field, message))
            if candidate.fallback is not None and candidate.fallback != owned.config:
                candidates[name] = _Candidate(Owned(candidate.fallback, owned.file, owned.result), None)
            else:
                del candidates[name]
    return Merged({n: c.owned for n, c in candidates.items()}, tuple(problems), tuple(toml_problems))


def _losers(candidates: Mapping[str, _Candidate], held: Mapping[tuple[str, str], str],
            toml_file: str) -> dict[str, tuple[tuple[str, str], str]]:
    """Apps that must give up a route: name -> (the route, the app that keeps it)."""
    claimants: dict[tuple[str, str], list[str]] = {}
    for name, candidate in candidates.items():
        for key in route_keys(candidate.owned.config):
            names = claimants.setdefault(key, [])
            if name not in names:
                names.append(name)
    losers: dict[str, tuple[tuple[str, str], str]] = {}
    for key, names in claimants.items():
        if len(names) < 2:
            continue
        holder = held.get(key)
        winner = holder if holder in names else min(
            names, key=lambda n: (candidates[n].owned.file != toml_file, candidates[n].owned.file))
        for name in names:
            if name != winner:
                losers.setdefault(name, (key, winner))
    return losers


def _twice(file: str, name: str, other_file: str) -> Problem:
    return Problem(file, None, name, None, f"app {name!r} is already defined in {other_file}")
