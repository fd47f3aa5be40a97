"""Session system variables of MySQL clients in transaction mode (issue
17): SET NAMES, SET CHARACTER SET, sql_mode, time_zone and other SET
SESSION variables are remembered per client and restored on whichever
server it gets, without pinning it; another client never sees them. A
MariaDB 10.11 started by the harness, real pymysql clients and the mariadb
command-line client, few server connections for many clients so that
servers are really shared."""

import subprocess
import threading

import pytest

pymysql = pytest.importorskip("pymysql")

from conftest import is_pgbouncer_compat  # noqa: E402
from test_mysql import connect, one, start  # noqa: E402

pytestmark = pytest.mark.skipif(is_pgbouncer_compat(), reason="PgBouncer has no MySQL listener")

STATE = "SELECT @@time_zone, @@sql_mode, @@character_set_client, @@collation_connection, CONNECTION_ID()"


def execute(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)


def test_each_client_sees_its_own_variables_on_one_shared_server(sluice, pg, maria):
    """Client A sets its character set, sql_mode and time zone, client B
    does not: over a pool of one server they take turns on the same
    server session and each sees its own values (A is not pinned: B
    would wait for the server otherwise)."""
    s = start(sluice, pg, maria, size=1, extra={"query_wait_timeout": 10})
    with connect(s) as a, connect(s) as b:
        b0 = one(b, STATE)
        execute(a, "SET NAMES latin1")
        execute(a, "SET sql_mode = 'ANSI_QUOTES'")
        execute(a, "SET time_zone = '+05:00'")
        ids = set()
        for _ in range(3):
            ra = one(a, STATE)
            assert ra[:4] == ("+05:00", "ANSI_QUOTES", "latin1", "latin1_swedish_ci")
            rb = one(b, STATE)
            assert rb[:4] == b0[:4]
            assert rb[2] == "utf8mb4" and rb[1] != "ANSI_QUOTES" and rb[0] == "SYSTEM"
            ids |= {ra[4], rb[4]}
        assert len(ids) == 1  # one server session served both, in turns
        # ANSI_QUOTES really is A's: "x" is an identifier for A only.
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(a, 'SELECT "x"')
        assert e.value.args[0] == 1054
        assert one(b, 'SELECT "x"') == ("x",)


def test_set_forms_lists_and_defaults(sluice, pg, maria):
    """@@session.x, SESSION, LOCAL, several variables in one SET, SET
    CHARACTER SET, NAMES ... COLLATE, := and DEFAULT."""
    s = start(sluice, pg, maria, size=1, extra={"query_wait_timeout": 10})
    with connect(s) as a, connect(s) as b:
        execute(a, "SET @@session.time_zone = '+01:00', SESSION div_precision_increment = 9, "
                   "@@local.max_join_size := 1000000")
        execute(a, "SET NAMES utf8mb4 COLLATE utf8mb4_bin")
        assert one(b, "SELECT @@div_precision_increment, @@collation_connection") == (4, "utf8mb4_general_ci")
        assert one(a, "SELECT @@time_zone, @@div_precision_increment, @@max_join_size, @@collation_connection") \
            == ("+01:00", 9, 1000000, "utf8mb4_bin")
        assert str(one(a, "SELECT 1/3")[0]) == "0.333333333"
        execute(a, "SET CHARACTER SET latin1, div_precision_increment = DEFAULT")
        assert one(b, "SELECT @@character_set_results, @@time_zone") == ("utf8mb4", "SYSTEM")
        assert one(a, "SELECT @@character_set_client, @@character_set_results, @@div_precision_increment, "
                      "@@time_zone") == ("latin1", "latin1", 4, "+01:00")
        execute(a, "SET time_zone = DEFAULT, NAMES utf8mb4")
        assert one(a, "SELECT @@time_zone, @@character_set_client") == ("SYSTEM", "utf8mb4")
        assert one(b, "SELECT @@max_join_size") != (1000000,)
        assert one(a, "SELECT @@max_join_size") == (1000000,)


def test_a_refused_set_changes_nothing_and_does_not_pin(sluice, pg, maria):
    s = start(sluice, pg, maria, size=1, extra={"query_wait_timeout": 10})
    with connect(s) as a, connect(s) as b:
        execute(a, "SET time_zone = '+03:00'")
        with pytest.raises(pymysql.err.DatabaseError) as e:
            execute(a, "SET time_zone = '+04:00', no_such_variable = 1")
        assert e.value.args[0] == 1193  # ER_UNKNOWN_SYSTEM_VARIABLE
        with pytest.raises(pymysql.err.DatabaseError):
            execute(a, "SET time_zone = 'Not/A_Zone'")
        assert one(b, "SELECT @@time_zone") == ("SYSTEM",)
        assert one(a, "SELECT @@time_zone") == ("+03:00",)
        assert one(a, "SELECT CONNECTION_ID()") == one(b, "SELECT CONNECTION_ID()")


