"""router.loader.AppLoader: apps of one source loading at the same time share one pull (a template
on many hosts); a later load asks the registry again; an abandoned load does not cancel the pull
the other apps wait for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from router.config import parse
from router.loader import AppLoader
from tests.support.registry_apps import wat_hello_layout
from tests.support.runtime_helpers import HELLO_WAT, read, request


def layout_source(work: Path, tag: str) -> str:
    return wat_hello_layout(work, tag, wasmtime.wat2wasm(HELLO_WAT.read_text()))


@pytest.fixture
def loader(tmp_path: Path) -> Iterator[AppLoader]:
    app_loader = AppLoader(tmp_path / "cache", tmp_path / "state")
    yield app_loader
    app_loader.close()


def apps(tmp_path: Path, source: str, count: int) -> list:  # type: ignore[type-arg]
    text = "".join(f'[apps.t{i}]\nsource = "{source}"\nhosts = ["t{i}.test"]\n' for i in range(count))
    return list(parse(text, tmp_path / "routes.toml").apps.values())


async def test_apps_of_one_source_loading_together_share_one_pull(loader: AppLoader, tmp_path: Path) -> None:
    source = layout_source(tmp_path, "v1")
    configs = apps(tmp_path, source, 5)
    versions = await asyncio.gather(*(loader.load(app) for app in configs))
    # One pull (the same components), yet each app its own LoadedApp: the runtime keeps per-app
    # state (variables, connection pools, block lists) by that object.
    assert len({id(v.handler.app.components) for v in versions}) == 1  # type: ignore[attr-defined]
    assert len({id(v.handler.app) for v in versions}) == len(versions)  # type: ignore[attr-defined]
    for version in versions:
        response = await version.handler.handle(request("/"))  # type: ignore[attr-defined]
        assert (response.status, await read(response)) == (200, b"Hello, Fermyon!\n")
    assert not loader._pulling  # nothing left in flight
    # A later load of the same source pulls again (the tag may have moved meanwhile).
    later = await loader.load(configs[0])
    assert later.handler.app.components is not versions[0].handler.app.components  # type: ignore[attr-defined]


async def test_an_abandoned_load_does_not_cancel_the_shared_pull(loader: AppLoader, tmp_path: Path) -> None:
    source = layout_source(tmp_path, "v1")
    first, second = apps(tmp_path, source, 2)
    abandoned = asyncio.ensure_future(loader.load(first))
    kept = asyncio.ensure_future(loader.load(second))
    await asyncio.sleep(0)  # both are waiting for the one pull
    abandoned.cancel()
    version = await asyncio.wait_for(kept, 60)
    response = await version.handler.handle(request("/"))  # type: ignore[attr-defined]
    assert response.status == 200
    with pytest.raises(asyncio.CancelledError):
        await abandoned


async def test_a_failed_pull_fails_every_app_waiting_for_it_and_the_next_load_retries(
    loader: AppLoader, tmp_path: Path
) -> None:
    layout_source(tmp_path, "v1")
    missing = f"oci-layout:{tmp_path / 'layout'}:nope"
    results = await asyncio.gather(*(loader.load(app) for app in apps(tmp_path, missing, 3)), return_exceptions=True)
    assert all(isinstance(r, Exception) and "nope" in str(r) for r in results), results
    assert not loader._pulling
    # A neighbour of another source still loads.
    good = await loader.load(apps(tmp_path, f"oci-layout:{tmp_path / 'layout'}:v1", 1)[0])
    assert (await good.handler.handle(request("/"))).status == 200  # type: ignore[attr-defined]
