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

Streamed live readings (``submit(..., linger=True)``: node agents, each sending one
reading every second or so; not their backlogs) may wait for company: their commit begins no sooner than
``commit_delay`` after the last one began (``ingest.commit_delay_ms``, 100 by default,
after PostgreSQL's ``commit_delay``) and takes whatever arrived meanwhile. On this
machine a small commit costs fogd ~0.3 ms of CPU (cProfile under load), ten rows hardly
more than one, and with 200 agents nearly every commit held one row; 200 simulated agents cost fogd 7.3-8.9 % of a
core with a 20 ms delay, 7.3-7.5 % with 50 ms and 6.25-6.45 % with 100 ms (bench/agents.py,
back to back). The price: a streamed reading is stored (and answered) up to 0.1 s later.
A request that does not linger (``POST /ingest``: a client waiting for its reply before
sending more) ends the wait at once, so closed-loop clients lose no throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    def __init__(self, store: Store, max_rows: int, on_commit: CommitListener | None = None,
                 delay: float = 0.1) -> None:
        self._store = store
        self._max_rows = max_rows
        self._delay = delay
        self._on_commit = on_commit
        self._pending: deque[tuple[list[ReadingRow], asyncio.Future[list[bool]], bool]] = deque()
        self._urgent = 0  # pending requests that do not linger
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # a request that does not linger arrived
        self._closing = False
        self.queued_rows = 0
        self._task: asyncio.Task[None] | None = None
        self._committing = False
        self._last_begin = -delay  # monotonic times of the last commit's start and end
        self._last_end = 0.0
        self.commits = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fogd-group-commit")

    async def submit(self, rows: list[ReadingRow], linger: bool = False) -> list[bool]:
        """Queue ``rows`` and wait until they are committed; returns stored flags.
        With ``linger``, the commit may wait up to ``commit_delay`` for more rows."""
        if self._closing:
            raise Unavailable("fogd is shutting down; retry against the restarted daemon")
        now = time.monotonic()
        idle = not self._pending and not self._committing
        if idle and (now - self._last_begin >= self._delay if linger else now - self._last_end > INLINE_AFTER_S):
            try:
                flags = self._store.insert_readings_now([rows])  # None: too big or the store is busy
            except Unavailable:
                raise
            except Exception as exc:
                log.exception("writer failed")
                raise Unavailable(f"could not store readings: {exc}") from exc
            if flags is not None:
                self._last_begin = now
                self._committed([rows], flags)
                return flags[0]
        fut: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, fut, linger))
        self.queued_rows += len(rows)
        if not linger:
            self._urgent += 1
            self._hurry.set()
        self._wake.set()
        return await fut

    @property
    def queued(self) -> int:
        return len(self._pending)

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        self._hurry.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                wait = self._last_begin + self._delay - time.monotonic()
                if wait > 0 and not self._urgent and not self._closing:
                    self._hurry.clear()
                    with contextlib.suppress(TimeoutError):  # gather what arrives meanwhile
                        async with asyncio.timeout(wait):
                            await self._hurry.wait()
                await self._commit_some()
            if self._closing:
                return

    async def _commit_some(self) -> None:
        groups: list[list[ReadingRow]] = []
        futures: list[asyncio.Future[list[bool]]] = []
        n = 0
        # Always take at least one request, even if it alone exceeds max_rows.
        while self._pending and (not groups or n + len(self._pending[0][0]) <= self._max_rows):
            rows, fut, linger = self._pending.popleft()
            self.queued_rows -= len(rows)
            self._urgent -= not linger
            groups.append(rows)
            futures.append(fut)
            n += len(rows)
        self._committing = True
        self._last_begin = time.monotonic()
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
        self._last_end = time.monotonic()
        self._store.checkpoint_soon(sum(map(len, groups)))
        if self._on_commit is not None:
            try:
                self._on_commit(groups, flags)
            except Exception:
                log.exception("commit listener failed")
