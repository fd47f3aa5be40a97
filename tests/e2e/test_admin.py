"""The admin console (docs/operations.md, "Admin console"): who may log in,
every SHOW command (columns as PgBouncer 1.18, values that make sense), every
command that changes things, and errors that must not end the session.

The console is used over the simple query protocol only: RawConn-based
Console (admin_helpers.py), psql, and psycopg's execute() without
parameters (which psycopg sends as a simple Query).
"""

import re
import time

import psycopg
import pytest

from admin_helpers import (ADMIN, ADMIN_DB, ADMIN_PW, CLIENTS_COLUMNS, COMPAT,
                           CONFIG_COLUMNS, DATABASES_COLUMNS, FDS_COLUMNS,
                           IDLE_CLIENT_STATE, RESERVE_POOL_COLUMN,
                           FDS_REQUIRED, FDS_SECRET_COLUMNS, LISTS_COLUMNS,
                           MEM_COLUMNS, POOLS_COLUMNS, SERVERS_COLUMNS, STATE_COLUMNS,
                           STATS, STATS_AVERAGES_COLUMNS, STATS_COLUMNS, STATS_PW,
                           STATS_TOTALS_COLUMNS, TIMESTAMP_RE, USERS_COLUMNS,
                           VERSION_COLUMNS, Console, accept_exit, codes,
                           console_cmd_in_thread, empty, find, ints, local_port,
                           login_refused, one, pg_pid_alive, poll, psql_admin,
                           psql_show, send_until_closed, start, still_running,
                           wait_exit)
from conftest import PgError, Worker, raw_connect, send_batch, msg_bind, msg_describe, \
    msg_execute, msg_parse, msg_sync, read_messages

TX = {"pool_mode": "transaction", "query_wait_timeout": 30}


def _pid(c):
    return c.execute("select pg_backend_pid()").fetchone()[0]


def _state(con):
    return {r["key"]: r["value"] for r in con.show("STATE", STATE_COLUMNS)}


def _new_client(s, sql, **kw):
    """Worker: log in (now), run one query, return its single value."""
    def run():
        with s.connect(**kw) as c:
            return c.execute(sql).fetchone()[0]
    w = Worker(run)
    w.start()
    return w


# =========================================================================
# 1. login

@pytest.mark.timeout(20)
def test_admin_login_pgbouncer_db(sluice):
    s = start(sluice)
    with Console(s.port) as con:
        rows = con.show("VERSION", VERSION_COLUMNS)
        assert len(rows) == 1 and rows[0]["version"], rows
    # psql too
    r = psql_admin(s, "SHOW VERSION")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "version", r.stdout
    assert r.stdout.splitlines()[1].strip(), r.stdout


@pytest.mark.sluice_only
@pytest.mark.timeout(20)
def test_admin_login_sluice_db(sluice):
    s = start(sluice)
    with Console(s.port, db="sluice") as con:
        rows = con.show("VERSION", VERSION_COLUMNS)
        assert len(rows) == 1 and rows[0]["version"], rows
        con.show("POOLS", POOLS_COLUMNS)
        con.cmd("PAUSE")
        con.cmd("RESUME")
    r = psql_admin(s, "SHOW VERSION", db="sluice")
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(20)
def test_admin_login_refused_for_user_in_neither_list(sluice):
    s = start(sluice)
    for user, pw in (("sluice_test", "test_pw"), ("md5user", "md5_pw")):
        with pytest.raises(PgError) as ei:
            raw_connect("127.0.0.1", s.port, user, ADMIN_DB, pw).close()
        e = ei.value
        assert e.severity == "FATAL", e
        assert e.sqlstate in codes("28000"), e
    # the same users still reach ordinary databases
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.timeout(20)
def test_admin_login_wrong_password(sluice, helpers):
    s = start(sluice)
    for user in (ADMIN, STATS):
        with pytest.raises(PgError) as ei:
            raw_connect("127.0.0.1", s.port, user, ADMIN_DB, "not-the-password").close()
        helpers.assert_auth_failed(ei.value, user)
    with Console(s.port) as con:
        con.show("VERSION")


@pytest.mark.timeout(30)
def test_stats_user_may_only_show(sluice):
    s = start(sluice, {"default_pool_size": 4})
    with s.connect() as c:
        c.execute("select 1")
    with Console(s.port, STATS, STATS_PW) as con:
        con.show("STATS", STATS_COLUMNS)
        con.show("STATS_TOTALS", STATS_TOTALS_COLUMNS)
        con.show("STATS_AVERAGES", STATS_AVERAGES_COLUMNS)
        con.show("POOLS", POOLS_COLUMNS)
        con.show("CLIENTS", CLIENTS_COLUMNS)
        con.show("SERVERS", SERVERS_COLUMNS)
        con.show("DATABASES", DATABASES_COLUMNS)
        con.show("USERS", USERS_COLUMNS)
        con.show("CONFIG", CONFIG_COLUMNS)
        con.show("LISTS", LISTS_COLUMNS)
        con.show("MEM", MEM_COLUMNS)
        con.show("VERSION", VERSION_COLUMNS)
        if not COMPAT:
            con.show("STATE", STATE_COLUMNS)
        denied = ["PAUSE", "PAUSE sluicedb", "RESUME", "RESUME sluicedb", "SUSPEND",
                  "RELOAD", "DISABLE sluicedb", "ENABLE sluicedb", "KILL sluicedb",
                  "RECONNECT", "RECONNECT sluicedb", "WAIT_CLOSE",
                  "SET default_pool_size = 9", "SHUTDOWN"]
        if not COMPAT:
            denied += ["KILL_CLIENT 1", "SHUTDOWN WAIT_FOR_SERVERS",
                       "SHUTDOWN WAIT_FOR_CLIENTS"]
        for sql in denied:
            e = con.error(sql)
            assert e.severity == "ERROR", e
            assert e.sqlstate in codes("42501"), e
            assert e.message == "admin access needed", e
        # the session goes on, nothing changed
        assert con.show("VERSION")[0]["version"]
        cfg = {r["key"]: r["value"] for r in con.show("CONFIG")}
        assert cfg["default_pool_size"] == "4"
        db = one(con.show("DATABASES"), name="sluicedb")
        assert db["paused"] == "0" and db["disabled"] == "0", db
    assert s.alive()
    with s.connect() as c:
        assert c.execute("select 2").fetchone() == (2,)


