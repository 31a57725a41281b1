"""Workers on separate "machines": each in its own network namespace, reaching a PostgreSQL of
their own over veth links (10.231.x.0/30, private, only inside namespaces this test creates).

The test starts a throwaway PostgreSQL cluster (`initdb` + `pg_ctl`, as the `postgres` user)
listening only on the host ends of the veth pairs, runs a batch of workflows on two namespaced
workers, SIGKILLs one of them mid-run and checks every run ends correctly with the execution
counts of the in-process test. Namespaces, links and the cluster are removed at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_workers import check_executions, files, start_worker, stop, submit, wait_finished, wait_ready
from workers_support import read_calls

from runtime.journal import Journal
from runtime.records import RunState
from runtime.workers import ensure_schema

PORT = 55432


@dataclass
class Lab:
    namespaces: list[str]
    addresses: list[str]
    """The host end of each namespace's link; PostgreSQL listens on these."""
    url_for: list[str]
    """The database URL each namespace uses."""


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _netns_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if _pg_bin() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    probe = f"owprobe{uuid.uuid4().hex[:6]}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"`ip netns add` is not permitted here: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = _netns_reason()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:5]
    base = 16 + int(tag, 16) % 200  # 10.231.<base+i>.0/30: unlikely to meet a parallel run's links
    namespaces, addresses, urls = [], [], []
    bin_dir = _pg_bin()
    assert bin_dir is not None
    data = Path(tempfile.mkdtemp(prefix="overture-netns-pg-", dir="/tmp"))
    shutil.chown(data, "postgres", "postgres")
    started = False
    try:
        for i in range(2):
            ns, host_if, ns_if = f"ow{tag}n{i}", f"ow{tag}h{i}", f"ow{tag}p{i}"
            host_ip, ns_ip = f"10.231.{base + i}.1", f"10.231.{base + i}.2"
            _run("ip", "netns", "add", ns)
            namespaces.append(ns)
            _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            _run("ip", "link", "set", ns_if, "netns", ns)
            _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
            _run("ip", "link", "set", host_if, "up")
            _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
            _run("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
            _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            addresses.append(host_ip)
        cluster = data / "cluster"
        _run("runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), "-D", str(cluster), "-U", "postgres",
             "--auth=trust", "--no-sync")
        with open(cluster / "pg_hba.conf", "a") as hba:
            hba.write("host all all 10.231.0.0/16 trust\n")
        options = (f"-c listen_addresses='{','.join(addresses)}' -c port={PORT} "
                   f"-c unix_socket_directories='{data}' -c max_connections=200")
        _run("runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"), "-D", str(cluster), "-w",
             "-l", str(data / "server.log"), "-o", options, "start")
        started = True
        import psycopg

        with psycopg.connect(f"host={addresses[0]} port={PORT} user=postgres dbname=postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE DATABASE overture")
        urls = [f"postgresql+psycopg://postgres@{ip}:{PORT}/overture" for ip in addresses]
        yield Lab(namespaces=namespaces, addresses=addresses, url_for=urls)
    finally:
        if started:
            subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"), "-D",
                            str(data / "cluster"), "-m", "immediate", "stop"], capture_output=True)
        for ns in namespaces:  # deleting a namespace deletes its veth end, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_workers_in_network_namespaces_share_postgresql_over_veth(lab: Lab, tmp_path: Path) -> None:
    files(tmp_path)
    ensure_schema(lab.url_for[0])
    procs = {
        f"ns{i}": start_worker(lab.url_for[i], tmp_path, f"ns{i}", prefix=["ip", "netns", "exec", ns])
        for i, ns in enumerate(lab.namespaces)
    }
    try:
        wait_ready(procs, tmp_path)
        # the API side (this process, in the root namespace) submits over the first link
        ids = submit(lab.url_for[0], tmp_path, count=16, sleep=0.4)
        victim = procs["ns1"]
        mine = tmp_path / f"calls-{victim.pid}.jsonl"
        end = time.monotonic() + 60
        while not (mine.exists() and len(mine.read_text().splitlines()) >= 4):
            assert time.monotonic() < end, "the namespaced victim never got work"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        journal = Journal.open(lab.url_for[0])
        try:
            states = wait_finished(journal, ids, timeout=90)
            assert Counter(states.values()) == {RunState.SUCCEEDED: len(ids)}, states
            check_executions(journal, tmp_path, ids, victim.pid, "ns1")
            assert {int(c["pid"]) for c in read_calls(tmp_path)} == {p.pid for p in procs.values()}
            # the survivor took the victim's runs over through its own namespace's link
            interrupted = [a for a in journal.attempts() if a.outcome == "interrupted"]
            assert interrupted, "the kill interrupted nothing; no takeover was exercised"
        finally:
            journal.close()
    finally:
        codes = stop([procs["ns0"]])
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    assert codes == [0], (tmp_path / "ns0.log").read_text()[-2000:]
