"""Helpers for test_admin.py: a small admin-console client speaking only the
simple query protocol, psql output parsing, the PgBouncer 1.18 column lists
the console must reproduce, and a way to end a test whose sluice was asked
to exit (SHUTDOWN) without the fixture calling that a problem.

Everything talks to 127.0.0.1 only.
"""

import os
import re
import socket
import struct
import subprocess
import time

from conftest import (CRASH_SIGNALS, DEFAULT_USERLIST, SANITIZER_PATTERNS, Worker,
                      _live_procs, is_pgbouncer_compat, parse_data_row,
                      parse_error_fields, raw_connect, tail)

COMPAT = is_pgbouncer_compat()

ADMIN, ADMIN_PW = "admin_u", "admin_pw"
STATS, STATS_PW = "stats_u", "stats_pw"
USERLIST = dict(DEFAULT_USERLIST, **{ADMIN: ADMIN_PW, STATS: STATS_PW})
# The console database: `pgbouncer` is answered by both; `sluice` only by sluice.
ADMIN_DB = "pgbouncer"

# --------------------------------------------------------------------------
# Column lists. sluice sends PgBouncer 1.25's (checked against its
# src/admin.c and src/stats.c and pgbouncer_fdw's 1.24+ queries); under
# SLUICE_BIN=pgbouncer (1.18 here) the lists are 1.18's, taken from the
# real binary. Both in order: tools read rows by position.

STATS_COLUMNS_118 = [
    "database", "total_xact_count", "total_query_count", "total_received",
    "total_sent", "total_xact_time", "total_query_time", "total_wait_time",
    "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent",
    "avg_xact_time", "avg_query_time", "avg_wait_time"]
STATS_COLUMNS_125 = [
    "database", "total_server_assignment_count", "total_xact_count",
    "total_query_count", "total_received", "total_sent", "total_xact_time",
    "total_query_time", "total_wait_time", "total_client_parse_count",
    "total_server_parse_count", "total_bind_count",
    "avg_server_assignment_count", "avg_xact_count", "avg_query_count",
    "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time", "avg_wait_time",
    "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count"]
STATS_TOTALS_COLUMNS_118 = [
    "database", "xact_count", "query_count", "bytes_received", "bytes_sent",
    "xact_time", "query_time", "wait_time"]
STATS_TOTALS_COLUMNS_125 = [
    "database", "server_assignment_count", "xact_count", "query_count",
    "bytes_received", "bytes_sent", "xact_time", "query_time", "wait_time",
    "client_parse_count", "server_parse_count", "bind_count"]
POOLS_COLUMNS_118 = [
    "database", "user", "cl_active", "cl_waiting", "cl_active_cancel_req",
    "cl_waiting_cancel_req", "sv_active", "sv_active_cancel", "sv_being_canceled",
    "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us",
    "pool_mode"]
POOLS_COLUMNS_125 = POOLS_COLUMNS_118 + ["load_balance_hosts"]
SOCKET_COLUMNS_118 = [
    "type", "user", "database", "state", "addr", "port", "local_addr",
    "local_port", "connect_time", "request_time", "wait", "wait_us",
    "close_needed", "ptr", "link", "remote_pid", "tls", "application_name"]
SOCKET_COLUMNS_125 = (SOCKET_COLUMNS_118[:3] + ["replication"] + SOCKET_COLUMNS_118[3:]
                      + ["prepared_statements", "id"])
DATABASES_COLUMNS_118 = [
    "name", "host", "port", "database", "force_user", "pool_size",
    "min_pool_size", "reserve_pool", "pool_mode", "max_connections",
    "current_connections", "paused", "disabled"]
DATABASES_COLUMNS_125 = [
    "name", "host", "port", "database", "force_user", "pool_size",
    "min_pool_size", "reserve_pool_size", "server_lifetime", "pool_mode",
    "load_balance_hosts", "max_connections", "current_connections",
    "max_client_connections", "current_client_connections", "paused",
    "disabled"]
USERS_COLUMNS_118 = ["name", "pool_mode"]
USERS_COLUMNS_125 = [
    "name", "pool_size", "reserve_pool_size", "pool_mode",
    "max_user_connections", "current_connections",
    "max_user_client_connections", "current_client_connections"]