@pytest.mark.timeout(20)
def test_auth_type_any_lets_anyone_in_as_stats_user(sluice):
    s = start(sluice, {"auth_type": "any"})
    for user in ("sluice_test", "nobody_in_any_list"):
        with Console(s.port, user, None) as con:
            assert con.show("VERSION")[0]["version"]
            con.show("POOLS", POOLS_COLUMNS)
            e = con.error("PAUSE")
            assert e.sqlstate in codes("42501"), e
            assert e.message == "admin access needed", e
    # admin_users keep their rights
    with Console(s.port, ADMIN, None) as con:
        con.cmd("PAUSE")
        con.cmd("RESUME")


# =========================================================================
# 2. SHOW commands

@pytest.mark.timeout(20)
def test_show_help(sluice):
    s = start(sluice)
    with Console(s.port) as con:
        r = con.cmd("SHOW HELP")
        assert r.notices, f"no NOTICE from SHOW HELP: {r}"
        n = r.notices[0]
        assert (n.get("V") or n.get("S")) == "NOTICE", n
        text = (n.get("M", "") + "\n" + n.get("D", "")).upper()
        for word in ("SHOW", "POOLS", "CLIENTS", "PAUSE", "RESUME", "RELOAD",
                     "SUSPEND", "DISABLE", "ENABLE", "KILL", "RECONNECT", "SHUTDOWN"):
            assert word in text, f"{word} missing from SHOW HELP: {text}"
        if not COMPAT:
            for word in ("KILL_CLIENT", "WAIT_CLOSE", "STATE", "WAIT_FOR_SERVERS",
                         "WAIT_FOR_CLIENTS"):
                assert word in text, f"{word} missing from SHOW HELP: {text}"
        assert con.show("VERSION")[0]["version"]
    r = psql_admin(s, "SHOW HELP")
    assert r.returncode == 0, r.stderr
    assert "NOTICE:" in r.stderr and "PAUSE" in r.stderr.upper(), r.stderr


@pytest.mark.timeout(30)
def test_show_stats_counts_queries(sluice):
    s = start(sluice, dict(TX, stats_period=1, default_pool_size=2))
    n = 20
    with s.connect() as c:
        for i in range(n):
            assert c.execute(f"select {i}").fetchone() == (i,)
        c.execute("select pg_sleep(0.1)")
    with Console(s.port) as con:
        row = poll(lambda: [r for r in con.show("STATS", STATS_COLUMNS)
                            if r["database"] == "sluicedb"
                            and int(r["total_query_count"]) >= n + 1],
                   what="SHOW STATS total_query_count >= N")[0]
        v = ints(row, STATS_COLUMNS[1:])
        assert v["total_xact_count"] >= n + 1, row
        assert v["total_received"] > 0 and v["total_sent"] > 0, row
        # times are microseconds; one query slept 100 ms
        assert v["total_query_time"] >= 90_000, row
        assert v["total_xact_time"] >= v["total_query_time"] * 0.9, row
        assert v["total_wait_time"] >= 0, row
        assert all(x >= 0 for x in v.values()), row
        # STATS_TOTALS is the first half of SHOW STATS (no traffic since)
        tot = ints(one(con.show("STATS_TOTALS", STATS_TOTALS_COLUMNS), database="sluicedb"),
                   STATS_TOTALS_COLUMNS[1:])
        pairs = {"xact_count": "total_xact_count", "query_count": "total_query_count",
                 "bytes_received": "total_received", "bytes_sent": "total_sent",
                 "xact_time": "total_xact_time", "query_time": "total_query_time",
                 "wait_time": "total_wait_time"}
        for a, b in pairs.items():
            assert tot[a] == v[b], f"STATS_TOTALS {a}={tot[a]} vs SHOW STATS {b}={v[b]}"
        ints(one(con.show("STATS_AVERAGES", STATS_AVERAGES_COLUMNS), database="sluicedb"),
             STATS_AVERAGES_COLUMNS[1:])

        # averages over the last stats_period (1 s) follow steady traffic
        stop = [False]

        def traffic():
            with s.connect() as c2:
                t_end = time.monotonic() + 6
                while not stop[0] and time.monotonic() < t_end:
                    c2.execute("select 1")
                    time.sleep(0.005)

        w = Worker(traffic)
        w.start()
        try:
            avg = poll(lambda: [r for r in con.show("STATS_AVERAGES")
                                if r["database"] == "sluicedb" and int(r["query_count"]) > 0
                                and int(r["xact_count"]) > 0],
                       timeout=4.5, interval=0.2, what="STATS_AVERAGES query_count > 0")[0]
            st = one(con.show("STATS"), database="sluicedb")
            assert int(st["avg_query_count"]) >= 0 and int(st["avg_recv"]) >= 0, st
            assert int(avg["bytes_received"]) > 0, avg
        finally:
            stop[0] = True
            w.get(timeout=10)


