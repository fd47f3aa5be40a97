"""Admin console parity with PgBouncer 1.25 (issue 24).

What PgBouncer 1.25 documents and does, checked on sluice:
- SHOW CLIENTS / SERVERS / STATS / STATS_TOTALS / STATS_AVERAGES / USERS /
  DATABASES / POOLS send 1.25's columns in 1.25's order (tools such as
  pgbouncer_exporter and pgbouncer_fdw read rows by position);
- SHOW DATABASES and SHOW POOLS list the console database itself;
- user "pgbouncer" logs in to the console without a password over the unix
  socket when the peer runs as the pooler's own OS user;
- KILL_CLIENT <id> closes one client ("admin forced disconnect"); a bad or
  unknown id is an error and the session goes on;
- KILL without a database kills every database's clients and servers;
- SHUTDOWN WAIT_FOR_CLIENTS / WAIT_FOR_SERVERS are answered once the
  listeners are closed; the console stays until the process exits;
- a RELOAD of a broken file is an ERROR naming the reason, and the running
  configuration stays.

Checks that PgBouncer 1.18 (SLUICE_BIN=/usr/sbin/pgbouncer) cannot pass
because it predates them are marked sluice_only; the rest run on both.
"""

import os
import re
import subprocess
import time

import psycopg
import pytest

from admin_helpers import (ADMIN, ADMIN_DB, COMPAT, DATABASES_COLUMNS_125,
                           POOLS_COLUMNS_125, SOCKET_COLUMNS_125, STATS, STATS_COLUMNS_125,
                           STATS_PW, STATS_TOTALS_COLUMNS_125, USERS_COLUMNS_125, Console,
                           assert_exits, empty, find, ints, local_port, login_refused,
                           one, poll, start)
from conftest import (PSQL, client_env, msg_bind, msg_execute, msg_parse, msg_sync, raw_connect,
                      read_messages, send_batch, PgError)

TX = {"pool_mode": "transaction", "query_wait_timeout": 30}


def _columns(con, what):
    return con.cmd(f"SHOW {what}").columns


# =========================================================================
# 1. column lists

@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_show_columns_are_pgbouncer_125s(sluice):
    s = start(sluice, TX)
    with s.connect() as c:
        c.execute("select 1")
        with Console(s.port) as con:
            want = {
                "CLIENTS": SOCKET_COLUMNS_125,
                "SERVERS": SOCKET_COLUMNS_125,
                "STATS": STATS_COLUMNS_125,
                "STATS_TOTALS": STATS_TOTALS_COLUMNS_125,
                "STATS_AVERAGES": STATS_TOTALS_COLUMNS_125,
                "USERS": USERS_COLUMNS_125,
                "DATABASES": DATABASES_COLUMNS_125,
                "POOLS": POOLS_COLUMNS_125,
            }
            for what, cols in want.items():
                assert _columns(con, what) == cols, what


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_show_clients_and_servers_values(sluice):
    s = start(sluice, dict(TX, default_pool_size=2))
    c = s.connect(application_name="parity_app")
    try:
        c.execute("select 1")
        port = local_port(c)
        with Console(s.port) as con:
            r = one(con.show("CLIENTS"), port=str(port))
            assert r["replication"] == "none", r
            assert r["state"] == "idle", r          # 1.25: logged in, nothing to do
            assert re.fullmatch(r"\d+", r["id"] or ""), r
            assert r["prepared_statements"] == "0", r
            c.execute("BEGIN")
            r = one(con.show("CLIENTS"), port=str(port))
            assert r["state"] == "active" and not empty(r["link"]), r
            sv = one(con.show("SERVERS"), database="sluicedb", state="active")
            assert sv["replication"] == "none", sv
            assert re.fullmatch(r"\d+", sv["id"] or ""), sv
            c.execute("COMMIT")
    finally:
        c.close()


# =========================================================================
# 2. the console database in SHOW DATABASES / SHOW POOLS (PgBouncer 1.18 too)

@pytest.mark.timeout(20)
def test_show_databases_lists_console_db(sluice):
    s = start(sluice, TX)
    with Console(s.port) as con:
        rows = con.show("DATABASES")
        d = one(rows, name="pgbouncer")
        assert empty(d["host"]), d
        assert d["port"] == str(s.port), d
        assert d["database"] == "pgbouncer", d
        assert d["force_user"] == "pgbouncer", d
        assert d["pool_size"] == "2", d
        assert d["pool_mode"] == "statement", d
        assert d["paused"] == "0" and d["disabled"] == "0", d
        if not COMPAT:
            # the console counts its own session as a client of its database
            assert int(d["current_client_connections"]) >= 1, d
            assert d["current_connections"] == "0", d
            names = [r["name"] for r in rows]
            assert names == sorted(names), names


