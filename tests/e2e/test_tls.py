"""TLS towards clients (client_tls_*), TLS towards PostgreSQL (server_tls_*)
and auth_type = cert.

A throwaway PKI is made with the openssl CLI (tls_helpers.make_pki). For the
server side, TLS is switched on in the shared PostgreSQL cluster for the
duration of this module (ALTER SYSTEM + reload, undone at teardown).

PgBouncer 1.18 differs in its error codes: it refuses a plaintext login
under client_tls_sslmode=require with FATAL 08P01 "SSL required", a client
certificate whose CN is not the user with FATAL 08P01 "certificate
authentication failed", and it answers a server-side TLS failure only with
query_wait_timeout. sluice answers like PostgreSQL (28000) and reports the
TLS failure. The tests check PgBouncer's codes only when SLUICE_BIN is
pgbouncer (COMPAT).
"""

import hashlib
import os
import re
import signal
import socket
import ssl
import struct
import time
from pathlib import Path

import psycopg
import pytest

from admin_helpers import Console, start as admin_start
from conftest import PgError, RawConn, SluiceFactory, Worker, unique
from reliability_helpers import read_until_close, startup_bytes
from tls_helpers import (COMPAT, SSL_REQUEST, cert_der, client_tls_ini, errors_in, libpq_tls,
                         pg_set_cert, pg_tls_enabled, read_all, server_ssl_rows, split_messages,
                         tls_login_outcome, tls_raw)
from tls_helpers import fake_server, pki  # noqa: F401 (fixtures)

LOGIN = {"user": "sluice_test", "database": "sluicedb"}
STRICT_MODES = ["require", "verify-ca", "verify-full"]


def tls_connect(s, pki, sslmode="verify-full", client=None, host=None, **kw):
    """psycopg connection to sluice with libpq TLS options."""
    dsn = s.dsn(**({} if "password" not in kw else {"password": kw.pop("password")}))
    dsn += " " + libpq_tls(pki, sslmode, client)
    if host:
        dsn += f" host={host}"
    kw.setdefault("autocommit", True)
    kw.setdefault("connect_timeout", 10)
    kw.setdefault("prepare_threshold", None)
    return psycopg.connect(dsn, **kw)


def assert_ssl_required_error(err):
    """A plaintext login refused because TLS is required. sluice: FATAL 28000
    mentioning SSL or TLS (PostgreSQL's hostssl refusal is 28000).
    PgBouncer 1.18: FATAL 08P01 'SSL required'."""
    assert err.severity == "FATAL", err
    if COMPAT:
        assert err.sqlstate == "08P01" and err.message == "SSL required", err
    else:
        assert err.sqlstate == "28000", err
    assert re.search(r"SSL|TLS", err.message), err


# --------------------------------------------------------------------------
# TLS towards clients

@pytest.mark.parametrize("libpq_mode", ["require", "verify-ca", "verify-full"])
def test_client_tls_require_login_and_queries(sluice, pki, libpq_mode):
    """client_tls_sslmode=require: libpq with sslmode require / verify-ca /
    verify-full (hostname 127.0.0.1 matches the IP SAN) logs in over TLS."""
    s = sluice(client_tls_ini(pki, "require"))
    with tls_connect(s, pki, libpq_mode) as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("select current_user, 40 + 2").fetchone() == ("sluice_test", 42)


def test_client_tls_psql_verify_full_localhost(sluice, pki):
    """psql over TLS, verifying the certificate against host name localhost."""
    s = sluice(client_tls_ini(pki, "require"))
    r = s.psql("-At", "-c", "select 'tls ' || current_user", "-c", r"\conninfo",
               conn_extra=libpq_tls(pki, "verify-full") + " host=localhost")
    assert r.returncode == 0, r.stderr
    assert "tls sluice_test" in r.stdout
    assert "SSL connection" in r.stdout, r.stdout


def test_client_tls_raw_handshake_and_session(sluice, pki):
    """A raw client: SSLRequest answered 'S' with nothing after it, the
    certificate verifies for localhost and 127.0.0.1, then md5 login and
    queries go over TLS."""
    s = sluice(client_tls_ini(pki, "require"))
    for name in ("localhost", "127.0.0.1"):
        c = tls_raw(s.host, s.port, ca=pki.ca, server_hostname=name)
        try:
            assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
            assert c.login("sluice_test", "sluicedb", "test_pw") == [5, 0]
            assert c.simple_query("select current_user") == ([["sluice_test"]], None)
            c.terminate()
        finally:
            c.close()


@pytest.mark.parametrize("mode", STRICT_MODES)
def test_client_plaintext_refused_when_tls_required(sluice, pki, raw, mode):
    """require / verify-ca / verify-full: a login without TLS is refused
    (raw client without SSLRequest, and psql with sslmode=disable)."""
    s = sluice(client_tls_ini(pki, mode))
    c = raw(s.host, s.port)
    with pytest.raises(PgError) as ei:
        c.login("sluice_test", "sluicedb", "test_pw")
    assert_ssl_required_error(ei.value)
    r = s.psql("-c", "select 1", conn_extra="sslmode=disable")
    assert r.returncode != 0
    assert re.search(r"SSL|TLS", r.stderr), r.stderr
    # and an SSLRequest is answered with S
    c = raw(s.host, s.port)
    assert c.ssl_request() == b"S"


