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


@pytest.mark.sluice_only
def test_clients_wait_through_a_server_restart(sluice, pg):
    """While PostgreSQL starts up it refuses logins with FATAL 57P03. That
    passes by itself: the first clients wait (query_wait_timeout) while
    sluice retries every server_login_retry, and are served once the server
    is back, as with PgBouncer; they are not failed at once."""
    import socket
    import struct
    import threading
    refusals = [2]

    def refuse(c):
        c.recv(1024)  # the startup packet
        fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
        c.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)
        c.close()

    from conftest import pump

    front = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                c, _ = front.accept()
            except OSError:
                return
            if refusals[0] > 0:
                refusals[0] -= 1
                threading.Thread(target=refuse, args=(c,), daemon=True).start()
                continue
            u = socket.create_connection((pg.host, pg.port))
            threading.Thread(target=pump, args=(c, u), daemon=True).start()
            threading.Thread(target=pump, args=(u, c), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        s = sluice({"pool_mode": "transaction", "server_login_retry": 1, "query_wait_timeout": 20,
                    "server_tls_sslmode": "disable"},
                   databases={"sluicedb": f"host=127.0.0.1 port={front.getsockname()[1]} dbname=sluicedb"})
        with s.connect() as c:
            assert c.execute("select 'served'").fetchone() == ("served",)
        assert refusals[0] == 0
        with s.connect() as c:  # and a later client too, at once
            assert c.execute("select 1").fetchone() == (1,)
    finally:
        front.close()


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_database_entry_sets_server_startup_parameters(sluice, pg, mode, monkeypatch):
    """timezone, datestyle, client_encoding and application_name on a
    [databases] line go to the server in its startup packet: clients that
    do not ask for their own see the server's session start with them (and
    are told so in ParameterStatus); a client's own value still wins."""
    line = pg.db_line("sluicedb") + (" timezone=Pacific/Chatham datestyle='SQL, DMY'"
                                     " client_encoding=LATIN1 application_name=from_config")
    s = sluice({"pool_mode": mode, "default_pool_size": 1}, databases={"sluicedb": line})
    for var in ("PGTZ", "PGDATESTYLE", "PGCLIENTENCODING", "PGAPPNAME"):
        monkeypatch.delenv(var, raising=False)
    with s.connect() as c:
        assert c.execute("show timezone").fetchone() == ("Pacific/Chatham",)
        assert c.execute("show datestyle").fetchone() == ("SQL, DMY",)
        assert c.execute("show client_encoding").fetchone() == ("LATIN1",)
        assert c.info.parameter_status("TimeZone") == "Pacific/Chatham"
        assert c.info.parameter_status("DateStyle") == "SQL, DMY"
        assert c.execute("select to_char(date '2024-03-01', 'DD/MM')").fetchone() == ("01/03",)
    monkeypatch.setenv("PGTZ", "UTC")
    with s.connect() as c:
        assert c.execute("show timezone").fetchone() == ("UTC",)
        assert c.execute("show datestyle").fetchone() == ("SQL, DMY",)


@pytest.mark.timeout(40)
def test_server_fast_close_ends_session_at_transaction_end(sluice, pg):
    """server_fast_close (session mode): after RECONNECT a client's server
    closes at the end of its current transaction instead of at the end of
    the session, and the client is disconnected with it, so it notices its
    session is gone; the transaction in progress finishes first."""
    import time
    from admin_helpers import ADMIN, ADMIN_PW, USERLIST, console_cmd_in_thread
    s = sluice({"pool_mode": "session", "server_fast_close": 1, "admin_users": ADMIN},
               userlist=USERLIST)
    idle = s.connect()
    busy = s.connect()
    try:
        idle.execute("select 1")
        busy.execute("begin")
        busy.execute("create temp table t (x int)")
        console_cmd_in_thread(s.port, "RECONNECT", user=ADMIN, password=ADMIN_PW).get(15)
        time.sleep(2.5)
        # inside its transaction the busy client goes on
        busy.execute("insert into t values (1)")
        assert busy.execute("select count(*) from t").fetchone() == (1,)
        busy.execute("commit")
        with pytest.raises(Exception):
            idle.execute("select 1")
        time.sleep(2.5)
        with pytest.raises(Exception):
            busy.execute("select 1")
    finally:
        idle.close()
        busy.close()
    # a new session gets a new server
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


def test_without_server_fast_close_sessions_survive_reconnect(sluice, pg):
    """The default: RECONNECT in session mode waits for the session's end."""
    import time
    from admin_helpers import ADMIN, ADMIN_PW, USERLIST, console_cmd_in_thread
    s = sluice({"pool_mode": "session", "admin_users": ADMIN}, userlist=USERLIST)
    with s.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        console_cmd_in_thread(s.port, "RECONNECT", user=ADMIN, password=ADMIN_PW).get(15)
        time.sleep(2.5)
        assert c.execute("select pg_backend_pid()").fetchone() == (pid,)


@pytest.mark.sluice_only
@pytest.mark.parametrize("opts", ["-c search_path=opt_schema", "-csearch_path=opt_schema",
                                  "--search-path=opt_schema"])
def test_options_settings_are_tracked(sluice, pg, opts):
    """A setting in the startup packet's options (PGOPTIONS, libpq's
    options=) is judged as a startup parameter (PgBouncer 1.20+): listed
    in track_extra_parameters, it is the client's session setting on every
    server it borrows. (PgBouncer 1.18 refuses options unless ignored.)"""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1,
                "track_extra_parameters": "search_path"})
    with s.connect(options=opts) as c, s.connect() as other:
        assert c.execute("show search_path").fetchone() == ("opt_schema",)
        assert other.execute("show search_path").fetchone() != ("opt_schema",)
        assert c.execute("show search_path").fetchone() == ("opt_schema",)


@pytest.mark.sluice_only
def test_options_setting_neither_tracked_nor_ignored_is_refused(sluice, pg):
    s = sluice({"pool_mode": "transaction"})
    with pytest.raises(Exception, match="unsupported options startup parameter: work_mem"):
        s.connect(options="-c TimeZone=UTC -c work_mem=64MB")


@pytest.mark.sluice_only
def test_options_in_ignore_list_keeps_tracked_settings(sluice, pg):
    """ignore_startup_parameters = options: tracked settings inside it
    still apply (TimeZone), the rest is dropped (work_mem, a stray
    switch)."""
    s = sluice({"pool_mode": "transaction", "ignore_startup_parameters": "options"})
    with s.connect(options=r"-c TimeZone=Asia/Kolkata -c work_mem=64MB") as c:
        assert c.execute("show timezone").fetchone() == ("Asia/Kolkata",)
        assert c.execute("show work_mem").fetchone() == ("4MB",)
