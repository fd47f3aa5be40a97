"""Logging and running in the background (docs/operations.md, "Logging"):

- log_connections / log_disconnections switch the client "login attempt" /
  "closing because" lines on and off;
- log_stats with stats_period = 1 writes periodic summary lines naming the
  database;
- no password, md5 hash or SCRAM secret reaches the log, whatever the
  auth_type and whether the password was right or wrong;
- `-d` with logfile and pidfile detaches at once, the pidfile names a live
  process that serves, SIGTERM stops it and removes the pidfile; `-d`
  without logfile is refused with a clear message.

Checked against PgBouncer 1.18 (SLUICE_BIN=/usr/sbin/pgbouncer), which shares
all of this except the per-database stats line, secrets at DEBUG level
(PgBouncer logs them there) and refusing -d without logfile (PgBouncer
starts anyway); those are checked on sluice only.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

import conftest
from conftest import (IS_ROOT, RawConn, PgError, is_pgbouncer_compat, md5_secret, tail,
                      unique)

COMPAT = is_pgbouncer_compat()
TX = {"pool_mode": "transaction", "default_pool_size": 2, "reserve_pool_size": 0}

LOGIN_RE = re.compile(r"\bC-\S+.*login attempt")
CLOSE_RE = re.compile(r"\bC-\S+.*closing because")
CONN_LINE_RE = re.compile(r"\b[CS]-[0-9A-Za-z]+\b")
STATS_WORDS_RE = re.compile(r"stat|xact|transaction|quer", re.I)


def count(regex, text):
    return sum(1 for ln in text.splitlines() if regex.search(ln))


def poll(pred, timeout, what, log=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s; log:\n{tail(log())}")
        time.sleep(0.05)


# --------------------------------------------------------------------------
# log_connections / log_disconnections

@pytest.mark.parametrize("conn,disc", [(1, 1), (0, 1), (1, 0), (0, 0)],
                         ids=["both", "disconnections-only", "connections-only", "neither"])
def test_log_connections_and_disconnections(sluice, conn, disc):
    s = sluice(dict(TX, log_connections=conn, log_disconnections=disc), workers=1)
    for i in range(2):
        with s.connect() as c:
            assert c.execute("select %s::int", (i,)).fetchone() == (i,)
        time.sleep(0.3)
    want_login = 2 if conn else 0
    want_close = 2 if disc else 0
    if conn or disc:
        poll(lambda: count(LOGIN_RE, s.log_text()) >= want_login and
             count(CLOSE_RE, s.log_text()) >= want_close, 3.0,
             f"{want_login} login and {want_close} closing lines", s.log_text)
    time.sleep(0.5 if (conn or disc) else 1.0)
    log = s.log_text()
    assert count(LOGIN_RE, log) == want_login, f"log_connections={conn}:\n{tail(log)}"
    assert count(CLOSE_RE, log) == want_close, f"log_disconnections={disc}:\n{tail(log)}"


# --------------------------------------------------------------------------
# log_stats

def stats_lines(log, db):
    if COMPAT:
        # PgBouncer 1.18 logs one line for all databases: "stats: N xacts/s, ..."
        return [ln for ln in log.splitlines() if "stats:" in ln]
    # sluice: one line per database, naming it; the format is not specified
    # beyond that, so: a line that is not about a connection, names the
    # database and speaks of stats, transactions or queries.
    return [ln for ln in log.splitlines() if db in ln and not CONN_LINE_RE.search(ln)
            and STATS_WORDS_RE.search(ln)]


@pytest.mark.parametrize("log_stats", [1, 0])
def test_log_stats_period(sluice, pg, fresh_db, log_stats):
    s = sluice(dict(TX, log_stats=log_stats, stats_period=1, log_connections=0,
                    log_disconnections=0),
               databases={fresh_db: pg.db_line(fresh_db)})
    with s.connect(db=fresh_db) as c:
        t0 = time.monotonic()
        lines = []
        while time.monotonic() - t0 < 4.5:
            c.execute("select 1")
            lines = stats_lines(s.log_text(), fresh_db)
            if log_stats and len(lines) >= 2:
                break
            if not log_stats and time.monotonic() - t0 > 2.5:
                break
            time.sleep(0.05)
    if log_stats:
        assert len(lines) >= 2, (f"fewer than 2 stats lines for {fresh_db} with "
                                 f"stats_period=1:\n{tail(s.log_text())}")
    else:
        assert lines == [], f"stats lines with log_stats=0: {lines}"


# --------------------------------------------------------------------------
# secrets never logged

@pytest.mark.parametrize("auth_type,stored", [
    ("md5", "plain"), ("scram-sha-256", "plain"), ("plain", "plain"),
    ("scram-sha-256", "verifier"), ("md5", "verifier"),
])
def test_no_secrets_in_log(sluice, pg, auth_type, stored):
    verifier = pg.scram_verifier("sluice_test")
    md5_hash = md5_secret("md5user", "md5_pw")
    userlist = {
        "sluice_test": "test_pw" if stored == "plain" else verifier,
        "md5user": md5_hash,
    }
    wrong = [unique("wrongpw"), unique("badpw")]
    # sluice: at the most verbose level too. (PgBouncer 1.18 logs secrets at
    # DEBUG level, so it is checked at its default verbosity.)
    s = sluice(dict(TX, auth_type=auth_type, log_pooler_errors=1), userlist=userlist,
               verbose=not COMPAT, args=() if COMPAT else ("-v",))
    outcomes = []
    for user, pw in [("sluice_test", "test_pw"), ("sluice_test", wrong[0]),
                     ("md5user", "md5_pw"), ("md5user", wrong[1])]:
        c = RawConn(s.host, s.port)
        try:
            c.login(user, "sluicedb", pw)
            rows, err = c.simple_query("select 1")
            outcomes.append((user, pw, "ok" if err is None else err))
            c.terminate()
        except (PgError, ConnectionError, OSError) as e:
            outcomes.append((user, pw, e))
        finally:
            c.close()
    # the right password for sluice_test works in every combination
    assert outcomes[0][2] == "ok", outcomes
    assert outcomes[1][2] != "ok", outcomes
    time.sleep(0.5)
    log = s.log_text()
    assert log.strip(), "empty log"
    secrets = ["test_pw", "md5_pw", wrong[0], wrong[1], md5_hash, md5_hash[3:],
               md5_secret("sluice_test", "test_pw")[3:], verifier]
    # the keys of the SCRAM verifier (SCRAM-SHA-256$iter:salt$StoredKey:ServerKey;
    # the salt is public: it is sent to every client in server-first-message)
    secrets += verifier.split("$")[2].split(":")
    for sec in secrets:
        assert sec not in log, f"secret {sec!r} in the log:\n" + "\n".join(
            ln for ln in log.splitlines() if sec in ln)
    for pat in (r"md5[0-9a-f]{32}", r"SCRAM-SHA-256\$", r"c=biws", r",p=[A-Za-z0-9+/=]{20,}"):
        m = re.search(pat, log)
        assert not m, f"{pat!r} in the log: {m.group(0)}"


# --------------------------------------------------------------------------
# -d, logfile, pidfile

def _proc_alive(pid):
    """True when pid exists and is not a zombie (a daemon is not our child,
    so it may linger as a zombie of whoever reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def _kill_daemons(ini, pidfile=None):
    """SIGKILL every process started with this (unique) ini path, and the
    one the pidfile names if its command line matches."""
    pids = set()
    if pidfile is not None:
        try:
            pids.add(int(Path(pidfile).read_text().strip()))
        except (OSError, ValueError):
            pass
    for d in os.listdir("/proc"):
        if d.isdigit() and str(ini) in _cmdline(int(d)):
            pids.add(int(d))
    for pid in pids:
        if pid != os.getpid() and str(ini) in _cmdline(pid) and _proc_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _daemon_cmd(bin_path, ini):
    cmd = [bin_path, "-d"]
    if COMPAT and IS_ROOT:
        cmd += ["-u", "postgres"]
    return cmd + [str(ini)]


def _run_daemon_cmd(cmd, cwd):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=str(cwd),
                         start_new_session=True, preexec_fn=conftest._die_with_parent)
    conftest._live_procs.add(p)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError(f"{cmd} did not return within 10 s")
    finally:
        conftest._live_procs.discard(p)
    return p, out, err, time.monotonic() - t0