@pytest.mark.parametrize("mode", ["prefer", "allow"])
def test_client_prefer_allow_accept_both(sluice, pki, raw, mode):
    """prefer / allow: TLS is offered ('S') and used when asked for; a
    plaintext login still works."""
    s = sluice(client_tls_ini(pki, mode))
    with tls_connect(s, pki, "verify-full") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("select 1").fetchone() == (1,)
    with psycopg.connect(s.dsn(sslmode="disable"), autocommit=True, connect_timeout=10) as c:
        assert not c.pgconn.ssl_in_use
        assert c.execute("select 2").fetchone() == (2,)
    c = raw(s.host, s.port)
    assert c.login("sluice_test", "sluicedb", "test_pw") == [5, 0]
    assert c.simple_query("select 3") == ([["3"]], None)


@pytest.mark.parametrize("ini", [{}, {"client_tls_sslmode": "disable"}], ids=["default", "disable"])
def test_client_tls_disabled_answers_N(sluice, pki, raw, ini):
    """Without client TLS (the default is disable), SSLRequest is answered
    'N' and the login goes on in plaintext on the same connection; libpq
    with sslmode=require gets 'server does not support SSL'."""
    if ini:
        ini = client_tls_ini(pki, "disable")
    s = sluice(ini)
    c = raw(s.host, s.port)
    assert c.ssl_request() == b"N"
    assert c.login("sluice_test", "sluicedb", "test_pw") == [5, 0]
    assert c.simple_query("select 1") == ([["1"]], None)
    with pytest.raises(psycopg.OperationalError, match="does not support SSL"):
        tls_connect(s, pki, "require")


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_client_certificate_required(sluice, pki, mode):
    """verify-ca / verify-full: a certificate signed by client_tls_ca_file is
    needed (its CN need not be the user name with password auth); no
    certificate, or one from another CA, is refused."""
    s = sluice(client_tls_ini(pki, mode))
    with tls_connect(s, pki, "verify-full", client="sluice_test") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("select current_user").fetchone() == ("sluice_test",)
    # raw client, password auth as usual on top of the certificate
    kind, methods, c = tls_login_outcome(s.host, s.port, "sluice_test", password="test_pw",
                                         ca=pki.ca, cert=pki.client("sluice_test")[0],
                                         key=pki.client("sluice_test")[1])
    assert kind == "ok" and methods == [5, 0], (kind, methods)
    c.close()
    if mode == "verify-ca":
        # the certificate only has to be valid; md5user logs in with CN=someoneelse
        with psycopg.connect(s.dsn(user="md5user", password="md5_pw") + " " +
                             libpq_tls(pki, "verify-full", "someoneelse"),
                             autocommit=True, connect_timeout=10) as c:
            assert c.execute("select current_user").fetchone() == ("md5user",)
    # no certificate
    with pytest.raises(psycopg.OperationalError):
        tls_connect(s, pki, "verify-full")
    kind, err, _ = tls_login_outcome(s.host, s.port, "sluice_test", password="test_pw",
                                     ca=pki.ca)
    assert kind in ("handshake", "error"), (kind, err)
    # a certificate from a CA sluice does not trust
    other = pki.client("other:sluice_test")
    kind, err, _ = tls_login_outcome(s.host, s.port, "sluice_test", password="test_pw",
                                     ca=pki.ca, cert=other[0], key=other[1])
    assert kind in ("handshake", "error"), (kind, err)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(s.dsn() + " " + libpq_tls(pki, "verify-full") +
                        f" sslcert={other[0]} sslkey={other[1]}", connect_timeout=10)
    with tls_connect(s, pki, "require", client="sluice_test") as c:
        assert c.execute("select 1").fetchone() == (1,)


# -- the CVE-2021-3935 class: bytes pipelined after the SSLRequest

PIPELINED = {
    "startup_packet": startup_bytes(LOGIN),
    "stray_bytes": b"\x16\x03",
    "startup_and_password": startup_bytes(LOGIN) + b"p\0\0\0\x0cmd5abcd\0",
}


def _assert_pipelined_rejected(data, closed):
    """What the client got after SSLRequest + pipelined plaintext: the
    connection closed with an ErrorResponse (PostgreSQL and PgBouncer: FATAL
    08P01 'received unencrypted data after SSL request'), possibly after an
    'S'; never an authentication request or any other message."""
    assert closed, f"connection not closed within the deadline; got {data!r}"
    rest = data[1:] if data[:1] in (b"S", b"N") else data
    msgs = split_messages(rest)
    assert msgs, f"closed without an error message; got {data!r}"
    types = [t for t, _ in msgs]
    assert set(types) <= {"E", "N"}, f"unexpected messages {types}: {data!r}"
    errs = errors_in(rest)
    assert errs and errs[0].get("S") == "FATAL", errs
    assert errs[0].get("C") == "08P01", errs
    if COMPAT:
        assert errs[0].get("M") == "received unencrypted data after SSL request", errs


