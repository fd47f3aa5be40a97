"""SIGHUP reloads the configuration file and the auth_file
(docs/operations.md, "Signals and reload"):

- default_pool_size applies at once (observed through pool behaviour);
- a database added to [databases] becomes connectable, a removed one refuses
  new logins while its connected clients go on;
- users added to auth_file can log in, a changed password takes effect;
- an invalid file changes nothing: the process stays up, clients keep
  working, and the log says `RELOAD failed: FILE:LINE: ...`;
- no established session (session or transaction mode, inside a transaction
  or not) is dropped by a reload.

Checked against PgBouncer 1.18 with SLUICE_BIN=/usr/sbin/pgbouncer, except
for the parts marked sluice-only (message text, all-or-nothing reload,
clients of a removed database going on).
"""

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest

from conftest import PgError, RawConn, Worker, is_pgbouncer_compat, tail, unique

COMPAT = is_pgbouncer_compat()
TX = {"pool_mode": "transaction", "reserve_pool_size": 0, "admin_users": "sluice_test",
      "query_wait_timeout": 30}
MAIN_SECTIONS = ("sluice", "pgbouncer")


# --------------------------------------------------------------------------
# helpers

def edit_ini(path, main=None, databases=None):
    """Rewrite the ini atomically. main / databases: {key: value}, a value of
    None removes the key. Keys not present yet are added at the end of their
    section. Returns the new text."""
    changes = {"databases": dict(databases or {})}
    for sec in MAIN_SECTIONS:
        changes[sec] = dict(main or {})
    out, section, seen = [], None, set()

    def close_section():
        if section in changes:
            for k, v in changes[section].items():
                if k not in seen and v is not None:
                    out.append(f"{k} = {v}")

    for line in Path(path).read_text().splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            close_section()
            # keep a blank line before the next section header
            if out and out[-1].strip() and section is not None:
                out.append("")
            section, seen = s[1:-1].strip().lower(), set()
            out.append(line)
            continue
        if section in changes and "=" in s and not s.startswith((";", "#")):
            key = s.split("=", 1)[0].strip()
            if key in changes[section]:
                seen.add(key)
                v = changes[section][key]
                if v is not None:
                    out.append(f"{key} = {v}")
                continue
        out.append(line)
    close_section()
    text = "\n".join(out) + "\n"
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return text


def write_userlist(s, users):
    """Replace the instance's auth_file atomically."""
    path = Path(s.dir) / "userlist.txt"
    q = lambda x: '"' + x.replace('"', '""') + '"'  # noqa: E731
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{q(u)} {q(p)}\n" for u, p in users.items()))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def sighup(s):
    assert s.alive(), f"sluice not running before SIGHUP; log:\n{tail(s.log_text())}"
    os.kill(s.pid, signal.SIGHUP)


def admin_query(s, sql, timeout=5.0):
    """Rows of one admin console command (simple protocol), as sluice_test."""
    c = RawConn(s.host, s.port, timeout)
    try:
        c.login("sluice_test", "pgbouncer", "test_pw")
        rows, err = c.simple_query(sql)
    finally:
        c.terminate()
    if err:
        raise PgError(err)
    return rows


