"""systemd's daemon protocol without systemd (issue 22; docs/operations.md,
"Running under systemd"): the test plays the service manager.

Checked here:
- notify (Type=notify): READY=1 arrives on the NOTIFY_SOCKET the test opens
  (a path, and a name in the abstract namespace), and when it does both
  listeners (TCP and unix) already accept; a STATUS= line counts clients
  and pools; SIGHUP sends RELOADING=1 (with MONOTONIC_USEC) and then READY=1,
  with a STATUS that says so when the new configuration is broken; SIGTERM
  sends STOPPING=1;
- socket activation with systemd's own systemd-socket-activate: sluice
  serves on the TCP and unix sockets it was given (it did not open them:
  the log says so, and the unix socket's file stays when sluice stops,
  since it is systemd's), every worker holds a copy of the TCP socket, and
  READY=1 arrives through -E NOTIFY_SOCKET;
- a passed socket on another port than listen_port stops the start with a
  clear message;
- a socket created with SO_REUSEPORT (ReusePort=yes in the socket unit) lets
  adaptive_workers steer, with no warning;
- online restart from a socket-activated sluice: `sluice -R` takes the
  sockets systemd gave it and serves on them.

sluice only.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

import conftest
from conftest import tail

pytestmark = [pytest.mark.sluice_only, pytest.mark.timeout(60)]

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate") or "/usr/bin/systemd-socket-activate"
# systemd-socket-activate gives the program only PATH, HOME, TERM and the
# variables named with -E: pass the sanitizers' settings on.
PASS_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS")


class Notifier:
    """The service manager's end: a datagram socket sluice notifies."""

    def __init__(self, path, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.name = "@" + path
            self.sock.bind("\0" + path)
        else:
            self.name = str(path)
            self.sock.bind(str(path))
        self.got = []  # every message, as a dict of its lines

    def close(self):
        self.sock.close()

    def wait(self, pred, timeout=10.0, what="a notification"):
        """Read messages until pred(msg) holds for one; returns it."""
        for m in self.got:
            if pred(m):
                return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout} s; got {self.got}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.got.append(msg)
            if pred(msg):
                return msg


@pytest.fixture
def notifier(tmp_path):
    made = []

    def make(abstract=False):
        path = tmp_path / f"notify-{len(made)}" if not abstract else \
            f"sluice-test-notify-{os.getpid()}-{time.monotonic_ns()}"
        n = Notifier(path, abstract)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close()


def query(dsn_or_kw, sql="select 1"):
    with psycopg.connect(**dsn_or_kw, connect_timeout=10, autocommit=True) as c:
        return c.execute(sql).fetchone()[0]


def tcp_kw(port):
    return dict(host="127.0.0.1", port=port, dbname="sluicedb", user="sluice_test", password="test_pw")


def unix_kw(d, port):
    return dict(host=str(d), port=port, dbname="sluicedb", user="sluice_test", password="test_pw")


def is_ready(m):
    return m.get("READY") == "1"


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_when_listening(sluice, notifier, monkeypatch, abstract):
    n = notifier(abstract)
    monkeypatch.setenv("NOTIFY_SOCKET", n.name)
    s = sluice(ini_main={"pool_mode": "transaction"})
    n.wait(is_ready, what="READY=1")
    # READY=1 means every listener is open.
    assert conftest.port_open("127.0.0.1", s.port)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
        u.connect(str(Path(s.dir) / f".s.PGSQL.{s.port}"))
    assert query(unix_kw(s.dir, s.port), "select 'unix'") == "unix"