@pytest.mark.parametrize("mode", ["prefer", "require"])
@pytest.mark.parametrize("what", list(PIPELINED))
def test_pipelined_plaintext_after_ssl_request_rejected(sluice, pki, mode, what):
    """SSLRequest and plaintext bytes in one write (the CVE-2021-3935 /
    CVE-2021-23214 class): the bytes read before the handshake must not be
    taken as a startup packet nor as TLS data. The connection is closed with
    an error, within 3 s; sluice keeps serving."""
    s = sluice(client_tls_ini(pki, mode))
    with socket.create_connection((s.host, s.port), timeout=5) as so:
        so.sendall(SSL_REQUEST + PIPELINED[what])
        t0 = time.monotonic()
        data, closed = read_all(so, timeout=4)
        elapsed = time.monotonic() - t0
    _assert_pipelined_rejected(data, closed)
    assert elapsed < 3, elapsed
    with tls_connect(s, pki, "verify-full") as c:
        assert c.execute("select 1").fetchone() == (1,)


# A failed handshake must end the connection at once. PgBouncer 1.18 logs
# "TLS handshake error: ... wrong version number" but leaves the socket open
# until client_login_timeout, so in PgBouncer mode that is set to 2 s.
HANDSHAKE_FAIL_INI = {"client_login_timeout": 2} if COMPAT else {}
HANDSHAKE_FAIL_CLOSE_S = 4.5 if COMPAT else 1.5


def test_plaintext_instead_of_handshake_closed(sluice, pki):
    """After 'S', the client sends a plaintext startup packet instead of a
    TLS ClientHello: the connection is closed, no login happens."""
    s = sluice(client_tls_ini(pki, "require", **HANDSHAKE_FAIL_INI))
    with socket.create_connection((s.host, s.port), timeout=5) as so:
        so.sendall(SSL_REQUEST)
        assert so.recv(1) == b"S"
        so.sendall(startup_bytes(LOGIN))
        t0 = time.monotonic()
        data, closed = read_all(so, timeout=5)
    assert closed, data
    assert time.monotonic() - t0 < HANDSHAKE_FAIL_CLOSE_S
    assert b"R\0\0\0" not in data, data
    with tls_connect(s, pki, "verify-full") as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.parametrize("request_code", [
    80877103, pytest.param(80877104, marks=pytest.mark.sluice_only)], ids=["ssl", "gssenc"])
def test_ssl_request_inside_tls_refused(sluice, pki, request_code):
    """A second SSLRequest, or a GSSENCRequest, inside the TLS session is
    refused as PostgreSQL refuses it (FATAL 0A000 "unsupported frontend
    protocol 1234.5679"), not answered with another handshake or 'N'.
    PgBouncer 1.18 answers the GSSENCRequest inside TLS with 'N' and waits
    for a startup packet."""
    s = sluice(client_tls_ini(pki, "require"))
    c = tls_raw(s.host, s.port, ca=pki.ca)
    try:
        c.sock.sendall(struct.pack("!II", 8, request_code))
        out = read_until_close(c, timeout=4)
        assert out.closed or out.errors, out.describe()
        assert not any(t == "R" for t, _ in out.messages), out.describe()
        assert out.raw[:1] not in (b"S", b"N"), out.describe()
        if not COMPAT:
            minor = request_code & 0xffff
            assert [(e.get("C"), e.get("M")) for e in out.errors] == [
                ("0A000", f"unsupported frontend protocol 1234.{minor}: server supports 3.0 to 3.0")], \
                out.describe()
    finally:
        c.close()
    with tls_connect(s, pki, "verify-full") as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_tls_handshake_garbage_and_abrupt_close(sluice, pki):
    """Broken handshakes (garbage record, a ClientHello cut short, closing
    in the middle) end the connection and leave sluice serving."""
    s = sluice(client_tls_ini(pki, "require", **HANDSHAKE_FAIL_INI))
    for junk in (b"\x16\x03\x01\x00\x05hello", b"\xff" * 64, b"\x16\x03\x01\x02\x00\x01"):
        with socket.create_connection((s.host, s.port), timeout=5) as so:
            so.sendall(SSL_REQUEST)
            assert so.recv(1) == b"S"
            so.sendall(junk)
            if junk.endswith(b"\x01"):
                so.shutdown(socket.SHUT_WR)   # half a ClientHello, then EOF
            t0 = time.monotonic()
            data, closed = read_all(so, timeout=5)
            assert closed, (junk, data)
            assert time.monotonic() - t0 < HANDSHAKE_FAIL_CLOSE_S
            assert b"R\0\0\0" not in data
    for _ in range(3):
        so = socket.create_connection((s.host, s.port), timeout=5)
        so.sendall(SSL_REQUEST)
        so.close()
    with tls_connect(s, pki, "verify-full") as c:
        assert c.execute("select 1").fetchone() == (1,)


# -- protocols and ciphers

