"""Group commit for a SQLite journal: many commits, one fsync.

With `Journal.defer_fsync` the engine's commits are written to the write-ahead log without an
fsync each (a crash of the process loses none of them: they are in the OS's cache) and the engine
calls `flush()` wherever something outside the journal is about to depend on them: before each
action call, before it tells a caller a run has started, finished or taken a decision. One fsync
of the log makes every earlier commit durable, so all the steps and runs that reach a barrier in
the same turn of the event loop share one. A power cut can then lose only commits nothing
outside has acted on: a step finished since the last barrier runs again with the same
idempotency key, as an in-flight step would.
"""

from __future__ import annotations

import asyncio
import os
import threading

# data and the size it needs, not the file's times: what SQLite itself calls on Linux
_sync = getattr(os, "fdatasync", os.fsync)


class WalSync:
    """Counts commits and fsyncs the log file (`<db>-wal`) at the barriers."""

    def __init__(self, wal_path: str) -> None:
        self._path = wal_path
        self._fd: int | None = None
        self._file_id: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self.commits = 0
        """Commits made on the journal's writer."""
        self.synced = 0
        """How many of them are known to be on disk."""
        self.fsyncs = 0
        """fsyncs done by `flush` (each covers every commit before it)."""

    def committed(self, *, synced: bool) -> None:
        """After each commit; `synced` when SQLite fsynced it itself (synchronous=FULL), which
        covers every commit before it too."""
        self.commits += 1
        if synced:
            self.synced = self.commits

    @property
    def pending(self) -> int:
        return self.commits - self.synced

    async def flush(self) -> None:
        """Return once every commit made before the call is on disk.

        The first caller yields to the loop once before it fsyncs, so that every task ready now
        (the other branches of a fan-out, other runs) commits and reaches its own barrier first:
        the one fsync then covers them all and they go on without one. No thread: a run on a
        test clock still moves only when the loop does."""
        target = self.commits
        if self.synced >= target:
            return
        await asyncio.sleep(0)
        if self.synced < target:
            self.flush_blocking()

    def flush_blocking(self) -> None:
        """Fsync the log now if any commit is not known to be on disk."""
        if self.synced < self.commits:
            covered = self.commits
            self._fsync()
            self.synced = max(self.synced, covered)

    def close(self) -> None:
        self.flush_blocking()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _fsync(self) -> None:
        with self._lock:
            try:
                stat = os.stat(self._path)
            except FileNotFoundError:
                return  # no log: SQLite folded it into the database file (and synced that) on close
            # the log file can be deleted and made anew (every connection closed, then one opened):
            # an fsync of the old one would sync nothing that matters
            file_id = (stat.st_dev, stat.st_ino)
            if self._fd is None or self._file_id != file_id:
                if self._fd is not None:
                    os.close(self._fd)
                self._fd = os.open(self._path, os.O_RDONLY)
                self._file_id = file_id
            _sync(self._fd)
            self.fsyncs += 1
