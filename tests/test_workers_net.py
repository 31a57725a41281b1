"""Workers on several machines: an unreliable network and clocks that disagree.

Every PostgreSQL connection is bounded by TCP keepalives and `tcp_user_timeout`
(`runtime.journal_pg.TCP_OPTIONS`), so a silently dropped link fails a call within seconds
instead of leaving it waiting until the kernel gives up (~15 minutes).

The options are checked on the live connections (libpq's own view of them, `pgconn.info`) of
the journal, the hand-off link, the queue's pool and its listener, with a URL's own parameters
winning. Then, with root, a client in a network namespace reaches PostgreSQL through a veth
link and a forwarder in this process; the link goes down under it without a FIN or RST (what a
pulled cable or a forgetful NAT does) and each kind of call must fail within the bound.

Leases on PostgreSQL are timed by the database server's clock, so a worker whose own clock runs
hours ahead steals no live lease and one hours behind takes a dead worker's run over on time (its
clock injected: `Engine.wall_clock`); on SQLite, one machine, that clock is the lease clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_workers import database  # noqa: F401 - a fixture
from test_workers_handoff import CATALOG, Works, new_run
from workers_support import postgres_reason

from runtime.engine import Engine
from runtime.errors import InvalidRunState
from runtime.journal import Journal
from runtime.journal_pg import TCP_OPTIONS
from runtime.records import RunState
from runtime.workers import RunQueue, ensure_schema
from runtime.workers.handoff import HandoffLink

ROOT = Path(__file__).resolve().parent.parent


def tcp_settings(pgconn: Any) -> dict[str, str]:
    """The connection's libpq options named in TCP_OPTIONS, as libpq holds them."""
    return {
        o.keyword.decode(): (o.val or b"").decode() for o in pgconn.info if o.keyword.decode() in TCP_OPTIONS
    }


async def test_every_connection_carries_the_tcp_bounds_and_a_url_overrides_them(database: str) -> None:  # noqa: F811
    url = f"{database}?keepalives_idle=7&tcp_user_timeout=4000"
    expected = {**TCP_OPTIONS, "keepalives_idle": "7", "tcp_user_timeout": "4000"}
    ensure_schema(database)
    journal = Journal.open(url)
    link = HandoffLink(journal)
    queue = RunQueue(url)
    try:
        with journal._engine.connect() as conn:
            assert tcp_settings(conn.connection.driver_connection.pgconn) == expected  # type: ignore[union-attr]
        await link.hold_and_defer("nope", ttl=1)
        assert link._conn is not None
        assert tcp_settings(link._conn.pgconn) == expected
        await queue.open()
        connector = queue.app.connector
        async with connector.pool.connection() as pooled:  # type: ignore[attr-defined]
            assert tcp_settings(pooled.pgconn) == expected
        async with connector._get_standalone_connection() as listening:  # type: ignore[attr-defined]
            assert tcp_settings(listening.pgconn) == expected
    finally:
        await queue.close()
        await link.close()
        journal.close()
    # without parameters in the URL, the defaults
    plain = Journal.open(database)
    try:
        with plain._engine.connect() as conn:
            assert tcp_settings(conn.connection.driver_connection.pgconn) == TCP_OPTIONS  # type: ignore[union-attr]
    finally:
        plain.close()


# -- a link that goes silent -----------------------------------------------------------------------


def _netns_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return postgres_reason()


class Forwarder:
    """Accepts on `host:port` and forwards each connection to PostgreSQL on 127.0.0.1:5432 (which
    listens on loopback only), so a namespace can reach it over its veth link."""

    def __init__(self, host: str) -> None:
        self.server = socket.create_server((host, 0))
        self.port = self.server.getsockname()[1]
        self._sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                upstream = socket.create_connection(("127.0.0.1", 5432))
                self._sockets += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()


