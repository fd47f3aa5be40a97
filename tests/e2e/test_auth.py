"""Client authentication against auth_file (md5, scram-sha-256, plain, trust;
plain, md5-hashed and SCRAM-verifier secrets) and sluice's own login to
PostgreSQL (SCRAM and md5, password from auth_file or from the database line)."""

import re

import psycopg
import pytest

# auth_type -> authentication request code the client must be sent
AUTH_CODES = {"md5": 5, "scram-sha-256": 10, "plain": 3}


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256", "plain"])
def test_password_auth_types(sluice, raw, helpers, auth_type):
    s = sluice({"auth_type": auth_type})
    # right password: psycopg and psql
    with s.connect() as c:
        assert c.execute("select current_user").fetchone() == ("sluice_test",)
    r = s.psql("-At", "-c", "select 'psql ' || current_user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "psql sluice_test"
    # the expected challenge, and the session works over the raw client
    c = raw(s.host, s.port)
    methods = c.login("sluice_test", "sluicedb", "test_pw")
    assert methods[0] == AUTH_CODES[auth_type]
    assert methods[-1] == 0
    assert c.simple_query("select current_user") == ([["sluice_test"]], None)
    c.terminate()
    # wrong password
    c = raw(s.host, s.port)
    with pytest.raises(helpers.PgError) as ei:
        c.login("sluice_test", "sluicedb", "wrong_pw")
    helpers.assert_auth_failed(ei.value, "sluice_test")
    with pytest.raises(psycopg.OperationalError, match=helpers.AUTH_FAILED_RE):
        psycopg.connect(s.dsn(password="wrong_pw"), connect_timeout=10)
    r = s.psql("-c", "select 1", password="wrong_pw")
    assert r.returncode != 0
    assert re.search(helpers.AUTH_FAILED_RE, r.stderr), r.stderr
    # unknown user
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(s.dsn(user="nobody_e2e", password="x"), connect_timeout=10)
    c = raw(s.host, s.port)
    with pytest.raises(helpers.PgError) as ei:
        c.login("nobody_e2e", "sluicedb", "x")
    assert ei.value.sqlstate in ("28P01", "28000", "08P01")
    # still serving
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


def test_trust_auth(sluice, raw):
    s = sluice({"auth_type": "trust"})
    c = raw(s.host, s.port)
    methods = c.login("sluice_test", "sluicedb", None)
    assert methods == [0]
    # sluice still logs in to PostgreSQL with the auth_file password
    assert c.simple_query("select current_user") == ([["sluice_test"]], None)
    c.terminate()
    with s.connect(password="whatever") as conn:
        assert conn.execute("select current_user").fetchone() == ("sluice_test",)
    # trustuser is trusted by PostgreSQL too (empty secret in auth_file)
    with s.connect(user="trustuser", password=None) as conn:
        assert conn.execute("select current_user").fetchone() == ("trustuser",)
    # a user absent from auth_file is refused even with trust
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(s.dsn(user="nobody_e2e", password=None), connect_timeout=10)


def test_md5_hash_in_auth_file(sluice, raw, helpers):
    """An md5 hash in auth_file: md5 client auth works, and sluice can log in
    to PostgreSQL as an md5 role (md5user) with only the hash."""
    userlist = {"md5user": helpers.md5_secret("md5user", "md5_pw")}
    s = sluice({"auth_type": "md5"}, userlist=userlist)
    with s.connect(user="md5user", password="md5_pw") as c:
        assert c.execute("select current_user").fetchone() == ("md5user",)
    c = raw(s.host, s.port)
    with pytest.raises(helpers.PgError) as ei:
        c.login("md5user", "sluicedb", "not_it")
    helpers.assert_auth_failed(ei.value, "md5user")
    # plain auth checks the cleartext password against the hash
    s2 = sluice({"auth_type": "plain"}, userlist=userlist)
    with s2.connect(user="md5user", password="md5_pw") as c:
        assert c.execute("select current_user").fetchone() == ("md5user",)
    with pytest.raises(psycopg.OperationalError, match=helpers.AUTH_FAILED_RE):
        psycopg.connect(s2.dsn(user="md5user", password="nope"), connect_timeout=10)


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5"])
def test_scram_verifier_in_auth_file(sluice, pg, raw, helpers, auth_type):
    """A SCRAM verifier in auth_file (taken from pg_authid): the client is
    authenticated with SCRAM (also when auth_type=md5, since an md5 challenge
    cannot be checked against a verifier), and sluice logs in to PostgreSQL
    with SCRAM using the keys learned from the client's proof."""
    verifier = pg.scram_verifier("sluice_test")
    assert verifier.startswith("SCRAM-SHA-256$")
    s = sluice({"auth_type": auth_type}, userlist={"sluice_test": verifier})
    c = raw(s.host, s.port)
    methods = c.login("sluice_test", "sluicedb", "test_pw")
    assert methods[0] == 10
    assert c.simple_query("select current_user") == ([["sluice_test"]], None)
    c.terminate()
    with s.connect() as conn:
        assert conn.execute("select current_user").fetchone() == ("sluice_test",)
    c = raw(s.host, s.port)
    with pytest.raises(helpers.PgError) as ei:
        c.login("sluice_test", "sluicedb", "bad")
    helpers.assert_auth_failed(ei.value, "sluice_test")


def test_server_login_scram_and_md5_from_auth_file(sluice, pg, helpers):
    """sluice logs in to PostgreSQL with SCRAM (sluice_test) and md5 (md5user)
    using plain passwords from auth_file."""
    s = sluice({"auth_type": "md5"})
    with s.connect(user="sluice_test", password="test_pw") as c:
        assert c.execute("select current_user").fetchone() == ("sluice_test",)
    with s.connect(user="md5user", password="md5_pw") as c:
        assert c.execute("select current_user").fetchone() == ("md5user",)
        # make sure the server side really used md5 (role stores an md5 hash)
    assert pg.sql("select rolpassword like 'md5%%' from pg_authid "
                  "where rolname = 'md5user'")[0][0] is True


@pytest.mark.parametrize("role,password", [("sluice_test", "test_pw"), ("md5user", "md5_pw")])
def test_server_login_password_from_database_line(sluice, pg, helpers, role, password):
    """The database line forces the server user and gives its password; the
    client authenticates as a different auth_file user."""
    databases = {"forced": pg.db_line("sluicedb", user=role, password=password)}
    s = sluice({"auth_type": "md5"}, databases=databases,
               userlist={"app_e2e": "app_pw"})
    with s.connect(db="forced", user="app_e2e", password="app_pw") as c:
        assert c.execute("select current_user, current_database()").fetchone() == \
            (role, "sluicedb")
    with pytest.raises(psycopg.OperationalError, match=helpers.AUTH_FAILED_RE):
        psycopg.connect(s.dsn(db="forced", user="app_e2e", password="wrong"),
                        connect_timeout=10)


def test_server_login_failure_reported(sluice, pg):
    """auth_file holds a password PostgreSQL does not accept: the client gets
    an error instead of a hang, and sluice keeps running."""
    s = sluice({"auth_type": "plain", "server_login_retry": 1},
               userlist={"sluice_test": "test_pw", "md5user": "stale_pw"})
    with pytest.raises(psycopg.OperationalError):
        with s.connect(user="md5user", password="stale_pw") as c:
            c.execute("select 1")
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