@pytest.mark.timeout(20)
def test_show_pools_lists_console_pool(sluice):
    s = start(sluice, TX)
    with Console(s.port) as con:
        p = one(con.show("POOLS"), database="pgbouncer")
        assert p["user"] == "pgbouncer", p
        assert p["pool_mode"] == "statement", p
        assert int(p["cl_active"]) >= 1, p       # this session
        with Console(s.port):
            p = one(con.show("POOLS"), database="pgbouncer")
            assert int(p["cl_active"]) >= 2, p


# =========================================================================
# 3. SHOW DATABASES / SHOW USERS 1.25 columns carry the settings

@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_show_databases_settings(sluice, pg):
    dbs = {
        "sluicedb": pg.db_line("sluicedb"),
        "tuned": pg.db_line("sluicedb", pool_size=4, reserve_pool_size=2,
                            server_lifetime=120, max_db_client_connections=5,
                            max_db_connections=6),
    }
    s = start(sluice, dict(TX, default_pool_size=3, server_lifetime=900,
                           max_db_client_connections=0), databases=dbs)
    c1, c2 = s.connect(db="tuned"), s.connect(db="tuned")
    try:
        c1.execute("select 1")
        with Console(s.port) as con:
            rows = con.show("DATABASES", DATABASES_COLUMNS_125)
            t = one(rows, name="tuned")
            assert t["pool_size"] == "4" and t["reserve_pool_size"] == "2", t
            assert t["server_lifetime"] == "120", t
            assert t["max_connections"] == "6", t
            assert t["max_client_connections"] == "5", t
            assert t["current_client_connections"] == "2", t
            assert int(t["current_connections"]) >= 1, t
            assert t["load_balance_hosts"] is None, t   # one host
            d = one(rows, name="sluicedb")
            assert d["server_lifetime"] == "900", d      # the global value
            assert d["max_client_connections"] == "0", d
            assert d["current_client_connections"] == "0", d
            c2.close()
            poll(lambda: one(con.show("DATABASES"), name="tuned")
                 ["current_client_connections"] == "1", what="client count down to 1")
    finally:
        c1.close()
        c2.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_show_users_settings(sluice):
    users = {"sluice_test": "pool_size=5 reserve_pool_size=2 pool_mode=session "
                            "max_user_connections=7 max_user_client_connections=4"}
    s = start(sluice, dict(TX, max_user_connections=9, max_user_client_connections=0),
              users=users)
    c = s.connect()
    try:
        c.execute("select 1")
        with Console(s.port) as con:
            rows = con.show("USERS", USERS_COLUMNS_125)
            u = one(rows, name="sluice_test")
            assert u["pool_size"] == "5" and u["reserve_pool_size"] == "2", u
            assert u["pool_mode"] == "session", u
            assert u["max_user_connections"] == "7", u
            assert u["max_user_client_connections"] == "4", u
            assert u["current_client_connections"] == "1", u
            assert u["current_connections"] == "1", u   # session mode: its server
            m = one(rows, name="md5user")              # only in auth_file
            assert m["pool_size"] is None and m["reserve_pool_size"] is None, m
            assert m["pool_mode"] is None, m
            assert m["max_user_connections"] == "9", m          # global
            assert m["max_user_client_connections"] == "0", m
            assert m["current_connections"] == "0", m
            one(rows, name="pgbouncer")                # the console's user
            names = [r["name"] for r in rows]
            assert names == sorted(names), names
    finally:
        c.close()


# =========================================================================
# 4. SHOW STATS server assignments

