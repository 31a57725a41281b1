"""WAL checkpoints for a SQLite journal, off the engine's thread.

SQLite checkpoints its write-ahead log from inside whichever commit pushes the log past 1,000
pages: that commit then copies pages into the database file and fsyncs it, and the step behind it
waits ~4 ms (every ~80 steps of a chain: the benchmark's p99). The journal turns the automatic
checkpoint off on its writing connection and this thread checkpoints instead, on a connection of
its own; sqlite3 releases the GIL while it works. PASSIVE never blocks the writer: pages a commit
is still writing are left for the next round.

A log is only rewound (and, with `journal_size_limit`, cut back) when a write begins with every
frame checkpointed, which a thread chasing a busy writer may never see. So once the log passes
`MAX_WAL_FRAMES` the writer checkpoints itself after its next commit: the thread has copied all
but the last few frames by then, so that costs little, and the next write rewinds the log. The
writer also counts its commits since the log was last copied whole: with the disk busy a thread's
round can take seconds, and without its report the log grew past 25 MB in a test's 6,000 commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("overture.runtime")

COMMITS_PER_CHECKPOINT = 200
"""Wake the checkpointer after this many commits (a step commits twice, ~6 pages each)."""

MAX_WAL_FRAMES = 2000
"""A log longer than this (8 MB of 4 KB pages) is caught up by the writer itself."""

CATCH_UP_RETRY_COMMITS = 20
"""After a catch-up that could not copy the whole log, the writer tries again this many commits on."""
IDLE_CHECKPOINT_S = 1.0
"""Also checkpoint after this long with any commit since the last one, so the log stays short."""


class Checkpointer:
    """A daemon thread running `PRAGMA wal_checkpoint(PASSIVE)` when the journal asks for it."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._wake = threading.Event()
        self._stop = False
        self._commits = 0
        self._wal_frames = 0
        self._since_copied = 0
        self._catch_up_in = 0
        self._thread: threading.Thread | None = None
        self.checkpoints = 0
        """How many checkpoints ran (for tests and the benchmark)."""

    def committed(self, writer: Any) -> None:
        """Called after each commit on the writing connection `writer` (a DBAPI connection, under
        the journal's write lock)."""
        self._commits += 1
        self._since_copied += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="overture-wal-checkpoint", daemon=True)
            self._thread.start()
        if self._commits >= COMMITS_PER_CHECKPOINT:
            self._wake.set()
        # the thread says how long the log is after each of its rounds; a round that takes long
        # (the disk busy with others) says nothing meanwhile, but each commit adds a frame or more
        if self._log_long():
            if self._catch_up_in > 0:
                self._catch_up_in -= 1
                return
            done = _checkpoint(writer)
            if done is not None and done[1] == done[2]:
                self._wal_frames = 0  # all copied: the next write starts the log over
                self._since_copied = 0
            else:
                # the thread was checkpointing at that moment (PASSIVE gives up at once) or a
                # reader still needs old frames: try again a few commits on, not only once the
                # thread next measures the log (under load the log grew past 16 MB meanwhile)
                self._catch_up_in = CATCH_UP_RETRY_COMMITS

    def _log_long(self) -> bool:
        return self._wal_frames > MAX_WAL_FRAMES or self._since_copied > MAX_WAL_FRAMES

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
                if self._log_long():
                    # the writer catches up after its next commit: a round here would hold the
                    # checkpoint lock it needs (with the disk busy a round took 0.1-0.4 s, and the
                    # writer's every try failed while the log passed 100 MB)
                    continue
                done = _checkpoint(connection)  # failing, it is tried again next round
                if done is not None:
                    self._wal_frames = done[1]
                    self.checkpoints += 1
            _checkpoint(connection)  # leave the log short for the next process to open
        finally:
            connection.close()


def _checkpoint(connection: Any) -> tuple[int, int, int] | None:
    """One PASSIVE checkpoint on a DBAPI connection: (busy, the log's length in frames, frames
    copied), or None when it failed (logged: commits go on, the log is only longer meanwhile)."""
    try:
        ((busy, frames, copied),) = connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except Exception:
        log.exception("WAL checkpoint failed")
        return None
    return int(busy), int(frames), int(copied)
