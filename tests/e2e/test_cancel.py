"""Query cancellation with the protocol's CancelRequest, sent to sluice on a
new connection (which, with several workers, often lands on another worker
than the one serving the client)."""

import random
import threading
import time

import psycopg
import psycopg.errors
import pytest

MODES = ["session", "transaction"]


def _cancel_after(conn, delay):
    t = threading.Timer(delay, conn.cancel)
    t.daemon = True
    t.start()
    return t


@pytest.mark.parametrize("mode", MODES)
def test_cancel_long_query(sluice, mode):
    s = sluice({"pool_mode": mode, "default_pool_size": 4}, workers=2)
    conns = [s.connect() for _ in range(4)]
    try:
        # several rounds over several connections: the CancelRequest arrives
        # on a fresh TCP connection each time, spread over the workers
        for rnd in range(2):
            for c in conns:
                timer = _cancel_after(c, 0.3)
                t0 = time.monotonic()
                with pytest.raises(psycopg.errors.QueryCanceled) as ei:
                    c.execute("select pg_sleep(30)")
                elapsed = time.monotonic() - t0
                timer.join()
                assert ei.value.sqlstate == "57014"
                assert elapsed < 5, f"cancel took {elapsed:.2f} s"
                assert c.execute("select 'after cancel'").fetchone() == ("after cancel",)
    finally:
        for c in conns:
            c.close()


def test_cancel_concurrent(sluice, helpers):
    """Cancel several sleeping queries at once; only those are cancelled."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 6}, workers=2)
    conns = [s.connect() for _ in range(6)]
    try:
        def sleeper(c, secs):
            t0 = time.monotonic()
            try:
                c.execute("select pg_sleep(%s)", (secs,))
                return "done", time.monotonic() - t0
            except psycopg.errors.QueryCanceled:
                return "canceled", time.monotonic() - t0

        victims, survivors = conns[:4], conns[4:]
        ws = [helpers.Worker(sleeper, c, 30) for c in victims]
        ws += [helpers.Worker(sleeper, c, 2) for c in survivors]
        for w in ws:
            w.start()
        time.sleep(0.5)
        for c in victims:
            c.cancel()
        results = [w.get(timeout=20) for w in ws]
        for status, elapsed in results[:4]:
            assert status == "canceled"
            assert elapsed < 5
        for status, elapsed in results[4:]:
            assert status == "done", "a query that was not cancelled got cancelled"
            assert elapsed >= 1.9
        for c in conns:
            assert c.execute("select 1").fetchone() == (1,)
    finally:
        for c in conns:
            c.close()


def test_cancel_with_wrong_key_is_harmless(sluice, helpers):
    s = sluice({"pool_mode": "session"}, workers=2)
    with s.connect() as c:
        pid = c.info.backend_pid  # what sluice told the client
        w = helpers.Worker(lambda: c.execute("select pg_sleep(1.5), 'survived'").fetchone())
        w.start()
        time.sleep(0.3)
        # right pid, wrong key; random pid and key; a truncated request
        helpers.send_cancel(s.host, s.port, pid, random.getrandbits(32) ^ 0x5A5A5A5A)
        helpers.send_cancel(s.host, s.port, random.getrandbits(31), random.getrandbits(32))
        import socket
        with socket.create_connection((s.host, s.port), timeout=5) as sock:
            sock.sendall(b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00")  # cut short
        assert w.get(timeout=10)[1] == "survived"
        assert c.execute("select 'still fine'").fetchone() == ("still fine",)
    with s.connect() as c2:
        assert c2.execute("select 1").fetchone() == (1,)


def test_cancel_idle_connection_is_harmless(sluice):
    """A cancel for a client with no query running does not break it."""
    s = sluice({"pool_mode": "transaction"}, workers=2)
    with s.connect() as c:
        c.cancel()
        time.sleep(0.3)
        assert c.execute("select 'idle ok'").fetchone() == ("idle ok",)