@pytest.mark.timeout(30)
def test_show_pools_states(sluice):
    s = start(sluice, dict(TX, default_pool_size=1, reserve_pool_size=0))
    holder = s.connect()
    try:
        holder.execute("BEGIN")
        holder.execute("select 1")
        with Console(s.port) as con:
            def pool():
                return one(con.show("POOLS", POOLS_COLUMNS), database="sluicedb",
                           user="sluice_test")
            p = pool()
            v = ints(p, POOLS_COLUMNS[2:15])
            assert p["pool_mode"] == "transaction", p
            assert v["cl_active"] == 1 and v["cl_waiting"] == 0, p
            assert v["sv_active"] == 1 and v["sv_idle"] == 0, p

            def waiter():
                with s.connect() as c2:
                    return c2.execute("select 'served'").fetchone()[0]

            w = Worker(waiter)
            w.start()
            p = poll(lambda: [x for x in [pool()] if x["cl_waiting"] == "1"],
                     what="cl_waiting == 1")[0]
            assert p["cl_active"] == "1" and p["sv_active"] == "1", p
            time.sleep(0.6)
            p = pool()
            assert p["cl_waiting"] == "1", p
            waited = int(p["maxwait"]) + int(p["maxwait_us"]) / 1e6
            assert 0.4 <= waited < 30, f"maxwait {p['maxwait']}.{p['maxwait_us']}"
            holder.execute("COMMIT")
            assert w.get(timeout=10) == "served"
            # The waiter's Terminate is processed asynchronously: wait for
            # its client to be gone as well.
            p = poll(lambda: [x for x in [pool()] if x["cl_waiting"] == "0"
                              and x["sv_active"] == "0" and x["cl_active"] == "1"],
                     what="pool at rest")[0]
            v = ints(p, POOLS_COLUMNS[2:15])
            assert v["cl_active"] == 1, p          # the holder, idle
            assert v["sv_idle"] + v["sv_used"] == 1, p
            assert v["maxwait"] == 0 and v["maxwait_us"] == 0, p
    finally:
        holder.close()


@pytest.mark.timeout(45)
def test_show_pools_during_pgbench(sluice, tmp_path):
    s = start(sluice, dict(TX, default_pool_size=2, reserve_pool_size=0,
                           max_client_conn=50))
    script = tmp_path / "sleep.sql"
    script.write_text("SELECT pg_sleep(0.03);\n")
    bench = Worker(s.pgbench, "-n", "-c", "8", "-j", "2", "-T", "6", "-f", str(script),
                   timeout=40)
    bench.start()

    def pool():
        cols, rows = psql_show(s, "POOLS")
        assert cols == POOLS_COLUMNS, cols
        found = find(rows, database="sluicedb", user="sluice_test")
        return ints(found[0], POOLS_COLUMNS[2:15]) if found else None

    poll(lambda: (lambda p: p and p["cl_active"] + p["cl_waiting"] == 8)(pool()),
         timeout=4, interval=0.1, what="8 pgbench clients in SHOW POOLS")
    samples = []
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        samples.append(pool())
        time.sleep(0.15)
    r = bench.get(timeout=30)
    assert r.returncode == 0, f"pgbench failed:\n{r.stdout}\n{r.stderr}"
    assert re.search(r"number of failed transactions: 0\b", r.stdout), r.stdout
    m = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    assert m and int(m.group(1)) > 20, r.stdout

    assert len(samples) >= 5, samples
    for p in samples:
        assert p is not None
        assert 7 <= p["cl_active"] + p["cl_waiting"] <= 8, p
        assert p["sv_active"] <= 2, p
        assert p["sv_active"] + p["sv_idle"] + p["sv_used"] + p["sv_tested"] + \
            p["sv_login"] <= 2, p
    assert sum(1 for p in samples if p["cl_active"] + p["cl_waiting"] == 8) \
        >= len(samples) // 2, samples
    assert any(p["cl_waiting"] > 0 for p in samples), samples
    assert any(p["sv_active"] > 0 for p in samples), samples


@pytest.mark.timeout(30)
def test_show_clients(sluice):
    s = start(sluice, dict(TX, default_pool_size=1, reserve_pool_size=0))
    c1 = s.connect(application_name="adm_c1")
    c2 = s.connect(application_name="adm_c2")
    try:
        c1.execute("select 1")
        c2.execute("select 1")
        p1, p2 = local_port(c1), local_port(c2)
        with Console(s.port) as con:
            rows = con.show("CLIENTS", CLIENTS_COLUMNS)
            r1 = one(rows, port=str(p1), addr="127.0.0.1")
            r2 = one(rows, port=str(p2), addr="127.0.0.1")
            for r, app in ((r1, "adm_c1"), (r2, "adm_c2")):
                assert r["type"] == "C", r
                assert r["user"] == "sluice_test" and r["database"] == "sluicedb", r
                assert r["state"] == IDLE_CLIENT_STATE, r   # logged in, no request
                assert r["local_addr"] == "127.0.0.1", r
                assert r["local_port"] == str(s.port), r
                assert TIMESTAMP_RE.match(r["connect_time"] or ""), r
                assert TIMESTAMP_RE.match(r["request_time"] or ""), r
                assert r["application_name"] == app, r
                assert empty(r["link"]), r           # no server linked while idle
                ints(r, ["wait", "wait_us", "close_needed", "remote_pid"])
            if not COMPAT:
                ids = [r["id"] for r in rows]
                for i in ids:
                    assert re.fullmatch(r"(C-)?\d+", i or ""), ids
                assert len(set(ids)) == len(ids), ids

            # a client waiting for the only server shows as waiting
            c1.execute("BEGIN")
            c1.execute("select 1")
            w = Worker(lambda: c2.execute("select 'c2'").fetchone()[0])
            w.start()
            r2 = poll(lambda: find(con.show("CLIENTS"), port=str(p2), state="waiting"),
                      what="c2 waiting in SHOW CLIENTS")[0]
            assert r2["user"] == "sluice_test", r2
            r1 = one(con.show("CLIENTS"), port=str(p1))
            assert r1["state"] == "active" and not empty(r1["link"]), r1
            c1.execute("COMMIT")
            assert w.get(timeout=10) == "c2"
            poll(lambda: find(con.show("CLIENTS"), port=str(p2), state=IDLE_CLIENT_STATE),
                 what="c2 idle again")
            # a client that leaves disappears
            c2.close()
            poll(lambda: not find(con.show("CLIENTS"), port=str(p2)),
                 what="closed client gone from SHOW CLIENTS")
            one(con.show("CLIENTS"), port=str(p1))
    finally:
        c1.close()
        c2.close()


