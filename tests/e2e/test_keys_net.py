"""PgBouncer 1.25 network, TLS, SCRAM and cancel keys (issue 24):
tcp_socket_buffer, tcp_defer_accept, unix_socket_group,
client_tls13_ciphers, server_tls13_ciphers, client_tls_ecdhcurve,
client_tls_dheparams, scram_iterations and cancel_wait_timeout.

Each test looks at the effect itself: socket buffer sizes as `ss -tm`
shows them, connections the kernel holds back, the socket file's group,
the TLS 1.3 suite and key-exchange group a handshake gets (psycopg, or
`openssl s_client -starttls postgres` for a client offering only some),
the iteration count in SCRAM's server-first message, and how long a server
stays held by a cancel that does not arrive.

PgBouncer 1.18 has tcp_socket_buffer, tcp_defer_accept, unix_socket_group,
client_tls_ecdhcurve and client_tls_dheparams; the tests of the others are
sluice_only.
"""

import grp
import os
import re
import signal
import socket
import ssl
import stat
import struct
import subprocess
import time

import pytest

from conftest import RawConn, free_port, is_pgbouncer_compat, raw_connect, tail, unique
from test_cancel import CancelDelayingForwarder
from tls_helpers import (client_tls_ini, libpq_tls, pg_tls_enabled, tls_login_outcome)
from tls_helpers import pki  # noqa: F401 (fixture)

COMPAT = is_pgbouncer_compat()
LOGIN = {"user": "sluice_test", "database": "sluicedb"}


# --------------------------------------------------------------------------
# helpers