def test_status_reload_and_stop(sluice, notifier, monkeypatch):
    n = notifier()
    monkeypatch.setenv("NOTIFY_SOCKET", n.name)
    s = sluice()
    n.wait(is_ready, what="READY=1")
    with s.connect() as c:
        assert c.execute("select 2").fetchone() == (2,)
        m = n.wait(lambda m: re.fullmatch(r"1 client, 1 pool", m.get("STATUS", "")), 10,
                   "STATUS=1 client, 1 pool")
        assert "READY" not in m
    n.wait(lambda m: m.get("STATUS", "").startswith("0 clients"), 10, "STATUS=0 clients")

    # A reload: RELOADING=1 with the monotonic clock, then READY=1.
    n.got.clear()
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    os.kill(s.pid, signal.SIGHUP)
    m = n.wait(lambda m: m.get("RELOADING") == "1", what="RELOADING=1")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= int(m["MONOTONIC_USEC"]) <= after, m
    m = n.wait(is_ready, what="READY=1 after the reload")
    assert n.got.index(m) > 0, "READY=1 came before RELOADING=1"
    assert "failed" not in m.get("STATUS", ""), m

    # A broken configuration: the reload fails, sluice goes on, and says so.
    good = s.ini.read_text()
    s.ini.write_text(good + "\n[sluice\n")
    n.got.clear()
    os.kill(s.pid, signal.SIGHUP)
    n.wait(lambda m: m.get("RELOADING") == "1", what="RELOADING=1")
    m = n.wait(is_ready, what="READY=1 after a failed reload")
    assert m.get("STATUS", "").startswith("reload failed"), m
    s.ini.write_text(good)
    assert query(tcp_kw(s.port), "select 'still here'") == "still here"

    n.got.clear()
    s.proc.send_signal(signal.SIGTERM)
    n.wait(lambda m: m.get("STOPPING") == "1", what="STOPPING=1")
    assert s.proc.wait(timeout=10) == 0
    s.stopped = True
    conftest._live_procs.discard(s.proc)
    assert not any(is_ready(m) for m in n.got), n.got


def start_activated(sluice, listen, ini_main=None, notify=None, workers=2):
    """systemd-socket-activate -l <each of listen(dir, port)> <sluice> <ini>;
    it execs sluice (same pid) at the first connection. Returns (proc, dir,
    ini, port, log) once its sockets listen."""
    d, ini, port = sluice.write_config(ini_main=ini_main, workers=workers)
    logpath = Path(d) / "activated.log"
    cmd = [SOCKET_ACTIVATE]
    for addr in listen(d, port):
        cmd += ["-l", addr]
    env = dict(os.environ)
    if notify:
        env["NOTIFY_SOCKET"] = notify.name
        cmd += ["-E", "NOTIFY_SOCKET"]
    for k in PASS_ENV:
        if k in env:
            cmd += ["-E", k]
    cmd += [conftest.default_bin(), str(ini)]
    with open(logpath, "wb") as logf:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd=str(d),
                             env=env, start_new_session=True, preexec_fn=conftest._die_with_parent)
    conftest._live_procs.add(p)
    # It prints "Listening on ADDR as FD." for each socket it opened.
    deadline = time.monotonic() + 10
    while logpath.read_text().count("Listening on") < len(listen(d, port)):
        assert p.poll() is None, logpath.read_text()
        assert time.monotonic() < deadline, logpath.read_text()
        time.sleep(0.05)
    return p, d, ini, port, logpath


def stop(p, logpath):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    conftest._live_procs.discard(p)
    log = logpath.read_text(errors="replace")
    for pat in conftest.SANITIZER_PATTERNS:
        assert pat not in log, tail(log)
    return p.returncode


