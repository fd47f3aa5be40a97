"""auth_type = hba with auth_hba_file (pg_hba.conf syntax): connection types
local / host / hostssl / hostnossl, database and user lists, CIDR addresses,
methods trust / reject / md5 / password / scram-sha-256 / cert, first match
wins, reload on SIGHUP.

Refusals: sluice answers like PostgreSQL, FATAL 28000 'no pg_hba.conf entry
for host "...", user "...", database "..."' (or a similar wording naming
pg_hba.conf) for no matching line and for a reject line, and 28P01 for a
wrong password. PgBouncer 1.18 answers FATAL 08P01 'login rejected' for
both, and 08P01 '... authentication failed' for a wrong password; those are
accepted only when SLUICE_BIN is pgbouncer (COMPAT).
"""

import os
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from conftest import PgError, RawConn, SluiceFactory
from tls_helpers import COMPAT, chown_postgres, client_tls_ini, pki, tls_login_outcome  # noqa: F401

USERLIST = {"sluice_test": "test_pw", "md5user": "md5_pw", "trustuser": "",
            "nomatch_user": "nm_pw"}
AUTH_OK, AUTH_CLEARTEXT, AUTH_MD5, AUTH_SASL = 0, 3, 5, 10


@pytest.fixture
def hba_file():
    """hba_file(text) -> path of a pg_hba-style file readable by the postgres
    user (PgBouncer runs as postgres under the harness)."""
    dirs = []

    def make(text):
        d = Path(tempfile.mkdtemp(prefix="sluice-hba-"))
        dirs.append(d)
        os.chmod(d, 0o755)
        chown_postgres(d)
        f = d / "hba.conf"
        f.write_text(text)
        os.chmod(f, 0o644)
        chown_postgres(f)
        return f

    yield make
    import shutil
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def hba_sluice(sluice, pg, hba_file):
    """hba_sluice(text, ini=None, userlist=None) -> (Sluice, hba path).
    Databases: sluicedb and alias2 (both PostgreSQL's sluicedb)."""
    def make(text, ini=None, userlist=None):
        f = hba_file(text)
        main = {"auth_type": "hba", "auth_hba_file": str(f)}
        main.update(ini or {})
        dbs = {"sluicedb": pg.db_line("sluicedb"), "alias2": pg.db_line("sluicedb")}
        return sluice(main, databases=dbs, userlist=userlist or USERLIST), f
    return make


def login(s, user, password, db="sluicedb"):
    """Raw login; returns the auth method codes, or the PgError."""
    c = RawConn(s.host, s.port, 10)
    try:
        methods = c.login(user, db, password)
        rows, err = c.simple_query("select current_user")
        assert err is None and rows == [[user]], (rows, err)
        return methods
    except PgError as e:
        return e
    finally:
        c.close()


def assert_hba_refused(res, user, db="sluicedb"):
    """No matching line / a reject line. sluice: FATAL 28000 naming
    pg_hba.conf, the user and the database (PostgreSQL: 'no pg_hba.conf
    entry for host "127.0.0.1", user "U", database "D", no encryption' and
    'pg_hba.conf rejects connection for host ...'). PgBouncer 1.18: FATAL
    08P01 'login rejected'."""
    assert isinstance(res, PgError), f"login was not refused: {res}"
    assert res.severity == "FATAL", res
    if COMPAT:
        assert res.sqlstate == "08P01" and res.message == "login rejected", res
        return
    assert res.sqlstate == "28000", res
    assert "pg_hba.conf" in res.message, res
    assert f'user "{user}"' in res.message, res
    assert f'database "{db}"' in res.message, res
    assert '"127.0.0.1"' in res.message, res


def assert_password_refused(res, user):
    assert isinstance(res, PgError), f"login was not refused: {res}"
    assert res.severity == "FATAL", res
    if COMPAT:
        assert res.sqlstate == "08P01" and "authentication failed" in res.message, res
    else:
        assert res.sqlstate == "28P01", res
        assert res.message == f'password authentication failed for user "{user}"', res


# --------------------------------------------------------------------------

METHODS_HBA = """\
# comment line, then a blank one

host    sluicedb   sluice_test   127.0.0.1/32   md5
host\talias2\tsluice_test\t127.0.0.1/32\tscram-sha-256   # trailing comment
host    all        md5user       127.0.0.1/32   password
host    all        trustuser     127.0.0.1/32   trust
"""