@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_stats_server_assignment_count(sluice):
    s = start(sluice, TX)
    with s.connect() as c:
        c.execute("select 1")          # the pool learns its parameters
    with Console(s.port) as con:
        def counts():
            st = one(con.show("STATS"), database="sluicedb")
            tot = one(con.show("STATS_TOTALS"), database="sluicedb")
            return (int(st["total_server_assignment_count"]),
                    int(tot["server_assignment_count"]))
        before, before_tot = counts()
        assert before == before_tot, (before, before_tot)
        with s.connect() as c:
            for _ in range(5):          # transaction mode: one server per query
                c.execute("select 1")
            with c.transaction():       # and one for a whole transaction
                c.execute("select 1")
                c.execute("select 2")
        after, after_tot = poll(lambda: (lambda v: v if v[0] >= before + 6 else None)(counts()),
                                what="6 more assignments")
        assert after - before == 6, (before, after)
        assert after_tot == after
        row = one(con.show("STATS"), database="sluicedb")
        ints(row, STATS_COLUMNS_125[1:])


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_stats_prepared_statement_counts(sluice):
    """client_parse_count, server_parse_count and bind_count (PgBouncer
    1.21+): one named statement prepared by a client, prepared once on the
    server under sluice's name, bound three times."""
    s = start(sluice, dict(TX, default_pool_size=1))
    with s.connect() as c:
        c.execute("select 1")
    with Console(s.port) as con:
        def counts():
            t = one(con.show("STATS_TOTALS"), database="sluicedb")
            return tuple(int(t[k]) for k in ("client_parse_count", "server_parse_count", "bind_count"))
        before = counts()
        c = raw_connect(s.host, s.port)
        try:
            send_batch(c, [msg_parse("st1", "select $1::int")] +
                       [m for i in range(3) for m in (msg_bind("st1", [str(i)]), msg_execute())] + [msg_sync()])
            got = read_messages(c)
            assert [m[0] for m in got].count("CommandComplete") == 3, got
        finally:
            c.close()
        after = poll(lambda: (lambda v: v if v[2] >= before[2] + 3 else None)(counts()),
                     what="three binds counted")
        assert tuple(a - b for a, b in zip(after, before)) == (1, 1, 3), (before, after)
        st = one(con.show("STATS"), database="sluicedb")
        assert int(st["total_bind_count"]) == after[2]


# =========================================================================
# 5. console login over the unix socket as the pooler's own OS user

def _pooler_uid(s):
    with open(f"/proc/{s.pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid in /proc status")


def _psql_as(uid, s, user, sql):
    """psql over s's unix socket as OS user uid, never asking a password."""
    cmd = [PSQL, "-X", "-w", "-A", "-t", "-h", str(s.dir), "-p", str(s.port),
           "-U", user, "-d", "pgbouncer", "-c", sql]
    if uid != os.geteuid():
        import pwd
        cmd = ["runuser", "-u", pwd.getpwuid(uid).pw_name, "--"] + cmd
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=20, env=client_env())


@pytest.mark.timeout(30)
def test_console_login_unix_socket_own_user(sluice):
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another OS user")
    s = start(sluice, TX)
    uid = _pooler_uid(s)
    r = _psql_as(uid, s, "pgbouncer", "SHOW VERSION")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), r.stdout
    # an admin: may run commands, not only SHOW
    r = _psql_as(uid, s, "pgbouncer", "RECONNECT")
    assert r.returncode == 0, r.stderr
    # another OS user must give a password, which -w refuses to ask
    import pwd
    other = 0 if uid != 0 else pwd.getpwnam("postgres").pw_uid
    r = _psql_as(other, s, "pgbouncer", "SHOW VERSION")
    assert r.returncode != 0, r.stdout
    # a user other than "pgbouncer" gets no such pass
    r = _psql_as(uid, s, ADMIN, "SHOW VERSION")
    assert r.returncode != 0, r.stdout
    # nor does "pgbouncer" over TCP
    with pytest.raises(PgError):
        raw_connect("127.0.0.1", s.port, "pgbouncer", ADMIN_DB, None).close()


# =========================================================================
# 6. KILL_CLIENT, KILL without a database

@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_kill_client_by_id(sluice):
    s = start(sluice, TX)
    victim, other = s.connect(), s.connect()
    try:
        victim.execute("select 1")
        other.execute("select 1")
        with Console(s.port) as con:
            row = one(con.show("CLIENTS"), port=str(local_port(victim)))
            con.cmd(f"KILL_CLIENT {row['id']}")
            with pytest.raises(psycopg.OperationalError) as ei:
                victim.execute("select 1")
            assert "admin forced disconnect" in str(ei.value) or victim.closed, ei.value
            poll(lambda: not find(con.show("CLIENTS"), id=row["id"]),
                 what="killed client gone from SHOW CLIENTS")
            assert other.execute("select 2").fetchone() == (2,)
            # the same id again, an unknown id, and no number at all
            for sql, words in ((f"KILL_CLIENT {row['id']}", "client not found"),
                               ("KILL_CLIENT 999999999", "client not found"),
                               ("KILL_CLIENT abc", "invalid client pointer supplied"),
                               ("KILL_CLIENT", "invalid client pointer supplied")):
                e = con.error(sql)
                assert e.severity == "ERROR" and words in e.message, (sql, e)
            assert con.show("VERSION")[0]["version"]
    finally:
        victim.close()
        other.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_kill_client_not_for_stats_users(sluice):
    s = start(sluice, TX)
    with s.connect() as c:
        c.execute("select 1")
        with Console(s.port) as con, Console(s.port, STATS, STATS_PW) as st:
            row = one(con.show("CLIENTS"), port=str(local_port(c)))
            e = st.error(f"KILL_CLIENT {row['id']}")
            assert "admin access needed" in e.message, e
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_kill_without_database_kills_all(sluice, pg):
    dbs = {"sluicedb": pg.db_line("sluicedb"), "other": pg.db_line("sluicedb")}
    s = start(sluice, TX, databases=dbs)
    a, b = s.connect(), s.connect(db="other")
    try:
        a.execute("select 1")
        b.execute("select 1")
        with Console(s.port) as con:
            con.cmd("KILL")
            for conn in (a, b):
                with pytest.raises(psycopg.OperationalError):
                    conn.execute("select 1")
            poll(lambda: not find(con.show("SERVERS"), database="sluicedb")
                 and not find(con.show("SERVERS"), database="other"),
                 what="servers of every database closed")
            assert con.show("VERSION")[0]["version"]   # the console lives on
            con.cmd("RESUME")
        with s.connect(db="other") as c:
            assert c.execute("select 3").fetchone() == (3,)
    finally:
        a.close()
        b.close()


