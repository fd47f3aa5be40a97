"""Running out of file descriptors while accepting (docs/operations.md,
"Running out of file descriptors"):

- when accept() fails with EMFILE, a worker stops polling its listeners
  for a pause that doubles while the failures go on (0.1 s up to 2 s), so
  it neither spins nor floods the log: one line at most every 5 s for the
  whole process, the next one saying how many failures it left out;
- sluice_accept_failures_total{errno="EMFILE"} counts every failure;
- a client connected before the shortage goes on running queries;
- once descriptors are free again, a new client gets in within seconds.

The shortage is made from outside: the soft RLIMIT_NOFILE of the running
sluice is lowered to a few above the fds it has open, then raw TCP
connections fill them and wait in the accept queues (the kernel completes
their handshake without sluice). tests/e2e/test_limits.py's
test_fd_exhaustion covers a sluice started with few fds.

sluice-only: PgBouncer has no metrics endpoint, and logs differently.
"""

import os
import re
import resource
import socket
import time
import urllib.request

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import RawConn, free_port, tail

pytestmark = pytest.mark.sluice_only

LINE = "accept failed"          # what every log line about the failure contains
HEADROOM = 3                    # fds left to sluice above what it has open
QUEUED = 24                     # connections beyond those, left in the accept queues
LOG_INTERVAL = 5.0              # sluice logs the condition at most once per this (s)
ERRNOS = ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid, quiet=0.4, limit=5.0):
    """open_fds once it has not changed for `quiet` seconds: the harness's
    readiness probe (a connection opened and closed at once) may still be
    open in sluice right after start, and would make a limit computed from
    the count one too high."""
    deadline = time.monotonic() + limit
    last, since = open_fds(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = open_fds(pid)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def failure_lines(s):
    return [ln for ln in s.log_text().splitlines() if LINE in ln]


def accept_failures(mport):
    """{errno label: value} of sluice_accept_failures_total."""
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        body = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(body):
        for smp in fam.samples:
            if smp.name == "sluice_accept_failures_total":
                out[smp.labels["errno"]] = smp.value
    return out


def wait_metrics_port(s, mport, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", mport), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"metrics port {mport} not listening; log:\n{tail(s.log_text())}")
            time.sleep(0.05)


def wait_lines(s, n, until):
    """Poll the log until it has n failure lines or the monotonic time
    `until` has passed; returns the lines."""
    while True:
        lines = failure_lines(s)
        if len(lines) >= n or time.monotonic() >= until:
            return lines
        time.sleep(0.05)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("workers", [1, 2])
def test_accept_backs_off_and_recovers(sluice, workers):
    mport = free_port()
    s = sluice({"metrics_port": mport, "client_login_timeout": 60}, workers=workers)
    wait_metrics_port(s, mport)
    before = accept_failures(mport)
    assert set(before) == set(ERRNOS), before
    assert all(v == 0 for v in before.values()), before

    # Session mode: this client keeps its server, so it needs no new fd.
    held = s.connect()
    assert held.execute("select 1").fetchone() == (1,)

    soft, hard = resource.prlimit(s.pid, resource.RLIMIT_NOFILE)
    socks = []
    try:
        resource.prlimit(s.pid, resource.RLIMIT_NOFILE, (settled_fds(s.pid) + HEADROOM, hard))
        # HEADROOM of these are accepted; the rest wait in the queues, and
        # with two workers land on both listeners (SO_REUSEPORT hashing).
        for _ in range(HEADROOM + QUEUED):
            try:
                socks.append(socket.create_connection((s.host, s.port), timeout=2))
            except OSError:
                break
        assert len(socks) > HEADROOM, f"only {len(socks)} connections could be opened"

        lines = wait_lines(s, 1, time.monotonic() + 5)
        assert lines, f"no '{LINE}' line in the log:\n{tail(s.log_text())}"
        first = time.monotonic()
        assert "Too many open files" in lines[0] and "pausing new connections" in lines[0], lines[0]

        # Over the next 3 s: no flood (without the back-off and the rate
        # limit, each worker logged about 10 lines a second), and the
        # client connected before goes on working.
        time.sleep(1.0)
        assert held.execute("select 2").fetchone() == (2,)
        time.sleep(max(0.0, first + 3.0 - time.monotonic()))
        lines = failure_lines(s)
        assert len(lines) <= 2, f"{len(lines)} '{LINE}' lines in 3 s:\n" + "\n".join(lines)
        assert held.execute("select 3").fetchone() == (3,)
        assert s.alive(), tail(s.log_text())

        # The pause never exceeds 2 s, so accept keeps being tried: once
        # 5 s have passed, the next failure is logged with the count of
        # those left out since the first line.
        lines = wait_lines(s, 2, first + LOG_INTERVAL + 3.0)
        assert len(lines) == 2, f"expected a second '{LINE}' line after {LOG_INTERVAL} s:\n" + \
            tail(s.log_text())
        m = re.search(r"\((\d+) more failures? since the last message\)", lines[1])
        assert m and int(m.group(1)) >= 1, lines[1]
    finally:
        resource.prlimit(s.pid, resource.RLIMIT_NOFILE, (soft, hard))
        for sk in socks:
            sk.close()
    shortage = time.monotonic() - first

    # Descriptors are free again: a new client gets in, without waiting
    # for more than the longest pause.
    t0 = time.monotonic()
    last = None
    while True:
        try:
            with s.connect(connect_timeout=3) as c:
                assert c.execute("select 'back'").fetchone() == ("back",)
            break
        except psycopg.Error as e:
            last = e
            if time.monotonic() - t0 > 5:
                raise AssertionError(f"no new client within 5 s after the shortage: {last}\n"
                                     f"{tail(s.log_text())}")
            time.sleep(0.1)
    assert time.monotonic() - t0 < 5
    assert held.execute("select 4").fetchone() == (4,)
    held.close()

    after = accept_failures(mport)
    n = after["EMFILE"]
    # At least the two logged plus those the second line counted; and far
    # fewer than one per 0.1 s tick per worker (the old pause): the pause
    # grows to 2 s, so a worker fails about 8 times in 8 s.
    assert n >= 2 + int(m.group(1)), (after, lines)
    assert n <= workers * (8 + shortage / 2 + 4), (after, shortage)
    assert after["ENFILE"] == after["ENOBUFS"] == after["ENOMEM"] == 0, after


@pytest.mark.timeout(30)
def test_client_leaving_ends_the_pause(sluice):
    """A client that goes away gives back an fd: the worker tries accept()
    again at once instead of waiting out its pause. One worker, so the
    client that leaves and the connection waiting share a listener."""
    s = sluice({"client_login_timeout": 60}, workers=1)
    soft, hard = resource.prlimit(s.pid, resource.RLIMIT_NOFILE)
    accepted, waiting = [], None
    try:
        limit = settled_fds(s.pid) + HEADROOM
        resource.prlimit(s.pid, resource.RLIMIT_NOFILE, (limit, hard))
        accepted = [socket.create_connection((s.host, s.port), timeout=2) for _ in range(HEADROOM)]
        deadline = time.monotonic() + 5
        while open_fds(s.pid) < limit:
            assert time.monotonic() < deadline, f"sluice has {open_fds(s.pid)} fds, not {limit}"
            time.sleep(0.02)
        # This one waits in the queue with its startup packet already sent;
        # the answer (an authentication request) shows when it is accepted.
        waiting = RawConn(s.host, s.port, timeout=5)
        waiting.send_startup({"user": "sluice_test", "database": "sluicedb"})
        assert wait_lines(s, 1, time.monotonic() + 5), tail(s.log_text())
        first = time.monotonic()
        # Pauses after the failures at 0, 0.1, 0.3, 0.7 and 1.5 s: at 1.6 s
        # the worker is in the 1.6 s pause that lasts until 3.1 s.
        time.sleep(max(0.0, first + 1.6 - time.monotonic()))
        accepted.pop().close()
        t0 = time.monotonic()
        typ, _ = waiting.read()
        took = time.monotonic() - t0
        assert typ == "R", typ
        # the pause would have lasted 1.5 s more
        assert took < 1.2, f"the waiting connection was accepted {took:.2f} s after a client left"
        assert len(failure_lines(s)) == 1, "\n".join(failure_lines(s))
    finally:
        resource.prlimit(s.pid, resource.RLIMIT_NOFILE, (soft, hard))
        for sk in accepted:
            sk.close()
        if waiting:
            waiting.close()
