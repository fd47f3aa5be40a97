"""Helpers and fixtures shared by the reliability tests
(test_timeouts, test_faults, test_limits, test_hostile, test_memory,
test_ledger).

Fixtures are defined here and imported by those modules with
`from reliability_helpers import ...`; conftest.py stays untouched.
Everything talks to 127.0.0.1 only.
"""

import contextlib
import ctypes
import os
import re
import select
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import conftest  # the harness module, already loaded by pytest
from conftest import (PgCluster, RawConn, SluiceFactory, default_bin, free_port,
                      is_pgbouncer_compat, parse_error_fields, tail)

COMPAT = is_pgbouncer_compat()


# --------------------------------------------------------------------------
# reading what a peer sends until it closes

class Outcome:
    """What a raw client saw: messages, the ErrorResponses among them, whether
    the peer closed the connection, and how long it took."""

    def __init__(self):
        self.messages = []      # (type, body)
        self.errors = []        # dicts of error fields
        self.closed = False
        self.timed_out = False
        self.raw = b""          # bytes that did not parse as messages
        self.elapsed = 0.0

    @property
    def error(self):
        return self.errors[0] if self.errors else None

    def describe(self):
        types = "".join(t for t, _ in self.messages)
        return (f"messages={types!r} errors={self.errors} closed={self.closed} "
                f"timed_out={self.timed_out} raw={self.raw[:40]!r} "
                f"elapsed={self.elapsed:.2f}s")

    def __repr__(self):
        return f"<Outcome {self.describe()}>"


def read_until_close(conn, timeout, stop_on_ready=False, stop_on=""):
    """Read messages from a RawConn until the peer closes (or resets), or
    `timeout` seconds pass. With stop_on_ready, also stop at ReadyForQuery;
    stop_on: more message types to stop at."""
    if stop_on_ready:
        stop_on += "Z"
    out = Outcome()
    t0 = time.monotonic()
    deadline = t0 + timeout
    sock = conn.sock
    try:
        while True:
            # parse whatever is buffered
            while len(conn.buf) >= 5:
                ln = struct.unpack("!I", conn.buf[1:5])[0]
                if ln < 4 or ln > (1 << 30):
                    out.raw = conn.buf
                    conn.buf = b""
                    break
                if len(conn.buf) < 1 + ln:
                    break
                typ = chr(conn.buf[0])
                body = conn.buf[5:1 + ln]
                conn.buf = conn.buf[1 + ln:]
                out.messages.append((typ, body))
                if typ == "E":
                    out.errors.append(parse_error_fields(body))
                if typ in stop_on:
                    out.elapsed = time.monotonic() - t0
                    return out
            left = deadline - time.monotonic()
            if left <= 0:
                out.timed_out = True
                break
            sock.settimeout(min(left, 0.5))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                out.closed = True
                break
            if not chunk:
                out.closed = True
                break
            conn.buf += chunk
    except OSError:
        out.closed = True
    if conn.buf:
        out.raw += conn.buf
        conn.buf = b""
    out.elapsed = time.monotonic() - t0
    return out


def startup_bytes(params, proto=RawConn.PROTO):
    body = struct.pack("!I", proto)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def raw_login(host, port, user="sluice_test", database="sluicedb", password="test_pw",
              timeout=10.0):
    c = RawConn(host, port, timeout)
    c.login(user, database, password)
    return c


def assert_error(err, sqlstate, word, severity=None, compat_states=None):
    """Check one ErrorResponse. In PgBouncer mode only the word is checked
    (plus `compat_states` when given), because PgBouncer's codes differ."""
    assert err is not None, "no ErrorResponse"
    msg = err.get("M", "")
    if COMPAT:
        if compat_states is not None:
            assert err.get("C") in compat_states, err
        squash = lambda x: x.replace("_", "").replace(" ", "").lower()  # noqa: E731
        assert squash(word) in squash(msg), err
        return
    assert err.get("C") == sqlstate, err
    assert word in msg, err
    if severity:
        assert (err.get("V") or err.get("S")) == severity, err


# --------------------------------------------------------------------------
# process and PostgreSQL inspection