# =========================================================================
# 7. SHUTDOWN WAIT_FOR_CLIENTS / WAIT_FOR_SERVERS: answered, console stays

@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_shutdown_wait_for_clients_answered(sluice):
    s = start(sluice, dict(TX, shutdown_timeout=20))
    c = s.connect()
    con = Console(s.port)
    try:
        c.execute("select 1")
        r = con.run("SHUTDOWN WAIT_FOR_CLIENTS", timeout=10)
        assert r.error is None and r.tags == ["SHUTDOWN"], r
        assert login_refused(s), "new login accepted during shutdown"
        # the console session goes on, and so does the client
        assert con.show("VERSION")[0]["version"]
        for i in range(3):
            assert c.execute(f"select {i}").fetchone() == (i,)
        with c.transaction():
            c.execute("select 1")
        time.sleep(0.3)
        assert s.alive(), "exited while a client was connected"
        c.close()
        assert_exits(s, 5, "the last client left")
    finally:
        c.close()
        con.conn.sock.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_shutdown_wait_for_servers_answered(sluice):
    s = start(sluice, dict(TX, default_pool_size=2, shutdown_timeout=20))
    c = s.connect()
    con = Console(s.port)
    try:
        c.execute("BEGIN")
        c.execute("select 1")
        r = con.run("SHUTDOWN WAIT_FOR_SERVERS", timeout=10)
        assert r.error is None and r.tags == ["SHUTDOWN"], r
        assert login_refused(s), "new login accepted during shutdown"
        assert con.show("VERSION")[0]["version"]
        time.sleep(0.3)
        assert s.alive(), "exited with a transaction open"
        assert c.execute("select 2").fetchone() == (2,)
        c.execute("COMMIT")
        assert_exits(s, 5, "the last transaction ended")
    finally:
        c.close()
        con.conn.sock.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_second_shutdown_wait_is_answered_at_once(sluice):
    s = start(sluice, dict(TX, shutdown_timeout=20))
    c = s.connect()
    con1, con2 = Console(s.port), Console(s.port)
    try:
        c.execute("select 1")
        assert con1.run("SHUTDOWN WAIT_FOR_CLIENTS", timeout=10).tags == ["SHUTDOWN"]
        r = con2.run("SHUTDOWN WAIT_FOR_CLIENTS", timeout=10)
        assert r.error is None and r.tags == ["SHUTDOWN"], r
        c.close()
        assert_exits(s, 5, "the last client left")
    finally:
        c.close()
        con1.conn.sock.close()
        con2.conn.sock.close()


# =========================================================================
# 8. RELOAD of a broken file

@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_reload_error_reported_config_kept(sluice):
    s = start(sluice, dict(TX, default_pool_size=2))
    good = s.ini.read_text()
    with Console(s.port) as con:
        def cfg(key):
            return {r["key"]: r["value"] for r in con.show("CONFIG")}[key]
        for bad, reason in (
                (good.replace("default_pool_size = 2", "default_pool_size = lots"),
                 "default_pool_size"),
                (good.replace("pool_mode = transaction", "pool_mode = sometimes"),
                 "pool_mode")):
            s.ini.write_text(bad)
            e = con.error("RELOAD")
            assert e.severity == "ERROR", e
            assert "RELOAD failed" in e.message and reason in e.message, e
            assert cfg("default_pool_size") == "2"
            assert con.show("VERSION")[0]["version"]
            with s.connect() as c:
                assert c.execute("select 1").fetchone() == (1,)
        # fixed: the next RELOAD applies it
        s.ini.write_text(good.replace("default_pool_size = 2", "default_pool_size = 4"))
        con.cmd("RELOAD")
        assert cfg("default_pool_size") == "4"
    assert s.alive()