@pytest.mark.parametrize("user,db,password,method", [
    ("sluice_test", "sluicedb", "test_pw", AUTH_MD5),
    ("sluice_test", "alias2", "test_pw", AUTH_SASL),
    ("md5user", "sluicedb", "md5_pw", AUTH_CLEARTEXT),
    ("trustuser", "sluicedb", None, AUTH_OK),
])
def test_hba_method_per_line(hba_sluice, user, db, password, method):
    """Each line's method decides the challenge the client gets; a right
    password logs in, a wrong one is refused with 28P01."""
    s, _ = hba_sluice(METHODS_HBA)
    methods = login(s, user, password, db)
    assert not isinstance(methods, PgError), methods
    assert methods[0] == method and methods[-1] == AUTH_OK, methods
    if method != AUTH_OK:
        assert_password_refused(login(s, user, "wrong_pw", db), user)
    else:
        # trust: any password (or none) is fine
        assert login(s, user, "whatever", db) == [AUTH_OK]


def test_hba_no_matching_line(hba_sluice):
    """No line matches (user not listed; database not listed): refused with
    28000, also for a user who is not in auth_file (no difference shown)."""
    s, _ = hba_sluice(METHODS_HBA + "host sluicedb md5user 127.0.0.1/32 trust\n")
    assert_hba_refused(login(s, "nomatch_user", "nm_pw"), "nomatch_user")
    # trustuser/md5user have 'all' lines; sluice_test has lines only for
    # sluicedb and alias2 -- make it ask for a database no line names
    s2, _ = hba_sluice("host alias2 sluice_test 127.0.0.1/32 md5\n")
    assert_hba_refused(login(s2, "sluice_test", "test_pw", "sluicedb"), "sluice_test")
    assert_hba_refused(login(s2, "not_in_auth_file", "x"), "not_in_auth_file")
    # psql shows the message
    r = s2.psql("-c", "select 1")
    assert r.returncode != 0
    assert ("login rejected" if COMPAT else "pg_hba.conf") in r.stderr, r.stderr


def test_hba_reject_line(hba_sluice):
    """A reject line refuses even the right password, with 28000."""
    s, _ = hba_sluice("host all sluice_test 127.0.0.1/32 reject\n"
                      "host all all 127.0.0.1/32 md5\n")
    assert_hba_refused(login(s, "sluice_test", "test_pw"), "sluice_test")
    assert login(s, "md5user", "md5_pw") == [AUTH_MD5, AUTH_OK]


def test_hba_first_match_wins(hba_sluice):
    """The first line matching type, database, user and address decides;
    later lines are not consulted even if the first one fails the login."""
    s, _ = hba_sluice("host all all 127.0.0.1/32 trust\n"
                      "host all sluice_test 127.0.0.1/32 reject\n")
    assert login(s, "sluice_test", None) == [AUTH_OK]
    s2, _ = hba_sluice("host all sluice_test 127.0.0.1/32 password\n"
                       "host all sluice_test 127.0.0.1/32 trust\n")
    assert_password_refused(login(s2, "sluice_test", "wrong_pw"), "sluice_test")
    assert login(s2, "sluice_test", "test_pw") == [AUTH_CLEARTEXT, AUTH_OK]


@pytest.mark.parametrize("addr,matches", [
    ("127.0.0.1/32", True),
    ("127.0.0.0/8", True),
    ("0.0.0.0/0", True),
    ("127.0.0.1 255.255.255.255", True),
    ("127.0.0.0 255.0.0.0", True),
    ("127.0.0.2/32", False),
    ("10.0.0.0/8", False),
    ("128.0.0.0/1", False),
    ("::1/128", False),           # an IPv4 client does not match an IPv6 line
])
def test_hba_address_matching(hba_sluice, addr, matches):
    """CIDR and address+mask forms: a matching line trusts the client; a
    non-matching one falls through to the md5 line after it."""
    s, _ = hba_sluice(f"host all sluice_test {addr} trust\n"
                      "host all sluice_test 127.0.0.1/32 md5\n")
    res = login(s, "sluice_test", "test_pw")
    assert res == ([AUTH_OK] if matches else [AUTH_MD5, AUTH_OK]), res


def test_hba_database_and_user_lists(hba_sluice):
    """Comma-separated database and user lists, quoted names."""
    s, _ = hba_sluice('host sluicedb,alias2 sluice_test,md5user 127.0.0.1/32 trust\n'
                      'host "alias2" "trustuser" 127.0.0.1/32 trust\n')
    for user in ("sluice_test", "md5user"):
        for db in ("sluicedb", "alias2"):
            assert login(s, user, None, db) == [AUTH_OK], (user, db)
    assert login(s, "trustuser", None, "alias2") == [AUTH_OK]
    assert_hba_refused(login(s, "trustuser", None, "sluicedb"), "trustuser")