@pytest.mark.timeout(30)
def test_show_servers(sluice, pg):
    s = start(sluice, dict(TX, default_pool_size=2))
    c1 = s.connect()
    try:
        c1.execute("BEGIN")
        pid = _pid(c1)
        with Console(s.port) as con:
            rows = con.show("SERVERS", SERVERS_COLUMNS)
            r = one(rows, remote_pid=str(pid))
            assert r["type"] == "S", r
            assert r["user"] == "sluice_test" and r["database"] == "sluicedb", r
            assert r["state"] == "active", r
            assert r["addr"] == "127.0.0.1" and r["port"] == str(pg.port), r
            assert r["local_addr"] == "127.0.0.1", r
            assert TIMESTAMP_RE.match(r["connect_time"] or ""), r
            assert not empty(r["link"]), r           # linked to c1
            ints(r, ["local_port", "wait", "wait_us", "close_needed"])
            if not COMPAT:
                assert re.fullmatch(r"(S-)?\d+", r["id"] or ""), r
            # c1's row in SHOW CLIENTS links back
            cl = one(con.show("CLIENTS"), port=str(local_port(c1)))
            assert not empty(cl["link"]), cl
            c1.execute("COMMIT")
            r = poll(lambda: find(con.show("SERVERS"), remote_pid=str(pid), link="")
                     or find(con.show("SERVERS"), remote_pid=str(pid), link=None),
                     what="server released")[0]
            assert r["state"] in ("idle", "used"), r
            # a second concurrent transaction opens a second server
            c2 = s.connect()
            try:
                c1.execute("BEGIN")
                c2.execute("BEGIN")
                pids = {_pid(c1), _pid(c2)}
                assert len(pids) == 2
                rows = con.show("SERVERS")
                got = {int(x["remote_pid"]) for x in find(rows, database="sluicedb")}
                assert pids <= got, (pids, rows)
                assert len(find(rows, database="sluicedb")) <= 2, rows
                c1.execute("COMMIT")
                c2.execute("COMMIT")
            finally:
                c2.close()
    finally:
        c1.close()


@pytest.mark.timeout(20)
def test_show_databases(sluice, pg):
    dbs = {
        "sluicedb": pg.db_line("sluicedb"),
        "sized": pg.db_line("sluicedb", pool_size=7, pool_mode="session",
                            reserve_pool=2, max_db_connections=9),
        "forced": pg.db_line("sluicedb", user="sluice_test", password="test_pw"),
    }
    s = start(sluice, dict(TX, default_pool_size=3), databases=dbs)
    with s.connect() as c:
        c.execute("select 1")
    with Console(s.port) as con:
        rows = con.show("DATABASES", DATABASES_COLUMNS)
        d = one(rows, name="sluicedb")
        assert d["host"] == "127.0.0.1" and d["port"] == str(pg.port), d
        assert d["database"] == "sluicedb", d
        assert empty(d["force_user"]), d
        assert d["pool_size"] == "3", d
        assert d["min_pool_size"] == "0", d
        assert d["max_connections"] == "0", d
        assert d["current_connections"] == "1", d    # one idle server
        assert d["paused"] == "0" and d["disabled"] == "0", d
        ints(d, [RESERVE_POOL_COLUMN])
        z = one(rows, name="sized")
        assert z["pool_size"] == "7" and z["pool_mode"] == "session", z
        assert z[RESERVE_POOL_COLUMN] == "2" and z["max_connections"] == "9", z
        assert z["database"] == "sluicedb" and z["current_connections"] == "0", z
        f = one(rows, name="forced")
        assert f["force_user"] == "sluice_test", f
        assert f["pool_size"] == "3", f


@pytest.mark.timeout(20)
def test_show_users(sluice):
    s = start(sluice, TX, users={"md5user": "pool_mode=session"})
    with s.connect() as c:
        c.execute("select 1")
    with Console(s.port) as con:
        rows = con.show("USERS", USERS_COLUMNS)
        assert one(rows, name="md5user")["pool_mode"] == "session", rows
        assert empty(one(rows, name="sluice_test")["pool_mode"]), rows


@pytest.mark.timeout(20)
def test_show_config(sluice):
    s = start(sluice, dict(TX, default_pool_size=3, max_client_conn=77))
    with Console(s.port) as con:
        rows = con.show("CONFIG", CONFIG_COLUMNS)
        keys = [r["key"] for r in rows]
        assert len(keys) == len(set(keys)), "duplicate keys in SHOW CONFIG"
        cfg = {r["key"]: r for r in rows}
        for k in ("default_pool_size", "max_client_conn", "pool_mode", "listen_port",
                  "listen_addr", "auth_type", "auth_file", "admin_users", "stats_users",
                  "query_wait_timeout", "server_idle_timeout", "reserve_pool_size",
                  "stats_period"):
            assert k in cfg, f"{k} missing from SHOW CONFIG"
        for r in rows:
            assert r["changeable"] in ("yes", "no"), r
        assert cfg["default_pool_size"]["value"] == "3"
        assert cfg["default_pool_size"]["changeable"] == "yes"
        assert cfg["max_client_conn"]["value"] == "77"
        assert cfg["pool_mode"]["value"] == "transaction"
        assert cfg["listen_port"]["value"] == str(s.port)
        assert cfg["listen_port"]["changeable"] == "no"
        assert cfg["admin_users"]["value"] == ADMIN
        assert cfg["stats_users"]["value"] == STATS
        assert cfg["auth_type"]["value"] == "md5"


@pytest.mark.timeout(20)
def test_show_lists(sluice):
    s = start(sluice, TX)
    c = s.connect()
    try:
        c.execute("select 1")
        with Console(s.port) as con:
            rows = con.show("LISTS", LISTS_COLUMNS)
            items = {r["list"]: int(r["items"]) for r in rows}
            for k in ("databases", "users", "pools", "used_clients", "used_servers"):
                assert k in items, f"{k} missing from SHOW LISTS: {items}"
            assert all(v >= 0 for v in items.values()), items
            assert items["databases"] >= 1 and items["pools"] >= 1, items
            assert items["users"] >= 1, items
            assert items["used_clients"] >= 2, items    # c and the console
            assert items["used_servers"] >= 1, items
    finally:
        c.close()


