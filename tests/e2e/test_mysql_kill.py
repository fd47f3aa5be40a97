"""KILL through sluice (issue 17, "Cancel"): a MySQL client names the
connection id of sluice's greeting (pymysql's thread_id(), the mariadb
CLI's), and sluice turns `KILL QUERY <id>` into a KILL QUERY of the server
thread that runs the target's command; `KILL <id>` / COM_PROCESS_KILL close
the target client. Against a real MariaDB (mysql_helpers.py)."""

import subprocess
import threading
import time

import pytest

pymysql = pytest.importorskip("pymysql")

from conftest import DEFAULT_USERLIST, free_port, is_pgbouncer_compat  # noqa: E402

pytestmark = pytest.mark.skipif(is_pgbouncer_compat(), reason="PgBouncer has no MySQL listener")

LOST = (2006, 2013)  # CR_SERVER_GONE_ERROR, CR_SERVER_LOST


def start(sluice, pg, maria, mode="transaction", size=2, extra=None, userlist=None, workers=2):
    myport = free_port()
    # adaptive_workers = 0: clients spread over both workers, so that a
    # KILL often crosses from one to the other.
    main = {"mysql_listen_port": myport, "pool_mode": mode, "default_pool_size": size, "adaptive_workers": 0}
    main.update(extra or {})
    # Both sluice users log in to MariaDB as sluice_test: the server would
    # let one kill the other's thread; sluice must not.
    dbs = {"sluicedb": pg.db_line("sluicedb"),
           "mydb": maria.db_line("mydb", user="sluice_test", password="test_pw")}
    s = sluice(main, databases=dbs, userlist=userlist, workers=workers)
    s.myport = myport
    return s


def connect(s, user="sluice_test", password="test_pw", **kw):
    return pymysql.connect(host="127.0.0.1", port=s.myport, user=user, password=password, database="mydb",
                           connect_timeout=10, read_timeout=40, write_timeout=40, autocommit=True, **kw)


def one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()


class Sleeper:
    """A client running SELECT SLEEP(30) in a thread; result() is what it got."""

    def __init__(self, conn, sql="SELECT SLEEP(30)"):
        self.conn = conn
        self.out = {}
        self.t = threading.Thread(target=self._run, args=(sql,), daemon=True)
        self.t.start()

    def _run(self, sql):
        try:
            self.out["rows"] = one(self.conn, sql)
        except pymysql.err.MySQLError as e:
            self.out["error"] = e.args

    def result(self):
        self.t.join(45)
        assert not self.t.is_alive(), "the sleeping query was not interrupted"
        return self.out