def test_hba_local_lines_for_unix_socket(hba_sluice):
    """local lines apply to unix-socket clients only, host lines to TCP
    clients only."""
    s, _ = hba_sluice("local all all trust\n"
                      "host all all 127.0.0.1/32 reject\n")
    with psycopg.connect(host=str(s.dir), port=s.port, dbname="sluicedb", user="sluice_test",
                         autocommit=True, connect_timeout=10) as c:
        assert c.execute("select current_user").fetchone() == ("sluice_test",)
    assert_hba_refused(login(s, "sluice_test", "test_pw"), "sluice_test")

    s2, _ = hba_sluice("local all all reject\n"
                       "host all all 127.0.0.1/32 md5\n")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=str(s2.dir), port=s2.port, dbname="sluicedb", user="sluice_test",
                        password="test_pw", connect_timeout=10)
    assert login(s2, "sluice_test", "test_pw") == [AUTH_MD5, AUTH_OK]


def test_hba_hostssl_hostnossl(hba_sluice, pki):
    """hostssl lines match only TLS clients, hostnossl only plaintext ones;
    plain 'host' lines match both."""
    s, _ = hba_sluice("hostssl   all sluice_test 127.0.0.1/32 md5\n"
                      "hostnossl all sluice_test 127.0.0.1/32 reject\n"
                      "hostnossl all md5user     127.0.0.1/32 trust\n"
                      "hostssl   all md5user     127.0.0.1/32 reject\n"
                      "host      all trustuser   127.0.0.1/32 trust\n",
                      ini=client_tls_ini(pki, "prefer"))
    kind, methods, c = tls_login_outcome(s.host, s.port, "sluice_test", password="test_pw",
                                         ca=pki.ca)
    assert (kind, methods) == ("ok", [AUTH_MD5, AUTH_OK]), (kind, methods)
    c.close()
    assert_hba_refused(login(s, "sluice_test", "test_pw"), "sluice_test")
    assert login(s, "md5user", None) == [AUTH_OK]
    kind, err, _ = tls_login_outcome(s.host, s.port, "md5user", password="md5_pw", ca=pki.ca)
    assert kind == "error", (kind, err)
    assert_hba_refused(err, "md5user")
    assert login(s, "trustuser", None) == [AUTH_OK]
    kind, methods, c = tls_login_outcome(s.host, s.port, "trustuser", ca=pki.ca)
    assert (kind, methods) == ("ok", [AUTH_OK]), (kind, methods)
    c.close()


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_hba_cert_method(hba_sluice, pki, mode):
    """The cert method on a hostssl line: the client certificate's CN must
    be the user name (no password asked); another user's certificate or
    none at all is refused; other lines keep their own method."""
    s, _ = hba_sluice("hostssl all sluice_test 127.0.0.1/32 cert\n"
                      "hostssl all md5user 127.0.0.1/32 md5\n",
                      ini=client_tls_ini(pki, mode))
    cert, key = pki.client("sluice_test")
    kind, methods, c = tls_login_outcome(s.host, s.port, "sluice_test", ca=pki.ca,
                                         cert=cert, key=key)
    assert (kind, methods) == ("ok", [AUTH_OK]), (kind, methods)
    assert c.simple_query("select current_user") == ([["sluice_test"]], None)
    c.close()
    cert, key = pki.client("someoneelse")
    kind, err, _ = tls_login_outcome(s.host, s.port, "sluice_test", ca=pki.ca,
                                     cert=cert, key=key)
    assert kind == "error", (kind, err)
    assert err.severity == "FATAL" and err.sqlstate == ("08P01" if COMPAT else "28000"), err
    assert "certificate" in err.message, err
    # md5user's line is md5: the certificate's CN does not matter
    kind, methods, c = tls_login_outcome(s.host, s.port, "md5user", password="md5_pw",
                                         ca=pki.ca, cert=cert, key=key)
    assert (kind, methods) == ("ok", [AUTH_MD5, AUTH_OK]), (kind, methods)
    c.close()
    # no certificate: refused at the handshake (verify-full) or by cert auth (require)
    kind, err, _ = tls_login_outcome(s.host, s.port, "sluice_test", ca=pki.ca)
    if mode == "require":
        assert kind == "error", (kind, err)
        assert err.sqlstate == ("08P01" if COMPAT else "28000"), err
    else:
        assert kind in ("handshake", "error"), (kind, err)


