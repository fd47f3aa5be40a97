"""Query cancellation with the protocol's CancelRequest, sent to sluice on a
new connection (which, with several workers, often lands on another worker
than the one serving the client)."""

import random
import threading
import time

import psycopg
import psycopg.errors
import pytest

from conftest import pump

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


class CancelDelayingForwarder:
    """A TCP forwarder in front of PostgreSQL that holds back each
    CancelRequest for `delay` seconds (every other connection passes at
    once): a cancel that reaches PostgreSQL late, as on a busy network."""

    def __init__(self, target, delay):
        import socket
        self.target, self.delay = target, delay
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            threading.Thread(target=self._first, args=(c, u), daemon=True).start()

    def _first(self, c, u):
        try:
            head = c.recv(16)
            if len(head) == 16 and int.from_bytes(head[4:8], "big") == 80877102:
                time.sleep(self.delay)
            u.sendall(head)
        except OSError:
            return
        threading.Thread(target=self._pump, args=(u, c), daemon=True).start()
        self._pump(c, u)

    _pump = staticmethod(pump)

    def close(self):
        self.stopping = True
        self.lsock.close()


@pytest.mark.sluice_only
def test_late_cancel_never_reaches_the_next_client(sluice, pg, helpers):
    """Client 1 cancels its query; the cancel reaches PostgreSQL only after
    that query has finished. The shared server must not have gone to client
    2 by then: its query would be cancelled in client 1's place. sluice
    lends the server on only once PostgreSQL has taken the cancel."""
    from conftest import raw_connect
    fwd = CancelDelayingForwarder((pg.host, pg.port), 0.8)
    try:
        s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0,
                    "server_tls_sslmode": "disable"},
                   databases={"sluicedb": f"host=127.0.0.1 port={fwd.port} dbname=sluicedb"})
        one = raw_connect(s.host, s.port)
        two = raw_connect(s.host, s.port)
        try:
            assert one.simple_query("select 1")[1] is None  # the server is up
            one.send(b"Q", b"select pg_sleep(0.3), 'one'\0")
            time.sleep(0.1)
            helpers.send_cancel(s.host, s.port, *one.backend_key)
            w = helpers.Worker(two.simple_query, "select pg_sleep(1.2), 'two'")
            w.start()
            while one.read()[0] != "Z":  # client 1's answer, whatever it is
                pass
            rows2, err2 = w.get(timeout=15)
            assert err2 is None, f"client 2's query was cancelled: {err2}"
            assert rows2 == [["", "two"]]
        finally:
            one.close()
            two.close()
    finally:
        fwd.close()
