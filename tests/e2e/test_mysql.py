"""MySQL and MariaDB clients through sluice (issue 17, first part): a
MariaDB 10.11 server started by the harness (mysql_helpers.py), sluice
with mysql_listen_port in front of it, and real clients (pymysql, the
mariadb command-line client)."""

import subprocess
import threading
import time

import pytest

pymysql = pytest.importorskip("pymysql")

from conftest import free_port, is_pgbouncer_compat  # noqa: E402

pytestmark = pytest.mark.skipif(is_pgbouncer_compat(), reason="PgBouncer has no MySQL listener")


def start(sluice, pg, maria, mode="transaction", size=2, extra=None, databases=None):
    myport = free_port()
    main = {"mysql_listen_port": myport, "pool_mode": mode, "default_pool_size": size}
    main.update(extra or {})
    dbs = {"sluicedb": pg.db_line("sluicedb"), "mydb": maria.db_line("mydb"),
           "other": maria.db_line("otherdb")}
    dbs.update(databases or {})
    s = sluice(main, databases=dbs)
    s.myport = myport
    return s


def connect(s, db="mydb", user="sluice_test", password="test_pw", **kw):
    return pymysql.connect(host="127.0.0.1", port=s.myport, user=user, password=password, database=db,
                           connect_timeout=10, read_timeout=30, write_timeout=30, autocommit=True, **kw)


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def test_login_and_queries(sluice, pg, maria):
    s = start(sluice, pg, maria)
    with connect(s) as c:
        assert one(c, "SELECT 1 + 1") == (2,)
        assert one(c, "SELECT DATABASE()") == ("mydb",)
        assert one(c, "SELECT CURRENT_USER()")[0].startswith("sluice_test@")
        with c.cursor() as cur:
            cur.execute("SELECT seq FROM seq_1_to_1000")
            assert [r[0] for r in cur.fetchall()] == list(range(1, 1001))


def test_wrong_password_is_refused(sluice, pg, maria):
    s = start(sluice, pg, maria)
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(s, password="wrong")
    assert e.value.args[0] == 1045
    assert "Access denied for user 'sluice_test'" in e.value.args[1]
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(s, user="nobody")
    assert e.value.args[0] == 1045


def test_unknown_database_and_postgres_entries(sluice, pg, maria):
    """MySQL clients see only protocol=mysql entries; PostgreSQL clients
    only the others."""
    s = start(sluice, pg, maria)
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(s, db="nosuchdb")
    assert e.value.args[0] == 1049
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(s, db="sluicedb")  # a PostgreSQL entry
    assert e.value.args[0] == 1049
    r = s.psql("-c", "select 1", db="mydb")
    assert r.returncode != 0 and "no such database" in r.stderr
    with s.connect() as c:  # PostgreSQL still works beside it
        assert c.execute("select 42").fetchone() == (42,)


def test_no_database_given_is_refused_clearly(sluice, pg, maria):
    """Without a database a client logs in (it may KILL, test_mysql_kill.py)
    but its queries are refused with 1046."""
    s = start(sluice, pg, maria)
    with pymysql.connect(host="127.0.0.1", port=s.myport, user="sluice_test", password="test_pw",
                         connect_timeout=10, autocommit=True) as c:
        with pytest.raises(pymysql.err.MySQLError) as e:
            one(c, "SELECT 1")
        assert e.value.args[0] == 1046 and "No database selected" in e.value.args[1]


def test_transaction_mode_shares_few_servers(sluice, pg, maria):
    s = start(sluice, pg, maria, size=2)
    conns = [connect(s) for _ in range(8)]
    try:
        ids = set()
        for _ in range(3):
            for c in conns:
                ids.add(one(c, "SELECT CONNECTION_ID()")[0])
        assert len(ids) <= 2, ids
    finally:
        for c in conns:
            c.close()


def test_transaction_keeps_its_server(sluice, pg, maria):
    s = start(sluice, pg, maria, size=2)
    maria.sql("CREATE TABLE IF NOT EXISTS t_tx (id INT PRIMARY KEY, v INT) ENGINE=InnoDB", db="mydb")
    maria.sql("DELETE FROM t_tx", db="mydb")
    with connect(s) as a, connect(s) as b:
        a.begin()
        with a.cursor() as cur:
            cur.execute("INSERT INTO t_tx VALUES (1, 10)")
        first = one(a, "SELECT CONNECTION_ID()")[0]
        # b runs meanwhile on the other server and does not see a's row
        assert one(b, "SELECT COUNT(*) FROM t_tx") == (0,)
        assert one(a, "SELECT CONNECTION_ID()")[0] == first
        assert one(a, "SELECT COUNT(*) FROM t_tx") == (1,)
        a.commit()
        assert one(b, "SELECT COUNT(*) FROM t_tx") == (1,)
        a.begin()
        with a.cursor() as cur:
            cur.execute("UPDATE t_tx SET v = 11 WHERE id = 1")
        a.rollback()
        assert one(b, "SELECT v FROM t_tx WHERE id = 1") == (10,)


