"""Group commit: one writer task turns concurrent ingest requests into shared transactions.

Each request hands its rows to :meth:`GroupCommitWriter.submit` and waits. The writer
task takes everything that queued up while the previous commit ran (up to
``commit_max_rows``), inserts it in one transaction, commits, and only then resolves
the waiting requests. A reading is therefore acknowledged only after it is committed,
and under load many requests share one commit, so durability does not cost
throughput.

At low rates the hops cost more than the work: a request that finds the writer idle
(nothing queued, nothing committing, no commit in the last 2 ms) commits its own rows
right away, and small groups (``SYNC_COMMIT_ROWS``) are committed on the event loop's
thread instead of SQLite's (``Store.insert_readings_now``). Still nothing is
acknowledged before its commit returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable

from fogd.errors import Unavailable
from fogd.store.sqlite import ReadingRow, Store

log = logging.getLogger("fogd.writer")

#: A request finding the writer idle, and no commit for this long, commits its rows itself
#: (seconds): at low rates that saves a hop through the writer task per request; under
#: load commits follow each other closer than this, so requests still share them.
INLINE_AFTER_S = 0.002

#: Called after each commit with the groups and their stored flags.
CommitListener = Callable[[list[list[ReadingRow]], list[list[bool]]], None]


class GroupCommitWriter:
    def __init__(self, store: Store, max_rows: int, on_commit: CommitListener | None = None) -> None:
        self._store = store
        self._max_rows = max_rows
        self._on_commit = on_commit
        self._pending: deque[tuple[list[ReadingRow], asyncio.Future[list[bool]]]] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self.queued_rows = 0
        self._task: asyncio.Task[None] | None = None
        self._committing = False
        self._last_commit = 0.0
        self.commits = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fogd-group-commit")

    async def submit(self, rows: list[ReadingRow]) -> list[bool]:
        """Queue ``rows`` and wait until they are committed; returns stored flags."""
        if self._closing:
            raise Unavailable("fogd is shutting down; retry against the restarted daemon")
        if not self._pending and not self._committing and time.monotonic() - self._last_commit > INLINE_AFTER_S:
            try:
                flags = self._store.insert_readings_now([rows])  # None: too big or the store is busy
            except Unavailable:
                raise
            except Exception as exc:
                log.exception("writer failed")
                raise Unavailable(f"could not store readings: {exc}") from exc
            if flags is not None:
                self._committed([rows], flags)
                return flags[0]
        fut: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, fut))
        self.queued_rows += len(rows)
        self._wake.set()
        return await fut

    @property
    def queued(self) -> int:
        return len(self._pending)

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._commit_some()
            if self._closing:
                return

    async def _commit_some(self) -> None:
        groups: list[list[ReadingRow]] = []
        futures: list[asyncio.Future[list[bool]]] = []
        n = 0
        # Always take at least one request, even if it alone exceeds max_rows.
        while self._pending and (not groups or n + len(self._pending[0][0]) <= self._max_rows):
            rows, fut = self._pending.popleft()
            self.queued_rows -= len(rows)
            groups.append(rows)
            futures.append(fut)
            n += len(rows)
        self._committing = True
        try:
            flags = self._store.insert_readings_now(groups)
            if flags is None:
                flags = await self._store.insert_readings(groups)
        except Exception as exc:  # StoreFailed or worse: nobody is acknowledged
            if not isinstance(exc, Unavailable):
                log.exception("writer failed")
                exc = Unavailable(f"could not store readings: {exc}")
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self._committing = False
        for fut, f in zip(futures, flags):
            if not fut.done():  # the client may have gone away; the rows are stored anyway
                fut.set_result(f)
        self._committed(groups, flags)

    def _committed(self, groups: list[list[ReadingRow]], flags: list[list[bool]]) -> None:
        self.commits += 1
        self._last_commit = time.monotonic()
        self._store.checkpoint_soon(sum(map(len, groups)))
        if self._on_commit is not None:
            try:
                self._on_commit(groups, flags)
            except Exception:
                log.exception("commit listener failed")
