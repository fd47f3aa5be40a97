"""server_check_query / server_check_delay: a server connection that sat
idle in the pool longer than server_check_delay runs server_check_query
before a client gets it; one whose check fails is closed and the client is
served by another, without seeing an error (PgBouncer's sanity check)."""

import pytest


def _setup_sequence(pg):
    pg.sql("CREATE SEQUENCE IF NOT EXISTS sluice_checks", dbname="sluicedb")
    pg.sql("GRANT USAGE, SELECT, UPDATE ON SEQUENCE sluice_checks TO sluice_test", dbname="sluicedb")
    pg.sql("SELECT setval('sluice_checks', 1, false)", dbname="sluicedb")


def _checks_run(pg):
    last, called = pg.sql("SELECT last_value, is_called FROM sluice_checks", dbname="sluicedb")[0]
    return last if called else 0


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_check_runs_before_reuse_when_delay_passed(sluice, pg, mode):
    """A server idle longer than server_check_delay is checked before a
    client gets it; the check's work is visible (a sequence it advances)."""
    import time
    _setup_sequence(pg)
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "server_check_delay": 1,
                "server_check_query": "select nextval('sluice_checks')"})
    for i in range(4):
        if i:
            time.sleep(2)
        with s.connect() as c:
            assert c.execute("select %s::int", (i,)).fetchone() == (i,)
    # the first client got a new server; the three after it a checked one
    assert _checks_run(pg) == 3


def test_delay_zero_checks_a_server_handed_straight_to_a_waiter(sluice, pg):
    """server_check_delay = 0 checks at every reuse: also a server that
    goes from the client that released it straight to one waiting for it."""
    import threading
    import time
    _setup_sequence(pg)
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "server_check_delay": 0,
                "server_check_query": "select nextval('sluice_checks')"})
    with s.connect() as a, s.connect() as b:
        a.execute("begin")
        assert a.execute("select 1").fetchone() == (1,)
        # (sluice checks the server its logins used; PgBouncer does not)
        before = _checks_run(pg)
        got = []
        waiter = threading.Thread(target=lambda: got.append(b.execute("select 2").fetchone()))
        waiter.start()
        time.sleep(0.5)  # b waits for the only server
        a.execute("commit")
        waiter.join(10)
        assert got == [(2,)]
        assert _checks_run(pg) == before + 1  # handed from a to b: checked
        assert a.execute("select 3").fetchone() == (3,)
    assert _checks_run(pg) == before + 2  # taken from the idle list: checked


def test_no_check_within_delay(sluice, pg):
    _setup_sequence(pg)
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "server_check_delay": 30,
                "server_check_query": "select nextval('sluice_checks')"})
    with s.connect() as c:
        for i in range(5):
            assert c.execute("select %s::int", (i,)).fetchone() == (i,)
    assert _checks_run(pg) == 0


def test_empty_check_query_turns_checks_off(sluice, pg):
    _setup_sequence(pg)
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "server_check_delay": 0,
                "server_check_query": ""})
    with s.connect() as c:
        for i in range(3):
            assert c.execute("select %s::int", (i,)).fetchone() == (i,)
    assert _checks_run(pg) == 0


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_failed_check_closes_server_and_client_gets_another(sluice, pg, mode):
    """A check that fails closes that server; the client that was about to
    get it is served by a new one and sees no error."""
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "server_check_delay": 0,
                "server_check_query": "select 1/0"})
    pids = []
    for _ in range(3):
        with s.connect() as c:
            pids.append(c.execute("select pg_backend_pid()").fetchone()[0])
            assert c.execute("select 42").fetchone() == (42,)
    assert len(set(pids)) == 3, pids


@pytest.mark.sluice_only
def test_unanswered_check_closes_server_after_connect_timeout(sluice, pg):
    """A check that gets no answer within server_connect_timeout (a hung or
    unreachable server) closes that connection; the waiting client is
    served by a new one."""
    import time
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "server_check_delay": 0,
                "server_connect_timeout": 1, "query_wait_timeout": 20,
                "server_check_query": "select pg_sleep(30)"})
    with s.connect() as c:
        first = c.execute("select pg_backend_pid()").fetchone()[0]
        t0 = time.monotonic()
        second = c.execute("select pg_backend_pid()").fetchone()[0]
        assert second != first
        assert time.monotonic() - t0 < 10


@pytest.mark.sluice_only
def test_server_being_checked_is_counted_in_sv_tested(sluice, pg):
    """SHOW POOLS counts a server running its check in sv_tested, and the
    waiting client in cl_waiting, as PgBouncer does."""
    import time
    from admin_helpers import ADMIN, ADMIN_PW, USERLIST, Console
    from conftest import Worker
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "server_check_delay": 0,
                "server_check_query": "select pg_sleep(1.5)", "admin_users": ADMIN}, userlist=USERLIST)
    with s.connect() as c:
        c.execute("select 1")  # the new server is checked once, then idles
        w = Worker(lambda: c.execute("select 2").fetchone())
        w.start()
        time.sleep(0.5)
        with Console(s.port, ADMIN, ADMIN_PW) as con:
            row = [r for r in con.show("POOLS") if r["database"] == "sluicedb"][0]
        assert int(row["sv_tested"]) == 1, row
        assert int(row["cl_waiting"]) == 1, row
        assert w.get(15) == (2,)