def listening_fds(pid, port):
    """fds of process pid on the TCP listening socket of port (ss -p)."""
    r = subprocess.run(["ss", "-H", "-tlnp", f"sport = :{port}"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=10)
    return [int(fd) for p, fd in re.findall(r"pid=(\d+),fd=(\d+)", r.stdout) if int(p) == pid]


def test_socket_activation(sluice, notifier):
    n = notifier()
    p, d, ini, port, logpath = start_activated(
        sluice, lambda d, port: [f"127.0.0.1:{port}", str(Path(d) / f".s.PGSQL.{port}")], notify=n)
    try:
        # The first connection makes systemd-socket-activate exec sluice.
        assert query(tcp_kw(port), "select 'activated'") == "activated"
        n.wait(is_ready, what="READY=1 from the activated sluice")
        assert query(unix_kw(d, port), "select 'unix'") == "unix"
        log = logpath.read_text()
        assert f"listening on 127.0.0.1:{port} (from systemd)" in log, log
        assert f".s.PGSQL.{port} (from systemd)" in log, log
        assert "cannot listen" not in log
        # One socket, held by each of the two workers (and no other).
        fds = listening_fds(p.pid, port)
        assert len(fds) == 2 and 3 in fds, (fds, log)
        for _ in range(10):
            assert query(tcp_kw(port)) == 1
    finally:
        rc = stop(p, logpath)
    assert rc == 0, tail(logpath.read_text())
    # The unix socket's file is systemd's: sluice leaves it.
    assert (Path(d) / f".s.PGSQL.{port}").exists()


def test_socket_on_unknown_port_stops_start(sluice):
    other = conftest.free_port()
    p, d, ini, port, logpath = start_activated(sluice, lambda d, port: [f"127.0.0.1:{other}"])
    try:
        deadline = time.monotonic() + 10
        while not conftest.port_open("127.0.0.1", other):
            assert time.monotonic() < deadline, logpath.read_text()
            time.sleep(0.05)
        # That connection started sluice, which must refuse the socket.
        rc = p.wait(timeout=10)
    finally:
        stop(p, logpath)
    log = logpath.read_text()
    assert rc == 1, log
    assert f"127.0.0.1:{other} (fd 3) matches no listener" in log, log
    assert f"listen_port ({port})" in log, log


def test_reuseport_socket_lets_adaptive_workers_steer(sluice):
    d, ini, port = sluice.write_config(ini_main={"adaptive_workers": 1})
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    logpath = Path(d) / "activated.log"
    # bash moves the socket to fd 3 and sets LISTEN_PID to its own pid,
    # which stays sluice's through exec.
    fd = ls.fileno()
    script = f'exec 3<&{fd} {fd}<&-; LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"'
    try:
        with open(logpath, "wb") as logf:
            p = subprocess.Popen(["/bin/bash", "-c", script, "bash", conftest.default_bin(), str(ini)],
                                 stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, cwd=str(d),
                                 pass_fds=(fd,), start_new_session=True,
                                 preexec_fn=conftest._die_with_parent)
    finally:
        ls.close()
    conftest._live_procs.add(p)
    try:
        deadline = time.monotonic() + 10
        while "started" not in logpath.read_text():
            assert p.poll() is None, logpath.read_text()
            assert time.monotonic() < deadline, logpath.read_text()
            time.sleep(0.05)
        assert query(tcp_kw(port), "select 'reuseport'") == "reuseport"
        log = logpath.read_text()
        assert "(from systemd)" in log and "adaptive_workers: off" not in log, log
        assert "WARNING" not in log, log
    finally:
        rc = stop(p, logpath)
    assert rc == 0, tail(logpath.read_text())


def test_online_restart_of_activated_sluice(sluice):
    p, d, ini, port, logpath = start_activated(sluice, lambda d, port: [f"127.0.0.1:{port}"])
    new = None
    newlog = Path(d) / "new.log"
    try:
        assert query(tcp_kw(port), "select 'old'") == "old"
        with open(newlog, "wb") as logf:
            new = subprocess.Popen([conftest.default_bin(), "-R", str(ini)], cwd=str(d),
                                   stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                   start_new_session=True, preexec_fn=conftest._die_with_parent)
        conftest._live_procs.add(new)
        # The old (activated) process hands over and exits: it has no client.
        assert p.wait(timeout=20) == 0, tail(logpath.read_text())
        assert new.poll() is None, newlog.read_text()
        assert query(tcp_kw(port), "select 'new'") == "new"
        assert len(listening_fds(new.pid, port)) == 2, newlog.read_text()
    finally:
        stop(p, logpath)
        if new is not None:
            assert stop(new, newlog) == 0, tail(newlog.read_text())
