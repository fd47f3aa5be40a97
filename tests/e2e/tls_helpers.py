"""Helpers and fixtures for the TLS and authentication tests
(test_tls.py, test_hba.py, test_auth_query.py).

- make_pki(dir): a throwaway test PKI made with the `openssl` CLI: a CA, a
  server certificate for localhost / 127.0.0.1, one with a wrong name, client
  certificates, and a second CA that the first one does not know.
- pg_tls_enabled(pg, pki): turn TLS on in the shared PostgreSQL cluster
  (ALTER SYSTEM + reload) and back off again afterwards, optionally with extra
  pg_hba.conf lines in front.
- tls_raw(...): a conftest.RawConn that sent an SSLRequest and did the TLS
  handshake with Python's ssl module, so exact ErrorResponses can be read
  over TLS.
- FakeServer: a tiny TCP listener standing in for PostgreSQL, to see what
  sluice sends a server that refuses TLS.

Fixtures are imported by the test modules (`from tls_helpers import ...`);
conftest.py stays untouched. Everything talks to 127.0.0.1 only.
"""

import contextlib
import os
import pwd
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import IS_ROOT, RawConn, client_env, is_pgbouncer_compat, parse_error_fields

COMPAT = is_pgbouncer_compat()
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


# --------------------------------------------------------------------------
# file ownership: PostgreSQL (and PgBouncer under the harness) run as the
# postgres OS user and must read the key files; PostgreSQL and libpq refuse
# key files with group/other permissions.

def chown_postgres(path):
    if IS_ROOT:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _private(path):
    os.chmod(path, 0o600)
    chown_postgres(path)


def _public(path):
    os.chmod(path, 0o644)
    chown_postgres(path)


# --------------------------------------------------------------------------
# test PKI

def _openssl(*args, cwd):
    r = subprocess.run([OPENSSL] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60,
                       env=client_env())
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stdout}")
    return r.stdout


class Pki:
    """Paths of the generated files (all str). Attributes:
    ca, ca_key          the test CA
    other_ca            a second CA (clients signed by it must be refused)
    server, server_key  CN=localhost, SAN DNS:localhost, IP:127.0.0.1
    wrong, wrong_key    CN=wrong.invalid, SAN DNS:wrong.invalid (same CA)
    client(cn)          (cert, key) of client certificates by CN:
                        sluice_test, someoneelse, tls_certuser (test CA),
                        and other:sluice_test (CN=sluice_test, other CA)
    """

    def __init__(self, d):
        self.dir = Path(d)
        self._clients = {}

    def client(self, name):
        return self._clients[name]


def _leaf(d, name, cn, ca, ca_key, ext):
    key, csr, crt, extf = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt",
                           d / f"{name}.ext")
    extf.write_text(ext + "\nsubjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid,issuer\n")
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(csr), "-subj", f"/CN={cn}", cwd=d)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "3",
             "-sha256", "-extfile", str(extf), "-out", str(crt), cwd=d)
    csr.unlink()
    extf.unlink()
    _private(key)
    _public(crt)
    return str(crt), str(key)


def _ca(d, name, cn):
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    _openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(crt), "-days", "3", "-sha256", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _private(key)
    _public(crt)
    return str(crt), str(key)


SERVER_EXT = ("basicConstraints = CA:FALSE\n"
              "keyUsage = critical, digitalSignature, keyEncipherment\n"
              "extendedKeyUsage = serverAuth\n")
CLIENT_EXT = ("basicConstraints = CA:FALSE\n"
              "keyUsage = critical, digitalSignature, keyEncipherment\n"
              "extendedKeyUsage = clientAuth\n")


def make_pki(d):
    d = Path(d)
    os.chmod(d, 0o755)
    chown_postgres(d)
    p = Pki(d)
    p.ca, p.ca_key = _ca(d, "ca", "sluice e2e test CA")
    p.other_ca, p.other_ca_key = _ca(d, "other_ca", "sluice e2e other CA")
    p.server, p.server_key = _leaf(
        d, "server", "localhost", p.ca, p.ca_key,
        SERVER_EXT + "subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    p.wrong, p.wrong_key = _leaf(
        d, "wrong", "wrong.invalid", p.ca, p.ca_key,
        SERVER_EXT + "subjectAltName = DNS:wrong.invalid\n")
    for cn in ("sluice_test", "someoneelse", "tls_certuser", "md5user"):
        p._clients[cn] = _leaf(d, f"client_{cn}", cn, p.ca, p.ca_key, CLIENT_EXT)
    p._clients["other:sluice_test"] = _leaf(d, "client_other_sluice_test", "sluice_test",
                                            p.other_ca, p.other_ca_key, CLIENT_EXT)
    return p


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="sluice-pki-")
    try:
        yield make_pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def client_tls_ini(pki, sslmode="require", ca=True, **extra):
    """ini_main keys for TLS towards clients."""
    d = {"client_tls_sslmode": sslmode,
         "client_tls_cert_file": pki.server,
         "client_tls_key_file": pki.server_key}
    if ca:
        d["client_tls_ca_file"] = pki.ca
    d.update(extra)
    return d


