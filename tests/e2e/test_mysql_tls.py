"""MySQL through sluice, issue 17's second part: TLS on both legs (the
client_tls_* and server_tls_* keys PostgreSQL uses), caching_sha2_password's
full authentication (in clear over TLS, or RSA-encrypted with sluice's key),
and COM_CHANGE_USER. Real clients: pymysql, the mariadb command-line client
and MySQLdb (libmariadb, the only one here that sends COM_CHANGE_USER); a
real MariaDB 10.11, and a second one started with --ssl-cert/--ssl-key for
the server leg. The PKI is a throwaway one (tls_helpers.make_pki)."""

import base64
import hashlib
import hmac
import os
import shutil
import socket
import ssl
import subprocess
import tempfile

import pytest

pymysql = pytest.importorskip("pymysql")

from conftest import free_port, is_pgbouncer_compat  # noqa: E402
from mysql_helpers import CLIENT, MARIADBD, MariaDB  # noqa: E402
from tls_helpers import make_pki, read_all  # noqa: E402

pytestmark = pytest.mark.skipif(is_pgbouncer_compat(), reason="PgBouncer has no MySQL listener")

PW = "test_pw"


def native_hash(pw):
    return "*" + hashlib.sha1(hashlib.sha1(pw.encode()).digest()).hexdigest().upper()


def pg_md5(pw, user):
    return "md5" + hashlib.md5((pw + user).encode()).hexdigest()