def wait_setting(s, key, value, timeout=5.0):
    """Wait until SHOW CONFIG reports key = value (the reload was applied).
    When the admin console cannot be used at all, fall back to a short wait
    (the admin console has its own tests)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            rows = admin_query(s, "SHOW CONFIG")
        except (PgError, OSError, ConnectionError) as e:
            if last is None and isinstance(e, PgError):
                time.sleep(1.0)
                return
            last = e
            time.sleep(0.1)
            continue
        vals = {r[0]: r[1] for r in rows if r}
        last = vals.get(key)
        if last == str(value):
            return
        time.sleep(0.1)
    raise AssertionError(f"SHOW CONFIG: {key} = {last!r}, not {value!r}, {timeout} s after "
                         f"SIGHUP; log:\n{tail(s.log_text())}")


def try_login(s, db, user="sluice_test", password="test_pw"):
    """None when a login succeeds and a query answers, else the error."""
    try:
        with s.connect(db=db, user=user, password=password, connect_timeout=3) as c:
            assert c.execute("select 1").fetchone() == (1,)
        return None
    except psycopg.Error as e:
        return e


def login_sqlstate(s, db, user="sluice_test", password="test_pw"):
    """SQLSTATE of a refused login (psycopg reports none for connection
    failures, so this uses the raw client); None when the login succeeds."""
    c = RawConn(s.host, s.port, 5.0)
    try:
        c.login(user, db, password)
        return None
    except PgError as e:
        return e.sqlstate
    finally:
        c.terminate()


def wait_login(s, db, ok, user="sluice_test", password="test_pw", timeout=5.0):
    """Poll until a login succeeds (ok=True) or fails (ok=False); returns
    the last error (None on success)."""
    deadline = time.monotonic() + timeout
    while True:
        err = try_login(s, db, user, password)
        if (err is None) == ok:
            return err
        if time.monotonic() > deadline:
            raise AssertionError(
                f"login {user}@{db} {'still fails' if ok else 'still succeeds'} "
                f"{timeout} s after SIGHUP (last error: {err}); log:\n{tail(s.log_text())}")
        time.sleep(0.1)


def concurrent_sleeps(s, n=3, secs=1.0, db="sluicedb"):
    """n clients (connected beforehand) each run pg_sleep(secs) at once;
    returns the wall time until all are done."""
    conns = [s.connect(db=db) for _ in range(n)]
    try:
        for c in conns:
            c.execute("select 1")
        ws = [Worker(c.execute, f"select pg_sleep({secs})") for c in conns]
        t0 = time.monotonic()
        for w in ws:
            w.start()
        for w in ws:
            w.get(timeout=20)
        return time.monotonic() - t0
    finally:
        for c in conns:
            c.close()


# --------------------------------------------------------------------------
# pool size

def test_reload_default_pool_size(sluice):
    s = sluice(dict(TX, default_pool_size=1))
    serial = concurrent_sleeps(s)
    assert serial >= 2.7, f"pool_size 1: 3 x pg_sleep(1) took only {serial:.2f} s"
    edit_ini(s.ini, main={"default_pool_size": 3})
    sighup(s)
    wait_setting(s, "default_pool_size", 3)
    parallel = concurrent_sleeps(s)
    assert parallel < 2.0, (f"after reload to pool_size 3, 3 x pg_sleep(1) took "
                            f"{parallel:.2f} s; log:\n{tail(s.log_text())}")
    assert s.alive()


# --------------------------------------------------------------------------
# databases

def test_reload_adds_database(sluice, pg, fresh_db):
    s = sluice(TX)
    err = try_login(s, fresh_db)
    assert err is not None, "database not in [databases] accepted before reload"
    if not COMPAT:
        assert login_sqlstate(s, fresh_db) == "3D000", err
    edit_ini(s.ini, databases={fresh_db: pg.db_line(fresh_db)})
    sighup(s)
    wait_login(s, fresh_db, ok=True)
    with s.connect(db=fresh_db) as c:
        assert c.execute("select current_database()").fetchone() == (fresh_db,)
    # the old database is unaffected
    assert try_login(s, "sluicedb") is None


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_reload_removes_database(sluice, pg, fresh_db, mode):
    """New logins to a removed database are refused; a client connected to it
    goes on. (PgBouncer 1.18 closes the clients of a removed database, so
    that half is checked on sluice only.)"""
    s = sluice(dict(TX, pool_mode=mode),
               databases={"sluicedb": pg.db_line("sluicedb"), fresh_db: pg.db_line(fresh_db)})
    keep = s.connect(db=fresh_db)
    try:
        assert keep.execute("select current_database()").fetchone() == (fresh_db,)
        edit_ini(s.ini, databases={fresh_db: None})
        sighup(s)
        err = wait_login(s, fresh_db, ok=False)
        if not COMPAT:
            assert login_sqlstate(s, fresh_db) == "3D000", err
        assert "database" in str(err), err
        if not COMPAT:
            # the connected client of the removed database goes on
            for i in range(3):
                assert keep.execute("select %s::int", (i,)).fetchone() == (i,)
            keep.execute("BEGIN")
            assert keep.execute("select current_database()").fetchone() == (fresh_db,)
            keep.execute("COMMIT")
            # and new logins are still refused after it used the pool
            assert login_sqlstate(s, fresh_db) == "3D000"
        # the remaining database still works
        assert try_login(s, "sluicedb") is None
        assert s.alive()
    finally:
        keep.close()


# --------------------------------------------------------------------------
# auth_file

@pytest.fixture
def role(pg):
    """A PostgreSQL login role; dropped after the test (and after sluice, as
    this fixture is set up first)."""
    name = unique("rl_user")
    pg.sql(f"CREATE ROLE {name} LOGIN PASSWORD 'first_pw'")
    yield name
    try:
        pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
               (name,))
        for _ in range(50):
            try:
                pg.sql(f"DROP ROLE IF EXISTS {name}")
                break
            except psycopg.Error:
                time.sleep(0.1)
    except Exception:
        pass


def test_reload_adds_user(role, sluice):
    s = sluice(TX)
    err = try_login(s, "sluicedb", user=role, password="first_pw")
    assert err is not None, "user not in auth_file could log in"
    users = {"sluice_test": "test_pw", "md5user": "md5_pw", role: "first_pw"}
    write_userlist(s, users)
    sighup(s)
    wait_login(s, "sluicedb", ok=True, user=role, password="first_pw")
    with s.connect(user=role, password="first_pw") as c:
        assert c.execute("select current_user").fetchone() == (role,)
    assert try_login(s, "sluicedb") is None


def test_reload_changes_password(role, pg, sluice):
    users = {"sluice_test": "test_pw", role: "first_pw"}
    s = sluice(TX, userlist=users)
    assert try_login(s, "sluicedb", user=role, password="first_pw") is None
    # a client logged in with the old password stays logged in
    keep = s.connect(user=role, password="first_pw")
    try:
        pg.sql(f"ALTER ROLE {role} PASSWORD 'second_pw'")
        write_userlist(s, dict(users, **{role: "second_pw"}))
        sighup(s)
        wait_login(s, "sluicedb", ok=True, user=role, password="second_pw")
        err = try_login(s, "sluicedb", user=role, password="first_pw")
        assert err is not None, "the old password still works after reload"
        assert "authentication failed" in str(err), err
        assert keep.execute("select current_user").fetchone() == (role,)
    finally:
        keep.close()


# --------------------------------------------------------------------------
# invalid configuration

def test_reload_invalid_config_keeps_old(sluice, pg, fresh_db):
    s = sluice(dict(TX, default_pool_size=1))
    before = s.connect()
    try:
        before.execute("select 1")
        # one bad value, and a valid change that must not be applied either
        text = edit_ini(s.ini, main={"default_pool_size": "banana"},
                        databases={fresh_db: pg.db_line(fresh_db)})
        lineno = next(i for i, ln in enumerate(text.splitlines(), 1)
                      if ln.startswith("default_pool_size") and "banana" in ln)
        sighup(s)
        if COMPAT:
            time.sleep(1.0)
        else:
            deadline = time.monotonic() + 5
            while "RELOAD failed" not in s.log_text():
                assert time.monotonic() < deadline, \
                    f"no 'RELOAD failed' in the log; log:\n{tail(s.log_text())}"
                time.sleep(0.05)
            line = next(ln for ln in s.log_text().splitlines() if "RELOAD failed" in ln)
            assert f"RELOAD failed: {s.ini}:{lineno}:" in line, line
            assert "default_pool_size" in line, line
            # nothing of the new file applied: not the new database either
            assert login_sqlstate(s, fresh_db) == "3D000"
        assert s.alive(), f"sluice died on an invalid reload; log:\n{tail(s.log_text())}"
        if not COMPAT:
            # the old pool size (1) is still in force. (PgBouncer 1.18 puts
            # the bad key back to its default, 20, instead.)
            serial = concurrent_sleeps(s)
            assert serial >= 2.7, f"pool size changed by an invalid reload ({serial:.2f} s)"
        # existing and new clients keep working
        assert before.execute("select 'still here'").fetchone() == ("still here",)
        assert try_login(s, "sluicedb") is None
        # a later valid reload works again
        edit_ini(s.ini, main={"default_pool_size": 3})
        sighup(s)
        wait_setting(s, "default_pool_size", 3)
        assert concurrent_sleeps(s) < 2.0
        if not COMPAT:
            wait_login(s, fresh_db, ok=True)
    finally:
        before.close()


# --------------------------------------------------------------------------
# no session is dropped

@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_reload_keeps_established_sessions(sluice, pg, mode):
    """Clients connected before the reload (idle, and one inside a
    transaction) run queries after it. The reload changes the pool size and
    sluicedb's server connection settings (a password=..., as RECONNECT)."""
    s = sluice(dict(TX, pool_mode=mode, default_pool_size=4))
    table = unique("rl_keep")
    pg.sql(f"CREATE TABLE {table} (v int)", dbname="sluicedb")
    pg.sql(f"GRANT ALL ON {table} TO sluice_test", dbname="sluicedb")
    idle = s.connect()
    in_tx = s.connect()
    try:
        idle.execute("select 1")
        if mode == "session":
            idle.execute("SET application_name = 'rl_session_state'")
            session_pid = idle.execute("select pg_backend_pid()").fetchone()[0]
        in_tx.execute("BEGIN")
        in_tx.execute(f"INSERT INTO {table} VALUES (1)")
        edit_ini(s.ini, main={"default_pool_size": 5},
                 databases={"sluicedb": pg.db_line("sluicedb", password="test_pw")})
        sighup(s)
        wait_setting(s, "default_pool_size", 5)
        # the transaction goes on and commits
        in_tx.execute(f"INSERT INTO {table} VALUES (2)")
        in_tx.execute("COMMIT")
        assert pg.sql(f"select count(*) from {table}", dbname="sluicedb")[0][0] == 2
        # the idle client goes on
        for i in range(3):
            assert idle.execute("select %s::int", (i,)).fetchone() == (i,)
            assert in_tx.execute("select %s::int", (i,)).fetchone() == (i,)
        if mode == "session":
            # same server, same session state
            assert idle.execute("select pg_backend_pid()").fetchone()[0] == session_pid
            assert idle.execute("show application_name").fetchone() == ("rl_session_state",)
        # new clients too
        assert try_login(s, "sluicedb") is None
        assert s.alive()
    finally:
        idle.close()
        in_tx.close()
        pg.sql(f"DROP TABLE IF EXISTS {table}", dbname="sluicedb")
