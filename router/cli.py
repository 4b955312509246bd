"""`lepton-router` command line: serve, add, remove, list, check, pull, push, mirror."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.config import REGISTRY_SETTINGS, AppConfig, ConfigError, Problem, RegistrySetting, RoutesConfig
from router.config import load as load_config
from router.units import parse_workers

if TYPE_CHECKING:
    from registry.limits import RegistryLimits

DEFAULT_ROUTES = "routes.toml"



def _workers(text: str) -> int:
    try:
        return parse_workers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _setting_type(setting: RegistrySetting) -> Callable[[str], float | int]:
    def convert(text: str) -> float | int:
        try:
            return setting.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def _add_registry_flags(parser: argparse.ArgumentParser, *, caps: bool) -> None:
    """The registry limits as flags (default: [server] of ./routes.toml for pull, else built in)."""
    for setting in REGISTRY_SETTINGS:
        if not caps and setting.attr.startswith("max_"):
            continue
        metavar = "SIZE" if setting.attr.startswith("max_") else "DURATION"
        parser.add_argument(setting.flag, dest=setting.attr, type=_setting_type(setting), default=None,
                            metavar=metavar, help=f"{setting.help} ([server] {setting.key})")


def _registry_limits(args: argparse.Namespace, base: RegistryLimits | None = None) -> RegistryLimits:
    from dataclasses import replace

    from registry.limits import DEFAULT_LIMITS

    chosen = {s.attr: getattr(args, s.attr) for s in REGISTRY_SETTINGS if getattr(args, s.attr, None) is not None}
    return replace(base or DEFAULT_LIMITS, **chosen)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lepton-router",
        description="Serve many Spin apps from OCI registries on one port, routed by Host and path.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="serve the apps in routes.toml (hot-reloads on change and SIGHUP)")
    p.add_argument("routes", nargs="?", default=DEFAULT_ROUTES, help="routes file (default: routes.toml)")
    p.add_argument("--listen", action="append", default=[], metavar="ADDR",
                   help="override [server].listen (repeatable), e.g. 127.0.0.1:8080")
    p.add_argument("--admin-listen", action="append", default=None, metavar="ADDR",
                   help="override [server].admin_listen (status page, JSON, metrics)")
    p.add_argument("--workers", type=_workers, default=None, metavar="N|auto",
                   help='worker processes on the same port ("auto": one per CPU; overrides [server].workers)')
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--no-watch", action="store_true", help="do not watch routes.toml (reload on SIGHUP only)")
    p.add_argument("--log-level", default="INFO")

    p = sub.add_parser("add", help="add an app to routes.toml (or as a file of [server] apps_dir)")
    p.add_argument("name")
    p.add_argument("source", help='OCI reference or "oci-layout:PATH[:TAG]"')
    p.add_argument("--host", action="append", default=[], help="host to route (repeatable; *.suffix allowed)")
    p.add_argument("--prefix", default=None, help="path prefix to mount the app at, e.g. /hello")
    p.add_argument("--insecure", action="store_true", help="plain-HTTP registry")
    p.add_argument("--replace", action="store_true", help="replace an existing app of that name")
    p.add_argument("-f", "--file", default=DEFAULT_ROUTES)

    p = sub.add_parser("remove", help="remove an app from routes.toml (or its file from [server] apps_dir)")
    p.add_argument("name")
    p.add_argument("-f", "--file", default=DEFAULT_ROUTES)

    p = sub.add_parser("list", help="list apps (with live state when the admin listener answers)")
    p.add_argument("-f", "--file", default=DEFAULT_ROUTES)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("check", help="validate routes.toml (and the files of [server] apps_dir)")
    p.add_argument("file", nargs="?", default=DEFAULT_ROUTES)

    p = sub.add_parser("pull", help="pull an app and compile it (warms the caches)")
    p.add_argument("source")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("--cache-dir", default=None)
    _add_registry_flags(p, caps=True)

    p = sub.add_parser("push", help="push a local lock file (spin.lock style) as a Spin v3 artifact")
    p.add_argument("lockfile")
    p.add_argument("reference", help='registry reference or "oci-layout:PATH:TAG"')
    p.add_argument("--insecure", action="store_true")
    _add_registry_flags(p, caps=False)

    p = sub.add_parser("mirror", help="copy an app between registries and oci-layout directories")
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("--insecure", action="store_true")
    _add_registry_flags(p, caps=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from registry.errors import RegistryError
        from router.edit import EditError

        if isinstance(exc, RegistryError | EditError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def _serve(args: argparse.Namespace) -> int:
    from router.serve import ServeOptions, serve

    return serve(
        ServeOptions(
            routes_path=Path(args.routes),
            listen=tuple(args.listen),
            admin_listen=tuple(args.admin_listen) if args.admin_listen is not None else None,
            workers=args.workers,
            access_log=args.access_log,
            watch=not args.no_watch,
            log_level=args.log_level,
        )
    )


def _routes_with_apps_dir(path: Path) -> RoutesConfig | None:
    """routes.toml when it sets [server] apps_dir (add/remove then work on that directory)."""
    if not path.exists():
        return None
    cfg = load_config(path)
    return cfg if cfg.server.apps_dir is not None else None


def _add(args: argparse.Namespace) -> int:
    from router.edit import add_app, add_app_file

    path = Path(args.file)
    routes = _routes_with_apps_dir(path)
    if routes is not None:
        written = add_app_file(routes, args.name, args.source, hosts=args.host, prefix=args.prefix,
                               insecure=args.insecure, replace=args.replace)
        print(f"added {args.name} as {written}")
        return 0
    add_app(path, args.name, args.source, hosts=args.host, prefix=args.prefix, insecure=args.insecure,
            replace=args.replace)
    print(f"added {args.name} to {path}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from router.edit import remove_app, remove_app_file

    routes = _routes_with_apps_dir(Path(args.file))
    if routes is not None:
        print(f"removed {args.name} from {remove_app_file(routes, args.name)}")
        return 0
    remove_app(Path(args.file), args.name)
    print(f"removed {args.name} from {args.file}")
    return 0


def _all_apps(cfg: RoutesConfig) -> tuple[dict[str, tuple[AppConfig, str]], list[Problem]]:
    """routes.toml's apps and the apps directory's (as the server would take them: name -> (config,
    file)), and the directory's problems."""
    from router.apps_merge import merge
    from router.config_file import scan_apps_dir

    files = []
    if cfg.server.apps_dir is not None and cfg.server.apps_dir.is_dir():
        files = scan_apps_dir(cfg.server.apps_dir, cfg.defaults)
    merged = merge(cfg.apps, str(cfg.path), files, {})
    return {name: (o.config, o.file) for name, o in merged.apps.items()}, list(merged.problems)