def libpq_tls(pki, sslmode="require", client=None, root=True):
    """conn_extra / DSN suffix with libpq TLS options."""
    parts = [f"sslmode={sslmode}"]
    if root:
        parts.append(f"sslrootcert={pki.ca}")
    if client:
        cert, key = pki.client(client)
        parts += [f"sslcert={cert}", f"sslkey={key}"]
    else:
        # never pick up ~/.postgresql/postgresql.crt by accident
        parts += [f"sslcert={pki.dir / 'none.crt'}", f"sslkey={pki.dir / 'none.key'}"]
    return " ".join(parts)


def cert_der(path):
    """DER bytes of the (first) certificate in a PEM file."""
    pem = Path(path).read_text()
    return ssl.PEM_cert_to_DER_cert(pem)


# --------------------------------------------------------------------------
# raw TLS client

SSL_REQUEST = struct.pack("!II", 8, RawConn.SSL_REQUEST)


def client_context(ca=None, cert=None, key=None, verify=True, min_version=None,
                   max_version=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify and ca:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = True
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def tls_raw(host, port, ctx=None, server_hostname="localhost", timeout=10.0, **ctx_kw):
    """RawConn over TLS: SSLRequest, expect 'S', handshake. Raises
    AssertionError if the answer is not 'S' (or bytes follow it before the
    handshake), ssl.SSLError / OSError if the handshake fails."""
    c = RawConn(host, port, timeout)
    try:
        c.sock.sendall(SSL_REQUEST)
        ans = c.sock.recv(1)
        if ans != b"S":
            raise AssertionError(f"SSLRequest answered {ans!r}, not b'S'")
        # nothing may follow 'S' before the handshake (CVE-2021-23222 class)
        c.sock.settimeout(0.05)
        try:
            extra = c.sock.recv(1, socket.MSG_PEEK)
        except (socket.timeout, BlockingIOError):
            extra = b""
        c.sock.settimeout(timeout)
        if extra:
            raise AssertionError("server sent plaintext bytes after 'S' before the handshake")
        ctx = ctx or client_context(**ctx_kw)
        c.sock = ctx.wrap_socket(c.sock, server_hostname=server_hostname)
    except BaseException:
        c.close()
        raise
    return c


def tls_login_outcome(host, port, user, database="sluicedb", password=None, **kw):
    """Try a TLS login with a raw client. Returns ('ok', methods, conn),
    ('error', PgError, None) or ('handshake', exception, None)."""
    from conftest import PgError
    try:
        c = tls_raw(host, port, **kw)
    except (ssl.SSLError, OSError) as e:
        return "handshake", e, None
    try:
        methods = c.login(user, database, password)
        return "ok", methods, c
    except PgError as e:
        c.close()
        return "error", e, None
    except (ssl.SSLError, OSError, ConnectionError) as e:
        # TLS 1.3: a refused client certificate shows up on the first read
        c.close()
        return "handshake", e, None


def read_all(sock, timeout=5.0):
    """Everything the peer sends until it closes; (bytes, closed_by_peer)."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(min(left, 0.5))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        except OSError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def split_messages(data):
    """Split backend bytes into (type, body) messages; a trailing partial
    message is returned as ('?', rest)."""
    out = []
    while len(data) >= 5:
        ln = struct.unpack("!I", data[1:5])[0]
        if ln < 4 or len(data) < 1 + ln:
            break
        out.append((chr(data[0]), data[5:1 + ln]))
        data = data[1 + ln:]
    if data:
        out.append(("?", data))
    return out


def errors_in(data):
    return [parse_error_fields(b) for t, b in split_messages(data) if t == "E"]


# --------------------------------------------------------------------------
# PostgreSQL with TLS

def pg_ssl_answer(pg, timeout=3.0):
    """What PostgreSQL answers an SSLRequest: b'S' or b'N'."""
    with socket.create_connection((pg.host, pg.port), timeout=timeout) as s:
        s.sendall(SSL_REQUEST)
        return s.recv(1)


def pg_peer_cert(pg, timeout=3.0):
    """DER of the certificate PostgreSQL presents now (None without TLS)."""
    with socket.create_connection((pg.host, pg.port), timeout=timeout) as s:
        s.sendall(SSL_REQUEST)
        if s.recv(1) != b"S":
            return None
        ctx = client_context(verify=False)
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return t.getpeercert(binary_form=True)


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception as e:  # noqa: BLE001 - retried
            last = e
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s (last error: {last})")


PG_TLS_SETTINGS = ("ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file")


def pg_set_cert(pg, cert, key):
    """Make PostgreSQL present another certificate (copied into its data
    area), waiting until it does."""
    d = Path(pg.dir) / "tls"
    tag = os.urandom(4).hex()
    c, k = d / f"cert_{tag}.crt", d / f"cert_{tag}.key"
    shutil.copy(cert, c)
    shutil.copy(key, k)
    _public(c)
    _private(k)
    pg.sql("ALTER SYSTEM SET ssl_cert_file = %s" % _lit(str(c)))
    pg.sql("ALTER SYSTEM SET ssl_key_file = %s" % _lit(str(k)))
    pg.sql("SELECT pg_reload_conf()")
    want = cert_der(cert)
    _wait(lambda: pg_peer_cert(pg) == want, 10, "PostgreSQL presenting the new certificate")


def _lit(s):
    return "'" + s.replace("'", "''") + "'"


@contextlib.contextmanager
def pg_tls_enabled(pg, pki, hba_lines=()):
    """TLS on in the shared cluster (server cert CN=localhost, client
    certificates checked against the test CA), plus `hba_lines` put in front
    of pg_hba.conf. Everything is undone afterwards."""
    d = Path(pg.dir) / "tls"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o755)
    chown_postgres(d)
    ca = d / "ca.crt"
    shutil.copy(pki.ca, ca)
    _public(ca)
    hba = Path(pg.data) / "pg_hba.conf"
    hba_orig = hba.read_text()
    try:
        if hba_lines:
            hba.write_text("# tls_helpers.py\n" + "".join(l + "\n" for l in hba_lines)
                           + hba_orig)
        pg.sql("ALTER SYSTEM SET ssl_ca_file = %s" % _lit(str(ca)))
        pg.sql("ALTER SYSTEM SET ssl = on")
        pg_set_cert(pg, pki.server, pki.server_key)
        _wait(lambda: pg.sql("SHOW ssl")[0][0] == "on", 10, "ssl = on")
        yield
    finally:
        hba.write_text(hba_orig)
        for k in PG_TLS_SETTINGS:
            try:
                pg.sql(f"ALTER SYSTEM RESET {k}")
            except Exception:
                pass
        pg.sql("SELECT pg_reload_conf()")
        _wait(lambda: pg_ssl_answer(pg) == b"N", 10, "PostgreSQL TLS off again")
        shutil.rmtree(d, ignore_errors=True)


def server_ssl_rows(pg, application_name):
    """(usename, ssl, version, cipher, client_dn) of PostgreSQL backends whose
    application_name is the given one."""
    return pg.sql("SELECT a.usename, s.ssl, s.version, s.cipher, s.client_dn "
                  "FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid "
                  "WHERE a.application_name = %s AND a.pid <> pg_backend_pid()",
                  (application_name,))


# --------------------------------------------------------------------------
# a fake PostgreSQL that never does TLS

class FakeServer:
    """Listens on 127.0.0.1. For each connection: if the first packet is an
    SSLRequest, answers `ssl_answer` (b'N'), then reads what follows; answers
    any startup packet with a FATAL ErrorResponse and closes. Records every
    connection's received bytes in .received (list of bytes)."""

    def __init__(self, ssl_answer=b"N"):
        self.ssl_answer = ssl_answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _recv_exact(self, conn, n, buf, idx):
        while len(buf) < n:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError
            buf += chunk
            with self.lock:
                self.received[idx] += chunk
        return buf

    def _handle(self, conn):
        with self.lock:
            self.received.append(b"")
            idx = len(self.received) - 1
        buf = b""
        try:
            conn.settimeout(5)
            while True:
                buf = self._recv_exact(conn, 8, buf, idx)
                ln, code = struct.unpack("!II", buf[:8])
                buf = self._recv_exact(conn, ln, buf, idx)
                buf = buf[ln:]
                if code == RawConn.SSL_REQUEST:
                    conn.sendall(self.ssl_answer)
                    continue
                body = b"SFATAL\0VFATAL\0C28000\0Mfake server refuses everyone\0\0"
                conn.sendall(b"E" + struct.pack("!I", len(body) + 4) + body)
                break
            # whatever else comes before the peer closes
            conn.settimeout(1)
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                with self.lock:
                    self.received[idx] += chunk
        except (OSError, ConnectionError, struct.error):
            pass
        finally:
            conn.close()

    def packets(self):
        """Per connection: list of packet codes received ('ssl', 'startup', 'other')."""
        out = []
        with self.lock:
            rec = list(self.received)
        for data in rec:
            kinds = []
            while len(data) >= 8:
                ln, code = struct.unpack("!II", data[:8])
                if code == RawConn.SSL_REQUEST:
                    kinds.append("ssl")
                elif code == RawConn.PROTO:
                    kinds.append("startup")
                else:
                    kinds.append("other")
                data = data[max(ln, 8):]
            out.append(kinds)
        return out

    def close(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def fake_server():
    servers = []

    def make(**kw):
        s = FakeServer(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