@pytest.mark.timeout(20)
def test_show_mem(sluice):
    s = start(sluice, TX)
    with s.connect() as c:
        c.execute("select 1")
        with Console(s.port) as con:
            rows = con.show("MEM", MEM_COLUMNS)
            assert rows, "SHOW MEM returned no rows"
            names = [r["name"] for r in rows]
            assert len(names) == len(set(names)) and all(names), names
            for r in rows:
                v = ints(r, MEM_COLUMNS[1:])
                assert all(x >= 0 for x in v.values()), r
                assert v["memtotal"] >= v["size"] * v["used"], r


@pytest.mark.timeout(20)
def test_show_fds(sluice, pg):
    s = start(sluice, TX)
    c = s.connect()
    try:
        c.execute("select 1")
        port = local_port(c)
        with Console(s.port) as con:
            r = con.cmd("SHOW FDS")
            cols = r.columns
            assert cols[:8] == FDS_REQUIRED, cols
            assert cols == FDS_COLUMNS[:len(cols)], \
                f"SHOW FDS columns beyond the first 8 must follow PgBouncer's: {cols}"
            rows = r.dicts()
            fds = [int(x["fd"]) for x in rows]
            assert len(fds) == len(set(fds)), rows
            cl = one(rows, task="client", port=str(port))
            assert cl["user"] == "sluice_test" and cl["database"] == "sluicedb", cl
            assert cl["addr"] == "127.0.0.1", cl
            ints(cl, ["fd", "cancel"])
            sv = find(rows, task="server", port=str(pg.port))
            assert len(sv) == 1, rows
            assert sv[0]["user"] == "sluice_test" and sv[0]["database"] == "sluicedb", sv
            for row in rows:
                assert row["task"] in ("pooler", "client", "server"), row
                for k in FDS_SECRET_COLUMNS:
                    assert empty(row.get(k)), f"secret column {k} not empty: {row}"
    finally:
        c.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(20)
def test_show_state(sluice):
    s = start(sluice, TX)
    with Console(s.port) as con:
        rows = con.show("STATE", STATE_COLUMNS)
        assert [r["key"] for r in rows] == ["active", "paused", "suspended"], rows
        assert _state(con) == {"active": "yes", "paused": "no", "suspended": "no"}
        con.cmd("PAUSE")
        assert _state(con) == {"active": "no", "paused": "yes", "suspended": "no"}
        con.cmd("RESUME")
        assert _state(con) == {"active": "yes", "paused": "no", "suspended": "no"}
        con.cmd("SUSPEND")
        assert _state(con) == {"active": "no", "paused": "no", "suspended": "yes"}
        con.cmd("RESUME")
        assert _state(con) == {"active": "yes", "paused": "no", "suspended": "no"}


# =========================================================================
# 4. PAUSE

@pytest.mark.timeout(30)
def test_pause_db_holds_queries_until_resume(sluice):
    s = start(sluice, dict(TX, default_pool_size=2))
    c = s.connect()
    try:
        assert c.execute("select 1").fetchone() == (1,)
        with Console(s.port) as con:
            con.cmd("PAUSE sluicedb", timeout=10)
            assert one(con.show("DATABASES"), name="sluicedb")["paused"] == "1"
            w = Worker(lambda: c.execute("select 41 + 1").fetchone()[0])
            w.start()
            assert still_running(w, 1.0), f"query ran during PAUSE: {w.result} {w.exc}"
            con.cmd("RESUME sluicedb")
            assert w.get(timeout=10) == 42
            assert one(con.show("DATABASES"), name="sluicedb")["paused"] == "0"
            assert c.execute("select 2").fetchone() == (2,)
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_pause_all_holds_new_and_existing_clients_until_resume(sluice):
    s = start(sluice, dict(TX, default_pool_size=2))
    c = s.connect()
    try:
        c.execute("select 1")
        with Console(s.port) as con:
            con.cmd("PAUSE", timeout=10)
            if not COMPAT:
                assert _state(con)["paused"] == "yes"
            w_old = Worker(lambda: c.execute("select 'old'").fetchone()[0])
            w_old.start()
            w_new = _new_client(s, "select 'new'")
            time.sleep(1.0)
            assert w_old.is_alive(), f"query ran during PAUSE: {w_old.result} {w_old.exc}"
            assert w_new.is_alive(), f"new client ran during PAUSE: {w_new.result} {w_new.exc}"
            con.cmd("RESUME")
            assert w_old.get(timeout=10) == "old"
            assert w_new.get(timeout=10) == "new"
            if not COMPAT:
                assert _state(con)["paused"] == "no"
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_pause_waits_for_open_transaction(sluice, pg):
    s = start(sluice, dict(TX, default_pool_size=2))
    c = s.connect()
    try:
        c.execute("BEGIN")
        pid = _pid(c)
        t0 = time.monotonic()
        w = console_cmd_in_thread(s.port, "PAUSE")
        assert still_running(w, 1.0), f"PAUSE answered with a transaction open: {w.result}"
        # the transaction goes on while PAUSE waits
        assert c.execute("select 'inside'").fetchone() == ("inside",)
        c.execute("COMMIT")
        r = w.get(timeout=10)
        assert r.error is None, r
        assert time.monotonic() - t0 >= 1.0
        with Console(s.port) as con:
            if not COMPAT:
                assert _state(con)["paused"] == "yes"
            # PAUSE closed the released server
            poll(lambda: not pg_pid_alive(pg, pid), what="server closed by PAUSE")
            con.cmd("RESUME")
        assert c.execute("select 3").fetchone() == (3,)
    finally:
        c.close()


# =========================================================================
# 5. RESUME, SUSPEND, DISABLE/ENABLE, KILL, KILL_CLIENT, RECONNECT, WAIT_CLOSE

