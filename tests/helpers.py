"""Test helpers: the canonical error-shape check and a real `fogd serve` process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    """CI sets FOGD_CI=1: tools the tests need must then be present, never skipped."""
    return os.environ.get("FOGD_CI") == "1"


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if in_ci():
            pytest.fail(f"{name} is required in CI (.ci/run installs it)")
        pytest.skip(f"{name} not installed")
    return path


async def assert_error(resp: Any, status: int, kind: str, field: str | None = None) -> dict[str, Any]:
    """The canonical error body: JSON ``{"error": kind, "detail": text, ...}``."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["error"] == kind, body
    assert isinstance(body["detail"], str) and body["detail"], body
    if field is not None:
        assert body["field"] == field, body
    return body


# ---------------------------------------------------------------------- a real daemon process
def stored_rows(client: Any, sql: str = "SELECT COUNT(*) FROM readings") -> list[tuple]:
    """Query the test app's SQLite file directly, past fogd's own code."""
    from fogd.context import FOGD

    db = sqlite3.connect(client.app[FOGD].store.path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """`fogd serve` as a subprocess on a free loopback port."""

    def __init__(self, db: Path, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "FOGD_DB": str(db), "FOGD_LISTEN": f"127.0.0.1:{self.port}", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = db.with_suffix(".log")

    def start(self, timeout: float = 15.0) -> "Daemon":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "fogd", "serve"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fogd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"fogd did not start: {self.log.read_text()[-2000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        self.kill(signal.SIGTERM)
        return self.proc.returncode if self.proc else None