def test_sets_sluice_does_not_follow_still_pin(sluice, pg, maria):
    """A user variable stays on its server: the client keeps it (pinned)
    and the other clients get the other server."""
    s = start(sluice, pg, maria, size=2, extra={"query_wait_timeout": 10})
    with connect(s) as a, connect(s) as b, connect(s) as c:
        execute(a, "SET @keep = 1, sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
        mine = one(a, "SELECT CONNECTION_ID()")[0]
        for _ in range(3):
            assert one(b, "SELECT CONNECTION_ID()")[0] != mine
            assert "ANSI_QUOTES" not in one(c, "SELECT @@sql_mode")[0]
            assert one(a, "SELECT CONNECTION_ID()")[0] == mine
        assert "ANSI_QUOTES" in one(a, "SELECT @@sql_mode")[0]


def test_a_set_with_expressions_follows_the_client(sluice, pg, maria):
    """SET var = <expression> (Connector/J sends sql_mode =
    CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES') at connect): sluice asks the
    server for the values it gave and restores them like literals."""
    s = start(sluice, pg, maria, size=1, extra={"query_wait_timeout": 10})
    with connect(s) as a, connect(s) as b:
        base = one(b, "SELECT @@sql_mode")[0]
        execute(a, "SET autocommit=1, sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES'), "
                   "time_zone = CONCAT('+0', 3 + 1, ':00')")
        want = set(base.split(",")) | {"ANSI_QUOTES"} if base else {"ANSI_QUOTES"}
        for _ in range(3):
            mode, zone = one(a, "SELECT @@sql_mode, @@time_zone")
            assert (set(mode.split(",")), zone) == (want, "+04:00")
            assert one(b, "SELECT @@sql_mode, @@time_zone") == (base, "SYSTEM")
        # one server for both: a is not pinned
        assert one(a, "SELECT CONNECTION_ID()") == one(b, "SELECT CONNECTION_ID()")


def test_many_clients_each_keep_their_own_zone_over_two_servers(sluice, pg, maria):
    """Eight clients, each with its own time zone, sql_mode and character
    set, over two servers: every answer shows the client's own values."""
    s = start(sluice, pg, maria, size=2, extra={"query_wait_timeout": 30})
    errors = []
    ids = set()
    lock = threading.Lock()

    def work(i):
        try:
            with connect(s) as conn:
                zone = f"+0{i}:00"
                mode = "ANSI_QUOTES" if i % 2 else "NO_ZERO_DATE"
                cs = "latin1" if i % 3 == 0 else "utf8mb4"
                execute(conn, f"SET time_zone = '{zone}', sql_mode = '{mode}'")
                if i % 3 == 0:
                    execute(conn, "SET NAMES latin1")
                for _ in range(25):
                    r = one(conn, STATE)
                    if r[:3] != (zone, mode, cs):
                        errors.append((i, r))
                    with lock:
                        ids.add(r[4])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(ids) <= 2  # shared: nobody pinned its server


def test_a_new_client_gets_a_clean_session(sluice, pg, maria):
    """A client that leaves its variables set leaves them to nobody."""
    s = start(sluice, pg, maria, size=1, extra={"query_wait_timeout": 10})
    with connect(s) as a:
        execute(a, "SET NAMES latin1, time_zone = '-02:00', sql_mode = 'ANSI', wait_timeout = 3600")
        first = one(a, "SELECT CONNECTION_ID()")[0]
    with connect(s) as b:
        r = one(b, "SELECT @@character_set_client, @@character_set_results, @@collation_connection, "
                   "@@time_zone, @@sql_mode = @@global.sql_mode, @@wait_timeout = @@global.wait_timeout, "
                   "CONNECTION_ID()")
        assert r == ("utf8mb4", "utf8mb4", "utf8mb4_general_ci", "SYSTEM", 1, 1, first)


def test_mariadb_command_line_client(sluice, pg, maria):
    """The mariadb CLI sends each statement on its own: a SET there is
    followed like pymysql's, and the CLI's session keeps it."""
    s = start(sluice, pg, maria, size=1, extra={"query_wait_timeout": 10})
    with connect(s) as other:
        script = ("SET time_zone = '+07:00';\n"
                  "SELECT @@time_zone;\n"
                  "SELECT 1;\n"
                  "SELECT @@time_zone;\n")
        proc = subprocess.Popen(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{s.myport}", "-usluice_test",
                                 "-ptest_pw", "-N", "-B", "mydb"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(script, timeout=60)
        assert proc.returncode == 0, out
        assert out.split() == ["+07:00", "1", "+07:00"]
        assert one(other, "SELECT @@time_zone") == ("SYSTEM",)


SESSION_TRACK = 1 << 23  # CLIENT_SESSION_TRACK


def test_session_track_clients_share_servers_and_a_procedure_pins(sluice, pg, maria):
    """Clients that asked for SESSION_TRACK get OK packets that list the
    variables a statement changed: a SET sluice read is followed as for
    any client, while a change sluice did not read (a procedure that sets
    time_zone) pins the client to its server, which keeps the change."""
    maria.sql("DROP PROCEDURE IF EXISTS set_zone; CREATE PROCEDURE set_zone() SET SESSION time_zone = '+09:00'",
              db="mydb")
    s = start(sluice, pg, maria, size=2, extra={"query_wait_timeout": 10})
    with connect(s, client_flag=SESSION_TRACK) as a, connect(s, client_flag=SESSION_TRACK) as b, \
            connect(s, client_flag=SESSION_TRACK) as c:
        execute(a, "SET time_zone = '+02:00'")
        execute(b, "SET NAMES latin1")
        for _ in range(3):
            assert one(a, "SELECT @@time_zone, @@character_set_client") == ("+02:00", "utf8mb4")
            assert one(b, "SELECT @@time_zone, @@character_set_client") == ("SYSTEM", "latin1")
        execute(c, "CALL set_zone()")
        mine = one(c, "SELECT CONNECTION_ID()")[0]
        for _ in range(3):
            assert one(c, "SELECT @@time_zone, CONNECTION_ID()") == ("+09:00", mine)
            ra = one(a, "SELECT @@time_zone, CONNECTION_ID()")
            rb = one(b, "SELECT @@time_zone, CONNECTION_ID()")
            assert ra[0] == "+02:00" and rb[0] == "SYSTEM"
            assert mine not in (ra[1], rb[1])  # c keeps its server to itself


def reset_connection(conn):
    """COM_RESET_CONNECTION (0x1f), as mysql_reset_connection() sends it;
    PyMySQL has no public call for it."""
    conn._execute_command(0x1F, b"")
    conn._read_ok_packet()


def test_reset_connection_forgets_the_clients_variables(sluice, pg, maria):
    s = start(sluice, pg, maria, size=1, extra={"query_wait_timeout": 10})
    with connect(s) as a, connect(s) as b:
        execute(a, "SET NAMES latin1, time_zone = '+05:00'")
        reset_connection(a)
        assert one(a, "SELECT @@character_set_client, @@time_zone") == ("utf8mb4", "SYSTEM")
        execute(a, "SET sql_mode = 'ANSI_QUOTES'")
        assert one(b, "SELECT @@character_set_client, @@time_zone, @@sql_mode = @@global.sql_mode") \
            == ("utf8mb4", "SYSTEM", 1)
        assert one(a, "SELECT @@character_set_client, @@time_zone, @@sql_mode") \
            == ("utf8mb4", "SYSTEM", "ANSI_QUOTES")
        assert one(a, "SELECT CONNECTION_ID()") == one(b, "SELECT CONNECTION_ID()")


def test_show_pins_says_why_a_client_keeps_its_server(sluice, pg, maria):
    """SHOW PINS on the console: one row per pinned client with the
    reason; a client whose variables sluice follows is not there."""
    s = start(sluice, pg, maria, size=3, extra={"admin_users": "sluice_test", "query_wait_timeout": 10})
    with connect(s) as a, connect(s) as b, connect(s) as c:
        execute(a, "SET @x = 1")
        execute(b, "SET time_zone = '+05:00'")
        execute(c, "SELECT GET_LOCK('sluice_pin_test', 5)")
        with s.connect(db="sluice", user="sluice_test") as adm:
            cur = adm.execute("SHOW PINS")
            cols = [d[0] for d in cur.description]
            assert cols == ["id", "user", "database", "protocol", "link", "reason"]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        reasons = sorted(r["reason"] for r in rows if r["database"] == "mydb")
        assert reasons == ["GET_LOCK (a named lock)", "user variable (@name)"], rows
        assert all(r["protocol"] == "mysql" and r["link"] for r in rows)
        assert one(b, "SELECT @@time_zone") == ("+05:00",)