@pytest.mark.timeout(30)
def test_suspend_and_resume(sluice):
    s = start(sluice, dict(TX, default_pool_size=2))
    c = s.connect()
    try:
        c.execute("select 1")
        with Console(s.port) as con:
            con.cmd("SUSPEND", timeout=10)
            if not COMPAT:
                assert _state(con)["suspended"] == "yes"
            # the console session in use goes on
            assert con.show("VERSION")[0]["version"]
            w_old = Worker(lambda: c.execute("select 'old'").fetchone()[0])
            w_old.start()
            w_new = _new_client(s, "select 'new'", connect_timeout=20)
            time.sleep(1.0)
            assert w_old.is_alive(), f"query ran during SUSPEND: {w_old.result} {w_old.exc}"
            assert w_new.is_alive(), f"login ran during SUSPEND: {w_new.result} {w_new.exc}"
            con.cmd("RESUME")
            assert w_old.get(timeout=10) == "old"
            assert w_new.get(timeout=10) == "new"
            if not COMPAT:
                assert _state(con)["active"] == "yes"
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_disable_and_enable_db(sluice):
    s = start(sluice, TX)
    c = s.connect()
    try:
        c.execute("select 1")
        with Console(s.port) as con:
            con.cmd("DISABLE sluicedb")
            assert one(con.show("DATABASES"), name="sluicedb")["disabled"] == "1"
            with pytest.raises(PgError) as ei:
                raw_connect("127.0.0.1", s.port).close()
            assert ei.value.severity == "FATAL", ei.value
            assert "disabled" in ei.value.message, ei.value
            # connected clients go on
            assert c.execute("select 'still here'").fetchone() == ("still here",)
            con.cmd("ENABLE sluicedb")
            assert one(con.show("DATABASES"), name="sluicedb")["disabled"] == "0"
            with s.connect() as c2:
                assert c2.execute("select 5").fetchone() == (5,)
            e = con.error("DISABLE")        # a database is required
            assert e.severity == "ERROR", e
            e = con.error("DISABLE no_such_db")
            assert e.severity == "ERROR", e
            assert con.show("VERSION")[0]["version"]
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_kill_db(sluice, pg):
    dbs = {"sluicedb": pg.db_line("sluicedb"), "otherdb": pg.db_line("sluicedb")}
    ini = dict(TX, default_pool_size=2)
    if COMPAT:
        # PgBouncer 1.18 closes the server it opens for a login that arrives
        # during the KILL pause, counts that as a failed server login and
        # waits server_login_retry (15 s) after RESUME before trying again.
        ini["server_login_retry"] = 1
    s = start(sluice, ini, databases=dbs)
    c1 = s.connect()
    c2 = s.connect()
    other = s.connect(db="otherdb")
    try:
        c2.execute("BEGIN")
        pid2 = _pid(c2)
        pid1 = _pid(c1)
        assert other.execute("select 1").fetchone() == (1,)
        with Console(s.port) as con:
            con.cmd("KILL sluicedb", timeout=10)
            for c in (c1, c2):
                with pytest.raises(psycopg.OperationalError):
                    c.execute("select 1")
            # servers are closed too
            for pid in (pid1, pid2):
                poll(lambda: not pg_pid_alive(pg, pid), what=f"server {pid} closed")
            poll(lambda: not find(con.show("SERVERS"), database="sluicedb"),
                 what="no sluicedb server in SHOW SERVERS")
            assert not find(con.show("CLIENTS"), database="sluicedb")
            assert one(con.show("DATABASES"), name="sluicedb")["paused"] == "1"
            # other databases are untouched
            assert other.execute("select 'other'").fetchone() == ("other",)
            # the database is paused: new work waits until RESUME
            w = _new_client(s, "select 'after'")
            assert still_running(w, 1.0), f"client ran after KILL: {w.result} {w.exc}"
            con.cmd("RESUME sluicedb")
            assert w.get(timeout=10) == "after"
            assert one(con.show("DATABASES"), name="sluicedb")["paused"] == "0"
    finally:
        for c in (c1, c2, other):
            c.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_kill_client(sluice):
    s = start(sluice, dict(TX, log_connections=1))
    c1 = s.connect()
    c2 = s.connect()
    try:
        c1.execute("select 1")
        c2.execute("select 1")
        p1, p2 = local_port(c1), local_port(c2)
        with Console(s.port) as con:
            victim = one(con.show("CLIENTS"), port=str(p1))
            # the id is the one log lines use: C-<id> db/user@addr:port
            cid = victim["id"] if victim["id"].startswith("C-") else f"C-{victim['id']}"
            poll(lambda: f"{cid} sluicedb/sluice_test@127.0.0.1:{p1}" in s.log_text(),
                 timeout=3, what=f"log line naming {cid}")
            con.cmd(f"KILL_CLIENT {victim['id']}")
            with pytest.raises(psycopg.OperationalError):
                c1.execute("select 1")
            assert c2.execute("select 'alive'").fetchone() == ("alive",)
            poll(lambda: not find(con.show("CLIENTS"), port=str(p1)),
                 what="killed client gone from SHOW CLIENTS")
            one(con.show("CLIENTS"), port=str(p2))
            # an id nobody has: an error, the session goes on
            e = con.error("KILL_CLIENT 987654321")
            assert e.severity == "ERROR", e
            e = con.error("KILL_CLIENT")
            assert e.severity == "ERROR", e
            assert con.show("VERSION")[0]["version"]
    finally:
        c1.close()
        c2.close()