def _write_daemon_config(factory, **main):
    d, ini, port = factory.write_config(dict(TX, **main))
    text = ini.read_text().replace("@DIR@", str(d))
    ini.write_text(text)
    return d, ini, port


def test_daemon_with_logfile_and_pidfile(sluice):
    d, ini, port = _write_daemon_config(sluice, logfile="@DIR@/daemon.log",
                                        pidfile="@DIR@/daemon.pid")
    logfile, pidfile = d / "daemon.log", d / "daemon.pid"
    try:
        p, out, err, elapsed = _run_daemon_cmd(_daemon_cmd(sluice.bin, ini), d)
        assert p.returncode == 0, f"-d exited {p.returncode}: {out}{err}"
        assert elapsed < 5, f"-d took {elapsed:.1f} s to return"

        def read_pid():
            try:
                txt = pidfile.read_text().strip()
                return int(txt) if txt else None
            except (OSError, ValueError):
                return None
        pid = poll(read_pid, 5.0, f"pidfile {pidfile}",
                   lambda: logfile.read_text() if logfile.exists() else "")
        assert pid != p.pid, "the pidfile names the process that returned"
        assert _proc_alive(pid), f"pid {pid} from the pidfile is not running"
        assert str(ini) in _cmdline(pid), _cmdline(pid)
        poll(lambda: conftest.port_open("127.0.0.1", port), 5.0, "listening port",
             lambda: logfile.read_text() if logfile.exists() else "")
        with psycopg.connect(f"host=127.0.0.1 port={port} dbname=sluicedb user=sluice_test "
                             f"password=test_pw", connect_timeout=5, autocommit=True) as c:
            assert c.execute("select 'daemon'").fetchone() == ("daemon",)
        assert logfile.exists() and logfile.read_text().strip(), "logfile empty"
        os.kill(pid, signal.SIGTERM)
        poll(lambda: not _proc_alive(pid), 5.0, f"daemon {pid} exit after SIGTERM",
             lambda: logfile.read_text())
        poll(lambda: not pidfile.exists(), 2.0, "pidfile removal", lambda: logfile.read_text())
        assert not conftest.port_open("127.0.0.1", port)
    finally:
        _kill_daemons(ini, pidfile)


@pytest.mark.sluice_only  # PgBouncer 1.18 starts in the background anyway
def test_daemon_without_logfile_fails(sluice):
    d, ini, port = _write_daemon_config(sluice, logfile=None, pidfile="@DIR@/daemon.pid")
    try:
        p, out, err, elapsed = _run_daemon_cmd(_daemon_cmd(sluice.bin, ini), d)
        assert p.returncode != 0, f"-d without logfile exited 0: {out}{err}"
        assert elapsed < 5
        msg = (out + err).lower()
        assert "logfile" in msg and "-d" in msg, out + err
        time.sleep(0.3)
        assert not conftest.port_open("127.0.0.1", port), "something listens anyway"
        assert not (d / "daemon.pid").exists(), "pidfile written anyway"
    finally:
        _kill_daemons(ini, d / "daemon.pid")