def vmrss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def sluice_backends(pg, dbname, user="sluice_test"):
    """Rows (pid, state, query, backend_start) of client backends on dbname."""
    return pg.sql("SELECT pid, state, query, backend_start FROM pg_stat_activity "
                  "WHERE datname = %s AND usename = %s AND backend_type = 'client backend' "
                  "AND pid <> pg_backend_pid()", (dbname, user))


def wait_for(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until truthy; returns (value, seconds waited). Fails on timeout."""
    t0 = time.monotonic()
    while True:
        v = pred()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def check_serves(s, db="sluicedb", tries_for=5.0, **kw):
    """A normal psycopg client gets an answer through sluice (retrying briefly)."""
    import psycopg
    assert s.alive(), f"sluice is not running; log:\n{tail(s.log_text())}"
    deadline = time.monotonic() + tries_for
    last = None
    while time.monotonic() < deadline:
        try:
            with s.connect(db=db, connect_timeout=3, **kw) as c:
                assert c.execute("select 'serving'").fetchone() == ("serving",)
                return
        except psycopg.Error as e:
            last = e
            time.sleep(0.2)
    raise AssertionError(f"sluice does not serve a normal client: {last}\n"
                         f"log tail:\n{tail(s.log_text())}")


class BackendMonitor(threading.Thread):
    """Samples pg_stat_activity and records the most backends seen that match."""

    def __init__(self, pg, where, params, interval=0.02):
        super().__init__(daemon=True)
        self.pg, self.where, self.params, self.interval = pg, where, params, interval
        self.max_seen = 0
        self.samples = 0
        self.stop_flag = threading.Event()
        self.error = None

    def run(self):
        try:
            with self.pg.connect() as c:
                q = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                     "'client backend' AND pid <> pg_backend_pid() AND " + self.where)
                while not self.stop_flag.is_set():
                    n = c.execute(q, self.params).fetchone()[0]
                    self.max_seen = max(self.max_seen, n)
                    self.samples += 1
                    time.sleep(self.interval)
        except Exception as e:  # noqa: BLE001
            self.error = e

    def stop(self):
        self.stop_flag.set()
        self.join(5)
        if self.error:
            raise self.error


# --------------------------------------------------------------------------
# sockets of the sluice process (ss and pidfd_getfd)

_SS_USER = re.compile(r'users:\(\("([^"]*)",pid=(\d+),fd=(\d+)\)')


def sluice_sockets(pid):
    """Established TCP sockets of process pid, as dicts with local, peer
    (host, port), fd and the raw `ss -tnoie` text of that socket."""
    r = subprocess.run(["ss", "-H", "-tnoiep", "state", "established"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)
    out = []
    # ss prints one socket per line (with -H, extra info on the same line, or
    # on a continuation line starting with a blank)
    entries, cur = [], None
    for line in r.stdout.splitlines():
        if line[:1].isspace() and cur is not None:
            cur += " " + line.strip()
        else:
            if cur is not None:
                entries.append(cur)
            cur = line
    if cur is not None:
        entries.append(cur)
    for e in entries:
        m = _SS_USER.search(e)
        if not m or int(m.group(2)) != pid:
            continue
        parts = e.split()
        # state filter given: columns are Recv-Q Send-Q Local Peer ...
        local, peer = parts[2], parts[3]
        lh, lp = local.rsplit(":", 1)
        ph, pp = peer.rsplit(":", 1)
        out.append({"local": (lh, int(lp)), "peer": (ph, int(pp)),
                    "fd": int(m.group(3)), "text": e})
    return out


_KA_TIMER = re.compile(r"timer:\(keepalive,([0-9.]+)(ms|sec|min|h)?,")


def keepalive_timer_seconds(ss_text):
    """Seconds left on the keepalive timer in an ss line, or None."""
    m = _KA_TIMER.search(ss_text)
    if not m:
        return None
    v = float(m.group(1))
    unit = m.group(2) or "sec"
    return v * {"ms": 0.001, "sec": 1, "min": 60, "h": 3600}[unit]


_libc = ctypes.CDLL(None, use_errno=True)
SYS_pidfd_getfd = 438


def steal_fd(pid, fd):
    """Duplicate fd of process pid into this process (pidfd_getfd, needs
    ptrace rights). Returns a socket object, or raises OSError."""
    pidfd = os.pidfd_open(pid)
    try:
        n = _libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        if n < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return socket.socket(fileno=n)
    finally:
        os.close(pidfd)


# --------------------------------------------------------------------------
# sluice under a different launcher (prlimit)

@pytest.fixture
def sluice_wrapped(pg):
    """Factory: sluice_wrapped(prefix_cmd, ini_main, ...) starts the binary
    under test through `exec PREFIX... BIN ARGS` (the pid stays sluice's)."""
    factories = []
    wrapdirs = []

    def make(prefix, *args, **kw):
        real = default_bin()
        d = Path(tempfile.mkdtemp(prefix="sluice-wrap-"))
        os.chmod(d, 0o755)
        wrapdirs.append(d)
        # keep the pgbouncer name so the harness still knows what it runs
        name = "pgbouncer-wrapped" if COMPAT else "sluice-wrapped"
        w = d / name
        w.write_text("#!/bin/sh\nexec " + " ".join(prefix) + f" {real} \"$@\"\n")
        w.chmod(w.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        f = SluiceFactory(pg, bin_path=str(w))
        factories.append(f)
        return f(*args, **kw)

    yield make
    problems = []
    for f in factories:
        problems += f.finish()
    for d in wrapdirs:
        import shutil
        shutil.rmtree(d, ignore_errors=True)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------
# a private PostgreSQL cluster (for tests that restart PostgreSQL)

@pytest.fixture
def private_pg():
    cluster = PgCluster()
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


def pg_restart(cluster, mode="fast"):
    r = cluster._run([str(conftest.PGBIN / "pg_ctl"), "-D", str(cluster.data), "-l",
                      str(cluster.logfile), "-m", mode, "-w", "-t", "60", "restart"])
    assert r.returncode == 0, r.stdout


# --------------------------------------------------------------------------
# listeners that never answer, and a scripted fake PostgreSQL server

class Blackhole:
    """A listening socket that never accepts: connects may complete (backlog)
    but nothing is ever said."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


@pytest.fixture
def blackhole():
    b = Blackhole()
    yield b
    b.close()


def closed_port():
    """A port on 127.0.0.1 where nothing listens (refuses connections)."""
    return free_port()


def msg(typ, body=b""):
    return typ + struct.pack("!I", len(body) + 4) + body


AUTH_OK = msg(b"R", struct.pack("!I", 0))


class FakeServer(threading.Thread):
    """A tiny PostgreSQL impostor on 127.0.0.1. For each connection it reads
    the startup packet (answering 'N' to SSLRequest), sends `script` (bytes,
    or a callable(conn_index) -> bytes), then closes at once (hold=0) or after
    `hold` seconds. Counts connections."""

    def __init__(self, script, hold=0.0):
        super().__init__(daemon=True)
        self.script = script
        self.hold = hold
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.connections = 0
        self.startups = []
        self.peer_closed = []   # seconds from our script to the peer's close
        self.stop_flag = threading.Event()
        self.conns = []

    def run(self):
        self.lsock.settimeout(0.2)
        while not self.stop_flag.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c, self.connections), daemon=True)
            t.start()

    def _read_exact(self, c, n):
        b = b""
        while len(b) < n:
            chunk = c.recv(n - len(b))
            if not chunk:
                raise ConnectionError("eof")
            b += chunk
        return b

    def _serve(self, c, idx):
        try:
            c.settimeout(10)
            while True:
                ln = struct.unpack("!I", self._read_exact(c, 4))[0]
                body = self._read_exact(c, ln - 4)
                code = struct.unpack("!I", body[:4])[0]
                if code in (RawConn.SSL_REQUEST, 80877104):  # SSL / GSSENC
                    c.sendall(b"N")
                    continue
                self.startups.append(body)
                break
            data = self.script(idx) if callable(self.script) else self.script
            c.sendall(data)
            sent_at = time.monotonic()
            if self.hold:
                end = sent_at + self.hold
                while time.monotonic() < end and not self.stop_flag.is_set():
                    r, _, _ = select.select([c], [], [], 0.1)
                    if r:
                        try:
                            chunk = c.recv(65536)
                        except OSError:
                            chunk = b""
                        if not chunk:
                            self.peer_closed.append(time.monotonic() - sent_at)
                            break
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                c.close()

    def stop(self):
        self.stop_flag.set()
        with contextlib.suppress(OSError):
            self.lsock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.close()
        self.join(3)
