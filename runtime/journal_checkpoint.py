"""WAL checkpoints for a SQLite journal, off the engine's thread.

SQLite checkpoints its write-ahead log from inside whichever commit pushes the log past 1,000
pages: that commit then copies pages into the database file and fsyncs it, and the step behind it
waits ~4 ms (every ~80 steps of a chain: the benchmark's p99). The journal turns the automatic
checkpoint off on its writing connection and this thread checkpoints instead, on a connection of
its own; sqlite3 releases the GIL while it works. PASSIVE never blocks the writer: pages a commit
is still writing are left for the next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("overture.runtime")

COMMITS_PER_CHECKPOINT = 200
"""Wake the checkpointer after this many commits (a step commits twice, ~6 pages each)."""

IDLE_CHECKPOINT_S = 1.0
"""Also checkpoint after this long with any commit since the last one, so the log stays short."""


class Checkpointer:
    """A daemon thread running `PRAGMA wal_checkpoint(PASSIVE)` when the journal asks for it."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._wake = threading.Event()
        self._stop = False
        self._commits = 0
        self._thread: threading.Thread | None = None
        self.checkpoints = 0
        """How many checkpoints ran (for tests and the benchmark)."""

    def committed(self) -> None:
        """Called after each commit on the writing connection (under the journal's write lock)."""
        self._commits += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="overture-wal-checkpoint", daemon=True)
            self._thread.start()
        if self._commits >= COMMITS_PER_CHECKPOINT:
            self._wake.set()

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        connection = self._connect()
        try:
            while not self._stop:
                self._wake.wait(IDLE_CHECKPOINT_S)
                self._wake.clear()
                if self._commits == 0:
                    continue
                # a commit racing this reset is counted toward the next round, never lost: the
                # counter only paces the checkpoints, the log itself says what is left to copy
                self._commits = 0
                try:
                    connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except Exception:  # a checkpoint that fails is retried next round; commits go on
                    log.exception("WAL checkpoint failed")
            # leave the log short for the next process to open
            try:
                connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except Exception:
                log.exception("WAL checkpoint failed")
        finally:
            connection.close()
