"""auth_query / auth_user / auth_dbname: users missing from auth_file are
looked up in PostgreSQL with auth_query (default, PgBouncer 1.25's, on
pg_authid), run as auth_user
(whose password is in auth_file) in auth_dbname (default: the database the
client asked for). The client then authenticates against the secret found
(md5 hash or SCRAM verifier), and sluice logs in to PostgreSQL as that user
(md5 hash login, or SCRAM with the keys learned from the client's proof).

sluice refuses like PostgreSQL: 28P01 'password authentication failed for
user "U"' for a wrong password and for an unknown user alike. PgBouncer 1.18
answers 08P01 'password authentication failed' / 'SASL authentication
failed', and 08P01 'no such user' right away for an unknown user; those are
accepted only when SLUICE_BIN is pgbouncer (COMPAT). PgBouncer 1.18 has no
auth_dbname (added in 1.19), so that test is sluice-only.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from conftest import PgError, RawConn, Worker
from tls_helpers import COMPAT, chown_postgres, client_tls_ini, libpq_tls, pg_tls_enabled
from tls_helpers import pki  # noqa: F401 (fixture)

SUPER = "aq_super"          # superuser: can read pg_shadow (default auth_query)
SUPER_PW = "aq_super_pw"
LOOKUP = "aq_lookup"        # non-superuser that may only run public.aq_lookup()
LOOKUP_PW = "aq_lookup_pw"
SCRAMU = "aq_scram"         # SCRAM-stored password, not in any auth_file
SCRAMU_PW = "aq_scram_pw"
SLOWU = "slowuser"          # aq_lookup() sleeps 2 s for this one
SLOWU_PW = "slow_pw"
EVIL = "o'brien; drop table x;--"
EVIL_PW = "evil_pw"
AUTHDB = "aq_authdb"        # holds aq_lookup_elsewhere(), for auth_dbname
ROLES = (SUPER, LOOKUP, SCRAMU, SLOWU, EVIL)

LOOKUP_FN = """
CREATE OR REPLACE FUNCTION public.{name}(u text)
RETURNS TABLE(usename name, passwd text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO public.aq_calls(who) VALUES (u);
    IF u = 'slowuser' THEN
        PERFORM pg_sleep(2);
    END IF;
    RETURN QUERY SELECT s.usename, s.passwd FROM pg_catalog.pg_shadow s WHERE s.usename = u;
END $$
"""


def _q(ident):
    return '"' + ident.replace('"', '""') + '"'


@pytest.fixture(scope="module")
def aq(pg):
    """Roles, the lookup function (in sluicedb and, under another name, in
    aq_authdb), the call log table aq_calls and the canary table x."""
    def cleanup():
        pg.sql(f"DROP DATABASE IF EXISTS {AUTHDB} WITH (FORCE)")
        for db in ("sluicedb",):
            pg.sql("DROP FUNCTION IF EXISTS public.aq_lookup(text)", dbname=db)
            pg.sql("DROP TABLE IF EXISTS public.aq_calls", dbname=db)
            pg.sql("DROP TABLE IF EXISTS public.x", dbname=db)
        for r in ROLES:
            pg.sql(f"DROP ROLE IF EXISTS {_q(r)}")

    cleanup()
    pg.sql(f"CREATE ROLE {SUPER} LOGIN SUPERUSER PASSWORD '{SUPER_PW}'")
    pg.sql(f"CREATE ROLE {LOOKUP} LOGIN PASSWORD '{LOOKUP_PW}'")
    pg.sql(f"CREATE ROLE {SCRAMU} LOGIN PASSWORD '{SCRAMU_PW}'")
    pg.sql(f"CREATE ROLE {SLOWU} LOGIN PASSWORD '{SLOWU_PW}'")
    pg.sql(f"CREATE ROLE {_q(EVIL)} LOGIN PASSWORD '{EVIL_PW}'")
    pg.sql(f"CREATE DATABASE {AUTHDB}")
    for db, fn in (("sluicedb", "aq_lookup"), (AUTHDB, "aq_lookup_elsewhere")):
        pg.sql("CREATE TABLE public.aq_calls(who text, at timestamptz DEFAULT clock_timestamp())",
               dbname=db)
        pg.sql(LOOKUP_FN.format(name=fn), dbname=db)
        pg.sql(f"REVOKE ALL ON FUNCTION public.{fn}(text) FROM PUBLIC", dbname=db)
        pg.sql(f"GRANT EXECUTE ON FUNCTION public.{fn}(text) TO {LOOKUP}", dbname=db)
    # the canary: auth_user aq_super could drop it if a user name were
    # pasted into the query text
    pg.sql("CREATE TABLE public.x(i int)", dbname="sluicedb")
    pg.sql("INSERT INTO public.x VALUES (42)", dbname="sluicedb")
    try:
        yield pg
    finally:
        cleanup()


@pytest.fixture
def hba_path():
    """hba_path(text) -> path (str) of an hba file the postgres user can read."""
    dirs = []

    def make(text):
        d = Path(tempfile.mkdtemp(prefix="sluice-aq-hba-"))
        dirs.append(d)
        os.chmod(d, 0o755)
        chown_postgres(d)
        f = d / "hba.conf"
        f.write_text(text)
        os.chmod(f, 0o644)
        chown_postgres(f)
        return str(f)
    yield make
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def calls(pg, db="sluicedb"):
    return [r[0] for r in pg.sql("SELECT who FROM public.aq_calls ORDER BY at", dbname=db)]


def clear_calls(pg, db="sluicedb"):
    pg.sql("TRUNCATE public.aq_calls", dbname=db)


class Attempt:
    """A raw login attempt: methods asked for, whether a password message
    was sent, the error (PgError) if refused, the elapsed time."""

    def __init__(self, s, user, password, db="sluicedb", timeout=15):
        self.methods, self.error, self.password_sent, self.user = None, None, 0, None
        c = RawConn(s.host, s.port, timeout)
        orig_send = c.send

        def send(typ, body=b""):
            if typ == b"p":
                self.password_sent += 1
            return orig_send(typ, body)
        c.send = send
        t0 = time.monotonic()
        try:
            self.methods = c.login(user, db, password)
            rows, err = c.simple_query("select current_user")
            assert err is None, err
            self.user = rows[0][0]
            c.terminate()
        except PgError as e:
            self.error = e
        finally:
            self.elapsed = time.monotonic() - t0
            c.close()

    @property
    def ok(self):
        return self.error is None

    def __repr__(self):
        return (f"<Attempt methods={self.methods} user={self.user!r} error={self.error} "
                f"password_sent={self.password_sent} elapsed={self.elapsed:.2f}>")


def assert_refused(a, user):
    """Wrong password or unknown user. sluice: FATAL 28P01 'password
    authentication failed for user "U"'; PgBouncer 1.18: FATAL 08P01 with
    'authentication failed' or 'no such user'."""
    assert not a.ok, f"login succeeded: {a}"
    assert a.error.severity == "FATAL", a
    if COMPAT:
        assert a.error.sqlstate == "08P01", a
        assert re_any(a.error.message, ("authentication failed", "no such user")), a
    else:
        assert a.error.sqlstate == "28P01", a
        assert a.error.message == f'password authentication failed for user "{user}"', a


def re_any(text, words):
    return any(w in text for w in words)


def super_sluice(sluice, auth_type="md5", **ini):
    main = {"auth_type": auth_type, "auth_user": SUPER}
    main.update(ini)
    return sluice(main, userlist={SUPER: SUPER_PW, "sluice_file_user": "file_pw"})


def lookup_sluice(sluice, auth_type="md5", **ini):
    main = {"auth_type": auth_type, "auth_user": LOOKUP,
            "auth_query": "SELECT usename, passwd FROM public.aq_lookup($1)"}
    main.update(ini)
    return sluice(main, userlist={LOOKUP: LOOKUP_PW, "sluice_test": "test_pw"})


# --------------------------------------------------------------------------

def test_default_query_md5_user(sluice, aq):
    """Default auth_query (pg_authid): md5user's md5 hash is found, the
    client passes an md5 challenge, and sluice logs in to PostgreSQL as
    md5user with only the hash."""
    s = super_sluice(sluice, "md5")
    a = Attempt(s, "md5user", "md5_pw")
    assert a.ok and a.methods == [5, 0] and a.user == "md5user", a
    assert_refused(Attempt(s, "md5user", "wrong"), "md5user")
    with s.connect(user="md5user", password="md5_pw") as c:
        assert c.execute("select current_user").fetchone() == ("md5user",)
    r = s.psql("-c", "select 1", user="md5user", password="wrong")
    assert r.returncode != 0 and "authentication failed" in r.stderr, r.stderr


@pytest.mark.parametrize("role_sql", ["LOGIN PASSWORD 'old_pw' VALID UNTIL '2001-01-01'",
                                      "NOLOGIN PASSWORD 'old_pw'"])
def test_default_query_refuses_expired_and_nologin_roles(sluice, aq, pg, role_sql):
    """The default auth_query (PgBouncer 1.25's, on pg_authid) treats a
    password past VALID UNTIL, or a role that may not log in, as no
    password: the right password is refused. (PgBouncer 1.18's pg_shadow
    default finds the password; PostgreSQL then refuses the server login.)"""
    pg.sql("DROP ROLE IF EXISTS aq_old")
    pg.sql(f"CREATE ROLE aq_old {role_sql}")
    try:
        s = super_sluice(sluice, "md5")
        a = Attempt(s, "aq_old", "old_pw")
        assert not a.ok, a
        if not COMPAT:
            assert_refused(a, "aq_old")
    finally:
        pg.sql("DROP ROLE IF EXISTS aq_old")


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5"])
def test_default_query_scram_user(sluice, aq, auth_type):
    """A SCRAM verifier found by auth_query: the client is authenticated with
    SCRAM (also under auth_type=md5, which cannot use a verifier), and sluice
    logs in to PostgreSQL with SCRAM pass-through."""
    s = super_sluice(sluice, auth_type)
    for user, pw in ((SCRAMU, SCRAMU_PW), ("sluice_test", "test_pw")):
        a = Attempt(s, user, pw)
        assert a.ok and a.methods == [10, 11, 12, 0] and a.user == user, a
        assert_refused(Attempt(s, user, pw + "x"), user)
    with s.connect(user=SCRAMU, password=SCRAMU_PW) as c:
        assert c.execute("select current_user").fetchone() == (SCRAMU,)


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_unknown_user_refused_like_wrong_password(sluice, aq, auth_type):
    """auth_query returns no row: refused exactly like a wrong password, so
    the client cannot tell unknown users from known ones. sluice still sends
    a challenge first, as PostgreSQL does (PgBouncer 1.18 answers 'no such
    user' at once)."""
    s = super_sluice(sluice, auth_type)
    unknown = Attempt(s, "aq_nobody", "whatever")
    assert_refused(unknown, "aq_nobody")
    known_user = "md5user" if auth_type == "md5" else SCRAMU
    known = Attempt(s, known_user, "wrong")
    assert_refused(known, known_user)
    if not COMPAT:
        assert unknown.password_sent >= 1, f"no challenge for an unknown user: {unknown}"
        assert (unknown.error.sqlstate, unknown.error.severity) == \
            (known.error.sqlstate, known.error.severity)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(s.dsn(user="aq_nobody", password="x"), connect_timeout=10)


def test_user_without_password_refused(sluice, aq):
    """auth_query finds the user but passwd is NULL (trustuser has no
    password): password authentication cannot succeed, with any password or
    none."""
    s = super_sluice(sluice, "md5")
    for pw in ("", "x"):
        a = Attempt(s, "trustuser", pw)
        assert not a.ok, a
        assert a.error.sqlstate == ("08P01" if COMPAT else "28P01"), a


def test_custom_query_auth_file_users_not_looked_up(sluice, aq):
    """A custom auth_query through a SECURITY DEFINER function, run by a
    non-superuser auth_user: users in auth_file never trigger a lookup,
    others do (visible in the function's call log)."""
    clear_calls(aq)
    s = lookup_sluice(sluice, "md5")
    a = Attempt(s, "sluice_test", "test_pw")          # from auth_file
    assert a.ok and a.user == "sluice_test", a
    a = Attempt(s, LOOKUP, LOOKUP_PW)                 # auth_user itself, from auth_file
    assert a.ok and a.user == LOOKUP, a
    assert "sluice_test" not in calls(aq) and LOOKUP not in calls(aq), calls(aq)
    a = Attempt(s, "md5user", "md5_pw")
    assert a.ok and a.user == "md5user", a
    a = Attempt(s, SCRAMU, SCRAMU_PW)
    assert a.ok and a.user == SCRAMU and a.methods[0] == 10, a
    got = calls(aq)
    assert "md5user" in got and SCRAMU in got, got
    assert "sluice_test" not in got and LOOKUP not in got, got


def test_slow_lookup_does_not_block_other_logins(sluice, aq):
    """The lookup for slowuser takes 2 s (pg_sleep in the function); a
    login needing its own lookup, started meanwhile, finishes in well under
    a second, and slowuser gets in too."""
    s = lookup_sluice(sluice, "md5")
    # warm up: auth_user's server connection exists already
    assert Attempt(s, "md5user", "md5_pw").ok
    slow = Worker(Attempt, s, SLOWU, SLOWU_PW)
    t_slow = time.monotonic()
    slow.start()
    time.sleep(0.3)
    fast = Attempt(s, "md5user", "md5_pw")
    fast_done = time.monotonic()
    assert fast.ok, fast
    assert fast.elapsed < 1.0, fast
    a = slow.get(15)
    assert a.ok and a.user == SLOWU, a
    assert slow.finished_at - t_slow >= 1.8, "slowuser's lookup did not take 2 s?"
    assert fast_done < slow.finished_at, "the fast login waited for the slow one"
    # several at once, while another slow one runs
    slow2 = Worker(Attempt, s, SLOWU, SLOWU_PW)
    slow2.start()
    time.sleep(0.3)
    fast_ones = [Worker(Attempt, s, u, p) for u, p in
                 (("md5user", "md5_pw"), (SCRAMU, SCRAMU_PW), ("md5user", "md5_pw"))]
    for w in fast_ones:
        w.start()
    for w in fast_ones:
        r = w.get(10)
        assert r.ok and r.elapsed < 1.0, r
    assert slow2.get(15).ok


def test_user_name_is_a_parameter_not_sql(sluice, aq):
    """User names with quotes and semicolons are passed to auth_query as a
    parameter: "o'brien; drop table x;--" logs in (or fails cleanly), and
    the canary table x survives; a name crafted to widen the WHERE clause
    finds nobody."""
    s = super_sluice(sluice, "scram-sha-256")
    a = Attempt(s, EVIL, EVIL_PW)
    assert a.ok or a.error.severity == "FATAL", a
    if a.ok:
        assert a.user == EVIL and a.methods[0] == 10, a
    assert aq.sql("SELECT i FROM public.x", dbname="sluicedb") == [(42,)]
    # with SCRAM the user name is not part of the secret: an injected
    # OR clause that returned sluice_test's verifier would let this in
    for name in ("nobody' OR usename='sluice_test", "nobody' OR '1'='1",
                 "sluice_test'--", "x'; drop table x; --"):
        a = Attempt(s, name, "test_pw")
        assert not a.ok, f"injected name {name!r} logged in: {a}"
        assert a.error.severity == "FATAL", a
    assert aq.sql("SELECT i FROM public.x", dbname="sluicedb") == [(42,)]
    # and a custom query through the function
    s2 = lookup_sluice(sluice, "md5")
    a = Attempt(s2, EVIL, EVIL_PW)
    assert a.ok or a.error.severity == "FATAL", a
    assert EVIL in calls(aq), calls(aq)
    assert aq.sql("SELECT i FROM public.x", dbname="sluicedb") == [(42,)]


def test_lookup_failure_refuses_login(sluice, aq):
    """auth_user cannot log in (wrong password in auth_file), or auth_query is
    broken: the client is refused with an error in bounded time (no hang),
    and auth_file users keep working."""
    s = sluice({"auth_type": "md5", "auth_user": SUPER, "query_wait_timeout": 5,
                "server_login_retry": 1},
               userlist={SUPER: "not_the_password", "sluice_test": "test_pw"})
    a = Attempt(s, "md5user", "md5_pw")
    assert not a.ok and a.error.severity == "FATAL", a
    assert a.elapsed < 8, a
    assert Attempt(s, "sluice_test", "test_pw").ok

    s2 = sluice({"auth_type": "md5", "auth_user": SUPER, "query_wait_timeout": 5,
                 "auth_query": "SELEC usename, passwd FROM pg_shadow WHERE usename=$1"},
                userlist={SUPER: SUPER_PW, "sluice_test": "test_pw"})
    a = Attempt(s2, "md5user", "md5_pw")
    assert not a.ok and a.error.severity == "FATAL", a
    assert a.elapsed < 8, a
    assert Attempt(s2, "sluice_test", "test_pw").ok


# sluice-only: PgBouncer 1.18 has no auth_dbname ("unknown parameter").
@pytest.mark.sluice_only
def test_auth_dbname(sluice, aq):
    """auth_dbname: the lookup runs in that database (the function exists
    only there); without it, in the database the client asked for."""
    clear_calls(aq, AUTHDB)
    dbs = {"sluicedb": aq.db_line("sluicedb"), AUTHDB: aq.db_line(AUTHDB)}
    main = {"auth_type": "md5", "auth_user": LOOKUP,
            "auth_query": "SELECT usename, passwd FROM public.aq_lookup_elsewhere($1)"}
    s = sluice(dict(main, auth_dbname=AUTHDB), databases=dbs,
               userlist={LOOKUP: LOOKUP_PW})
    a = Attempt(s, "md5user", "md5_pw")
    assert a.ok and a.user == "md5user", a
    assert calls(aq, AUTHDB) == ["md5user"]
    # default: the client's database (sluicedb), where the function is missing
    s2 = sluice(main, databases=dbs, userlist={LOOKUP: LOOKUP_PW})
    a = Attempt(s2, "md5user", "md5_pw")
    assert not a.ok and a.error.severity == "FATAL", a
    assert a.elapsed < 8, a
    # ... and asking for aq_authdb works there
    a = Attempt(s2, "md5user", "md5_pw", db=AUTHDB)
    assert a.ok and a.user == "md5user", a


def test_password_change_takes_effect(sluice, aq):
    """The secret is looked up again: after ALTER ROLE ... PASSWORD, the new
    password works and the old one is refused (no stale cache)."""
    s = super_sluice(sluice, "scram-sha-256")
    assert Attempt(s, SLOWU, SLOWU_PW).ok
    try:
        aq.sql(f"ALTER ROLE {SLOWU} PASSWORD 'changed_pw'")
        a = Attempt(s, SLOWU, "changed_pw")
        assert a.ok and a.user == SLOWU, a
        assert_refused(Attempt(s, SLOWU, SLOWU_PW), SLOWU)
    finally:
        aq.sql(f"ALTER ROLE {SLOWU} PASSWORD '{SLOWU_PW}'")


def test_auth_query_with_hba(sluice, aq, hba_path):
    """auth_type=hba: the hba line picks the method (md5 / scram-sha-256 /
    reject), the secret comes from auth_query."""
    path = hba_path("host sluicedb md5user 127.0.0.1/32 md5\n"
                    f"host sluicedb {SCRAMU} 127.0.0.1/32 scram-sha-256\n"
                    f"host sluicedb {SLOWU} 127.0.0.1/32 reject\n"
                    f"host sluicedb {SUPER} 127.0.0.1/32 md5\n")
    s = super_sluice(sluice, "hba", auth_hba_file=path)
    a = Attempt(s, "md5user", "md5_pw")
    assert a.ok and a.methods == [5, 0] and a.user == "md5user", a
    assert_refused(Attempt(s, "md5user", "nope"), "md5user")
    a = Attempt(s, SCRAMU, SCRAMU_PW)
    assert a.ok and a.methods == [10, 11, 12, 0] and a.user == SCRAMU, a
    a = Attempt(s, SLOWU, SLOWU_PW)
    assert not a.ok and a.error.sqlstate == ("08P01" if COMPAT else "28000"), a


def test_auth_query_over_tls_both_sides(sluice, aq, pki):
    """PostgreSQL with TLS (it offers SCRAM-SHA-256-PLUS there): the lookup,
    the md5-hash login and the SCRAM pass-through login to PostgreSQL all
    work over TLS, for plaintext and TLS clients."""
    with pg_tls_enabled(aq, pki):
        s = super_sluice(sluice, "md5", server_tls_sslmode="require",
                         **client_tls_ini(pki, "prefer"))
        for extra in ("sslmode=disable", libpq_tls(pki, "verify-full")):
            for user, pw in (("md5user", "md5_pw"), (SCRAMU, SCRAMU_PW)):
                with psycopg.connect(s.dsn(user=user, password=pw) + " " + extra,
                                     autocommit=True, connect_timeout=10) as c:
                    assert c.execute("select current_user, ssl from pg_stat_ssl "
                                     "where pid = pg_backend_pid()").fetchone() == (user, True)
        a = Attempt(s, SCRAMU, "wrong")
        assert_refused(a, SCRAMU)


def test_auth_user_per_database(sluice, aq):
    """auth_user set on one [databases] entry only: its clients missing from
    auth_file are looked up; the other database has no lookup and refuses
    them."""
    dbs = {"sluicedb": aq.db_line("sluicedb") + f" auth_user={SUPER}",
           "plaindb": aq.db_line("sluicedb")}
    s = sluice({"auth_type": "md5"}, databases=dbs, userlist={SUPER: SUPER_PW})
    a = Attempt(s, "md5user", "md5_pw")
    assert a.ok and a.user == "md5user", a
    a = Attempt(s, "md5user", "md5_pw", db="plaindb")
    assert not a.ok and a.error.severity == "FATAL", a


@pytest.mark.sluice_only
def test_auth_query_and_dbname_per_database(sluice, aq):
    """auth_query and auth_dbname on a [databases] entry win over the global
    ones for that database's clients (PgBouncer 1.25)."""
    clear_calls(aq, AUTHDB)
    clear_calls(aq)
    per_db = (f" auth_user={LOOKUP} auth_dbname={AUTHDB}"
              " auth_query='SELECT usename, passwd FROM public.aq_lookup_elsewhere($1)'")
    dbs = {"sluicedb": aq.db_line("sluicedb") + per_db, AUTHDB: aq.db_line(AUTHDB),
           "otherdb": aq.db_line("sluicedb")}
    main = {"auth_type": "md5", "auth_user": LOOKUP,
            "auth_query": "SELECT usename, passwd FROM public.aq_lookup($1)"}
    s = sluice(main, databases=dbs, userlist={LOOKUP: LOOKUP_PW})
    a = Attempt(s, "md5user", "md5_pw")
    assert a.ok and a.user == "md5user", a
    assert calls(aq, AUTHDB) == ["md5user"] and calls(aq) == []
    # otherdb takes the global settings: the lookup runs in the client's
    # database with the global query
    a = Attempt(s, "md5user", "md5_pw", db="otherdb")
    assert a.ok and a.user == "md5user", a
    assert calls(aq) == ["md5user"] and calls(aq, AUTHDB) == ["md5user"]


@pytest.mark.sluice_only
def test_trust_looks_up_users_missing_from_auth_file(sluice, aq):
    """auth_type = trust with auth_user: a user missing from auth_file is let
    in when auth_query finds it (its secret then logs in to PostgreSQL),
    refused with 'no such user' when it does not."""
    s = super_sluice(sluice, "trust")
    a = Attempt(s, "md5user", None)
    assert a.ok and a.user == "md5user" and a.password_sent == 0, a
    a = Attempt(s, "aq_nobody", None)
    assert not a.ok and "no such user" in a.error.message, a