# Run in the namespace: connect each kind of connection, say "ready", wait for the link to go
# down, then time one call on each (the TCP options as a test would want them: short)
_CLIENT = """
import asyncio, json, sys, time
from runtime.journal import Journal
from runtime.workers import RunQueue
from runtime.records import RunState
from runtime.workers.handoff import HandoffLink

async def main(url):
    journal = Journal.open(url)
    link = HandoffLink(journal)
    queue = RunQueue(url)
    journal.orphaned_runs(now=0)
    await link.hold_and_defer("warm", ttl=1)
    await queue.enqueue("warm")
    print("ready", flush=True)
    sys.stdin.readline()
    calls = {
        "journal": lambda: asyncio.to_thread(journal.orphaned_runs, now=0),
        "handoff": lambda: link.hold_and_defer("cold", ttl=1),
        "queue": lambda: queue.enqueue("cold"),
    }
    for name, call in calls.items():
        began = time.monotonic()
        try:
            await asyncio.wait_for(call(), 120)
            error = None
        except BaseException as exc:
            error = type(exc).__name__ + ": " + str(exc).splitlines()[0]
        print(json.dumps({"call": name, "s": time.monotonic() - began, "error": error}), flush=True)

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
def silent_link(database: str) -> Iterator[tuple[str, str, str]]:  # noqa: F811
    """A namespace whose veth link reaches the database; yields (namespace, host end, URL)."""
    reason = _netns_reason()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:5]
    ns, host_if, ns_if = f"ow{tag}t", f"ow{tag}h", f"ow{tag}p"
    third = 16 + int(tag, 16) % 200
    host_ip, ns_ip = f"10.232.{third}.1", f"10.232.{third}.2"
    forwarder: Forwarder | None = None
    try:
        for command in (
            ["ip", "netns", "add", ns],
            ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
            ["ip", "link", "set", ns_if, "netns", ns],
            ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
            ["ip", "link", "set", host_if, "up"],
            ["ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if],
            ["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"],
        ):
            subprocess.run(command, check=True, capture_output=True)
        forwarder = Forwarder(host_ip)
        name = database.rsplit("/", 1)[1]
        yield ns, host_if, f"postgresql+psycopg://postgres@{host_ip}:{forwarder.port}/{name}"
    finally:
        if forwarder is not None:
            forwarder.close()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # and the veth pair with it


def test_a_call_on_a_link_gone_silent_fails_within_the_tcp_bound(
    database: str,  # noqa: F811
    silent_link: tuple[str, str, str],
) -> None:
    ns, host_if, url = silent_link
    ensure_schema(database)
    # 2 s unacknowledged, or an idle connection's probes unanswered for 1 + 1 x 2 s
    url += "?tcp_user_timeout=2000&keepalives_idle=1&keepalives_interval=1&keepalives_count=2"
    client = subprocess.Popen(
        ["ip", "netns", "exec", ns, str(ROOT / ".venv/bin/python"), "-c", _CLIENT, url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None and client.stdin is not None
        assert client.stdout.readline().strip() == "ready", client.stderr.read() if client.stderr else ""
        # no FIN, no RST: packets stop, as on a pulled cable
        subprocess.run(["ip", "link", "set", host_if, "down"], check=True, capture_output=True)
        began = time.monotonic()
        client.stdin.write("go\n")
        client.stdin.flush()
        out, err = client.communicate(timeout=100)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    print(out)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["call"] for r in results] == ["journal", "handoff", "queue"], err[-3000:]
    # without the options each would wait ~15 minutes for the kernel's retransmissions to end;
    # the queue's pool finds its connection dead at once and waits its own 30 s for a new one
    bounds = {"journal": 10, "handoff": 10, "queue": 35}
    for result in results:
        # failed, not answered (the link is down) and not cut off by the client's own 120 s limit
        assert result["error"] and "TimeoutError" not in result["error"], result
        assert result["s"] < bounds[result["call"]], result
    assert time.monotonic() - began < 60


# -- clocks that disagree ----------------------------------------------------------------------------

SKEW = 3 * 3600.0  # the tests' `journal` is conftest's: a SQLite file and a PostgreSQL schema


def skewed_engine(journal: Journal, skew: float) -> Engine:
    """A worker on a machine whose clock is `skew` seconds off; its scheduler scans often."""
    engine = Engine(CATALOG, journal, Works(), worker_id="skewed", poll_interval_s=0.05, lease_ttl_s=30)
    engine.wall_clock = lambda: time.time() + skew  # type: ignore[method-assign]
    return engine


async def test_a_worker_whose_clock_runs_ahead_steals_no_live_lease(journal: Journal) -> None:
    new_run(journal, "live")
    assert journal.claim("live", "alive", ttl=30)  # by the lease clock: held 30 s more
    async with skewed_engine(journal, +SKEW) as engine:
        if journal.server_clock:
            # neither its claim nor its orphan scan (a few polls) takes the run
            with pytest.raises(InvalidRunState, match="being run by alive"):
                await engine.run_until_settled("live")
            await asyncio.sleep(0.3)
            record = journal.get_run("live")
            assert (record.owner, record.state) == ("alive", RunState.RUNNING)
            assert journal.attempts(run_id="live") == []
        else:
            # one machine, one clock: this one's is the lease clock, and it says the lease ran out
            result = await engine.run_until_settled("live")
            assert result.state == RunState.SUCCEEDED


async def test_a_worker_whose_clock_runs_behind_takes_a_dead_workers_run_over_on_time(
    journal: Journal,
) -> None:
    new_run(journal, "gone")
    # its worker died a minute ago, its lease lapsed then (by the lease clock)
    assert journal.claim("gone", "dead", now=journal.lease_now() - 60, ttl=1)
    async with skewed_engine(journal, -SKEW):
        end = time.monotonic() + 5
        while journal.get_run("gone").state != RunState.SUCCEEDED:
            if time.monotonic() > end:
                # one machine, one clock: to this one's, the lease still has hours to run
                assert not journal.server_clock, journal.get_run("gone")
                assert journal.get_run("gone").owner == "dead"
                return
            await asyncio.sleep(0.05)
    assert journal.server_clock, "SQLite's lease clock is the machine's: the skewed one must wait"
    assert [a.step_id for a in journal.attempts(run_id="gone")] == ["a"]
