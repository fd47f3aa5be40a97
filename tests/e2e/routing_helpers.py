"""Clusters for the routing and mirroring tests (test_routing.py,
test_mirror.py): a primary of their own, a streaming standby of it, a third
independent cluster used as a mirror, and the helpers that move them
through a failover (promote, crash, wait for replay).

The session `pg` cluster is never used here: failover tests destroy their
primary, and the routing tests need a primary whose WAL a standby follows.

Every cluster has the same roles and database as conftest.PgCluster
(sluice_test / test_pw, database sluicedb) and the same test schema
(SCHEMA below), created on the primary before the standby is copied from
it, so a standby has it too, and on a mirror by hand.

Every wait is bounded: a helper that waits takes a timeout and raises
RoutingTimeout with what it was waiting for.
"""

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from conftest import (PGBIN, PgCluster, SluiceFactory, _as_postgres, _chown_postgres,
                      client_env)

# Tables every cluster of these tests has in database sluicedb, owned by
# sluice_test. rt_items: the rows clients write and read back; rt_seq: a
# sequence for the nextval tests; rt_marker: rows written to check that a
# standby has replayed up to a point.
SCHEMA = [
    "CREATE TABLE rt_items (id bigserial PRIMARY KEY, client int NOT NULL DEFAULT 0, v text)",
    "CREATE SEQUENCE rt_seq",
    "CREATE TABLE rt_marker (id serial PRIMARY KEY, tag text NOT NULL)",
    "ALTER TABLE rt_items OWNER TO sluice_test",
    "ALTER SEQUENCE rt_seq OWNER TO sluice_test",
    "ALTER TABLE rt_marker OWNER TO sluice_test",
]

PG_CTL = str(PGBIN / "pg_ctl")
PG_BASEBACKUP = str(PGBIN / "pg_basebackup")


class RoutingTimeout(AssertionError):
    pass


