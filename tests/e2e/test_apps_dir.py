"""The apps directory ([server] apps_dir) against a real `lepton-router serve` and a real registry:
add, edit and delete files under load with zero failed requests; a broken file next to good ones; a
file written in two halves; a name defined twice; 200 files at once; a Kubernetes ConfigMap volume
(symlinks through a `..data` link swapped atomically); `lepton-router add/remove/list` on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import (
    REPO,
    RouterServer,
    free_port,
    push_hellos,
    write_routes,
)

V1 = "dir v1         \n"
V2 = "dir v2         \n"
STEADY = "dir steady     \n"
FRESH = "dir fresh      \n"
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def sources(registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return push_hellos(registry.host, tmp_path_factory.mktemp("apps-dir-apps"), {
        "v1": ("appsdir/main:v1", "dir v1"),
        "v2": ("appsdir/main:v2", "dir v2"),
        "steady": ("appsdir/steady:v1", "dir steady"),
        "fresh": ("appsdir/fresh:v1", "dir fresh"),
    })


def _setup(tmp_path: Path, cache: Path, routes_apps: str = "") -> tuple[Path, Path]:
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[server]\ncache_dir = "{cache}"\napps_dir = "apps.d"\n{routes_apps}')
    apps = tmp_path / "apps.d"
    apps.mkdir()
    return routes, apps


def _app(source: str, host: str, extra: str = "") -> str:
    return f'source = "{source}"\ninsecure = true\nhosts = ["{host}"]\n{extra}'


class Client(threading.Thread):
    """GETs one host in a loop until stopped; keeps every (status, body)."""

    def __init__(self, server: RouterServer, host: str) -> None:
        super().__init__(daemon=True)
        self.url = server.base_url + "/"
        self.host = host
        self.seen: list[tuple[int, str]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(headers={"host": self.host}, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.seen.append((response.status_code, response.text))

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)

    def bodies(self) -> list[str]:
        return [body for _, body in self.seen]

    def statuses(self) -> set[int]:
        return {status for status, _ in self.seen}


def _problems(server: RouterServer) -> list[dict]:  # type: ignore[type-arg]
    return list(server.status()["app_file_problems"])


def test_add_edit_delete_under_load(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
                                    router_cache_dir: Path) -> None:
    routes, apps = _setup(tmp_path, router_cache_dir,
                          f'\n[apps.steady]\nsource = "{sources["steady"]}"\ninsecure = true\nhosts = ["steady.test"]\n')
    (apps / "main.toml").write_text(_app(sources["v1"], "main.test"))
    server: RouterServer = router_server(routes)
    server.wait_ready()
    assert server.get("/", host="main.test").text == V1
    assert server.app_status("main")["file"] == str(apps / "main.toml")  # type: ignore[index]
    assert server.app_status("steady")["file"] == str(routes)  # type: ignore[index]

    main, steady = Client(server, "main.test"), Client(server, "steady.test")
    main.start()
    steady.start()
    try:
        server.wait_for(lambda: len(main.seen) >= 20 and len(steady.seen) >= 20, TIMEOUT_S, "clients running")
        # Add: drop a file in.
        write_routes(apps / "fresh.toml", _app(sources["fresh"], "fresh.test"))
        server.wait_for(lambda: server.get("/", host="fresh.test").text == FRESH, TIMEOUT_S, "fresh served")
        fresh = Client(server, "fresh.test")
        fresh.start()
        # Edit: v1 -> v2.
        write_routes(apps / "main.toml", _app(sources["v2"], "main.test"))
        server.wait_for(lambda: main.bodies()[-20:] == [V2] * 20, TIMEOUT_S, "main on v2")
        # Delete: the app goes, its in-flight requests end on it.
        server.wait_for(lambda: len(fresh.seen) >= 20, TIMEOUT_S, "fresh client running")
        (apps / "fresh.toml").unlink()
        server.wait_for(lambda: fresh.seen[-5:] == [(404, fresh.seen[-1][1])] * 5, TIMEOUT_S, "fresh gone")
        fresh.finish()
        count = len(steady.seen)
        server.wait_for(lambda: len(steady.seen) >= count + 20, TIMEOUT_S, "steady still serving")
    finally:
        main.finish()
        steady.finish()
    log = server.log()
    assert main.errors == [] and steady.errors == [] and fresh.errors == [], log
    assert main.statuses() == {200} and steady.statuses() == {200}
    bodies = main.bodies()
    switch = bodies.index(V2)
    assert set(bodies[:switch]) == {V1} and set(bodies[switch:]) == {V2}  # one switch, no gap
    assert set(steady.bodies()) == {STEADY}
    statuses = [status for status, _ in fresh.seen]
    first_404 = statuses.index(404)
    assert set(statuses[:first_404]) == {200} and set(statuses[first_404:]) == {404}
    assert server.app_status("fresh") is None and _problems(server) == []
    # Available Routes, pasteable, on each (re)load.
    assert f"Available Routes of fresh ({apps / 'fresh.toml'}):\n  fresh: http://fresh.test:{server.port}/" in log
    assert log.count(f"main: http://main.test:{server.port}/") >= 2  # loaded, then reloaded as v2
    assert "released fresh" in log


def test_broken_file_costs_only_its_own_app(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
                                            router_cache_dir: Path) -> None:
    routes, apps = _setup(tmp_path, router_cache_dir,
                          f'\n[apps.steady]\nsource = "{sources["steady"]}"\ninsecure = true\nhosts = ["steady.test"]\n')
    (apps / "a.toml").write_text(_app(sources["v1"], "a.test"))
    (apps / "b.toml").write_text(_app(sources["v1"], "b.test"))
    server: RouterServer = router_server(routes)
    server.wait_ready()
    b_version = server.app_status("b")["version"]  # type: ignore[index]

    # At once: b broken (keeps its last good version), a edited (applies), c new and good (added),
    # d new and broken (not served), e claims a's host (refused), a.json and steady.toml
    # define names that exist (refused, naming both files).
    write_routes(apps / "b.toml", _app(sources["v2"], "b.test", 'prefix = "no-slash"\n'))
    write_routes(apps / "a.toml", _app(sources["v2"], "a.test"))
    write_routes(apps / "c.toml", _app(sources["fresh"], "c.test"))
    d_json = {"source": sources["fresh"], "insecure": True, "hosts": "d.test", "timeout": "soon"}
    write_routes(apps / "d.json", json.dumps(d_json, indent=2))  # "timeout" on line 5
    write_routes(apps / "e.toml", _app(sources["fresh"], "a.test"))
    write_routes(apps / "a.json", json.dumps({"source": sources["fresh"], "hosts": ["a2.test"]}))
    write_routes(apps / "steady.toml", _app(sources["fresh"], "steady2.test"))
    for ignored in (".hidden.toml", "b.toml~", ".b.toml.swp", "b.toml.tmp", "notes.txt"):
        (apps / ignored).write_text("not an app [")  # never read: no problem reported for them
    server.wait_for(lambda: server.get("/", host="c.test").text == FRESH
                    and server.get("/", host="a.test").text == V2, TIMEOUT_S, "the good changes applied")
    assert server.get("/", host="b.test").text == V1  # last good version
    assert server.app_status("b")["version"] == b_version  # type: ignore[index]
    assert server.get("/", host="steady.test").text == STEADY
    for host in ("d.test", "a2.test", "steady2.test"):
        assert server.get("/", host=host).status_code == 404
    problems = {(p["file"], p["line"], p["app"], p["field"]): p["message"] for p in _problems(server)}
    assert problems.keys() == {
        (str(apps / "b.toml"), 4, "b", "prefix"),
        (str(apps / "d.json"), 5, "d", "timeout"),
        (str(apps / "e.toml"), 3, "e", "hosts"),
        (str(apps / "a.json"), None, "a", None),
        (str(apps / "steady.toml"), None, "steady", None),
    }, problems
    assert problems[(str(apps / "e.toml"), 3, "e", "hosts")] == (
        f"a.test / is also claimed by app 'a' ({apps / 'a.toml'})")
    assert str(apps / "a.toml") in problems[(str(apps / "a.json"), None, "a", None)]
    assert str(routes) in problems[(str(apps / "steady.toml"), None, "steady", None)]
    log = server.log()
    assert f"{apps / 'b.toml'}:4: app 'b': field 'prefix'" in log and "keeping its last good version" in log
    page = httpx.get(f"{server.admin_url}/plain", timeout=5).text
    assert f"{apps / 'd.json'}:5: app &#x27;d&#x27;: field &#x27;timeout&#x27;" in page

    # Fixed: b takes v2; the problems of the files removed go with them.
    write_routes(apps / "b.toml", _app(sources["v2"], "b.test"))
    for name in ("d.json", "e.toml", "a.json", "steady.toml", ".hidden.toml", "b.toml~", ".b.toml.swp",
                 "b.toml.tmp", "notes.txt"):
        (apps / name).unlink()
    server.wait_for(lambda: server.get("/", host="b.test").text == V2, TIMEOUT_S, "b fixed")
    server.wait_for(lambda: _problems(server) == [], TIMEOUT_S, "no problems left")
    assert server.status()["config_error"] is None


def test_half_written_file_never_removes_the_app(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
                                                 router_cache_dir: Path) -> None:
    routes, apps = _setup(tmp_path, router_cache_dir)
    (apps / "main.toml").write_text(_app(sources["v1"], "main.test"))
    server: RouterServer = router_server(routes)
    server.wait_ready()
    client = Client(server, "main.test")
    client.start()
    try:
        server.wait_for(lambda: len(client.seen) >= 20, TIMEOUT_S, "client running")
        # In place, not atomically: the first half (cut inside a string), a pause long enough to be
        # read, then the rest.
        text = _app(sources["v2"], "main.test")
        half = text.index("main.test") + 2
        new_text = _app(sources["fresh"], "new.test")
        with (apps / "main.toml").open("w") as out, (apps / "new.toml").open("w") as new:
            out.write(text[:half])
            new.write(new_text[:20])
            out.flush()
            new.flush()
            server.wait_for(lambda: {p["file"] for p in _problems(server)} == {str(apps / "main.toml"),
                                                                               str(apps / "new.toml")},
                            TIMEOUT_S, "the halves read and refused")
            assert server.get("/", host="main.test").text == V1
            assert server.get("/", host="new.test").status_code == 404
            out.write(text[half:])
            new.write(new_text[20:])
        server.wait_for(lambda: client.bodies()[-10:] == [V2] * 10, TIMEOUT_S, "main on v2")
        server.wait_for(lambda: server.get("/", host="new.test").text == FRESH, TIMEOUT_S, "new served")
    finally:
        client.finish()
    assert client.errors == [] and client.statuses() == {200}, server.log()
    switch = client.bodies().index(V2)
    assert set(client.bodies()[:switch]) == {V1} and set(client.bodies()[switch:]) == {V2}
    assert _problems(server) == []
    problem = next(line for line in server.log().splitlines() if "main.toml:3: app 'main'" in line)
    assert "not valid TOML" in problem and "keeping its last good version" in problem


def test_two_hundred_files_at_once(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
                                   router_cache_dir: Path) -> None:
    routes, apps = _setup(tmp_path, router_cache_dir)
    (apps / "first.toml").write_text(_app(sources["steady"], "first.test"))
    server: RouterServer = router_server(routes)
    server.wait_ready()
    for i in range(200):
        write_routes(apps / f"app{i:03}.toml", _app(sources["fresh"], f"app{i:03}.test"))
    server.wait_for(lambda: len(server.status()["apps"]) == 201 and server.status()["ready"], 300,
                    "200 apps loaded")
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for i in range(200):
            response = client.get("/", headers={"host": f"app{i:03}.test"})
            assert (response.status_code, response.text) == (200, FRESH), i
    assert server.get("/", host="first.test").text == STEADY
    assert _problems(server) == []


def _configmap_update(volume: Path, files: dict[str, str], generation: int) -> None:
    """Update a directory the way kubelet updates a ConfigMap volume: the files in a new hidden
    timestamped directory, a `..data_tmp` link to it renamed over `..data`, the visible names
    links through `..data`, the old directory removed."""
    stamp = volume / f"..2026_12_07_00_00_0{generation}.000000000"
    stamp.mkdir()
    for name, text in files.items():
        (stamp / name).write_text(text)
    tmp_link = volume / "..data_tmp"
    tmp_link.symlink_to(stamp.name)
    old = os.readlink(volume / "..data") if (volume / "..data").is_symlink() else None
    os.replace(tmp_link, volume / "..data")
    for name in files:
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(f"..data/{name}")
    for entry in os.listdir(volume):
        if not entry.startswith(".") and entry not in files:
            (volume / entry).unlink()
    if old is not None:
        for path in (volume / old).iterdir():
            path.unlink()
        (volume / old).rmdir()


def test_kubernetes_configmap_volume(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
                                     router_cache_dir: Path) -> None:
    routes, apps = _setup(tmp_path, router_cache_dir)
    _configmap_update(apps, {"main.toml": _app(sources["v1"], "main.test"),
                             "other.toml": _app(sources["steady"], "other.test")}, 1)
    server: RouterServer = router_server(routes)
    server.wait_ready()
    assert server.get("/", host="main.test").text == V1
    client = Client(server, "other.test")
    client.start()
    try:
        # An edit: only the hidden `..data` link changes (no visible name is touched).
        links = {name: os.readlink(apps / name) for name in ("main.toml", "other.toml")}
        _configmap_update(apps, {"main.toml": _app(sources["v2"], "main.test"),
                                 "other.toml": _app(sources["steady"], "other.test")}, 2)
        assert {name: os.readlink(apps / name) for name in links} == links
        server.wait_for(lambda: server.get("/", host="main.test").text == V2, TIMEOUT_S, "the edit applied")
        # A key added and one removed.
        _configmap_update(apps, {"other.toml": _app(sources["steady"], "other.test"),
                                 "fresh.toml": _app(sources["fresh"], "fresh.test")}, 3)
        server.wait_for(lambda: server.get("/", host="main.test").status_code == 404
                        and server.get("/", host="fresh.test").text == FRESH, TIMEOUT_S, "main removed, fresh added")
    finally:
        client.finish()
    assert client.errors == [] and client.statuses() == {200} and set(client.bodies()) == {STEADY}
    assert server.app_status("other")["file"] == str(apps / "other.toml")  # type: ignore[index]
    assert _problems(server) == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=False)


def test_cli_add_remove_list_use_the_directory(router_server, sources: dict[str, str], tmp_path: Path,  # type: ignore[no-untyped-def]
                                               router_cache_dir: Path) -> None:
    admin_port = free_port()  # in routes.toml too: `list` asks the running server for live state
    routes, apps = _setup(tmp_path, router_cache_dir,
                          f'admin_listen = "127.0.0.1:{admin_port}"\n'
                          f'\n[apps.steady]\nsource = "{sources["steady"]}"\ninsecure = true\nhosts = ["steady.test"]\n')
    server: RouterServer = router_server(routes, admin_port=admin_port)
    server.wait_ready()
    added = _cli("add", "cli", sources["fresh"], "--host", "cli.test", "--insecure", "-f", str(routes))
    assert added.returncode == 0, added.stderr
    assert (apps / "cli.toml").is_file() and [p.name for p in apps.iterdir()] == ["cli.toml"]  # no temp file left
    server.wait_for(lambda: server.get("/", host="cli.test").text == FRESH, TIMEOUT_S, "cli app served")
    routes_before = routes.read_text()
    # Refused before anything is written: a name routes.toml has, a host another app holds, a bad prefix.
    taken = _cli("add", "steady", sources["fresh"], "--host", "x.test", "-f", str(routes))
    assert taken.returncode == 1 and f"{routes}: app 'steady'" in taken.stderr
    clash = _cli("add", "clash", sources["fresh"], "--host", "steady.test", "-f", str(routes))
    assert clash.returncode == 2 and "steady.test / is also claimed by app 'steady'" in clash.stderr
    bad = _cli("add", "bad", sources["fresh"], "--prefix", "nope", "-f", str(routes))
    assert bad.returncode == 2 and f"{apps / 'bad.toml'}:2: app 'bad': field 'prefix'" in bad.stderr
    assert sorted(p.name for p in apps.iterdir()) == ["cli.toml"] and routes.read_text() == routes_before
    listed = _cli("list", "--json", "-f", str(routes))
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)["apps"]}
    assert rows["cli"]["file"] == str(apps / "cli.toml") and rows["cli"]["state"] == "ready"
    assert rows["steady"]["file"] == str(routes)
    removed = _cli("remove", "cli", "-f", str(routes))
    assert removed.returncode == 0, removed.stderr
    server.wait_for(lambda: server.get("/", host="cli.test").status_code == 404, TIMEOUT_S, "cli app removed")
    assert server.get("/", host="steady.test").text == STEADY
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and server.app_status("cli") is not None:
        time.sleep(0.1)
    assert server.app_status("cli") is None