def skmem(pid, filt):
    """[(rcvbuf, sndbuf)] of process pid's established TCP sockets matching
    the ss filter, from `ss -tmp` (skmem rb / tb: what SO_RCVBUF and
    SO_SNDBUF read back, twice the value set)."""
    out = subprocess.run(["ss", "-Htmnp", "state", "established", filt],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    found = []
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if f"pid={pid}," not in line:
            continue
        mem = line + (lines[i + 1] if i + 1 < len(lines) else "")
        m = re.search(r"skmem:\(([^)]*)\)", mem)
        assert m, mem
        f = dict(re.findall(r"([a-z_]+?)(\d+)", m.group(1)))
        found.append((int(f["rb"]), int(f["tb"])))
    return found


def s_client(s, *args, timeout=10):
    """openssl s_client through an SSLRequest (-starttls postgres); returns
    (handshake done, output)."""
    cmd = ["openssl", "s_client", "-connect", f"{s.host}:{s.port}", "-starttls", "postgres",
           "-brief", "-no_ign_eof"] + list(args)
    r = subprocess.run(cmd, input="", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    out = r.stdout
    return "CONNECTION ESTABLISHED" in out and "Protocol version" in out, out


def tls_dsn(s, pki, **extra):
    return s.dsn(**extra) + " " + libpq_tls(pki, "require")


def libpq_tls_info(s, pki):
    """(protocol, cipher) of a libpq (psql) connection, from \\conninfo."""
    r = s.psql("-c", "\\conninfo", conn_extra=libpq_tls(pki, "require"))
    m = re.search(r"SSL connection \(protocol: ([^,]+), cipher: ([^,]+),", r.stdout)
    assert r.returncode == 0 and m, (r.stdout, r.stderr)
    return m.group(1), m.group(2)


def psycopg_connect(dsn):
    import psycopg
    return psycopg.connect(dsn, autocommit=True, connect_timeout=10, prepare_threshold=None)


def minimal_ini(tmp, **main):
    """A config for run_sluice_raw: one database, auth_type any."""
    keys = {"listen_addr": "127.0.0.1", "listen_port": free_port(),
            "unix_socket_dir": str(tmp), "auth_type": "any"}
    keys.update(main)
    return ("[databases]\nsluicedb = host=127.0.0.1 dbname=sluicedb\n\n[sluice]\n"
            + "".join(f"{k} = {v}\n" for k, v in keys.items()))


# --------------------------------------------------------------------------
# tcp_socket_buffer

def test_tcp_socket_buffer_client_and_server_sockets(sluice, pg):
    """Both legs get SO_SNDBUF and SO_RCVBUF of tcp_socket_buffer (Linux
    reports twice the value). Without it the kernel's own sizes stay."""
    size = 40000
    s = sluice({"tcp_socket_buffer": size, "server_tls_sslmode": "disable"})
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
        clients = skmem(s.pid, f"sport = :{s.port}")
        servers = skmem(s.pid, f"dport = :{pg.port}")
    assert clients and servers, (clients, servers)
    for rb, tb in clients + servers:
        assert (rb, tb) == (2 * size, 2 * size), (clients, servers)

    plain = sluice({"server_tls_sslmode": "disable"})
    with plain.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
        rows = skmem(plain.pid, f"sport = :{plain.port}")
    assert rows and all(rb != 2 * size for rb, _ in rows), rows


# --------------------------------------------------------------------------
# tcp_defer_accept

# sluice only: PgBouncer documents 45 s but its code sets 1 s, after which
# the kernel hands a silent connection over and client_login_timeout runs.
@pytest.mark.sluice_only
def test_tcp_defer_accept_holds_silent_connections(sluice):
    """With tcp_defer_accept the kernel hands a connection over only once
    the client has sent something: a silent one stays half-open in the
    kernel (SYN-RECV for the listener), so client_login_timeout does not
    run for it; once it sends its startup packet it logs in."""
    s = sluice({"tcp_defer_accept": 1, "client_login_timeout": 1})
    c = RawConn(s.host, s.port, timeout=10)
    try:
        local = c.sock.getsockname()[1]
        time.sleep(2.0)  # twice client_login_timeout
        out = subprocess.run(["ss", "-Htn", "state", "syn-recv", f"dport = :{local}"],
                             stdout=subprocess.PIPE, text=True, check=True).stdout
        assert f":{s.port}" in out, f"not held in the kernel: {out!r}"
        c.login("sluice_test", "sluicedb", "test_pw")
        assert c.simple_query("select 'deferred'")[0] == [["deferred"]]
    finally:
        c.close()


@pytest.mark.sluice_only
def test_tcp_defer_accept_off_by_default(sluice):
    """sluice's default is off (PgBouncer's is on): a silent connection is
    accepted at once and client_login_timeout closes it."""
    s = sluice({"client_login_timeout": 1})
    with socket.create_connection((s.host, s.port), timeout=10) as so:
        t0 = time.monotonic()
        data = b""
        while (chunk := so.recv(4096)):
            data += chunk
        assert time.monotonic() - t0 < 4
        assert b"client_login_timeout" in data, data


# --------------------------------------------------------------------------
# unix_socket_group

def test_unix_socket_group_and_mode(sluice):
    """The socket file belongs to unix_socket_group, with unix_socket_mode."""
    group = "postgres"
    gid = grp.getgrnam(group).gr_gid
    s = sluice({"unix_socket_group": group, "unix_socket_mode": "0770"})
    st = os.stat(os.path.join(s.dir, f".s.PGSQL.{s.port}"))
    assert st.st_gid == gid, (st.st_gid, gid)
    assert stat.S_IMODE(st.st_mode) == 0o770, oct(st.st_mode)
    r = s.psql("-Atc", "select 'over unix'", conn_extra=f"host={s.dir}")
    assert r.returncode == 0 and r.stdout.strip() == "over unix", r.stderr


@pytest.mark.sluice_only
def test_unix_socket_group_unknown_refuses_to_start(run_sluice_raw, tmp_path):
    r, ini, _ = run_sluice_raw(minimal_ini(tmp_path, unix_socket_group="no_such_group_sluice"))
    assert r.returncode not in (0, None), r
    assert "unix_socket_group 'no_such_group_sluice'" in r.stderr, r.stderr


# --------------------------------------------------------------------------
# client_tls13_ciphers, server_tls13_ciphers

@pytest.mark.sluice_only
def test_client_tls13_ciphers(sluice, pki):
    """The one allowed TLS 1.3 suite is what libpq gets (OpenSSL's default
    order would give TLS_AES_256_GCM_SHA384); a client offering only
    another suite fails its handshake."""
    s = sluice(client_tls_ini(pki, "require", client_tls13_ciphers="TLS_AES_128_GCM_SHA256"))
    assert libpq_tls_info(s, pki) == ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
    ok, out = s_client(s, "-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384")
    assert not ok, out
    ok, out = s_client(s, "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256")
    assert ok and "TLS_AES_128_GCM_SHA256" in out, out

    default = sluice(client_tls_ini(pki, "require"))
    assert libpq_tls_info(default, pki) == ("TLSv1.3", "TLS_AES_256_GCM_SHA384")


@pytest.fixture
def pg_with_tls(pg, pki):
    with pg_tls_enabled(pg, pki):
        yield pg


@pytest.mark.sluice_only
def test_server_tls13_ciphers(sluice, pg_with_tls):
    """server_tls13_ciphers is what PostgreSQL's pg_stat_ssl shows for
    sluice's server connection."""
    for suite in ("TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"):
        s = sluice({"server_tls_sslmode": "require", "server_tls13_ciphers": suite})
        with s.connect(application_name=unique("tls13")) as c:
            row = c.execute("select ssl, version, cipher from pg_stat_ssl "
                            "where pid = pg_backend_pid()").fetchone()
        assert row == (True, "TLSv1.3", suite), row


# --------------------------------------------------------------------------
# client_tls_ecdhcurve, client_tls_dheparams

def test_client_tls_ecdhcurve_names_the_group(sluice, pki):
    """A named curve is the only elliptic-curve group the handshake may
    use: a client offering only X25519 fails, one offering P-384 works."""
    s = sluice(client_tls_ini(pki, "require", client_tls_ecdhcurve="secp384r1"))
    ok, out = s_client(s, "-groups", "X25519")
    assert not ok, out
    ok, out = s_client(s, "-groups", "P-384")
    assert ok and re.search(r"(secp384r1|P-384)", out), out
    with psycopg_connect(tls_dsn(s, pki)) as c:  # libpq offers P-384 among others
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.sluice_only
def test_client_tls_ecdhcurve_none(sluice, pki):
    """none: no elliptic-curve key exchange; a client that offers a
    finite-field group (OpenSSL's default list has them) still gets in."""
    s = sluice(client_tls_ini(pki, "require", client_tls_ecdhcurve="none"))
    ok, out = s_client(s, "-groups", "X25519:P-256:P-384")
    assert not ok, out
    ok, out = s_client(s, "-groups", "ffdhe2048")
    assert ok and re.search(r"DH, 2048 bits|ffdhe2048", out), out
    with psycopg_connect(tls_dsn(s, pki)) as c:
        assert c.execute("select 1").fetchone() == (1,)


@pytest.mark.parametrize("dheparams,works", [("auto", True), ("legacy", True), ("none", False)])
def test_client_tls_dheparams(sluice, pki, dheparams, works):
    """TLS 1.2 with a DHE suite only: offered with auto (and legacy), not
    with none."""
    if COMPAT and dheparams == "legacy":
        pytest.skip("PgBouncer's legacy is a 1024-bit group OpenSSL 3 may refuse")
    s = sluice(client_tls_ini(pki, "require", client_tls_dheparams=dheparams,
                              client_tls_ciphers="DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"))
    kind, what, c = tls_login_outcome(s.host, s.port, "sluice_test", password="test_pw",
                                      ca=pki.ca, ciphers="DHE-RSA-AES128-GCM-SHA256",
                                      max_version=ssl.TLSVersion.TLSv1_2)
    if works:
        assert kind == "ok", (kind, what)
        assert c.sock.cipher()[0] == "DHE-RSA-AES128-GCM-SHA256"
        c.close()
    else:
        assert kind == "handshake", (kind, what)


# --------------------------------------------------------------------------
# bad TLS values: start-up and RELOAD refuse them

BAD_TLS = [
    ("client_tls13_ciphers", "TLS_NO_SUCH_SUITE"),
    ("server_tls13_ciphers", "TLS_NO_SUCH_SUITE"),
    ("client_tls_ecdhcurve", "no-such-curve"),
    ("client_tls_dheparams", "medium"),
]


@pytest.mark.sluice_only
@pytest.mark.parametrize("key,value", BAD_TLS, ids=[k for k, _ in BAD_TLS])
def test_bad_tls_value_refuses_to_start(run_sluice_raw, pki, tmp_path, key, value):
    main = client_tls_ini(pki, "require", **{key: value})
    r, ini, _ = run_sluice_raw(minimal_ini(tmp_path, **main))
    assert r.returncode not in (0, None), r
    assert key in r.stderr and value in r.stderr, r.stderr


@pytest.mark.sluice_only
def test_bad_tls_value_fails_reload(sluice, pki):
    s = sluice(client_tls_ini(pki, "require"))
    text = open(s.ini).read()
    with open(s.ini, "a") as f:
        f.write("client_tls13_ciphers = TLS_NO_SUCH_SUITE\n")
    os.kill(s.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "RELOAD failed" not in s.log_text():
        assert time.monotonic() < deadline, tail(s.log_text())
        time.sleep(0.05)
    line = [ln for ln in s.log_text().splitlines() if "RELOAD failed" in ln][0]
    assert "client_tls13_ciphers" in line and "TLS_NO_SUCH_SUITE" in line, line
    with psycopg_connect(tls_dsn(s, pki)) as c:
        assert c.execute("select 1").fetchone() == (1,)
    with open(s.ini, "w") as f:
        f.write(text)


# --------------------------------------------------------------------------
# scram_iterations

def server_first(s, user, nonce="sluicetestnonce"):
    """Start a SCRAM-SHA-256 exchange; return the server-first message."""
    c = RawConn(s.host, s.port, timeout=10)
    try:
        c.send_startup({"user": user, "database": "sluicedb"})
        typ, body = c.read()
        assert typ == "R" and struct.unpack("!I", body[:4])[0] == 10, (typ, body)
        first = f"n,,n=,r={nonce}".encode()
        c.send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
        typ, body = c.read()
        assert typ == "R" and struct.unpack("!I", body[:4])[0] == 11, (typ, body)
        return body[4:].decode()
    finally:
        c.close()


def iterations(msg):
    return int(dict(p.split("=", 1) for p in msg.split(","))["i"])


@pytest.mark.sluice_only
def test_scram_iterations(sluice):
    """A secret made from a plain auth_file password uses scram_iterations;
    a user that does not exist is answered with the same count; the login
    works; a SCRAM secret from auth_file keeps its own count."""
    s = sluice({"auth_type": "scram-sha-256", "scram_iterations": 5000})
    assert iterations(server_first(s, "sluice_test")) == 5000
    assert iterations(server_first(s, "no_such_user_x")) == 5000
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


def test_scram_iterations_default(sluice):
    s = sluice({"auth_type": "scram-sha-256"})
    assert iterations(server_first(s, "sluice_test")) == 4096


# --------------------------------------------------------------------------
# cancel_wait_timeout

def _held_wait(sluice, pg, helpers, cancel_wait_timeout, delay):
    """Client 1 cancels a query whose server is shared with client 2 (pool
    size 1); the cancel is held back `delay` s on its way to PostgreSQL, and
    the server stays with client 1's cancel meanwhile. Returns how long
    client 2 waited for its query."""
    fwd = CancelDelayingForwarder((pg.host, pg.port), delay)
    try:
        s = sluice({"pool_mode": "transaction", "default_pool_size": 1, "reserve_pool_size": 0,
                    "server_tls_sslmode": "disable",
                    "cancel_wait_timeout": cancel_wait_timeout},
                   databases={"sluicedb": f"host=127.0.0.1 port={fwd.port} dbname=sluicedb"})
        one = raw_connect(s.host, s.port)
        two = raw_connect(s.host, s.port)
        try:
            assert one.simple_query("select 1")[1] is None
            one.send(b"Q", b"select pg_sleep(0.2)\0")
            time.sleep(0.05)
            helpers.send_cancel(s.host, s.port, *one.backend_key)
            while one.read()[0] != "Z":
                pass
            t0 = time.monotonic()
            rows, err = two.simple_query("select 'two'")
            waited = time.monotonic() - t0
            assert err is None and rows == [["two"]], err
            return waited
        finally:
            one.close()
            two.close()
    finally:
        fwd.close()


@pytest.mark.sluice_only
@pytest.mark.timeout(60)
def test_cancel_wait_timeout_gives_up(sluice, pg, helpers):
    """The cancel never arrives in time: after cancel_wait_timeout sluice
    gives it up and the server serves client 2."""
    waited = _held_wait(sluice, pg, helpers, 1, 6)
    assert 0.5 <= waited < 3.5, waited


@pytest.mark.sluice_only
@pytest.mark.timeout(60)
def test_cancel_wait_timeout_zero_waits(sluice, pg, helpers):
    """0: no limit; the server waits until PostgreSQL took the cancel
    (held back 4 s here)."""
    waited = _held_wait(sluice, pg, helpers, 0, 4)
    assert waited >= 3.0, waited