def wait_for(fn, timeout, what, interval=0.05):
    """Call fn until it returns something true; returns that value.
    Exceptions from fn count as 'not yet' (a server still starting);
    the last one is reported when the time is up."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        if time.monotonic() > deadline:
            raise RoutingTimeout(f"{what}: not within {timeout} s"
                                 + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


class Node(PgCluster):
    """One PostgreSQL of a routing test: a conftest.PgCluster with helpers
    to promote, crash and restart it, and to ask it about recovery."""

    role = "primary"

    def pg_ctl(self, *args, timeout=60):
        return subprocess.run(
            _as_postgres([PG_CTL, "-D", str(self.data), "-l", str(self.logfile)] + list(args)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=client_env(),
            timeout=timeout)

    def log_tail(self, n=30):
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def in_recovery(self):
        return self.sql("SELECT pg_is_in_recovery()")[0][0]

    def answers(self):
        try:
            self.sql("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def crash(self):
        """pg_ctl stop -m immediate: no shutdown checkpoint, clients cut off."""
        r = self.pg_ctl("-m", "immediate", "-w", "-t", "30", "stop")
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl stop -m immediate failed:\n{r.stdout}")
        self.started = False

    def restart(self, timeout=60):
        r = self.pg_ctl("-w", "-t", str(timeout), "start", timeout=timeout + 10)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{r.stdout}\n{self.log_tail()}")
        self.started = True

    def promote(self, timeout=30):
        """pg_ctl promote, then wait until pg_is_in_recovery() is false."""
        r = self.pg_ctl("-w", "-t", str(timeout), "promote", timeout=timeout + 10)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl promote failed:\n{r.stdout}\n{self.log_tail()}")
        wait_for(lambda: not self.in_recovery(), timeout, f"port {self.port} leaving recovery")
        self.role = "primary"

    def lsn(self):
        """The position up to which this server's WAL is known: the insert
        position on a primary, the replayed one on a standby."""
        return self.sql("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
                        "ELSE pg_current_wal_lsn() END")[0][0]


class PrimaryNode(Node):
    """A fresh primary: PgCluster's settings, replication allowed to the
    postgres user over its unix socket, and the test schema."""

    def start(self):
        super().start()
        with open(self.data / "postgresql.conf", "a") as f:
            # PostgreSQL 15's defaults already are wal_level = replica,
            # max_wal_senders = 10, hot_standby = on; written down anyway.
            f.write("wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\n"
                    "wal_keep_size = 256MB\nwal_sender_timeout = 10s\n")
        with open(self.data / "pg_hba.conf", "a") as f:
            f.write("local replication postgres trust\n")
        # wal_level and max_wal_senders only change on restart; they are the
        # defaults, so a reload would do, but a restart keeps it honest.
        r = self.pg_ctl("-w", "-t", "60", "restart", timeout=70)
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed:\n{r.stdout}\n{self.log_tail()}")
        create_schema(self)


class StandbyNode(Node):
    """A streaming standby made with pg_basebackup -R -X stream from
    `source` (a running primary), on its own port and data directory."""

    role = "standby"

    def __init__(self, source, apply_delay=None):
        super().__init__()
        self.source = source
        self.apply_delay = apply_delay

    def start(self, timeout=60):
        os.chmod(self.dir, 0o755)
        _chown_postgres(self.dir)
        r = self._run([PG_BASEBACKUP, "-h", self.source.sockdir, "-p", str(self.source.port),
                       "-U", "postgres", "-D", str(self.data), "-R", "-X", "stream",
                       "-c", "fast", "--no-sync"])
        if r.returncode != 0:
            raise RuntimeError(f"pg_basebackup failed:\n{r.stdout}")
        # The copy's postgresql.conf is the primary's: later lines win.
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\n# --- standby of port {self.source.port} ---\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.sockdir}'\n"
                    "hot_standby = on\n"
                    "wal_receiver_status_interval = 1s\n"
                    "hot_standby_feedback = on\n")
            if self.apply_delay:
                f.write(f"recovery_min_apply_delay = '{self.apply_delay}'\n")
        self.restart(timeout)
        wait_for(self.answers, timeout, f"standby on port {self.port} answering")
        wait_for(self.in_recovery, timeout, f"standby on port {self.port} in recovery")
        wait_replay(self.source, self, timeout)


def create_schema(node):
    with node.connect("sluicedb") as c:
        for stmt in SCHEMA:
            c.execute(stmt)


def wait_replay(primary, standby, timeout=30):
    """Write a marker row on the primary and wait until the standby shows it
    (so it has replayed everything the primary had committed before)."""
    tag = f"m{time.monotonic_ns()}"
    primary.sql("INSERT INTO rt_marker (tag) VALUES (%s)", (tag,), dbname="sluicedb")
    wait_for(lambda: standby.sql("SELECT 1 FROM rt_marker WHERE tag = %s", (tag,),
                                 dbname="sluicedb"),
             timeout, f"standby on port {standby.port} replaying marker {tag}")


def start_nodes(*nodes):
    """Start nodes in order; on failure stop those already started."""
    started = []
    try:
        for n in nodes:
            atexit.register(n.stop)
            started.append(n)
            n.start()
    except BaseException:
        stop_nodes(*started)
        raise
    return nodes


def stop_nodes(*nodes):
    """Stop every node, even when stopping one of them fails."""
    errors = []
    for n in nodes:
        try:
            n.stop()
        except Exception as e:  # noqa: BLE001 - raised below
            errors.append(e)
        atexit.unregister(n.stop)
    if errors:
        raise errors[0]


class Pair:
    """A primary and one streaming standby."""

    def __init__(self, apply_delay=None):
        self.primary = PrimaryNode()
        self.standby = StandbyNode(self.primary, apply_delay)
        self.extra = []  # nodes made later (rejoined old primaries)

    def start(self):
        start_nodes(self.primary, self.standby)
        return self

    def stop(self):
        stop_nodes(self.standby, self.primary, *self.extra)

    def rejoin(self, old, new_primary, apply_delay=None, timeout=60):
        """Make the crashed old primary `old` a standby of `new_primary` on
        the same port: its data directory is replaced by a new base backup
        (what an operator without pg_rewind does), then it starts in
        recovery. Returns the StandbyNode now serving old.port."""
        if old.started:
            old.crash()
        node = StandbyNode(new_primary, apply_delay)
        shutil.rmtree(node.dir, ignore_errors=True)
        node.port = old.port
        node.dir, node.sockdir = old.dir, old.sockdir
        node.data, node.logfile = old.data, old.dir / "postgres-rejoined.log"
        shutil.rmtree(old.data, ignore_errors=True)
        old.dir = Path(tempfile.mkdtemp(prefix="sluice-pg-gone-"))  # what old.stop() removes
        atexit.register(node.stop)
        self.extra.append(node)
        node.start(timeout)
        return node

    def db_line(self, order=("primary", "standby"), **extra):
        """A [databases] value listing the nodes in `order`."""
        nodes = [getattr(self, o) for o in order]
        parts = ["host=" + ",".join(n.host for n in nodes),
                 "port=" + ",".join(str(n.port) for n in nodes),
                 "dbname=sluicedb"]
        parts += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)


def mirror_node():
    """A third, independent cluster with the same roles and schema."""
    n = Node()
    start_nodes(n)
    try:
        create_schema(n)
    except BaseException:
        stop_nodes(n)
        raise
    return n


@pytest.fixture(scope="module")
def pair():
    """Primary + standby with recovery_min_apply_delay = 300ms, shared by a
    module's non-destructive tests (tests must leave both running and the
    standby replaying)."""
    p = Pair(apply_delay="300ms")
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def fresh_pair():
    """Primary + standby without delay, for one destructive test."""
    p = Pair()
    p.start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def mirror():
    n = mirror_node()
    try:
        yield n
    finally:
        stop_nodes(n)


@pytest.fixture(scope="module")
def lone_primary():
    """A primary without standby (mirroring tests)."""
    n = PrimaryNode()
    start_nodes(n)
    try:
        yield n
    finally:
        stop_nodes(n)


class _NoDefault:
    """Stand-in for SluiceFactory's `pg`: every routing test names its
    [databases] itself."""

    def db_line(self, *a, **kw):
        raise AssertionError("routing tests pass databases= explicitly")


@pytest.fixture
def rsluice():
    """Like conftest's `sluice` factory, without the session cluster."""
    factory = SluiceFactory(_NoDefault())
    yield factory
    problems = factory.finish()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


# --------------------------------------------------------------------------
# asking sluice

def console_rows(s, what):
    """SHOW <what> on s's admin console as a list of dicts (by column name).
    s must have been started with admin_helpers.USERLIST and admin_users."""
    from admin_helpers import Console
    with Console(s.port) as con:
        return con.show(what)


def column(row, *names):
    """The first of `names` that row has (column names may still change)."""
    for n in names:
        if n in row:
            return row[n]
    raise KeyError(f"none of {names} in columns {sorted(row)}")


def value(conn, sql):
    """The one value sql answers over conn (no parameters: psycopg sends it
    with the simple query protocol)."""
    return conn.execute(sql).fetchone()[0]


def on_standby(conn):
    """True when a plain read over conn ran on a server in recovery."""
    return value(conn, "SELECT pg_is_in_recovery()")