def _live_status(cfg: RoutesConfig) -> dict[str, Any] | None:
    """The running server's status from its admin listener, or None when there is none."""
    import httpx

    for address in cfg.server.admin_listen:
        if address.startswith(("unix:", "fd:")):
            continue
        host, _, port = address.rpartition(":")
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "[::]":
            host = "[::1]"
        try:
            response = httpx.get(f"http://{host}:{port}/status.json", timeout=2.0)
            if response.status_code == 200:
                data: dict[str, Any] = response.json()
                return data
        except (httpx.HTTPError, ValueError):
            continue
    return None


def _list(args: argparse.Namespace) -> int:
    cfg = load_config(Path(args.file))
    live = _live_status(cfg)
    live_apps = {a["name"]: a for a in live["apps"]} if live else {}
    apps, problems = _all_apps(cfg)
    rows = []
    for name, (app, file) in apps.items():
        row: dict[str, Any] = {
            "name": name,
            "source": app.source,
            "routes": [r.describe() for r in app.routes],
            "file": file,
        }
        state = live_apps.get(name)
        if state is not None:
            row["state"] = state["state"]
            row["digest"] = (state.get("version") or {}).get("digest")
            row["requests"] = state["requests"]
            row["error"] = state["error"]
        rows.append(row)
    if args.json:
        print(json.dumps({"live": live is not None, "apps": rows, "problems": [p.to_json() for p in problems]},
                         indent=2))
        return 0
    headers = ["NAME", "SOURCE", "ROUTES"] + (["STATE", "DIGEST", "REQUESTS"] if live else [])
    table = [headers]
    for row in rows:
        line = [row["name"], row["source"], " ".join(row["routes"])]
        if live:
            digest = row.get("digest") or "-"
            line += [row.get("state", "not loaded"), digest[:19], str(row.get("requests", "-"))]
        table.append(line)
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if not live:
        print("(no live state: no admin_listen configured, or the server is not running)", file=sys.stderr)
    for row in rows:
        if row.get("error"):
            print(f"{row['name']}: {row['error']}", file=sys.stderr)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    cfg = load_config(Path(args.file))
    if cfg.server.apps_dir is None:
        print(f"{args.file}: ok, {len(cfg.apps)} apps")
        return 0
    apps, problems = _all_apps(cfg)
    if not cfg.server.apps_dir.is_dir():
        problems.insert(0, Problem(str(cfg.server.apps_dir), None, None, None, "apps_dir: no such directory"))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{args.file}: {'ok' if not problems else 'problems'}, {len(apps)} apps "
          f"({len(apps) - len(cfg.apps)} from {cfg.server.apps_dir})")
    return 2 if problems else 0


def _pull(args: argparse.Namespace) -> int:
    import registry
    import runtime
    from runtime.types import AppSettings

    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    server = load_config(Path(DEFAULT_ROUTES)).server if Path(DEFAULT_ROUTES).exists() else None
    if cache_dir is None and server is not None:
        cache_dir = server.cache_dir
    cache_dir = cache_dir or registry.default_cache_dir()
    limits = _registry_limits(args, server.registry if server is not None else None)
    loaded = registry.load_app(args.source, cache_dir=cache_dir, insecure=args.insecure, limits=limits)

    async def compile_app() -> None:
        rt = runtime.Runtime(cache_dir)
        running = await rt.load_app(loaded, AppSettings())
        running.close()

    asyncio.run(compile_app())
    print(f"{args.source}: {loaded.manifest_digest} ({len(loaded.components)} components, compiled)")
    return 0


def _push(args: argparse.Namespace) -> int:
    import registry

    digest = registry.push_app(Path(args.lockfile), args.reference, insecure=args.insecure,
                               limits=_registry_limits(args))
    print(f"pushed {args.reference} {digest}")
    return 0


def _mirror(args: argparse.Namespace) -> int:
    import registry

    digest = registry.mirror_app(args.src, args.dest, insecure=args.insecure, limits=_registry_limits(args))
    print(f"mirrored {args.src} -> {args.dest} {digest}")
    return 0


_COMMANDS = {
    "serve": _serve,
    "add": _add,
    "remove": _remove,
    "list": _list,
    "check": _check,
    "pull": _pull,
    "push": _push,
    "mirror": _mirror,
}


if __name__ == "__main__":
    sys.exit(main())
