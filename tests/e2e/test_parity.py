"""What users of current PgBouncer (1.23-1.25) rely on and find the same in
sluice: regression tests for the differences found when moving a setup over.
Tests that PgBouncer 1.18 (the reference binary here) also passes are not
marked; sluice-only behaviour is."""

import pytest


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_connect_query_runs_once_per_server_login(sluice, pg, mode):
    """connect_query runs when a server logs in, and the login then
    finishes: clients are served, and see what it set."""
    line = pg.db_line("sluicedb") + " connect_query='SET statement_timeout = 4242'"
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "query_wait_timeout": 10},
               databases={"sluicedb": line})
    with s.connect() as c:
        assert c.execute("show statement_timeout").fetchone() == ("4242ms",)
        assert c.execute("select 1").fetchone() == (1,)
    with s.connect() as c:
        assert c.execute("select 2").fetchone() == (2,)


@pytest.mark.sluice_only
@pytest.mark.parametrize("key", ["query_wait_timeout", "query_timeout"])
def test_waiting_for_a_login_that_never_finishes_times_out(sluice, pg, key):
    """The first client of a pool waits for a server login to learn the
    server's parameters. When that login hangs (the server never answers),
    query_wait_timeout and query_timeout release it, as they release any
    waiting client (PgBouncer counts the wait in query_timeout too)."""
    import socket
    import threading
    import time
    silent = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
    other = "query_timeout" if key == "query_wait_timeout" else "query_wait_timeout"
    s = sluice({"pool_mode": "transaction", key: 2, other: 0, "server_connect_timeout": 60,
                "server_tls_sslmode": "disable"},
               databases={"sluicedb": f"host=127.0.0.1 port={silent.getsockname()[1]} dbname=sluicedb"})
    from conftest import RawConn
    c = RawConn(s.host, s.port, timeout=15)
    try:
        t0 = time.monotonic()
        with pytest.raises(Exception, match=key):
            c.login("sluice_test", "sluicedb", "test_pw")
        assert time.monotonic() - t0 < 8
    finally:
        c.close()
        silent.close()