@pytest.mark.timeout(30)
def test_reconnect_replaces_servers(sluice, pg):
    s = start(sluice, dict(TX, default_pool_size=1, reserve_pool_size=0))
    c = s.connect()
    try:
        p1 = _pid(c)
        assert _pid(c) == p1            # one server, reused
        with Console(s.port) as con:
            con.cmd("RECONNECT")
            p2 = _pid(c)
            assert p2 != p1, "RECONNECT did not replace the idle server"
            poll(lambda: not pg_pid_alive(pg, p1), what="old server closed")
            # a server in a transaction is closed only once released
            c.execute("BEGIN")
            assert _pid(c) == p2
            con.cmd("RECONNECT sluicedb")
            assert _pid(c) == p2, "server replaced inside a transaction"
            assert c.execute("select 'in tx'").fetchone() == ("in tx",)
            c.execute("COMMIT")
            p3 = _pid(c)
            assert p3 not in (p1, p2)
            poll(lambda: not pg_pid_alive(pg, p2), what="old server closed")
            assert con.show("VERSION")[0]["version"]
    finally:
        c.close()


@pytest.mark.timeout(30)
def test_wait_close_after_reconnect(sluice, pg):
    s = start(sluice, dict(TX, default_pool_size=2))
    c = s.connect()
    try:
        c.execute("select 1")
        with Console(s.port) as con:
            # nothing marked: answers at once
            t0 = time.monotonic()
            con.cmd("WAIT_CLOSE", timeout=5)
            assert time.monotonic() - t0 < 1.0
            c.execute("BEGIN")
            pid = _pid(c)
            con.cmd("RECONNECT")
            w = console_cmd_in_thread(s.port, "WAIT_CLOSE sluicedb")
            assert still_running(w, 1.0), f"WAIT_CLOSE answered early: {w.result}"
            assert pg_pid_alive(pg, pid)
            c.execute("COMMIT")
            r = w.get(timeout=10)
            assert r.error is None, r
            assert not find(con.show("SERVERS"), remote_pid=str(pid)), "marked server still listed"
            poll(lambda: not pg_pid_alive(pg, pid), timeout=3, what="old server closed")
            assert _pid(c) != pid
    finally:
        c.close()


# =========================================================================
# 6. RELOAD and SET

@pytest.mark.timeout(30)
def test_reload_changes_pool_size(sluice):
    s = start(sluice, dict(TX, default_pool_size=1, reserve_pool_size=0))
    with Console(s.port) as con:
        def cfg():
            return {r["key"]: r["value"] for r in con.show("CONFIG")}
        assert cfg()["default_pool_size"] == "1"
        text = s.ini.read_text()
        new, n = re.subn(r"(?m)^default_pool_size = 1$", "default_pool_size = 3", text)
        assert n == 1, text
        s.ini.write_text(new)
        con.cmd("RELOAD", timeout=10)
        assert cfg()["default_pool_size"] == "3"
        assert one(con.show("DATABASES"), name="sluicedb")["pool_size"] == "3"

        def sleeper():
            with s.connect() as c:
                c.execute("select pg_sleep(1)")
        t0 = time.monotonic()
        ws = [Worker(sleeper) for _ in range(3)]
        for w in ws:
            w.start()
        seen = 0
        while any(w.is_alive() for w in ws) and time.monotonic() - t0 < 10:
            seen = max(seen, len(find(con.show("SERVERS"), database="sluicedb")))
            time.sleep(0.1)
        for w in ws:
            w.get(timeout=10)
        elapsed = time.monotonic() - t0
        assert elapsed < 2.5, f"3 x pg_sleep(1) took {elapsed:.2f} s with pool size 3"
        assert seen == 3, f"saw {seen} servers in SHOW SERVERS, want 3"


@pytest.mark.timeout(20)
def test_set_changes_config(sluice):
    s = start(sluice, dict(TX, default_pool_size=2))
    with Console(s.port) as con:
        def cfg():
            return {r["key"]: r["value"] for r in con.show("CONFIG")}
        con.cmd("SET default_pool_size = 5")
        assert cfg()["default_pool_size"] == "5"
        assert one(con.show("DATABASES"), name="sluicedb")["pool_size"] == "5"
        con.cmd("set default_pool_size = '6';")
        assert cfg()["default_pool_size"] == "6"
        for bad in ("SET no_such_setting = 1", "SET default_pool_size = abc"):
            e = con.error(bad)
            assert e.severity == "ERROR", e
        assert cfg()["default_pool_size"] == "6"
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.sluice_only
@pytest.mark.timeout(20)
def test_reload_of_invalid_file_changes_nothing(sluice):
    s = start(sluice, dict(TX, default_pool_size=2))
    text = s.ini.read_text()
    s.ini.write_text(text.replace("default_pool_size = 2", "default_pool_size = lots"))
    with Console(s.port) as con:
        e = con.error("RELOAD")
        assert e.severity == "ERROR", e
        assert "RELOAD failed" in e.message, e
        assert {r["key"]: r["value"] for r in con.show("CONFIG")}["default_pool_size"] == "2"
        assert con.show("VERSION")[0]["version"]
    assert s.alive()
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


# =========================================================================
# 7. SHUTDOWN