def test_more_clients_than_servers_wait_their_turn(sluice, pg, maria):
    s = start(sluice, pg, maria, size=1)
    errors, done = [], []

    def work(i):
        try:
            with connect(s) as c:
                for k in range(5):
                    assert one(c, "SELECT %s + %s", (i, k)) == (i + k,)
                done.append(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(done) == list(range(10))


def test_database_switch_follows_the_client(sluice, pg, maria):
    """COM_INIT_DB and USE move the client; the next transaction, on
    whichever server, runs in the client's database."""
    s = start(sluice, pg, maria, size=1)
    with connect(s) as a, connect(s) as b:
        a.select_db("otherdb")  # COM_INIT_DB
        assert one(a, "SELECT DATABASE()") == ("otherdb",)
        assert one(b, "SELECT DATABASE()") == ("mydb",)  # same server, switched back
        with a.cursor() as cur:
            cur.execute("USE mydb")
        assert one(a, "SELECT DATABASE()") == ("mydb",)
        a.select_db("otherdb")
        assert one(b, "SELECT DATABASE()") == ("mydb",)
        assert one(a, "SELECT DATABASE()") == ("otherdb",)
        with pytest.raises(pymysql.err.OperationalError) as e:
            a.select_db("no_such_schema")
        assert e.value.args[0] == 1049
        assert one(a, "SELECT DATABASE()") == ("otherdb",)


def test_autocommit_follows_the_client_without_pinning(sluice, pg, maria):
    """PyMySQL's default (autocommit off) sends SET AUTOCOMMIT = 0 at
    connect: each client keeps its autocommit on whichever server it
    gets, its transactions end at COMMIT, and servers are still shared."""
    s = start(sluice, pg, maria, size=1)
    maria.sql("CREATE TABLE IF NOT EXISTS t_ac (id INT PRIMARY KEY) ENGINE=InnoDB", db="mydb")
    maria.sql("DELETE FROM t_ac", db="mydb")
    off = [pymysql.connect(host="127.0.0.1", port=s.myport, user="sluice_test", password="test_pw",
                           database="mydb", connect_timeout=10, read_timeout=30) for _ in range(3)]
    on = connect(s)
    try:
        ids = set()
        for i, c in enumerate(off):
            assert one(c, "SELECT @@autocommit") == (0,)
            with c.cursor() as cur:
                cur.execute("INSERT INTO t_ac VALUES (%s)", (i,))
            ids.add(one(c, "SELECT CONNECTION_ID()")[0])
            c.commit()
            assert one(on, "SELECT @@autocommit") == (1,)  # the same server, set back
            assert one(on, "SELECT COUNT(*) FROM t_ac") == (i + 1,)
        assert len(ids) == 1  # one server for everybody: nobody pinned
        with off[0].cursor() as cur:
            cur.execute("INSERT INTO t_ac VALUES (99)")
        off[0].rollback()
        assert one(on, "SELECT COUNT(*) FROM t_ac WHERE id = 99") == (0,)
        with on.cursor() as cur:
            cur.execute("SET autocommit = 0")
        assert one(on, "SELECT @@autocommit") == (0,)
        on.commit()
        assert one(off[1], "SELECT @@autocommit") == (0,)
        off[1].commit()
    finally:
        for c in off + [on]:
            c.close()


def test_session_state_pins_the_client(sluice, pg, maria):
    """User variables and SET live in the session: the client keeps its
    server, and another client never sees them."""
    s = start(sluice, pg, maria, size=1)
    with connect(s) as a:
        with a.cursor() as cur:
            cur.execute("SET @x := 42")
        assert one(a, "SELECT @x") == (42,)
        assert one(a, "SELECT @x") == (42,)
    with connect(s) as b:  # the pinned server was reset before b got it
        assert one(b, "SELECT @x") == (None,)


def test_session_mode_keeps_one_server_and_resets_it(sluice, pg, maria):
    s = start(sluice, pg, maria, mode="session", size=1)
    with connect(s) as a:
        first = one(a, "SELECT CONNECTION_ID()")[0]
        with a.cursor() as cur:
            cur.execute("SET @y = 'kept'")
            cur.execute("SET SESSION sql_mode = 'ANSI'")
        assert one(a, "SELECT CONNECTION_ID()")[0] == first
        assert one(a, "SELECT @y") == ("kept",)
    with connect(s) as b:
        assert one(b, "SELECT CONNECTION_ID()")[0] == first  # reused
        assert one(b, "SELECT @y") == (None,)
        assert "ANSI" not in one(b, "SELECT @@SESSION.sql_mode")[0]
        assert one(b, "SELECT DATABASE()") == ("mydb",)


def test_kill_and_unsupported_commands_are_refused_clearly(sluice, pg, maria):
    """A KILL sluice cannot map (a query id; KILL itself is
    test_mysql_kill.py's): refused, and the connection stays usable."""
    s = start(sluice, pg, maria)
    with connect(s) as c:
        with pytest.raises(pymysql.err.NotSupportedError) as e:  # what 1235 maps to
            one(c, "KILL QUERY ID 1")
        assert e.value.args[0] == 1235 and "not supported" in e.value.args[1]
        assert one(c, "SELECT 5") == (5,)


def test_errors_keep_the_connection_usable(sluice, pg, maria):
    s = start(sluice, pg, maria)
    with connect(s) as c:
        with pytest.raises(pymysql.err.ProgrammingError):
            one(c, "SELEC 1")
        with pytest.raises(pymysql.err.ProgrammingError) as e:
            one(c, "SELECT * FROM no_such_table")
        assert e.value.args[0] == 1146
        assert one(c, "SELECT 7") == (7,)


def test_multi_statements_and_results(sluice, pg, maria):
    s = start(sluice, pg, maria)
    with connect(s, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS) as c:
        with c.cursor() as cur:
            cur.execute("SELECT 1; SELECT 2, 3; DO 0")
            assert cur.fetchall() == ((1,),)
            assert cur.nextset()
            assert cur.fetchall() == ((2, 3),)
        assert one(c, "SELECT 4") == (4,)


def test_rows_longer_than_the_buffer(sluice, pg, maria):
    s = start(sluice, pg, maria)
    with connect(s) as c:
        with c.cursor() as cur:
            cur.execute("SELECT REPEAT('x', 300000), seq FROM seq_1_to_20")
            rows = cur.fetchall()
        assert len(rows) == 20 and all(len(r[0]) == 300000 for r in rows)
        big = one(c, "SELECT LENGTH(%s)", ("y" * 200000,))
        assert big == (200000,)


def test_mariadb_command_line_client(sluice, pg, maria):
    s = start(sluice, pg, maria)
    r = subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(s.myport), "-u", "sluice_test",
                        "-ptest_pw", "mydb", "-N", "-B", "-e", "SELECT 40 + 2; SELECT DATABASE()"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    assert r.stdout.split() == ["42", "mydb"]


def test_show_clients_and_servers_list_mysql_connections(sluice, pg, maria):
    s = start(sluice, pg, maria, extra={"admin_users": "sluice_test"})
    with connect(s) as c:
        assert one(c, "SELECT 1") == (1,)
        with s.connect(db="sluice", user="sluice_test") as adm:
            clients = adm.execute("SHOW CLIENTS").fetchall()
            assert any(r[2] == "mydb" for r in clients)
            pools = adm.execute("SHOW POOLS").fetchall()
            assert any(r[0] == "mydb" for r in pools)


def test_socket_activation_of_the_mysql_port(sluice, pg, maria):
    """systemd passes both ports (systemd-socket-activate): sluice takes
    mysql_listen_port's socket from it and serves MySQL clients there."""
    import os
    import shutil
    import signal
    from pathlib import Path

    import conftest
    activate = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"
    if not os.path.exists(activate):
        pytest.skip("systemd-socket-activate not installed")
    myport = free_port()
    d, ini, port = sluice.write_config({"mysql_listen_port": myport, "pool_mode": "transaction"},
                                       databases={"sluicedb": pg.db_line("sluicedb"), "mydb": maria.db_line("mydb")})
    logpath = Path(d) / "activated.log"
    cmd = [activate, "-l", f"127.0.0.1:{port}", "-l", f"127.0.0.1:{myport}"]
    for k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            cmd += ["-E", k]
    cmd += [conftest.default_bin(), str(ini)]
    with open(logpath, "wb") as logf:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd=str(d),
                             start_new_session=True, preexec_fn=conftest._die_with_parent)
    conftest._live_procs.add(p)
    try:
        deadline = time.monotonic() + 10
        while logpath.read_text().count("Listening on") < 2:
            assert p.poll() is None and time.monotonic() < deadline, logpath.read_text()
            time.sleep(0.05)
        s = type("Activated", (), {"myport": myport})()
        with connect(s) as c:  # the first connection makes it exec sluice
            assert one(c, "SELECT 'activated'") == ("activated",)
        log = logpath.read_text()
        assert f"listening on 127.0.0.1:{myport} (from systemd)" in log, log
        assert "cannot listen" not in log, log
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        conftest._live_procs.discard(p)
    assert p.returncode == 0, logpath.read_text()[-3000:]