# What the binary under test sends.
STATS_COLUMNS = STATS_COLUMNS_118 if COMPAT else STATS_COLUMNS_125
STATS_TOTALS_COLUMNS = STATS_TOTALS_COLUMNS_118 if COMPAT else STATS_TOTALS_COLUMNS_125
STATS_AVERAGES_COLUMNS = list(STATS_TOTALS_COLUMNS)
POOLS_COLUMNS = POOLS_COLUMNS_118 if COMPAT else POOLS_COLUMNS_125
CLIENTS_COLUMNS = SOCKET_COLUMNS_118 if COMPAT else SOCKET_COLUMNS_125
SERVERS_COLUMNS = list(CLIENTS_COLUMNS)
DATABASES_COLUMNS = DATABASES_COLUMNS_118 if COMPAT else DATABASES_COLUMNS_125
USERS_COLUMNS = USERS_COLUMNS_118 if COMPAT else USERS_COLUMNS_125
# Columns whose name changed in 1.23+ (reserve_pool -> reserve_pool_size).
RESERVE_POOL_COLUMN = "reserve_pool" if COMPAT else "reserve_pool_size"
# An idle logged-in client: "active" up to 1.2x, "idle" in 1.25.
IDLE_CLIENT_STATE = "active" if COMPAT else "idle"
CONFIG_COLUMNS = ["key", "value", "default", "changeable"]
LISTS_COLUMNS = ["list", "items"]
# PgBouncer 1.18 rows of SHOW LISTS, in order:
LISTS_ROWS_PGBOUNCER = [
    "databases", "users", "pools", "free_clients", "used_clients",
    "login_clients", "free_servers", "used_servers", "dns_names", "dns_zones",
    "dns_queries", "dns_pending"]
MEM_COLUMNS = ["name", "size", "used", "free", "memtotal"]
FDS_COLUMNS = [
    "fd", "task", "user", "database", "addr", "port", "cancel", "link",
    "client_encoding", "std_strings", "datestyle", "timezone", "password",
    "scram_client_key", "scram_server_key"]
# docs/operations.md names these for SHOW FDS; the rest of PgBouncer's
# columns, when present, must follow in PgBouncer's order and carry no secret.
FDS_REQUIRED = FDS_COLUMNS[:8]
FDS_SECRET_COLUMNS = ("password", "scram_client_key", "scram_server_key")
VERSION_COLUMNS = ["version"]
# SHOW STATE (PgBouncer 1.19+, absent from 1.18): key/value rows
# active, paused, suspended, each "yes" or "no".
STATE_COLUMNS = ["key", "value"]

TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def codes(sqlstate):
    """SQLSTATEs to accept: PgBouncer 1.18 answers 08P01 for nearly every
    console error, sluice the specific code of docs/operations.md."""
    return (sqlstate, "08P01") if COMPAT else (sqlstate,)


# --------------------------------------------------------------------------
# starting an instance with a console

def start(sluice, ini=None, **kw):
    """A sluice (or PgBouncer) with ADMIN in admin_users and STATS in
    stats_users, both in the userlist."""
    main = {"admin_users": ADMIN, "stats_users": STATS}
    main.update(ini or {})
    kw.setdefault("userlist", USERLIST)
    return sluice(main, **kw)


# --------------------------------------------------------------------------
# console client

class AdminError(AssertionError):
    def __init__(self, sql, fields):
        self.fields = fields
        self.sqlstate = fields.get("C")
        self.message = fields.get("M", "")
        self.severity = fields.get("V") or fields.get("S")
        super().__init__(f"{sql!r}: {self.severity} {self.sqlstate}: {self.message}")


class Result:
    def __init__(self, sql):
        self.sql = sql
        self.columns = None     # None when no RowDescription came
        self.rows = []
        self.error = None       # error fields dict
        self.notices = []       # notice fields dicts
        self.tags = []          # CommandComplete tags
        self.ready = None       # transaction status byte of ReadyForQuery

    def dicts(self):
        return [dict(zip(self.columns, r)) for r in self.rows]

    def check(self):
        if self.error is not None:
            raise AdminError(self.sql, self.error)
        return self

    def __repr__(self):
        return (f"<Result {self.sql!r} columns={self.columns} rows={self.rows} "
                f"error={self.error} tags={self.tags}>")


def parse_row_description(body):
    n = struct.unpack("!H", body[:2])[0]
    off, names = 2, []
    for _ in range(n):
        j = body.index(b"\0", off)
        names.append(body[off:j].decode())
        off = j + 1 + 18
    return names


def read_result(conn, sql=""):
    """Read one simple-query answer (up to ReadyForQuery) from a RawConn."""
    res = Result(sql)
    while True:
        typ, body = conn.read()
        if typ == "T":
            res.columns = parse_row_description(body)
        elif typ == "D":
            res.rows.append(parse_data_row(body))
        elif typ == "E":
            res.error = parse_error_fields(body)
        elif typ == "N":
            res.notices.append(parse_error_fields(body))
        elif typ == "C":
            res.tags.append(body.rstrip(b"\0").decode())
        elif typ == "Z":
            res.ready = chr(body[0])
            return res