def test_client_tls_protocols(sluice, pki):
    """client_tls_protocols limits the versions offered: tlsv1.3 only ->
    a TLS 1.2-only client fails; tlsv1.2 only -> TLS 1.2 is negotiated and a
    TLS 1.3-only client fails."""
    s13 = sluice(client_tls_ini(pki, "require", client_tls_protocols="tlsv1.3"))
    kind, methods, c = tls_login_outcome(s13.host, s13.port, "sluice_test", password="test_pw",
                                         ca=pki.ca)
    assert kind == "ok", (kind, methods)
    assert c.sock.version() == "TLSv1.3"
    c.close()
    kind, err, _ = tls_login_outcome(s13.host, s13.port, "sluice_test", password="test_pw",
                                     ca=pki.ca, max_version=ssl.TLSVersion.TLSv1_2)
    assert kind == "handshake", (kind, err)

    s12 = sluice(client_tls_ini(pki, "require", client_tls_protocols="tlsv1.2"))
    kind, methods, c = tls_login_outcome(s12.host, s12.port, "sluice_test", password="test_pw",
                                         ca=pki.ca)
    assert kind == "ok", (kind, methods)
    assert c.sock.version() == "TLSv1.2"
    c.close()
    kind, err, _ = tls_login_outcome(s12.host, s12.port, "sluice_test", password="test_pw",
                                     ca=pki.ca, min_version=ssl.TLSVersion.TLSv1_3)
    assert kind == "handshake", (kind, err)
    # libpq too
    with tls_connect(s12, pki, "verify-full") as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_client_tls_ciphers(sluice, pki):
    """client_tls_ciphers (TLS 1.2 cipher list, OpenSSL syntax): the one
    allowed suite is negotiated, a client offering only others fails."""
    s = sluice(client_tls_ini(pki, "require", client_tls_protocols="tlsv1.2",
                              client_tls_ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
    kind, methods, c = tls_login_outcome(s.host, s.port, "sluice_test", password="test_pw",
                                         ca=pki.ca)
    assert kind == "ok", (kind, methods)
    assert c.sock.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    c.close()
    kind, err, _ = tls_login_outcome(s.host, s.port, "sluice_test", password="test_pw",
                                     ca=pki.ca, ciphers="ECDHE-RSA-AES256-GCM-SHA384",
                                     max_version=ssl.TLSVersion.TLSv1_2)
    assert kind == "handshake", (kind, err)


# -- sessions over TLS

def test_cancel_request_plaintext_under_require(sluice, pki):
    """libpq sends CancelRequest on a new plaintext connection (PostgreSQL 15
    libpq has no encrypted cancel); under client_tls_sslmode=require it must
    still cancel the query running on a TLS session."""
    s = sluice(client_tls_ini(pki, "require"))
    with tls_connect(s, pki, "verify-full") as c:
        def cancel_soon():
            time.sleep(0.5)
            c.cancel()
        w = Worker(cancel_soon)
        w.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            c.execute("select pg_sleep(20)")
        assert time.monotonic() - t0 < 5
        w.get(5)
        assert c.execute("select 'after cancel'").fetchone() == ("after cancel",)


def test_tls_large_transfers_and_concurrency(sluice, pki):
    """Multi-megabyte results and parameters over TLS (session pooling), and
    several concurrent TLS sessions in transaction pooling: no corruption,
    no stall (exercises partial TLS reads and writes)."""
    s = sluice(client_tls_ini(pki, "require"))
    big = "x" * (3 * 1024 * 1024) + "end"
    with tls_connect(s, pki, "verify-full") as c:
        n, tail_ = c.execute("select length(t), right(t, 3) from (select repeat('ab', 4000000) "
                             "|| 'zz' as t) q").fetchone()
        assert (n, tail_) == (8000002, "bzz")
        assert c.execute("select md5(%s::text)", (big,)).fetchone()[0] == \
            hashlib.md5(big.encode()).hexdigest()
        with c.cursor() as cur:
            with cur.copy("copy (select g, repeat('c', 100) from generate_series(1, 50000) g) "
                          "to stdout") as cp:
                nbytes = sum(len(chunk) for chunk in cp)
        assert nbytes == sum(len(f"{g}\t{'c' * 100}\n") for g in range(1, 50001))

    st = sluice(client_tls_ini(pki, "require", pool_mode="transaction", default_pool_size=2))

    def client(i):
        with tls_connect(st, pki, "verify-full") as conn:
            for j in range(20):
                v = conn.execute("select %s::int * 2, repeat('q', 20000)",
                                 (i * 100 + j,)).fetchone()
                assert v[0] == (i * 100 + j) * 2 and len(v[1]) == 20000
        return i
    workers = [Worker(client, i) for i in range(6)]
    for w in workers:
        w.start()
    assert sorted(w.get(30) for w in workers) == list(range(6))


def test_cancel_request_inside_tls(sluice, pki):
    """A CancelRequest sent inside TLS (SSLRequest, handshake, then the
    CancelRequest, as libpq 17 does) cancels the query too."""
    s = sluice(client_tls_ini(pki, "require"))
    c = tls_raw(s.host, s.port, ca=pki.ca)
    try:
        c.login("sluice_test", "sluicedb", "test_pw")
        pid, key = c.backend_key
        c.send(b"Q", b"select pg_sleep(20)\0")
        time.sleep(0.5)
        t0 = time.monotonic()
        k = tls_raw(s.host, s.port, ca=pki.ca)
        try:
            k.sock.sendall(struct.pack("!IIII", 16, RawConn.CANCEL_REQUEST, pid, key))
            data, closed = read_all(k.sock, timeout=5)
            assert closed and data == b"", (data, closed)
        finally:
            k.close()
        out = read_until_close(c, timeout=5, stop_on_ready=True)
        assert out.errors and out.errors[0].get("C") == "57014", out.describe()
        assert time.monotonic() - t0 < 4
        assert c.simple_query("select 'after'") == ([["after"]], None)
    finally:
        c.close()


def test_client_tls_certificate_reloaded_on_sighup(sluice, pki):
    """Certificate rotation: after the config names another certificate and
    sluice gets SIGHUP, new TLS connections see the new certificate; a TLS
    session opened before keeps working."""
    s = sluice(client_tls_ini(pki, "prefer", client_tls_cert_file=pki.wrong,
                              client_tls_key_file=pki.wrong_key))

    def peer_cert():
        c = tls_raw(s.host, s.port, verify=False)
        try:
            return c.sock.getpeercert(binary_form=True)
        finally:
            c.close()
    assert peer_cert() == cert_der(pki.wrong)
    old = tls_raw(s.host, s.port, verify=False)
    try:
        old.login("sluice_test", "sluicedb", "test_pw")
        text = Path(s.ini).read_text()
        text = text.replace(pki.wrong_key, pki.server_key).replace(pki.wrong, pki.server)
        Path(s.ini).write_text(text)
        os.kill(s.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while peer_cert() != cert_der(pki.server):
            assert time.monotonic() < deadline, "new certificate not served 5 s after SIGHUP"
            time.sleep(0.1)
        assert old.simple_query("select 'still here'") == ([["still here"]], None)
    finally:
        old.close()
    with tls_connect(s, pki, "verify-full", host="localhost") as c:
        assert c.execute("select 1").fetchone() == (1,)


def test_unix_socket_not_subject_to_tls(sluice, pki):
    """TLS is for TCP: under client_tls_sslmode=require a unix-socket login
    works without TLS (as in PgBouncer; libpq never uses TLS on unix
    sockets)."""
    s = sluice(client_tls_ini(pki, "require"))
    with psycopg.connect(host=str(s.dir), port=s.port, dbname="sluicedb", user="sluice_test",
                         password="test_pw", autocommit=True, connect_timeout=10) as c:
        assert c.execute("select 1").fetchone() == (1,)


# sluice-only: PgBouncer must be started as the postgres user by the harness,
# which run_sluice_raw does not do, and its message differs.
@pytest.mark.sluice_only
@pytest.mark.parametrize("key", ["client_tls_cert_file", "client_tls_key_file"])
def test_missing_tls_file_refuses_to_start(pg, pki, run_sluice_raw, key):
    """client_tls_sslmode=require with a certificate or key file that does not
    exist: sluice exits with an error naming the file (it must not start
    and serve without the TLS it was told to require)."""
    factory = SluiceFactory(pg)
    missing = str(pki.dir / "does-not-exist.pem")
    d, ini, port = factory.write_config(client_tls_ini(pki, "require", **{key: missing}))
    try:
        r, _, elapsed = run_sluice_raw(ini.read_text())
    finally:
        factory.finish()
    assert r.returncode not in (None, 0), (r.returncode, r.stderr)
    assert missing in r.stderr or key in r.stderr, r.stderr


# --------------------------------------------------------------------------
# auth_type = cert

def _cert_ini(pki, mode="verify-full"):
    # PgBouncer 1.18 accepts auth_type=cert only with client_tls_sslmode=verify-full
    return client_tls_ini(pki, mode, auth_type="cert")


def _assert_cert_auth_refused(kind, err):
    """sluice: FATAL 28000 (PostgreSQL: 'certificate authentication failed
    for user "U"'). PgBouncer 1.18: FATAL 08P01 'certificate authentication
    failed'."""
    assert kind == "error", (kind, err)
    assert err.severity == "FATAL", err
    assert err.sqlstate == ("08P01" if COMPAT else "28000"), err
    assert "certificate" in err.message, err


def test_cert_auth_cn_is_user(sluice, pki):
    """auth_type=cert: the client certificate's CN is the user name; no
    password is asked for (only AuthenticationOk)."""
    s = sluice(_cert_ini(pki))
    cert, key = pki.client("sluice_test")
    kind, methods, c = tls_login_outcome(s.host, s.port, "sluice_test", ca=pki.ca,
                                         cert=cert, key=key)
    assert kind == "ok", (kind, methods)
    assert methods == [0]
    assert c.simple_query("select current_user") == ([["sluice_test"]], None)
    c.terminate()
    with tls_connect(s, pki, "verify-full", client="sluice_test", password="ignored") as conn:
        assert conn.execute("select current_user").fetchone() == ("sluice_test",)
    # md5user with its own certificate
    cert, key = pki.client("md5user")
    kind, methods, c = tls_login_outcome(s.host, s.port, "md5user", ca=pki.ca,
                                         cert=cert, key=key)
    assert kind == "ok", (kind, methods)
    assert c.simple_query("select current_user") == ([["md5user"]], None)
    c.close()


def test_cert_auth_cn_mismatch_refused(sluice, pki):
    """auth_type=cert: a valid certificate whose CN is another user's is
    refused (28000), for either direction."""
    s = sluice(_cert_ini(pki))
    cert, key = pki.client("someoneelse")
    kind, err, _ = tls_login_outcome(s.host, s.port, "sluice_test", ca=pki.ca,
                                     cert=cert, key=key)
    _assert_cert_auth_refused(kind, err)
    cert, key = pki.client("sluice_test")
    kind, err, _ = tls_login_outcome(s.host, s.port, "md5user", ca=pki.ca, cert=cert, key=key)
    _assert_cert_auth_refused(kind, err)
    with pytest.raises(psycopg.OperationalError, match="certificate"):
        psycopg.connect(s.dsn(user="md5user") + " " +
                        libpq_tls(pki, "verify-full", "sluice_test"), connect_timeout=10)


def test_cert_auth_without_certificate_refused(sluice, pki, raw):
    """auth_type=cert: plaintext is refused like any login under a strict
    client_tls_sslmode; TLS without a certificate fails at the handshake."""
    s = sluice(_cert_ini(pki))
    c = raw(s.host, s.port)
    with pytest.raises(PgError) as ei:
        c.login("sluice_test", "sluicedb", "test_pw")
    assert_ssl_required_error(ei.value)
    kind, err, _ = tls_login_outcome(s.host, s.port, "sluice_test", ca=pki.ca)
    assert kind in ("handshake", "error"), (kind, err)


# sluice-only: PgBouncer 1.18 refuses to start with auth_type=cert unless
# client_tls_sslmode=verify-full ("auth_type=cert requires
# client_tls_sslmode=SSLMODE_VERIFY_FULL"). sluice's issue says cert auth
# needs TLS with a client certificate and answers 28000 otherwise, which is
# only observable when the handshake does not demand a certificate.
@pytest.mark.sluice_only
def test_cert_auth_require_mode_no_certificate_28000(sluice, pki, raw):
    """auth_type=cert under client_tls_sslmode=require: TLS without a client
    certificate, and plaintext, are refused with 28000; the certificate
    with CN=sluice_test logs in without a password."""
    s = sluice(_cert_ini(pki, "require"))
    kind, err, _ = tls_login_outcome(s.host, s.port, "sluice_test", password="test_pw",
                                     ca=pki.ca)
    assert kind == "error", (kind, err)
    assert err.severity == "FATAL" and err.sqlstate == "28000", err
    c = raw(s.host, s.port)
    with pytest.raises(PgError) as ei:
        c.login("sluice_test", "sluicedb", "test_pw")
    assert ei.value.sqlstate == "28000", ei.value
    cert, key = pki.client("sluice_test")
    kind, methods, c = tls_login_outcome(s.host, s.port, "sluice_test", ca=pki.ca,
                                         cert=cert, key=key)
    assert kind == "ok" and methods == [0], (kind, methods)
    c.close()


# --------------------------------------------------------------------------
# TLS towards PostgreSQL

CERTUSER = "tls_certuser"


@pytest.fixture(scope="module")
def pg_tls(pg, pki):
    """TLS on in the shared cluster for this module; role tls_certuser may
    log in only with a client certificate (hostssl ... cert)."""
    pg.sql(f"DROP ROLE IF EXISTS {CERTUSER}")
    pg.sql(f"CREATE ROLE {CERTUSER} LOGIN")
    try:
        with pg_tls_enabled(pg, pki, hba_lines=[
                f"hostssl all {CERTUSER} 127.0.0.1/32 cert",
                f"host all {CERTUSER} 127.0.0.1/32 reject"]):
            yield pg
    finally:
        pg.sql(f"DROP ROLE IF EXISTS {CERTUSER}")


def _app():
    return unique("tlsapp")


def _server_ssl_through(s, pg, user="sluice_test", password="test_pw", **kw):
    """Log in through sluice with a unique application_name; returns
    (pg_stat_ssl row seen by the session itself, the rows PostgreSQL shows
    for that application_name)."""
    app = _app()
    with s.connect(user=user, password=password, application_name=app, **kw) as c:
        own = c.execute("select ssl, version, cipher, client_dn from pg_stat_ssl "
                        "where pid = pg_backend_pid()").fetchone()
        rows = server_ssl_rows(pg, app)
    return own, rows


SERVER_MODES = [
    ("disable", "127.0.0.1", False),
    ("allow", "127.0.0.1", None),      # either is fine
    ("prefer", "127.0.0.1", True),
    ("require", "127.0.0.1", True),
    ("verify-ca", "127.0.0.1", True),
    ("verify-full", "localhost", True),
    ("verify-full", "127.0.0.1", True),  # IP SAN
]


@pytest.mark.parametrize("mode,host,want_ssl", SERVER_MODES,
                         ids=[f"{m}-{h}" for m, h, _ in SERVER_MODES])
def test_server_tls_modes(sluice, pg_tls, pki, mode, host, want_ssl):
    """server_tls_sslmode: pg_stat_ssl shows whether sluice's server
    connection uses TLS (joined with pg_stat_activity on pid, by
    application_name and user)."""
    ini = {"server_tls_sslmode": mode}
    if mode.startswith("verify"):
        ini["server_tls_ca_file"] = pki.ca
    db = pg_tls.db_line("sluicedb").replace("host=127.0.0.1", f"host={host}")
    s = sluice(ini, databases={"sluicedb": db})
    own, rows = _server_ssl_through(s, pg_tls)
    assert len(rows) == 1, rows
    usename, ssl_on, version, cipher, _dn = rows[0]
    assert usename == "sluice_test"
    assert own[0] == ssl_on
    if want_ssl is not None:
        assert ssl_on is want_ssl, rows
    if ssl_on:
        assert version in ("TLSv1.2", "TLSv1.3")


# sluice-only: PgBouncer 1.18's default server_tls_sslmode is disable.
@pytest.mark.sluice_only
def test_server_tls_default_is_prefer(sluice, pg_tls):
    s = sluice({})
    own, rows = _server_ssl_through(s, pg_tls)
    assert own[0] is True and rows and rows[0][1] is True, (own, rows)


def test_admin_show_tls_columns(sluice, pg_tls, pki):
    """SHOW CLIENTS / SHOW SERVERS: the tls column describes the TLS session
    (PgBouncer: 'TLSv1.3/TLS_AES_256_GCM_SHA384[/ECDH=...]') and is empty
    for plaintext connections."""
    s = admin_start(sluice, client_tls_ini(pki, "prefer", server_tls_sslmode="require"))
    t = tls_raw(s.host, s.port, ca=pki.ca)
    p = RawConn(s.host, s.port, 10)
    try:
        t.login("sluice_test", "sluicedb", "test_pw")
        p.login("md5user", "sluicedb", "md5_pw")
        with Console(s.port) as con:
            clients = {r["user"]: r["tls"] for r in con.show("CLIENTS")}
            servers = [r for r in con.show("SERVERS") if r["user"] in ("sluice_test", "md5user")]
        assert re.match(r"TLSv1\.[23]/", clients["sluice_test"] or ""), clients
        assert clients["md5user"] in ("", None), clients
        assert len(servers) == 2, servers
        for r in servers:
            assert re.match(r"TLSv1\.[23]/", r["tls"] or ""), servers
    finally:
        t.close()
        p.close()


@pytest.mark.parametrize("secret", ["verifier", "plain"])
def test_scram_over_tls_both_sides(sluice, pg_tls, pki, secret):
    """SCRAM with TLS on both sides: PostgreSQL offers SCRAM-SHA-256-PLUS
    over TLS, libpq clients (channel_binding=prefer) send a 'y' GS2 flag when
    the pooler offers no -PLUS. With a SCRAM verifier in auth_file (pass-
    through with the client's proof) or a plain password, the login works
    over plaintext and TLS client connections, and with channel binding off."""
    userlist = {"sluice_test": pg_tls.scram_verifier("sluice_test") if secret == "verifier"
                else "test_pw"}
    s = sluice(client_tls_ini(pki, "prefer", auth_type="scram-sha-256",
                              server_tls_sslmode="require"), userlist=userlist)
    for extra in ("sslmode=disable", libpq_tls(pki, "verify-full"),
                  libpq_tls(pki, "verify-full") + " channel_binding=disable"):
        with psycopg.connect(s.dsn() + " " + extra, autocommit=True, connect_timeout=10) as c:
            assert c.execute("select current_user, ssl from pg_stat_ssl "
                             "where pid = pg_backend_pid()").fetchone() == ("sluice_test", True)
    # the same over a raw client: a 'n' GS2 flag
    kind, methods, c = tls_login_outcome(s.host, s.port, "sluice_test", password="test_pw",
                                         ca=pki.ca)
    assert (kind, methods) == ("ok", [10, 11, 12, 0]), (kind, methods)
    c.close()


def test_server_tls_both_sides_transaction_pooling(sluice, pg_tls, pki):
    """TLS on both sides at once, transaction pooling, concurrent clients."""
    ini = client_tls_ini(pki, "require", server_tls_sslmode="verify-full",
                         server_tls_ca_file=pki.ca, pool_mode="transaction",
                         default_pool_size=2)
    db = pg_tls.db_line("sluicedb").replace("host=127.0.0.1", "host=localhost")
    s = sluice(ini, databases={"sluicedb": db})

    def client(i):
        with tls_connect(s, pki, "verify-full") as c:
            out = []
            for j in range(15):
                out.append(c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
                           .fetchone()[0])
                assert c.execute("select %s::int", (j,)).fetchone() == (j,)
            return all(out)
    ws = [Worker(client, i) for i in range(5)]
    for w in ws:
        w.start()
    assert all(w.get(30) for w in ws)


def test_server_tls_protocols_and_ciphers(sluice, pg_tls, pki):
    """server_tls_protocols / server_tls_ciphers reach PostgreSQL's
    pg_stat_ssl."""
    s = sluice({"server_tls_sslmode": "require", "server_tls_protocols": "tlsv1.2",
                "server_tls_ciphers": "ECDHE-RSA-AES128-GCM-SHA256"})
    own, rows = _server_ssl_through(s, pg_tls)
    assert own[:3] == (True, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), own
    s = sluice({"server_tls_sslmode": "require", "server_tls_protocols": "tlsv1.3"})
    own, rows = _server_ssl_through(s, pg_tls)
    assert own[:2] == (True, "TLSv1.3"), own


def test_server_tls_client_certificate(sluice, pg_tls, pki):
    """server_tls_cert_file / server_tls_key_file: sluice presents a client
    certificate, and PostgreSQL's cert auth (hostssl ... cert) logs
    tls_certuser in with it. Without it the login fails with an error."""
    cert, key = pki.client(CERTUSER)
    userlist = {CERTUSER: "cert_pw", "sluice_test": "test_pw"}
    s = sluice({"server_tls_sslmode": "verify-ca", "server_tls_ca_file": pki.ca,
                "server_tls_cert_file": cert, "server_tls_key_file": key},
               userlist=userlist)
    own, rows = _server_ssl_through(s, pg_tls, user=CERTUSER, password="cert_pw")
    assert own[0] is True and own[3] == f"/CN={CERTUSER}", own
    with s.connect(user=CERTUSER, password="cert_pw") as c:
        assert c.execute("select current_user").fetchone() == (CERTUSER,)
    s2 = sluice({"server_tls_sslmode": "require", "server_login_retry": 1,
                 "query_wait_timeout": 5}, userlist=userlist)
    t0 = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        with s2.connect(user=CERTUSER, password="cert_pw") as c:
            c.execute("select 1")
    assert time.monotonic() - t0 < 9


@pytest.mark.parametrize("case", ["unknown_ca", "wrong_name"])
def test_server_tls_verification_failure(sluice, pg_tls, pki, case):
    """verify-ca with a CA that did not sign PostgreSQL's certificate, and
    verify-full against a certificate for another name: the client's login
    fails with an error (no hang, no fallback to plaintext), and sluice
    keeps running. sluice must say why (TLS / SSL / certificate) promptly;
    PgBouncer 1.18 only answers query_wait_timeout, hence its short setting
    in PgBouncer mode."""
    ini = {"server_tls_sslmode": "verify-full", "server_login_retry": 1,
           "query_wait_timeout": 3 if COMPAT else 30}
    ini["server_tls_ca_file"] = pki.other_ca if case == "unknown_ca" else pki.ca
    db = pg_tls.db_line("sluicedb").replace("host=127.0.0.1", "host=localhost")
    s = sluice(ini, databases={"sluicedb": db})
    try:
        if case == "wrong_name":
            pg_set_cert(pg_tls, pki.wrong, pki.wrong_key)
        app = _app()
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            with s.connect(application_name=app, connect_timeout=10) as c:
                c.execute("select 1")
        elapsed = time.monotonic() - t0
        assert elapsed < 8, f"no error within 8 s ({elapsed:.1f} s): {ei.value}"
        if not COMPAT:
            assert re.search(r"SSL|TLS|certificate", str(ei.value), re.I), str(ei.value)
        # nothing reached PostgreSQL under that application_name
        assert server_ssl_rows(pg_tls, app) == []
        if case == "wrong_name":
            # verify-ca checks the chain only, not the name
            s2 = sluice(dict(ini, server_tls_sslmode="verify-ca"),
                        databases={"sluicedb": db})
            own, _ = _server_ssl_through(s2, pg_tls)
            assert own[0] is True, own
    finally:
        if case == "wrong_name":
            pg_set_cert(pg_tls, pki.server, pki.server_key)
    assert s.alive()


@pytest.mark.parametrize("mode", STRICT_MODES)
def test_server_refusing_tls_gets_no_plaintext_startup(sluice, fake_server, pki, mode):
    """A server that answers the SSLRequest with 'N' under require /
    verify-*: sluice must not send the startup packet (user name, database)
    in plaintext; the client gets an error."""
    f = fake_server()
    ini = {"server_tls_sslmode": mode, "server_login_retry": 1,
           "query_wait_timeout": 3 if COMPAT else 30}
    if mode.startswith("verify"):
        ini["server_tls_ca_file"] = pki.ca
    s = sluice(ini, databases={"sluicedb": f"host=127.0.0.1 port={f.port} dbname=sluicedb"})
    t0 = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as ei:
        with s.connect(connect_timeout=10) as c:
            c.execute("select 1")
    assert time.monotonic() - t0 < 8, f"no error within 8 s: {ei.value}"
    if not COMPAT:
        assert re.search(r"SSL|TLS", str(ei.value)), str(ei.value)
    pk = f.packets()
    assert pk, "sluice never connected to the server"
    for conn in pk:
        assert conn == ["ssl"], pk


@pytest.mark.parametrize("mode,want", [("disable", ["startup"]), ("prefer", ["ssl", "startup"]),
                                       ("allow", None)])
def test_server_without_tls_lenient_modes(sluice, fake_server, mode, want):
    """disable: no SSLRequest at all; prefer: SSLRequest, then plaintext
    after 'N'; allow: plaintext either way (with or without asking). The
    fake server's FATAL reaches the client."""
    f = fake_server()
    s = sluice({"server_tls_sslmode": mode, "server_login_retry": 1},
               databases={"sluicedb": f"host=127.0.0.1 port={f.port} dbname=sluicedb"})
    with pytest.raises(psycopg.OperationalError, match="fake server refuses everyone"):
        with s.connect() as c:
            c.execute("select 1")
    pk = f.packets()
    assert pk, "sluice never connected"
    if want is not None:
        assert pk[0] == want, pk
    else:
        assert pk[0] in (["startup"], ["ssl", "startup"]), pk