def pg_scram(pw, iterations=4096):
    """PostgreSQL's SCRAM-SHA-256 secret for pw (RFC 5802 / 7677)."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", pw.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return (f"SCRAM-SHA-256${iterations}:{b64(salt)}$"
            f"{b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}")


# auth_file: the same password in every form sluice reads for MySQL
# clients. The [databases] entries log in to MariaDB as sluice_test.
USERLIST = {
    "sluice_test": PW,
    "hexuser": native_hash("hex_pw"),
    "md5user": pg_md5("md5_pw", "md5user"),
    "scramuser": pg_scram("scram_pw"),
    "other": "other_pw",
}


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="sluice-mypki-")
    try:
        yield make_pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def maria_tls(pki):
    """A second MariaDB that offers TLS with the test PKI's localhost
    certificate."""
    if not os.path.exists(MARIADBD):
        pytest.fail("MariaDB is not installed (run scripts/install-deps.sh)")
    server = MariaDB(free_port(), extra_args=[f"--ssl-ca={pki.ca}", f"--ssl-cert={pki.server}",
                                              f"--ssl-key={pki.server_key}"])
    try:
        server.start()
        yield server
    finally:
        server.stop()


def as_server_user(maria, dbname="mydb"):
    return maria.db_line(dbname, user="sluice_test", password=PW)


def start(sluice, maria, mode="transaction", size=2, extra=None, server=None, verbose=False):
    myport = free_port()
    main = {"mysql_listen_port": myport, "pool_mode": mode, "default_pool_size": size}
    main.update(extra or {})
    server = server or maria
    dbs = {"mydb": as_server_user(server), "other": as_server_user(server, "otherdb")}
    s = sluice(main, databases=dbs, userlist=USERLIST, verbose=verbose)
    s.myport = myport
    return s


def client_tls(pki, sslmode="require", **extra):
    d = {"client_tls_sslmode": sslmode, "client_tls_cert_file": pki.server,
         "client_tls_key_file": pki.server_key}
    d.update(extra)
    return d


def connect(s, db="mydb", user="sluice_test", password=PW, **kw):
    return pymysql.connect(host="127.0.0.1", port=s.myport, user=user, password=password, database=db,
                           connect_timeout=10, read_timeout=30, write_timeout=30, autocommit=True, **kw)


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def cli(s, *args, user="sluice_test", password=PW, db="mydb", sql="SELECT 1"):
    """The mariadb command-line client against sluice; CompletedProcess."""
    cmd = [CLIENT, "--no-defaults", "-h", "127.0.0.1", "-P", str(s.myport), f"-u{user}",
           f"-p{password}", "-N", "-B", "--connect-timeout=10", *args, "-e", sql, db]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def server_ssl_cipher(conn):
    """The cipher of the session sluice holds with the server ('' = none)."""
    return one(conn, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                     "WHERE VARIABLE_NAME = 'Ssl_cipher'")[0]


# --------------------------------------------------------------------------
# TLS towards clients

def test_client_tls_pymysql_verified(sluice, maria, pki):
    s = start(sluice, maria, extra=client_tls(pki))
    ctx = ssl.create_default_context(cafile=pki.ca)  # checks the name: localhost
    with pymysql.connect(host="localhost", port=s.myport, user="sluice_test", password=PW,
                         database="mydb", ssl=ctx, connect_timeout=10, autocommit=True) as c:
        assert c._sock.version() in ("TLSv1.2", "TLSv1.3")
        assert one(c, "SELECT 40 + 2") == (42,)
        assert one(c, "SELECT DATABASE()") == ("mydb",)


def test_client_tls_mariadb_cli(sluice, maria, pki):
    s = start(sluice, maria, extra=client_tls(pki))
    r = cli(s, "--ssl", f"--ssl-ca={pki.ca}", "--ssl-verify-server-cert", sql="\\s")
    assert r.returncode == 0, r.stderr
    assert "Cipher in use is" in r.stdout, r.stdout
    r = cli(s, "--ssl", f"--ssl-ca={pki.ca}", sql="SELECT 6 * 7")
    assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr


def test_client_tls_required_refuses_plain_text(sluice, maria, pki):
    s = start(sluice, maria, extra=client_tls(pki, "require"))
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(s)
    assert e.value.args[0] == 3159
    assert "insecure transport" in e.value.args[1]
    r = cli(s, "--skip-ssl")
    assert r.returncode != 0
    assert "3159" in r.stderr and "insecure transport" in r.stderr, r.stderr


def test_client_tls_prefer_allows_both(sluice, maria, pki):
    s = start(sluice, maria, extra=client_tls(pki, "prefer"))
    with connect(s) as c:
        assert c._sock.__class__.__name__ == "socket"
        assert one(c, "SELECT 1") == (1,)
    with connect(s, ssl={"ca": pki.ca}) as c:
        assert c._sock.version() is not None
        assert one(c, "SELECT 2") == (2,)


def test_client_tls_off_refuses_ssl_request(sluice, maria):
    s = start(sluice, maria)
    # sluice's greeting does not offer CLIENT_SSL: a client that insists
    # stops before sending anything.
    r = cli(s, "--ssl", "--ssl-verify-server-cert")
    assert r.returncode != 0
    assert "SSL" in r.stderr, r.stderr
    with connect(s) as c:
        assert one(c, "SELECT 3") == (3,)


def test_client_certificate_verify_ca(sluice, maria, pki):
    s = start(sluice, maria, extra=client_tls(pki, "verify-ca", client_tls_ca_file=pki.ca))
    cert, key = pki.client("sluice_test")
    with connect(s, ssl={"ca": pki.ca, "cert": cert, "key": key}) as c:
        assert one(c, "SELECT 4") == (4,)
    with pytest.raises(pymysql.err.OperationalError):
        connect(s, ssl={"ca": pki.ca})


# --------------------------------------------------------------------------
# TLS towards the server

def test_server_tls_verify_full(sluice, maria_tls, pki):
    s = start(sluice, maria_tls, extra={"server_tls_sslmode": "verify-full", "server_tls_ca_file": pki.ca})
    with connect(s) as c:
        assert server_ssl_cipher(c) != ""
        assert one(c, "SELECT 5") == (5,)
    # The server's own view: every session of sluice_test uses TLS.
    out = maria_tls.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'sluice_test'")
    assert int(out.strip()) >= 1


def test_server_tls_required_by_the_server_account(sluice, maria_tls, pki):
    maria_tls.sql("CREATE USER IF NOT EXISTS 'tls_only'@'%' IDENTIFIED BY 'tls_pw' REQUIRE SSL;"
                  "GRANT ALL ON *.* TO 'tls_only'@'%'")
    myport = free_port()
    dbs = {"mydb": maria_tls.db_line("mydb", user="tls_only", password="tls_pw")}
    main = {"mysql_listen_port": myport, "pool_mode": "transaction", "server_tls_sslmode": "require"}
    s = sluice(main, databases=dbs, userlist=USERLIST)
    s.myport = myport
    with connect(s) as c:
        assert one(c, "SELECT CURRENT_USER()")[0].startswith("tls_only@")
        assert server_ssl_cipher(c) != ""


def test_server_tls_prefer_is_the_default_and_disable_is_plain(sluice, maria_tls, pki):
    s = start(sluice, maria_tls)
    with connect(s) as c:
        assert server_ssl_cipher(c) != ""
    s = start(sluice, maria_tls, extra={"server_tls_sslmode": "disable"})
    with connect(s) as c:
        assert server_ssl_cipher(c) == ""


def test_server_tls_required_but_not_offered(sluice, maria, pki):
    s = start(sluice, maria, extra={"server_tls_sslmode": "require"})
    with connect(s) as c:
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(c, "SELECT 1")
    assert "does not offer TLS" in e.value.args[1], e.value.args


def test_server_tls_wrong_ca_is_refused(sluice, maria_tls, pki):
    s = start(sluice, maria_tls, extra={"server_tls_sslmode": "verify-ca", "server_tls_ca_file": pki.other_ca})
    with connect(s) as c:
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(c, "SELECT 1")
    assert "certificate verification failed" in e.value.args[1], e.value.args


def test_both_legs_tls(sluice, maria_tls, pki):
    extra = client_tls(pki)
    extra.update({"server_tls_sslmode": "verify-full", "server_tls_ca_file": pki.ca})
    s = start(sluice, maria_tls, extra=extra)
    with connect(s, ssl={"ca": pki.ca}) as c:
        assert c._sock.version() is not None
        assert server_ssl_cipher(c) != ""
        with c.cursor() as cur:
            cur.execute("SELECT seq FROM seq_1_to_20000")
            assert len(cur.fetchall()) == 20000


def test_console_shows_tls_of_both_legs(sluice, maria_tls, pki):
    extra = client_tls(pki, "prefer")
    extra.update({"server_tls_sslmode": "require", "admin_users": "sluice_test", "pool_mode": "session"})
    s = start(sluice, maria_tls, extra=extra)
    with connect(s, ssl={"ca": pki.ca}) as c:
        assert one(c, "SELECT 1") == (1,)
        with s.connect(db="sluice", user="sluice_test") as adm:
            for what in ("CLIENTS", "SERVERS"):
                cur = adm.execute(f"SHOW {what}")
                names = [d.name for d in cur.description]
                rows = [dict(zip(names, r)) for r in cur.fetchall()]
                mine = [r for r in rows if r["database"] == "mydb"]
                assert mine and all(r["tls"].startswith("TLSv1.") for r in mine), rows


def _greeting(sock):
    hdr = sock.recv(4, socket.MSG_WAITALL)
    return sock.recv(int.from_bytes(hdr[:3], "little"), socket.MSG_WAITALL)


def _ssl_request():
    caps = 0x200 | 0x800 | 0x8000 | 0x80000  # PROTOCOL_41, SSL, SECURE_CONNECTION, PLUGIN_AUTH
    body = caps.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little") + bytes([45]) + bytes(23)
    return len(body).to_bytes(3, "little") + b"\x01" + body


def test_ssl_request_hostile(sluice, maria, pki):
    """An SSLRequest where TLS is off gets an ERR; garbage instead of a
    ClientHello ends the connection; sluice serves on."""
    s = start(sluice, maria)
    with socket.create_connection(("127.0.0.1", s.myport), timeout=10) as sk:
        _greeting(sk)
        sk.sendall(_ssl_request())
        data, _ = read_all(sk)
        assert data[4] == 0xFF and b"TLS is not offered" in data, data
    s = start(sluice, maria, extra=client_tls(pki, "prefer"))
    with socket.create_connection(("127.0.0.1", s.myport), timeout=10) as sk:
        g = _greeting(sk)
        assert b"mysql_native_password" in g
        sk.sendall(_ssl_request() + b"GET / HTTP/1.0\r\n\r\n" * 4)
        data, closed = read_all(sk)
        assert closed
    with connect(s, ssl={"ca": pki.ca}) as c:
        assert one(c, "SELECT 1") == (1,)


# --------------------------------------------------------------------------
# caching_sha2_password

def test_sha2_fast_path_plain_text_secret(sluice, maria):
    """A plain-text auth_file password answers caching_sha2's fast path
    without TLS or RSA: sluice knows the password."""
    s = start(sluice, maria)
    r = cli(s, "--default-auth=caching_sha2_password", sql="SELECT 7")
    assert r.returncode == 0 and r.stdout.strip() == "7", r.stderr
    r = cli(s, "--default-auth=caching_sha2_password", password="wrong")
    assert r.returncode != 0 and "1045" in r.stderr, r.stderr


def test_sha2_full_auth_over_tls(sluice, maria, pki):
    """A *HEX (native) hash cannot answer the fast path: over TLS the
    client sends the password itself, which checks against the hash."""
    s = start(sluice, maria, extra=client_tls(pki, "prefer"))
    r = cli(s, "--ssl", f"--ssl-ca={pki.ca}", "--default-auth=caching_sha2_password", user="hexuser",
            password="hex_pw", sql="SELECT CURRENT_USER()")
    assert r.returncode == 0 and r.stdout.startswith("sluice_test@"), r.stderr
    r = cli(s, "--ssl", f"--ssl-ca={pki.ca}", "--default-auth=caching_sha2_password", user="hexuser",
            password="nope")
    assert r.returncode != 0 and "1045" in r.stderr, r.stderr
    # pymysql: switched from mysql_native_password to caching_sha2_password
    # for a PostgreSQL md5 secret, full authentication in clear over TLS.
    with connect(s, user="md5user", password="md5_pw", ssl={"ca": pki.ca}) as c:
        assert one(c, "SELECT 8") == (8,)


def test_sha2_hex_secret_without_tls_switches_to_native(sluice, maria):
    s = start(sluice, maria)
    r = cli(s, "--default-auth=caching_sha2_password", user="hexuser", password="hex_pw", sql="SELECT 9")
    assert r.returncode == 0 and r.stdout.strip() == "9", r.stderr
    with connect(s, user="hexuser", password="hex_pw") as c:
        assert one(c, "SELECT 10") == (10,)


def test_sha2_full_auth_with_rsa(sluice, maria):
    """Without TLS a secret sluice cannot check the fast path with (here
    PostgreSQL's md5 form) takes the password RSA-encrypted with sluice's
    public key, which the client asks for (pymysql)."""
    s = start(sluice, maria)
    with connect(s, user="md5user", password="md5_pw") as c:
        assert one(c, "SELECT 11") == (11,)
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(s, user="md5user", password="wrong")
    assert e.value.args[0] == 1045
    with connect(s, user="scramuser", password="scram_pw") as c:  # a SCRAM secret too
        assert one(c, "SELECT 14") == (14,)
    with pytest.raises(pymysql.err.OperationalError) as e:
        connect(s, user="scramuser", password="scram_pw2")
    assert e.value.args[0] == 1045


def test_sha2_cache_after_full_auth(sluice, maria):
    """As MySQL's cache: after one full authentication the user's next
    logins take the fast path (sluice's log says which ran). Debian's
    libmariadb (GnuTLS) does no RSA: it sends the password in clear, which
    sluice refuses without TLS as MySQL does; with the cache warm (pymysql
    did the full authentication) the mariadb client logs in by the fast
    path. A wrong password still fails."""
    s = start(sluice, maria, verbose=True)
    r = cli(s, "--default-auth=caching_sha2_password", user="md5user", password="md5_pw")
    assert r.returncode != 0 and "1045" in r.stderr, r.stderr
    assert "sent its password unencrypted without TLS" in s.log_text()
    with connect(s, user="md5user", password="md5_pw") as c:
        assert one(c, "SELECT 12") == (12,)
    log = s.log_text()
    assert log.count("full authentication (RSA)") == 2, log[-3000:]
    for _ in range(2):
        r = cli(s, "--default-auth=caching_sha2_password", user="md5user", password="md5_pw", sql="SELECT 13")
        assert r.returncode == 0 and r.stdout.strip() == "13", r.stderr
    log = s.log_text()
    assert log.count("full authentication (RSA)") == 2, log[-3000:]
    assert log.count("fast authentication from the cache") == 2, log[-3000:]
    r = cli(s, "--default-auth=caching_sha2_password", user="md5user", password="wrong")
    assert r.returncode != 0 and "1045" in r.stderr, r.stderr


# --------------------------------------------------------------------------
# COM_CHANGE_USER (MySQLdb: libmariadb's mysql_change_user)

MySQLdb = pytest.importorskip("MySQLdb")


def mdb(s, user="sluice_test", password=PW, db="mydb", **kw):
    return MySQLdb.connect(host="127.0.0.1", port=s.myport, user=user, passwd=password, db=db,
                           connect_timeout=10, autocommit=True, **kw)


def q(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    rows = cur.fetchall()
    cur.close()
    return rows


def test_change_user_moves_to_another_pool(sluice, maria):
    s = start(sluice, maria)
    c = mdb(s)
    try:
        assert q(c, "SELECT DATABASE()") == (("mydb",),)
        c.change_user("other", "other_pw", "other")
        assert q(c, "SELECT DATABASE()") == (("otherdb",),)
        c.change_user("sluice_test", PW, "mydb")
        assert q(c, "SELECT DATABASE()") == (("mydb",),)
    finally:
        c.close()


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_change_user_rolls_back_and_clears_the_session(sluice, maria, mode):
    maria.sql("CREATE TABLE IF NOT EXISTS t_cu (id INT PRIMARY KEY) ENGINE=InnoDB", db="mydb")
    maria.sql("DELETE FROM t_cu", db="mydb")
    s = start(sluice, maria, mode=mode)
    c = mdb(s)
    try:
        q(c, "SET @x = 42")
        q(c, "SET autocommit = 0")
        q(c, "INSERT INTO t_cu VALUES (1)")  # opens a transaction
        q(c, "USE otherdb")
        c.change_user("sluice_test", PW, "mydb")
        assert q(c, "SELECT @x, @@autocommit, DATABASE()") == ((None, 1, "mydb"),)
        assert q(c, "SELECT COUNT(*) FROM t_cu") == ((0,),)  # rolled back
        q(c, "INSERT INTO t_cu VALUES (2)")  # autocommit again
    finally:
        c.close()
    assert maria.sql("SELECT id FROM t_cu", db="mydb").split() == ["2"]


def test_change_user_wrong_password_closes(sluice, maria):
    s = start(sluice, maria)
    c = mdb(s)
    with pytest.raises(MySQLdb.OperationalError) as e:
        c.change_user("other", "wrong", "other")
    assert e.value.args[0] == 1045
    assert "Access denied for user 'other'" in e.value.args[1]
    with pytest.raises(MySQLdb.OperationalError):
        q(c, "SELECT 1")  # closed, as MySQL does
    c.close()
    c = mdb(s)
    with pytest.raises(MySQLdb.OperationalError) as e:
        c.change_user("sluice_test", PW, "nosuchdb")
    assert e.value.args[0] == 1049
    c.close()
    c = mdb(s)  # the pool is fine
    assert q(c, "SELECT 1") == ((1,),)
    c.close()


def test_change_user_over_tls_to_a_sha2_only_secret(sluice, maria, pki):
    """A PostgreSQL md5 secret: COM_CHANGE_USER's mysql_native_password
    answer is switched to caching_sha2_password, whose full authentication
    runs in clear over TLS (libmariadb does no RSA)."""
    s = start(sluice, maria, extra=client_tls(pki, "prefer"))
    c = mdb(s, ssl={"ca": pki.ca})
    try:
        c.change_user("md5user", "md5_pw", "other")
        assert q(c, "SELECT DATABASE()") == (("otherdb",),)
        c.change_user("hexuser", "hex_pw", "mydb")
        assert q(c, "SELECT DATABASE()") == (("mydb",),)
    finally:
        c.close()
