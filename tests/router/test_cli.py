"""`lepton-router add/remove/list/check`: edits keep the TOML valid and other apps untouched."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from router.cli import main

INITIAL = """[server]
listen = "127.0.0.1:3999"

[apps.alpha]
source = "ghcr.io/acme/alpha:v1"
hosts = ["alpha.test"]
timeout = "5s"
variables = { greeting = "hi" }

[apps.beta]
source = "oci-layout:layouts/beta:v2"
routes = [{ hosts = ["beta.test"] }, { prefix = "/beta" }]
"""


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(INITIAL)
    return path


def _doc(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_add_remove_round_trip(routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _doc(routes)
    assert main(["add", "gamma", "127.0.0.1:5000/g:v1", "--host", "gamma.test", "--host", "*.gamma.test",
                 "--prefix", "/g", "--insecure", "-f", str(routes)]) == 0
    after = _doc(routes)
    assert after["apps"]["gamma"] == {"source": "127.0.0.1:5000/g:v1", "hosts": ["gamma.test", "*.gamma.test"],
                                      "prefix": "/g", "insecure": True}
    assert {k: v for k, v in after["apps"].items() if k != "gamma"} == before["apps"]
    assert after["server"] == before["server"]
    capsys.readouterr()

    assert main(["list", "-f", str(routes)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "SOURCE", "ROUTES"]
    assert out[1].split() == ["alpha", "ghcr.io/acme/alpha:v1", "alpha.test/"]
    assert out[2].split() == ["beta", "oci-layout:layouts/beta:v2", "beta.test/", "*/beta"]
    assert out[3].split() == ["gamma", "127.0.0.1:5000/g:v1", "gamma.test,*.gamma.test/g"]

    assert main(["remove", "gamma", "-f", str(routes)]) == 0
    assert _doc(routes) == before


def test_add_to_missing_file_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    assert main(["add", "one", "r/one:1", "-f", str(path)]) == 0
    assert _doc(path) == {"apps": {"one": {"source": "r/one:1"}}}
    assert main(["check", str(path)]) == 0


def test_invalid_edits_are_refused_and_change_nothing(routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = routes.read_text()
    # Same host and prefix as alpha: a conflict naming both apps.
    assert main(["add", "clash", "r/c:1", "--host", "ALPHA.test", "-f", str(routes)]) == 2
    assert "alpha.test / is also claimed by app 'alpha'" in capsys.readouterr().err
    assert main(["add", "alpha", "r/a:2", "-f", str(routes)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["add", "bad", "r/b:1", "--prefix", "no-slash", "-f", str(routes)]) == 2
    assert main(["remove", "nope", "-f", str(routes)]) == 1
    assert "no app named 'nope'" in capsys.readouterr().err
    assert routes.read_text() == text
    assert not list(routes.parent.glob(".routes.toml.*"))  # no temp files left behind


def test_replace(routes: Path) -> None:
    assert main(["add", "alpha", "r/a:2", "--host", "alpha.test", "--replace", "-f", str(routes)]) == 0
    assert _doc(routes)["apps"]["alpha"] == {"source": "r/a:2", "hosts": ["alpha.test"]}


def test_list_json_without_server(routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json", "-f", str(routes)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["live"] is False
    assert [a["name"] for a in data["apps"]] == ["alpha", "beta"]
    assert data["apps"][1]["routes"] == ["beta.test/", "*/beta"]


def test_check_reports_file_line_app_field(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text('[apps.x]\nsource = "r/x"\nmemory = "lots"\n')
    result = subprocess.run([sys.executable, "-m", "router.cli", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{path}:3: app 'x': field 'memory': invalid size 'lots'" in result.stderr


def test_console_script_help() -> None:
    result = subprocess.run(["lepton-router", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("serve", "add", "remove", "list", "check", "pull", "push", "mirror"):
        assert command in result.stdout


def test_push_mirror_pull_commands(registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """The registry operations wired into the CLI: push a lock, mirror it to a layout, pull + compile."""
    from tests.support.registry_apps import AppComponent, write_local_app
    from tests.support.server import hello_wasm

    lock = write_local_app(tmp_path / "app", [AppComponent(id="main", wasm=hello_wasm("cli"), files={"a.txt": b"x" * 300})])
    ref = f"{registry.host}/cli/app:v1"
    assert main(["push", str(lock), ref, "--insecure"]) == 0
    pushed = capsys.readouterr().out.split()
    assert pushed[:2] == ["pushed", ref] and pushed[2].startswith("sha256:")

    layout = tmp_path / "layout"
    assert main(["mirror", ref, f"oci-layout:{layout}:v1", "--insecure"]) == 0
    assert capsys.readouterr().out.split()[-1] == pushed[2]  # digests are preserved
    assert (layout / "index.json").is_file()

    cache = tmp_path / "cache"
    assert main(["pull", f"oci-layout:{layout}:v1", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert pushed[2] in out and "compiled" in out
    assert any((cache / "compiled").rglob("*")), "pull should leave a precompiled artifact"

    assert main(["pull", f"{registry.host}/cli/missing:v1", "--insecure", "--cache-dir", str(cache)]) == 1
    assert "cli/missing" in capsys.readouterr().err


def test_serve_refuses_an_invalid_file_at_startup(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text('[apps.x]\nsource = "r/x"\nhosts = ["a.test:80"]\n')
    result = subprocess.run([sys.executable, "-m", "router.cli", "serve", str(path), "--listen", "127.0.0.1:1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{path}:3: app 'x': field 'hosts': 'a.test:80': hosts are matched without a port" in result.stderr


def test_removing_the_last_app_keeps_a_server_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file with neither [server] nor apps is refused as empty (router/config.py); removing the
    last app on purpose writes an empty [server] so the result still means "serve nothing"."""
    routes = tmp_path / "routes.toml"
    routes.write_text('[apps.only]\nsource = "ghcr.io/acme/only:v1"\n')
    assert main(["remove", "only", "-f", str(routes)]) == 0
    assert _doc(routes) == {"apps": {}, "server": {}}
    capsys.readouterr()
    assert main(["check", str(routes)]) == 0
    assert "0 apps" in capsys.readouterr().out
    routes.write_text("")
    assert main(["check", str(routes)]) == 2
    assert "no [server] table and no apps" in capsys.readouterr().err


