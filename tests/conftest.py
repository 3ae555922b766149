"""Shared fixtures: a real fogd app on a real SQLite file, and a real `fogd serve` process."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import signal
import uuid

import msgspec
import pytest

from fogd.config import Config
from fogd.daemon import create_app
from fogd.plugins.host import build_plugin_host
from tests.helpers import Daemon


def _dump_tasks(signum: int, frame: Any) -> None:
    """``kill -USR1 <pytest pid>``: every asyncio task's stack, appended to
    /tmp/fogd-test-tasks.txt (pytest captures stderr, so not there) — finds a hang."""
    import asyncio
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:
        tasks = set()
    with open("/tmp/fogd-test-tasks.txt", "a") as out:
        for task in tasks:
            task.print_stack(file=out)


signal.signal(signal.SIGUSR1, _dump_tasks)


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """A Config whose store lives in this test's tmp dir; keyword tables override sections."""

    def make(**sections: dict[str, Any]) -> Config:
        # Each test is its own fogd instance, so tests never adopt each other's nodes.
        data: dict[str, Any] = {"store": {"path": str(tmp_path / "fogd.sqlite3")},
                                "nodes": {"provisioner": "process", "instance": f"t{uuid.uuid4().hex[:12]}"}}
        for name, table in sections.items():
            data.setdefault(name, {}).update(table)
        return msgspec.convert(data, Config)

    return make


@pytest.fixture
async def make_client(aiohttp_client: Any, make_config: Callable[..., Config]) -> Callable[..., Any]:
    """Start a real fogd app (aiohttp test server + SQLite file); entry points off by default."""

    async def make(config: Config | None = None, plugins: list[object] = (), entrypoints: bool = False) -> Any:
        config = config or make_config()
        host = build_plugin_host(config.plugins.disabled, entrypoints=entrypoints, extra=plugins)
        return await aiohttp_client(create_app(config, host))

    return make


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> Any:
    return await make_client()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(**kw: Any) -> Daemon:
        d = Daemon(tmp_path / f"fogd-{len(made)}.sqlite3", **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()
