"""The line of workers waiting for a job: a NOTIFY wakes one worker, not every idle one.

PostgreSQL delivers a NOTIFY to every listener, so each new job used to wake every worker with a
free job slot, and each ran Procrastinate's fetch: one took the job, the others found nothing,
and their statements competed with the winner's (on two CPUs the winner's take went from 1.3 to
2.6 ms with four workers). Here the workers with a free slot stand in a line, PostgreSQL's own
lock queue: each waits on one session-level advisory lock (`pg_advisory_lock`, on a connection
of its own), and the one holding it, the line's taker, is the only one that fetches when a job
is announced. It takes jobs while its fetches find some and it has a slot free (Procrastinate's
loop fetches again after each job); at the first fetch that finds the queue drained, it lets go
of the lock, which PostgreSQL grants to the next worker waiting (one, in the order they asked),
and gets back in line at the end if it has a slot left. (Handing the turn on after every job
serialized a burst through the workers' busy event loops.) A single worker takes the lock back
at once.

No job is left unclaimed:
- a worker's turn begins with a fetch, which sees every job committed before it; a job
  committed later is announced to the worker whose turn it is, which fetches again;
- a NOTIFY that arrived while a worker fetched, if that fetch found nothing, fetches once more
  (Procrastinate's loop forgets a wake-up that comes during a fetch);
- the taker's session ending (its process killed, the connection lost) releases the lock to the
  next in line; a worker whose line connection fails fetches on its poll until it is back;
- every worker, in line or not, still fetches on its own every `poll_interval_s` (the fallback
  for a lost NOTIFY), as before.

What it costs: three fetches per job coming alone, whatever the number of workers (the taker's,
which takes it, its next, which finds the queue drained, and the next taker's first), the lock's
release and the next grant (two round trips on the line's connection, off the path of the job),
and one idle connection per worker. A taker whose event loop is busy or stalls answers late,
where every idle worker would have raced for the job: on 2 shared CPUs that cost batch
throughput, so the line is off unless asked for (`WorkerOptions.line`, `OVERTURE_WORKER_LINE=1`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

log = logging.getLogger("overture.workers")

LINE_LOCK = 0x0F7E_2E02
"""The advisory lock the line waits on (per database: workers of another journal have their own)."""


class Line:
    """This worker's place in the line: `join` when it has a free job slot, `taken` to hand the
    turn on (the queue is drained, or its slots are full), `close` at shutdown. `taker` says
    whether it is its turn; `on_turn` is called when its turn begins (the worker fetches then)."""

    def __init__(
        self,
        conninfo: str,
        *,
        on_turn: Callable[[], None],
        room: Callable[[], bool] = lambda: True,
        name: str = "",
        retry_s: float = 2.0,
    ) -> None:
        self._conninfo = conninfo
        self._on_turn = on_turn
        self._room = room
        self._name = name
        self._retry_s = retry_s
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._wanted = False
        """Whether to be in line (a slot is free): a turn passed on meanwhile gets back in line."""
        self.taker = False
        self.turns = 0
        """Turns this worker was given (for tests and logs)."""

    @property
    def in_line(self) -> bool:
        """Waiting for its turn or having it (or passing it on)."""
        return self.taker or (self._task is not None and not self._task.done())

    def join(self) -> None:
        """Get in line (no-op while in it): the turn comes when the workers before have had theirs."""
        if self._closed:
            return
        self._wanted = True
        if not self.in_line:
            self._task = asyncio.get_running_loop().create_task(self._wait_turn(), name="line")

    def taken(self, *, rejoin: bool) -> None:
        """The turn's fetch took a job: hand the turn to the next worker waiting, and get back in
        line (at its end) when `rejoin` (this worker has a slot left)."""
        if not self.taker:
            return
        self.taker = False
        self._wanted = rejoin
        task = self._task
        self._task = asyncio.get_running_loop().create_task(self._pass_on(task), name="line")

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo,
                autocommit=True,
                application_name=f"overture line {self._name}"[:63],
            )
            # a session waiting for a lock notices a client gone only when granted; PostgreSQL 14+
            # looks every second, so a killed worker leaves the line instead of holding up its turn
            with contextlib.suppress(psycopg.Error):
                await conn.execute("SET client_connection_check_interval = 1000")
            self._conn = conn
        return self._conn

    async def _wait_turn(self) -> None:
        try:
            conn = await self._connect()
            await conn.execute("SELECT pg_advisory_lock(%s)", (LINE_LOCK,))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away: the poll fetches meanwhile; try again
            if self._closed:
                return
            log.warning(
                "the worker line's connection failed (%s); fetching on the poll until it is back", exc
            )
            await self._drop()
            await asyncio.sleep(self._retry_s)
            if not self._closed:
                self._task = asyncio.get_running_loop().create_task(self._wait_turn(), name="line")
            return
        if self._closed:
            return
        if not self._room():
            # its slots filled up while it waited (a poll's fetch took jobs): the turn goes on,
            # and the worker gets back in line when one of its runs ends (`join`)
            self._wanted = False
            self._task = asyncio.get_running_loop().create_task(self._pass_on(None), name="line")
            return
        self.taker = True
        self.turns += 1
        self._on_turn()

    async def _pass_on(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            await previous
        try:
            conn = await self._connect()
            # all of the session's advisory locks: the connection holds the line's lock only,
            # and never more than once, whatever happened
            await conn.execute("SELECT pg_advisory_unlock_all()")
        except Exception as exc:  # a lost session lets go of its locks anyway
            log.warning("the worker line's connection failed (%s)", exc)
            await self._drop()
        if self._wanted and not self._closed:
            await self._wait_turn()

    async def _drop(self) -> None:
        self.taker = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def close(self) -> None:
        """Leave the line: a wait for the lock is cancelled, and the lock goes with the session."""
        if self._closed:
            return
        self._closed = True
        self.taker = False
        task, self._task = self._task, None
        conn = self._conn
        if task is not None and not task.done():
            if conn is not None and not conn.closed:
                with contextlib.suppress(Exception):
                    await conn.cancel_safe()  # the wait ends (QueryCanceled), and with it the task
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5)
        await self._drop()
