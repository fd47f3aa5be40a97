"""Limits: max_client_conn, max_db_connections, max_user_connections, and
running out of file descriptors."""

import os
import socket
import threading
import time

import psycopg
import pytest

from conftest import RawConn, tail
from reliability_helpers import (COMPAT, BackendMonitor, assert_error, check_serves,
                                 raw_login, read_until_close, sluice_wrapped)  # noqa: F401


def test_max_client_conn(sluice):
    s = sluice({"max_client_conn": 3, "pool_mode": "transaction"}, workers=2)
    held = [raw_login(s.host, s.port) for _ in range(3)]
    try:
        for c in held:
            assert c.simple_query("select 1")[1] is None
        extra = RawConn(s.host, s.port)
        try:
            extra.send_startup({"user": "sluice_test", "database": "sluicedb"})
            out = read_until_close(extra, timeout=5)
        finally:
            extra.close()
        assert out.error is not None, f"4th client not refused: {out.describe()}"
        assert_error(out.error, "53300", "no more connections allowed (max_client_conn)")
        assert out.closed and out.elapsed < 3, out.describe()
        # the held clients are unaffected
        for c in held:
            assert c.simple_query("select 2")[0] == [["2"]]
        # one leaves: a new client is accepted again
        held.pop().terminate()
        deadline = time.monotonic() + 5
        while True:
            try:
                with s.connect() as c:
                    assert c.execute("select 'back'").fetchone() == ("back",)
                break
            except psycopg.Error as e:
                if time.monotonic() > deadline:
                    raise AssertionError(f"slot not freed after a client left: {e}")
                time.sleep(0.1)
    finally:
        for c in held:
            c.close()


@pytest.mark.sluice_only
def test_max_client_conn_is_exact_under_a_burst(sluice):
    """A burst of connections past the limit: at no moment are more than
    max_client_conn clients counted (/metrics sluice_clients) or let in,
    and each one past it is refused with 53300."""
    import urllib.request
    from conftest import free_port
    mport = free_port()
    limit = 4
    s = sluice({"max_client_conn": limit, "pool_mode": "transaction", "metrics_port": mport}, workers=2)

    def counted():
        body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        return int(next(line.split()[1] for line in body.splitlines() if line.startswith("sluice_clients ")))

    held = [raw_login(s.host, s.port) for _ in range(limit - 2)]
    try:
        for _ in range(5):
            logged_in, refused, errors = [], [], []
            lock = threading.Lock()
            go = threading.Barrier(24)

            def attempt():
                go.wait()
                c = RawConn(s.host, s.port)
                try:
                    time.sleep(0.2)  # connected, startup packet not sent yet
                    c.send_startup({"user": "sluice_test", "database": "sluicedb"})
                    out = read_until_close(c, timeout=3, stop_on="RZ")  # refused, or asked to log in
                    with lock:
                        if out.error is not None:
                            refused.append(out.error)
                        else:
                            logged_in.append(c)
                            c = None
                except Exception as e:  # noqa: BLE001
                    with lock:
                        errors.append(repr(e))
                finally:
                    if c is not None:
                        c.close()

            threads = [threading.Thread(target=attempt) for _ in range(24)]
            for t in threads:
                t.start()
            peak = 0
            while any(t.is_alive() for t in threads):
                peak = max(peak, counted())
            for t in threads:
                t.join()
            assert not errors, errors
            assert peak <= limit, f"{peak} clients counted, max_client_conn {limit}"
            assert len(logged_in) == 2, f"{len(logged_in)} let in, 2 slots were free"
            assert len(refused) == 22
            for e in refused:
                assert_error(e, "53300", "no more connections allowed (max_client_conn)")
            for c in logged_in:
                c.terminate()
            deadline = time.monotonic() + 5
            while counted() != limit - 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert counted() == limit - 2
    finally:
        for c in held:
            c.close()