class Console:
    """One admin-console session over the simple query protocol."""

    def __init__(self, port, user=ADMIN, password=ADMIN_PW, db=ADMIN_DB, timeout=15.0):
        self.conn = raw_connect("127.0.0.1", port, user, db, password, timeout=timeout)

    def run(self, sql, timeout=None):
        if timeout is not None:
            self.conn.sock.settimeout(timeout)
        self.conn.send(b"Q", sql.encode() + b"\0")
        return read_result(self.conn, sql)

    def cmd(self, sql, timeout=None):
        """Run a command that must succeed."""
        return self.run(sql, timeout).check()

    def show(self, what, expect_columns=None):
        """SHOW <what>; checks the column list when given; returns row dicts."""
        r = self.cmd(f"SHOW {what}")
        if expect_columns is not None:
            assert r.columns == expect_columns, \
                f"SHOW {what} columns:\n  got  {r.columns}\n  want {expect_columns}"
        return r.dicts()

    def error(self, sql):
        """Run a command that must fail; returns the AdminError."""
        r = self.run(sql)
        assert r.error is not None, f"{sql!r} was accepted: {r}"
        return AdminError(sql, r.error)

    def close(self):
        self.conn.terminate()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def console_cmd_in_thread(port, sql, user=ADMIN, password=ADMIN_PW, timeout=30.0):
    """Start a Worker that logs in and runs one command; get() -> Result."""
    def run():
        c = Console(port, user, password, timeout=timeout)
        try:
            return c.run(sql)
        finally:
            c.close()
    w = Worker(run)
    w.start()
    return w


# --------------------------------------------------------------------------
# psql

def psql_admin(s, sql, user=ADMIN, password=ADMIN_PW, db=ADMIN_DB, timeout=20):
    """Run one console command with psql, unaligned '|'-separated output."""
    return s.psql("-A", "-F", "|", "-P", "footer=off", "-v", "ON_ERROR_STOP=1",
                  "-c", sql, db=db, user=user, password=password, timeout=timeout)


def psql_show(s, what, **kw):
    """SHOW <what> through psql; returns (columns, row dicts)."""
    r = psql_admin(s, f"SHOW {what}", **kw)
    assert r.returncode == 0, f"psql SHOW {what} failed ({r.returncode}): {r.stderr}"
    lines = [ln for ln in r.stdout.splitlines() if ln != ""]
    assert lines, f"psql SHOW {what}: no output"
    cols = lines[0].split("|")
    rows = [dict(zip(cols, ln.split("|"))) for ln in lines[1:]]
    return cols, rows


# --------------------------------------------------------------------------
# small utilities

def find(rows, **match):
    """Rows whose fields equal every given value."""
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def one(rows, **match):
    found = find(rows, **match)
    assert len(found) == 1, f"expected one row with {match}, got {len(found)}: {rows}"
    return found[0]


def ints(row, keys):
    out = {}
    for k in keys:
        v = row[k]
        assert v is not None and re.fullmatch(r"-?\d+", v), f"{k}={v!r} is not an integer"
        out[k] = int(v)
    return out


def empty(v):
    return v is None or v == ""


def poll(fn, timeout=5.0, interval=0.05, what="condition"):
    """Call fn until it returns something true; return that. AssertionError
    with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s (last: {v!r})")
        time.sleep(interval)


def local_port(conn):
    """Local TCP port of a psycopg connection (how the pooler sees the client)."""
    s = socket.socket(fileno=os.dup(conn.pgconn.socket))
    try:
        return s.getsockname()[1]
    finally:
        s.close()


def still_running(worker, seconds=1.0):
    """True when the worker has not finished after `seconds`."""
    worker.join(seconds)
    return worker.is_alive()


def pg_pid_alive(pg, pid):
    return pg.sql("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))[0][0] > 0


# --------------------------------------------------------------------------
# instances asked to exit

def wait_exit(inst, timeout):
    """Exit status, or None if still running after timeout seconds."""
    try:
        return inst.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def accept_exit(inst):
    """The process ended because the test asked it to: check it ended
    cleanly (status 0, no crash, no sanitizer report) and keep the fixture's
    stop from reporting 'exited on its own'."""
    rc = inst.proc.poll()
    assert rc is not None, "process still running"
    inst.stopped = True
    _live_procs.discard(inst.proc)
    log = inst.log_text()
    assert not (rc < 0 and -rc in CRASH_SIGNALS), f"died from signal {-rc}:\n{tail(log)}"
    for pat in SANITIZER_PATTERNS:
        assert pat not in log, f"sanitizer report in log:\n{tail(log)}"
    assert rc == 0, f"exit status {rc} after a requested shutdown:\n{tail(log)}"


def assert_exits(inst, timeout, after):
    """The process exits cleanly within timeout seconds (after: what the
    test just did, for the message)."""
    assert wait_exit(inst, timeout) is not None, f"still running {timeout} s after {after}"
    accept_exit(inst)


def send_until_closed(console, sql, timeout=5.0):
    """Send a command that may end the connection (SHUTDOWN). Returns the
    Result if one arrived, None if the peer closed first."""
    console.conn.sock.settimeout(timeout)
    try:
        console.conn.send(b"Q", sql.encode() + b"\0")
        return read_result(console.conn, sql)
    except (ConnectionError, OSError):
        return None


def login_refused(s, db="sluicedb", timeout=3.0):
    """True when a new client cannot log in to db (refused, closed, error or
    no answer within timeout): what 'stop accepting' looks like."""
    try:
        c = raw_connect("127.0.0.1", s.port, "sluice_test", db, "test_pw", timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure is a refusal
        return True
    try:
        c.sock.settimeout(timeout)
        try:
            c.simple_query("select 1")
        except Exception:  # noqa: BLE001
            return True
        return False
    finally:
        c.close()