def wait_sleeping(maria, n=1):
    """Until MariaDB shows n sessions in SLEEP (the query really runs)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = maria.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'")
        if int(out.strip()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the SLEEP never started on the server")


def assert_interrupted(out):
    # MariaDB answers a killed SELECT SLEEP with ER_QUERY_INTERRUPTED.
    assert out.get("error", (None,))[0] == 1317, out


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_query_from_another_connection(sluice, pg, maria, workers):
    """pymysql's thread_id() (sluice's greeting) names the client; the sleep
    ends with 1317, the killer gets OK, the killed client runs on, and its
    server went back to the pool clean (transaction mode, one server). With
    two workers, four killers: most likely some live on the other worker."""
    s = start(sluice, pg, maria, size=1, workers=workers)
    victim = connect(s)
    killers = [connect(s) for _ in range(4 if workers > 1 else 1)]
    try:
        assert one(victim, "SELECT 1") == (1,)
        for killer in killers:
            sl = Sleeper(victim)
            wait_sleeping(maria)
            with killer.cursor() as cur:
                cur.execute("KILL QUERY %d" % victim.thread_id())
            assert_interrupted(sl.result())
            assert one(victim, "SELECT 2") == (2,)
            # The one server is free again: the killer gets it too.
            assert one(killer, "SELECT 3") == (3,)
            assert one(victim, "SELECT @@in_transaction") == (0,)
    finally:
        victim.close()
        for killer in killers:
            killer.close()


def test_kill_query_with_the_mariadb_cli(sluice, pg, maria):
    s = start(sluice, pg, maria)
    victim = connect(s)
    try:
        sl = Sleeper(victim)
        wait_sleeping(maria)
        r = subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(s.myport), "-u", "sluice_test",
                            "-ptest_pw", "mydb", "-e", "KILL QUERY %d" % victim.thread_id()],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        assert r.returncode == 0, r.stdout
        assert_interrupted(sl.result())
        assert one(victim, "SELECT 5") == (5,)
    finally:
        victim.close()


def test_ctrl_c_in_the_mariadb_cli(sluice, pg, maria):
    """The CLI's Ctrl-C connects anew and sends KILL QUERY with the id of
    its handshake: through sluice it interrupts the CLI's own query."""
    import signal
    s = start(sluice, pg, maria)
    p = subprocess.Popen(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(s.myport), "-u", "sluice_test",
                          "-ptest_pw", "mydb", "-N", "-B", "-e", "SELECT SLEEP(30); SELECT 'after'"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_sleeping(maria)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "query killed" in out or "1317" in out, out
    assert "Query execution was interrupted" in out, out


def test_a_connection_without_database_can_only_kill(sluice, pg, maria):
    """What the CLI's Ctrl-C does: log in without a database, KILL QUERY."""
    s = start(sluice, pg, maria)
    victim = connect(s)
    bare = pymysql.connect(host="127.0.0.1", port=s.myport, user="sluice_test", password="test_pw",
                           connect_timeout=10, read_timeout=30, autocommit=True)
    try:
        for sql in ("SELECT 1", "USE mydb"):
            with pytest.raises(pymysql.err.MySQLError) as e:
                one(bare, sql)
            assert e.value.args[0] == 1046 and "only KILL" in e.value.args[1]
        bare.ping(reconnect=False)
        sl = Sleeper(victim)
        wait_sleeping(maria)
        with bare.cursor() as cur:
            cur.execute("KILL QUERY %d" % victim.thread_id())
        assert_interrupted(sl.result())
        assert one(victim, "SELECT 1") == (1,)
    finally:
        victim.close()
        bare.close()


def test_kill_query_keeps_a_transaction_and_session_mode(sluice, pg, maria):
    """In a transaction (and in session mode) the killed client keeps its
    server: the statement is interrupted, the transaction goes on."""
    s = start(sluice, pg, maria, mode="session")
    victim = connect(s)
    killer = connect(s)
    try:
        server_id = one(victim, "SELECT CONNECTION_ID()")[0]
        victim.begin()
        sl = Sleeper(victim)
        wait_sleeping(maria)
        with killer.cursor() as cur:
            cur.execute("KILL QUERY %d" % victim.thread_id())
        assert_interrupted(sl.result())
        assert one(victim, "SELECT @@in_transaction") == (1,)
        victim.rollback()
        assert one(victim, "SELECT CONNECTION_ID()") == (server_id,)
    finally:
        victim.close()
        killer.close()


def test_kill_query_of_an_idle_client_is_a_no_op(sluice, pg, maria):
    s = start(sluice, pg, maria)
    with connect(s) as victim, connect(s) as killer:
        assert one(victim, "SELECT 1") == (1,)
        with killer.cursor() as cur:
            cur.execute("KILL QUERY %d" % victim.thread_id())
        assert one(victim, "SELECT 6") == (6,)
        assert one(killer, "SELECT 7") == (7,)


def test_kill_of_another_users_client_is_refused(sluice, pg, maria):
    userlist = dict(DEFAULT_USERLIST, other_user="other_pw")
    s = start(sluice, pg, maria, userlist=userlist)
    victim = connect(s)
    other = connect(s, user="other_user", password="other_pw")
    try:
        sl = Sleeper(victim, "SELECT SLEEP(3)")
        wait_sleeping(maria)
        for sql in ("KILL QUERY %d", "KILL %d", "KILL CONNECTION %d"):
            with pytest.raises(pymysql.err.MySQLError) as e:
                one(other, sql % victim.thread_id())
            assert e.value.args == (1095, "You are not owner of thread %d" % victim.thread_id())
        with pytest.raises(pymysql.err.MySQLError) as e:
            other.kill(victim.thread_id())
        assert e.value.args[0] == 1095
        # The sleep ran to its end, untouched.
        assert sl.result() == {"rows": (0,)}
        assert one(victim, "SELECT 8") == (8,)
        assert one(other, "SELECT 9") == (9,)
    finally:
        victim.close()
        other.close()


def test_unknown_ids_and_unsupported_forms(sluice, pg, maria):
    s = start(sluice, pg, maria)
    with connect(s) as c:
        unknown = (c.thread_id() ^ 0x40000000) or 5
        for sql in ("KILL QUERY %d" % unknown, "KILL %d" % unknown, "kill connection %d;" % unknown,
                    "KILL 99999999999"):
            with pytest.raises(pymysql.err.MySQLError) as e:
                one(c, sql)
            assert e.value.args[0] == 1094 and e.value.args[1].startswith("Unknown thread id: "), sql
        with pytest.raises(pymysql.err.MySQLError) as e:
            c.kill(unknown)
        assert e.value.args == (1094, "Unknown thread id: %d" % unknown)
        for sql in ("KILL QUERY ID 5", "KILL USER sluice_test", "KILL @x", "KILL 5; SELECT 1", "KILL"):
            with pytest.raises(pymysql.err.MySQLError) as e:
                one(c, sql)
            assert e.value.args[0] == 1235 and "sluice" in e.value.args[1], sql
        assert one(c, "SELECT 10") == (10,)


def test_kill_own_query_and_connection(sluice, pg, maria):
    """As on the server: KILL QUERY of oneself is 1317, KILL of oneself
    1927 and the connection closes; CONNECTION_ID() in KILL means the
    client's own (sluice's) id."""
    s = start(sluice, pg, maria)
    with connect(s) as c:
        for sql in ("KILL QUERY %d" % c.thread_id(), "KILL QUERY CONNECTION_ID()"):
            with pytest.raises(pymysql.err.MySQLError) as e:
                one(c, sql)
            assert e.value.args[0] == 1317
        assert one(c, "SELECT 11") == (11,)
        with pytest.raises(pymysql.err.MySQLError) as e:
            one(c, "KILL CONNECTION_ID()")
        assert e.value.args[0] == 1927
        with pytest.raises(pymysql.err.MySQLError) as e:
            one(c, "SELECT 1")
        assert e.value.args[0] in LOST


@pytest.mark.parametrize("how", ["statement", "com_process_kill"])
def test_kill_connection_closes_the_target(sluice, pg, maria, how):
    """KILL CONNECTION (and COM_PROCESS_KILL) closes the target client,
    idle or mid-query; the servers stay usable for everyone else."""
    s = start(sluice, pg, maria, size=1)
    idle = connect(s)
    busy = connect(s)
    killer = connect(s)
    try:
        assert one(idle, "SELECT 1") == (1,)
        sl = Sleeper(busy)
        wait_sleeping(maria)
        for victim in (idle, busy):
            if how == "statement":
                one(killer, "KILL CONNECTION %d" % victim.thread_id())
            else:
                killer.kill(victim.thread_id())
        out = sl.result()
        assert out.get("error", (None,))[0] in LOST, out
        with pytest.raises(pymysql.err.MySQLError) as e:
            one(idle, "SELECT 1")
        assert e.value.args[0] in LOST
        # The SLEEP's server thread was stopped too, and the pool serves on.
        assert one(killer, "SELECT 12") == (12,)
        with connect(s) as again:
            assert one(again, "SELECT 13") == (13,)
    finally:
        for c in (idle, busy, killer):
            try:
                c.close()
            except Exception:
                pass


def test_kill_query_not_delivered_is_an_error(sluice, pg, maria):
    """The KILL goes on a login of its own as the pool's server user: when
    the server refuses that login, the killer hears why (and the query runs
    on); it never waits longer than cancel_wait_timeout."""
    s = start(sluice, pg, maria, extra={"cancel_wait_timeout": 2})
    victim = connect(s)
    killer = connect(s)
    try:
        sl = Sleeper(victim, "SELECT SLEEP(6)")
        wait_sleeping(maria)
        # Refuse the pool's user new logins for a moment: the KILL cannot
        # be delivered, the killer hears why.
        maria.sql("ALTER USER 'sluice_test'@'%' ACCOUNT LOCK")
        try:
            with pytest.raises(pymysql.err.MySQLError) as e:
                one(killer, "KILL QUERY %d" % victim.thread_id())
        finally:
            maria.sql("ALTER USER 'sluice_test'@'%' ACCOUNT UNLOCK")
        assert e.value.args[0] == 1105 and "KILL not delivered" in e.value.args[1]
        assert sl.result() == {"rows": (0,)}
        assert one(victim, "SELECT 14") == (14,)
        assert one(killer, "SELECT 15") == (15,)
    finally:
        victim.close()
        killer.close()


def test_kill_query_the_server_does_not_take_in_time(sluice, pg, maria):
    """A server that does not answer the KILL's login (stopped with
    SIGSTOP): the killer gets an error after cancel_wait_timeout instead of
    waiting, and the query it meant runs on."""
    import os
    import signal
    s = start(sluice, pg, maria, extra={"cancel_wait_timeout": 1})
    victim = connect(s)
    killer = connect(s)
    try:
        sl = Sleeper(victim, "SELECT SLEEP(3)")
        wait_sleeping(maria)
        os.kill(maria.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(pymysql.err.MySQLError) as e:
                one(killer, "KILL QUERY %d" % victim.thread_id())
        finally:
            os.kill(maria.proc.pid, signal.SIGCONT)
        assert e.value.args[0] == 1105 and "cancel_wait_timeout" in e.value.args[1], e.value.args
        assert sl.result() == {"rows": (0,)}
        assert one(victim, "SELECT 16") == (16,)
        assert one(killer, "SELECT 17") == (17,)
    finally:
        victim.close()
        killer.close()