@pytest.mark.parametrize("limit", ["max_db_connections", "max_user_connections"])
def test_shared_server_limit(sluice, pg, fresh_db, helpers, limit):
    """10 clients, pool_size 10, limit 3: never more than 3 backends.
    For max_user_connections, two databases (two pools) share the limit."""
    if limit == "max_db_connections":
        databases = {"dba": pg.db_line(fresh_db)}
        names = ["dba"] * 10
    else:
        databases = {"dba": pg.db_line(fresh_db), "dbb": pg.db_line(fresh_db)}
        names = ["dba", "dbb"] * 5
    s = sluice({"pool_mode": "transaction", "default_pool_size": 10, "reserve_pool_size": 0,
                limit: 3, "query_wait_timeout": 30}, databases=databases)
    mon = BackendMonitor(pg, "datname = %s AND usename = 'sluice_test'", (fresh_db,))
    mon.start()
    barrier = threading.Barrier(10)

    def client(db):
        with s.connect(db=db) as c:
            barrier.wait(timeout=20)
            for _ in range(3):
                c.execute("select pg_sleep(0.2)")
            return "done"

    t0 = time.monotonic()
    ws = [helpers.Worker(client, db) for db in names]
    for w in ws:
        w.start()
    try:
        results = [w.get(timeout=40) for w in ws]
    finally:
        mon.stop()
    elapsed = time.monotonic() - t0
    assert results == ["done"] * 10
    assert mon.samples > 20
    assert mon.max_seen <= 3, f"saw {mon.max_seen} server connections with {limit}=3"
    assert mon.max_seen >= 2, f"only {mon.max_seen} server connection(s) used"
    # 30 sleeps of 0.2 s on at most 3 servers take at least 2 s
    assert elapsed >= 1.9, f"finished in {elapsed:.2f} s: the limit was not applied"


def test_fd_exhaustion(sluice_wrapped):
    """sluice started with 64 file descriptors; 100 clients connect and say
    nothing. No crash; accept pauses; after they leave, clients work again."""
    s = sluice_wrapped(["prlimit", "--nofile=64:64", "--"],
                       {"pool_mode": "transaction", "max_client_conn": 1000,
                        "client_login_timeout": 60}, workers=2)
    with open(f"/proc/{s.pid}/limits") as f:
        lim = [line for line in f if line.startswith("Max open files")][0]
    assert lim.split()[3:5] == ["64", "64"], lim
    check_serves(s)
    socks = []
    try:
        for _ in range(100):
            try:
                socks.append(socket.create_connection((s.host, s.port), timeout=2))
            except OSError:
                break  # backlog full: fine, that is the point
        assert len(socks) >= 64, f"only {len(socks)} connections could be opened"
        time.sleep(1.5)
        assert s.alive(), f"sluice died with 64 fds:\n{tail(s.log_text())}"
        log = s.log_text()
        if not COMPAT:
            lines = [ln for ln in log.splitlines() if "accept failed" in ln]
            assert lines, f"no 'accept failed' in the log:\n{tail(log)}"
            assert "pausing" in lines[0], lines[0]
            # pausing: not one line per wakeup (no busy loop on EMFILE)
            assert len(lines) < 200, f"{len(lines)} 'accept failed' lines: busy loop?"
    finally:
        for sk in socks:
            sk.close()
    t0 = time.monotonic()
    check_serves(s, tries_for=8)
    took = time.monotonic() - t0
    assert took < 8, f"serving again took {took:.1f} s"
    assert s.alive()
    # the process is not spinning on the paused listener
    with open(f"/proc/{s.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu0 = int(fields[11]) + int(fields[12])
    time.sleep(1.0)
    with open(f"/proc/{s.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu1 = int(fields[11]) + int(fields[12])
    hz = os.sysconf("SC_CLK_TCK")
    assert (cpu1 - cpu0) / hz < 0.5, f"sluice used {(cpu1 - cpu0) / hz:.2f} s CPU in 1 s idle"