def test_add_remove_list_check_with_an_apps_dir(routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes.write_text(INITIAL.replace('[server]\n', '[server]\napps_dir = "apps.d"\n'))
    apps = routes.parent / "apps.d"
    before = routes.read_text()
    assert main(["add", "gamma", "ghcr.io/acme/gamma:v1", "--host", "gamma.test", "-f", str(routes)]) == 0
    assert capsys.readouterr().out == f"added gamma as {apps / 'gamma.toml'}\n"
    assert tomllib.loads((apps / "gamma.toml").read_text()) == {"source": "ghcr.io/acme/gamma:v1",
                                                                 "hosts": ["gamma.test"]}
    assert sorted(p.name for p in apps.iterdir()) == ["gamma.toml"]  # no temp file left behind
    # Refused, nothing written: an existing name (either place), a taken route, an invalid value.
    assert main(["add", "gamma", "x", "--host", "other.test", "-f", str(routes)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["add", "alpha", "x", "--host", "other.test", "-f", str(routes)]) == 1
    assert f"{routes}: app 'alpha' is defined there" in capsys.readouterr().err
    assert main(["add", "delta", "x", "--host", "alpha.test", "-f", str(routes)]) == 2
    assert f"{apps / 'delta.toml'}:2: app 'delta': field 'hosts': alpha.test / is also claimed by app 'alpha'" \
        in capsys.readouterr().err
    assert main(["add", "delta", "x", "--prefix", "nope", "-f", str(routes)]) == 2
    assert "field 'prefix'" in capsys.readouterr().err
    assert sorted(p.name for p in apps.iterdir()) == ["gamma.toml"] and routes.read_text() == before
    # --replace keeps a JSON file JSON.
    (apps / "eps.json").write_text('{"source": "x", "hosts": ["eps.test"]}')
    assert main(["add", "eps", "y", "--host", "eps2.test", "--replace", "-f", str(routes)]) == 0
    assert json.loads((apps / "eps.json").read_text()) == {"source": "y", "hosts": ["eps2.test"]}
    capsys.readouterr()
    (apps / "broken.toml").write_text('source = "z"\ntimeout = "soon"\n')
    assert main(["list", "--json", "-f", str(routes)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {row["name"]: row["file"] for row in data["apps"]} == {
        "alpha": str(routes), "beta": str(routes), "eps": str(apps / "eps.json"), "gamma": str(apps / "gamma.toml")}
    assert [(p["file"], p["line"], p["field"]) for p in data["problems"]] == [(str(apps / "broken.toml"), 2, "timeout")]
    assert main(["check", str(routes)]) == 2
    captured = capsys.readouterr()
    assert f"{apps / 'broken.toml'}:2: app 'broken': field 'timeout'" in captured.err
    assert "problems, 4 apps (2 from" in captured.out
    (apps / "broken.toml").unlink()
    assert main(["check", str(routes)]) == 0
    assert main(["remove", "gamma", "-f", str(routes)]) == 0
    assert not (apps / "gamma.toml").exists()
    assert main(["remove", "alpha", "-f", str(routes)]) == 0  # only routes.toml has it
    assert "alpha" not in _doc(routes)["apps"]
    assert main(["remove", "nope", "-f", str(routes)]) == 1


def test_add_to_an_apps_dir_keeps_a_relative_oci_layout_pointing_at_the_same_layout(
    routes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In routes.toml a relative layout is read from routes.toml's directory; an app file reads it
    # from the apps directory. `add` takes it as routes.toml would, so it writes it rebased.
    routes.write_text(INITIAL.replace('[server]\n', '[server]\napps_dir = "apps.d"\n'))
    assert main(["add", "demo", "oci-layout:examples/hello:v1", "--host", "demo.test", "-f", str(routes)]) == 0
    written = tomllib.loads((routes.parent / "apps.d" / "demo.toml").read_text())
    assert written["source"] == "oci-layout:../examples/hello:v1"
    from router.config import load
    from router.config_file import scan_apps_dir

    served = {r.name: r.app for r in scan_apps_dir(routes.parent / "apps.d", load(routes).defaults)}
    assert served["demo"] is not None and served["demo"].resolved_source == f"oci-layout:{routes.parent / 'examples' / 'hello'}:v1"
    # Absolute paths and registry references are written as given.
    assert main(["add", "abs", "oci-layout:/srv/layouts/app@sha256:" + "0" * 64, "--host", "abs.test",
                 "-f", str(routes)]) == 0
    assert tomllib.loads((routes.parent / "apps.d" / "abs.toml").read_text())["source"] == \
        "oci-layout:/srv/layouts/app@sha256:" + "0" * 64