@pytest.mark.timeout(20)
def test_shutdown(sluice):
    s = start(sluice, TX)
    c = s.connect()
    try:
        c.execute("select 1")
        con = Console(s.port)
        t0 = time.monotonic()
        r = send_until_closed(con, "SHUTDOWN")
        assert r is None or r.error is None, r
        rc = wait_exit(s, 5)
        assert rc is not None, "still running 5 s after SHUTDOWN"
        accept_exit(s)
        assert time.monotonic() - t0 < 5
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 1")
        con.close()
    finally:
        c.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_shutdown_wait_for_servers(sluice, pg, fresh_db):
    pg.sql("CREATE TABLE t_shutdown (v text)", dbname=fresh_db)
    pg.sql("GRANT ALL ON t_shutdown TO sluice_test", dbname=fresh_db)
    s = start(sluice, dict(TX, default_pool_size=2, shutdown_timeout=20),
              databases={fresh_db: pg.db_line(fresh_db)})
    c = s.connect(db=fresh_db)
    idle = s.connect(db=fresh_db)
    try:
        idle.execute("select 1")
        c.execute("BEGIN")
        c.execute("INSERT INTO t_shutdown VALUES ('before')")
        with Console(s.port) as con:
            r = send_until_closed(con, "SHUTDOWN WAIT_FOR_SERVERS")
            assert r is None or r.error is None, r
        assert login_refused(s, db=fresh_db), "new login accepted during shutdown"
        time.sleep(0.5)
        assert s.alive(), "exited with a transaction open"
        # the open transaction finishes normally
        c.execute("INSERT INTO t_shutdown VALUES ('during')")
        c.execute("COMMIT")
        rc = wait_exit(s, 5)
        assert rc is not None, "still running 5 s after the last transaction ended"
        accept_exit(s)
        rows = pg.sql("SELECT v FROM t_shutdown ORDER BY v", dbname=fresh_db)
        assert rows == [("before",), ("during",)]
        for conn in (c, idle):
            with pytest.raises(psycopg.OperationalError):
                conn.execute("select 1")
    finally:
        c.close()
        idle.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_shutdown_wait_for_clients(sluice):
    s = start(sluice, dict(TX, shutdown_timeout=20))
    c = s.connect()
    try:
        c.execute("select 1")
        with Console(s.port) as con:
            r = send_until_closed(con, "SHUTDOWN WAIT_FOR_CLIENTS")
            assert r is None or r.error is None, r
        assert login_refused(s), "new login accepted during shutdown"
        time.sleep(0.5)
        assert s.alive(), "exited while a client was connected"
        # the client goes on as long as it likes
        for i in range(3):
            assert c.execute(f"select {i}").fetchone() == (i,)
        c.execute("BEGIN")
        c.execute("COMMIT")
        assert s.alive()
        c.close()
        rc = wait_exit(s, 5)
        assert rc is not None, "still running 5 s after the last client left"
        accept_exit(s)
    finally:
        c.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(20)
def test_shutdown_wait_for_clients_gives_up_after_shutdown_timeout(sluice):
    s = start(sluice, dict(TX, shutdown_timeout=1))
    c = s.connect()
    try:
        c.execute("select 1")
        t0 = time.monotonic()
        with Console(s.port) as con:
            r = send_until_closed(con, "SHUTDOWN WAIT_FOR_CLIENTS")
            assert r is None or r.error is None, r
        rc = wait_exit(s, 6)
        elapsed = time.monotonic() - t0
        assert rc is not None, "still running 6 s after SHUTDOWN with shutdown_timeout=1"
        accept_exit(s)
        assert 0.8 <= elapsed < 6, f"exited after {elapsed:.2f} s"
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 1")
    finally:
        c.close()


# =========================================================================
# 8. errors that do not end the session; syntax

@pytest.mark.timeout(20)
def test_unknown_commands_keep_session(sluice):
    s = start(sluice)
    with Console(s.port) as con:
        for sql in ("FOO", "SHOW NOSUCH", "SHOW", "PAUSE sluicedb extra words",
                    "SELECT 1"):
            e = con.error(sql)
            assert e.severity == "ERROR", e
            assert e.sqlstate in codes("42601"), e
            assert con.show("VERSION")[0]["version"]
        e = con.error("PAUSE no_such_db")
        assert e.severity == "ERROR", e
        assert con.show("VERSION")[0]["version"]
    # psql exits 1 on the error, and says what it was
    r = psql_admin(s, "SHOW NOSUCH")
    assert r.returncode != 0 and "ERROR" in r.stderr, (r.returncode, r.stderr)


@pytest.mark.timeout(20)
def test_extended_protocol_refused_psycopg(sluice):
    s = start(sluice)
    with psycopg.connect(s.dsn(ADMIN_DB, ADMIN, ADMIN_PW), autocommit=True,
                         prepare_threshold=None, connect_timeout=10) as c:
        # no parameters: psycopg sends a simple Query
        assert c.execute("SHOW VERSION").fetchone()[0]
        with pytest.raises(psycopg.Error) as ei:
            c.execute("SHOW %s", ("VERSION",))
        assert ei.value.sqlstate == "08P01", ei.value
        if not COMPAT:      # PgBouncer 1.18 closes the connection here
            assert c.execute("SHOW VERSION").fetchone()[0]
            rows = c.execute("SHOW POOLS").fetchall()
            assert rows is not None


@pytest.mark.timeout(20)
def test_extended_protocol_refused_raw(sluice):
    s = start(sluice)
    con = Console(s.port)
    try:
        send_batch(con.conn, [msg_parse("", "SHOW VERSION"), msg_bind(""),
                              msg_describe("P", ""), msg_execute(), msg_sync()])
        out = read_messages(con.conn)
        errors = [m for m in out if m[0] == "Error"]
        assert len(errors) == 1 and errors[0][1] == "08P01", out
        assert out[-1][0] == "ReadyForQuery", out
        assert not [m for m in out if m[0] in ("ParseComplete", "BindComplete", "DataRow")], out
        if not COMPAT:      # PgBouncer 1.18 closes the connection here
            assert con.show("VERSION")[0]["version"]
            # a lone Parse, then Sync: one error, then usable again
            send_batch(con.conn, [msg_parse("s1", "SHOW POOLS"), msg_sync()])
            out = read_messages(con.conn)
            assert [m[0] for m in out] == ["Error", "ReadyForQuery"], out
            assert out[0][1] == "08P01", out
            assert con.show("VERSION")[0]["version"]
    finally:
        con.close()


@pytest.mark.timeout(20)
def test_command_syntax_semicolon_and_case(sluice):
    s = start(sluice, TX)
    with Console(s.port) as con:
        for sql in ("SHOW VERSION", "show version;", "  ShOw   VeRsIoN  ;  ",
                    "SHOW VERSION ;"):
            r = con.cmd(sql)
            assert r.columns == VERSION_COLUMNS and len(r.rows) == 1, (sql, r)
        r = con.cmd("show pools;")
        assert r.columns == POOLS_COLUMNS
        con.cmd("pause sluicedb;", timeout=10)
        assert one(con.show("databases"), name="sluicedb")["paused"] == "1"
        con.cmd("Resume sluicedb;")
        assert one(con.show("databases"), name="sluicedb")["paused"] == "0"