def test_hba_reload_on_sighup(hba_sluice):
    """SIGHUP re-reads auth_hba_file: new rules apply to new logins."""
    s, f = hba_sluice("host all all 127.0.0.1/32 reject\n")
    assert_hba_refused(login(s, "sluice_test", "test_pw"), "sluice_test")
    f.write_text("host all all 127.0.0.1/32 md5\n")
    os.kill(s.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while True:
        res = login(s, "sluice_test", "test_pw")
        if res == [AUTH_MD5, AUTH_OK] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert res == [AUTH_MD5, AUTH_OK], res
    # and back
    f.write_text("host all sluice_test 127.0.0.1/32 reject\nhost all all 127.0.0.1/32 trust\n")
    os.kill(s.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while True:
        res = login(s, "sluice_test", "test_pw")
        if isinstance(res, PgError) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert_hba_refused(res, "sluice_test")
    assert login(s, "md5user", None) == [AUTH_OK]


@pytest.mark.parametrize("case", ["missing_file", "empty_file"])
def test_hba_fails_closed(pg, hba_file, case):
    """An hba file that is missing or has no lines must not let anyone in:
    either sluice refuses to start, or it starts and refuses every login.
    (PgBouncer 1.18 starts and answers 'login rejected'.)"""
    path = "/nonexistent-sluice-e2e/hba.conf" if case == "missing_file" else str(hba_file("# nothing\n"))
    factory = SluiceFactory(pg)
    try:
        try:
            s = factory({"auth_type": "hba", "auth_hba_file": path})
        except pytest.fail.Exception:
            return  # refused to start: fine
        for user, pw in (("sluice_test", "test_pw"), ("trustuser", None)):
            res = login(s, user, pw)
            assert isinstance(res, PgError), f"{user} got in: {res}"
            assert res.severity == "FATAL", res
            assert res.sqlstate == ("08P01" if COMPAT else "28000"), res
    finally:
        factory.finish()


# --------------------------------------------------------------------------
# auth_ident_file: user name maps for peer and cert (PgBouncer 1.23+, so
# sluice only: PgBouncer 1.18 refuses map=). The harness runs as root, so a
# unix-socket client's OS user is root.

def _ident_sluice(hba_sluice, hba_file, hba_text, ident_text, ini=None):
    """(Sluice, hba path, ident path); the ident file is made by hba_file
    too (its own directory, removed after the test)."""
    ident = hba_file(ident_text)
    main = {"auth_ident_file": str(ident)}
    main.update(ini or {})
    s, f = hba_sluice(hba_text, ini=main)
    return s, f, ident


def _peer_login(s, user):
    """Log in over the unix socket (no password): the current_user, or the
    psycopg error."""
    try:
        with psycopg.connect(host=str(s.dir), port=s.port, dbname="sluicedb", user=user,
                             autocommit=True, connect_timeout=10) as c:
            return c.execute("select current_user").fetchone()[0]
    except psycopg.OperationalError as e:
        return e


@pytest.mark.sluice_only
def test_ident_peer_map(hba_sluice, hba_file):
    """peer with map=: the OS user (root) may log in as the database users
    its map lines name, and only as those; a regular expression with \\1
    and a '/' database user work as in PostgreSQL. Without map= peer still
    needs the same name (root is no database user)."""
    s, _, _ = _ident_sluice(
        hba_sluice, hba_file,
        "local sluicedb sluice_test peer map=admins\n"
        "local sluicedb md5user     peer map=rx\n"
        "local sluicedb trustuser   peer map=byname\n"
        "local sluicedb all         peer\n",
        "# MAP   SYSTEM-USER     DATABASE-USER\n"
        "admins  root            sluice_test\n"
        "admins  toor            md5user\n"
        "rx      /^(r)oot$       md5use\\1\n"
        "byname  /^ro+t$         /^trust\n")
    assert _peer_login(s, "sluice_test") == "sluice_test"
    assert _peer_login(s, "md5user") == "md5user"
    assert _peer_login(s, "trustuser") == "trustuser"
    err = _peer_login(s, "nomatch_user")
    assert isinstance(err, psycopg.OperationalError), err
    assert 'peer authentication failed for user "nomatch_user"' in str(err), err
    assert 'no match in map' not in str(err)   # the reason is only logged
    assert "root" not in str(err)


@pytest.mark.sluice_only
def test_ident_peer_unmapped_user_refused(hba_sluice, hba_file):
    """A map line for another system user, or a map that does not exist,
    lets nobody in; the undefined map is named in a warning at start."""
    s, _, _ = _ident_sluice(
        hba_sluice, hba_file,
        "local sluicedb sluice_test peer map=admins\n"
        "local sluicedb md5user     peer map=nosuchmap\n",
        "admins toor sluice_test\n"
        "admins root md5user\n")
    for user in ("sluice_test", "md5user"):
        err = _peer_login(s, user)
        assert isinstance(err, psycopg.OperationalError), (user, err)
        assert f'peer authentication failed for user "{user}"' in str(err), err
    log = s.log_text()
    assert 'map "nosuchmap" is not defined in auth_ident_file' in log, log
    assert 'no match in map "admins" for system user "root"' in log, log


@pytest.mark.sluice_only
def test_ident_reload(hba_sluice, hba_file):
    """SIGHUP re-reads auth_ident_file with the hba file; a broken ident
    file fails the reload and the running maps stay."""
    s, _, ident = _ident_sluice(hba_sluice, hba_file, "local all all peer map=m\n", "m root md5user\n")
    assert isinstance(_peer_login(s, "sluice_test"), psycopg.OperationalError)
    assert _peer_login(s, "md5user") == "md5user"
    ident.write_text("m root sluice_test\n")
    os.kill(s.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while _peer_login(s, "sluice_test") != "sluice_test" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _peer_login(s, "sluice_test") == "sluice_test"
    assert isinstance(_peer_login(s, "md5user"), psycopg.OperationalError)
    ident.write_text("m root sluice_test\nm root\n")
    os.kill(s.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while f"{ident}:2: end of line before the database user name" not in s.log_text():
        assert time.monotonic() < deadline, s.log_text()
        time.sleep(0.1)
    assert _peer_login(s, "sluice_test") == "sluice_test"


@pytest.mark.sluice_only
@pytest.mark.parametrize("case", ["bad_line", "missing", "map_on_md5"])
def test_ident_bad_file_refuses_start(run_sluice_raw, hba_file, case):
    """An ident file that cannot be read or has a bad line, or map= on a
    method other than peer and cert, stops sluice at start with FILE:LINE."""
    hba = hba_file("local all all peer map=m\n" if case != "map_on_md5"
                   else "local all all peer map=m\nhost all all all md5 map=m\n")
    ident = hba.parent / "ident.conf"
    ident.write_text("m root sluice_test\nm /^(root bob\n")
    if case == "missing":
        ident = hba.parent / "missing.conf"
    if case == "map_on_md5":
        ident.write_text("m root sluice_test\n")
    r, _, _ = run_sluice_raw("[databases]\nsluicedb = host=127.0.0.1\n[pgbouncer]\n"
                             "listen_addr = 127.0.0.1\nlisten_port = 1\nauth_type = hba\n"
                             f"auth_hba_file = {hba}\nauth_ident_file = {ident}\n")
    out = r.stdout + r.stderr
    assert r.returncode not in (0, None), out
    want = {"bad_line": f"{ident}:2: invalid regular expression",
            "missing": f"{ident}: cannot open",
            "map_on_md5": f"{hba}:2: option map= is only supported with the peer and cert methods"}[case]
    assert want in out, out


@pytest.mark.sluice_only
def test_ident_cert_map(hba_sluice, hba_file, pki):
    """cert with map=: the certificate's CN is mapped; with a map the CN
    equal to the user name is not enough by itself (as in PostgreSQL)."""
    s, _, _ = _ident_sluice(
        hba_sluice, hba_file,
        "hostssl all all 127.0.0.1/32 cert map=certs\n",
        "certs someoneelse sluice_test\n"
        "certs /^(md5)u    \\1user\n",
        ini=client_tls_ini(pki, "require"))
    cert, key = pki.client("someoneelse")
    kind, methods, c = tls_login_outcome(s.host, s.port, "sluice_test", ca=pki.ca, cert=cert, key=key)
    assert (kind, methods) == ("ok", [AUTH_OK]), (kind, methods)
    assert c.simple_query("select current_user") == ([["sluice_test"]], None)
    c.close()
    kind, err, _ = tls_login_outcome(s.host, s.port, "md5user", ca=pki.ca, cert=cert, key=key)
    assert kind == "error" and err.sqlstate == "28000", (kind, err)
    assert 'certificate authentication failed for user "md5user"' in err.message, err
    # the regular expression line: CN md5user, \1 = "md5"
    cert, key = pki.client("md5user")
    kind, methods, c = tls_login_outcome(s.host, s.port, "md5user", ca=pki.ca, cert=cert, key=key)
    assert (kind, methods) == ("ok", [AUTH_OK]), (kind, methods)
    c.close()
    cert, key = pki.client("sluice_test")
    kind, err, _ = tls_login_outcome(s.host, s.port, "sluice_test", ca=pki.ca, cert=cert, key=key)
    assert kind == "error" and err.sqlstate == "28000", (kind, err)
