"""
End-to-end test harness for sluice.

Fixtures:
  pg        (session)  a throwaway PostgreSQL 15 cluster on 127.0.0.1
  sluice    (function) factory: start sluice with a generated config
  fresh_db  (function) a new empty database owned by sluice_test
  raw       (function) factory for RawConn, a minimal wire-protocol client
  run_sluice_raw       run the binary on a hand-written config and collect
                       its exit status / output (for config error tests)

Every test runs under a time limit (pytest-timeout when installed, otherwise
a SIGALRM guard below), and every test gets its own sluice process.

Set SLUICE_BIN to the binary under test (default: <repo>/build/sluice).
Setting SLUICE_BIN to a pgbouncer binary runs the same tests against
PgBouncer, which is how the tests themselves are checked; tests marked
`sluice_only` are skipped then.
"""

import atexit
import base64
import fcntl
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

try:
    import psycopg
except ImportError:  # pragma: no cover - reported clearly below
    psycopg = None

REPO = Path(__file__).resolve().parents[2]
PGBIN = Path("/usr/lib/postgresql/15/bin")
PSQL = str(PGBIN / "psql")
PGBENCH = str(PGBIN / "pgbench")
DEFAULT_TIMEOUT = 60
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
IS_ROOT = os.geteuid() == 0

# Patterns that mean a sanitizer found a bug.
SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "WARNING: ThreadSanitizer",
    "runtime error:",
)
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL,
                 signal.SIGFPE, signal.SIGSYS, signal.SIGTRAP}

# Live child processes, killed at exit whatever happens to the session.
_live_procs = set()


def _kill_leftovers():
    for p in list(_live_procs):
        try:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        except Exception:
            pass
    _live_procs.clear()


# --------------------------------------------------------------------------
# pytest plumbing: timeouts and markers

atexit.register(_kill_leftovers)


def _die_with_parent():
    """preexec_fn: the kernel kills the child if the test process dies
    (even by SIGKILL), so no sluice outlives an aborted run."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _have_timeout_plugin():
    import importlib.util
    return importlib.util.find_spec("pytest_timeout") is not None


def pytest_addoption(parser):
    if not _have_timeout_plugin():
        parser.addini("timeout", "per-test timeout in seconds (fallback when "
                      "pytest-timeout is not installed)", default=str(DEFAULT_TIMEOUT))


def _sigterm_to_interrupt(signum, frame):
    # Let pytest unwind (fixture teardown stops PostgreSQL and sluice)
    # instead of dying with children and temp dirs left behind.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    config.addinivalue_line("markers", "sluice_only: checks sluice-specific "
                            "behaviour; skipped when SLUICE_BIN is pgbouncer")
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): per-test time limit")


def pytest_sessionfinish(session, exitstatus):
    _kill_leftovers()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test shows the tail of each of its sluice logs: a rare
    failure in CI must carry what sluice said when it happened."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    factory = getattr(item, "funcargs", {}).get("sluice")
    for inst in getattr(factory, "instances", []):
        report.sections.append((f"sluice log, port {inst.port}", tail(inst.log_text(), 40)))


def pytest_collection_modifyitems(config, items):
    if not is_pgbouncer_compat():
        return
    skip = pytest.mark.skip(reason="sluice-specific; SLUICE_BIN is pgbouncer")
    for item in items:
        if "sluice_only" in item.keywords:
            item.add_marker(skip)


class _TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _alarm_timeout(request):
    """Fallback per-test time limit when pytest-timeout is unavailable."""
    if request.config.pluginmanager.hasplugin("timeout") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    limit = DEFAULT_TIMEOUT
    try:
        limit = int(float(request.config.getini("timeout")))
    except Exception:
        pass
    m = request.node.get_closest_marker("timeout")
    if m and m.args:
        limit = int(m.args[0])

    def on_alarm(signum, frame):
        raise _TestTimeout(f"test exceeded its {limit} s time limit")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------
# small helpers

def unit_binary(name):
    """build/unit/NAME, built when missing or stale (make unit builds them
    all), one test process at a time: the suite runs tests in parallel.
    Tests use some of them as oracles for sluice's code."""
    path = REPO / "build" / "unit" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["make", "-s", "-C", str(REPO), f"build/unit/{name}"], check=True,
                       stdout=subprocess.DEVNULL, timeout=300)
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pump(a, b):
    """Copy bytes from socket a to socket b until either side ends, then
    shut both down (for the small TCP forwarders tests put in front of
    PostgreSQL)."""
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def port_open(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def client_env(**extra):
    """Environment for psql/pgbench: no inherited PG* settings, English."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    env["PGCONNECT_TIMEOUT"] = "10"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def md5_secret(user, password):
    """PgBouncer/PostgreSQL stored md5 form: "md5" + md5(password + user)."""
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def unique(prefix="t"):
    return f"{prefix}_{secrets.token_hex(4)}"


def tail(text, n=60):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def is_pgbouncer_compat(bin_path=None):
    b = bin_path or os.environ.get("SLUICE_BIN", "")
    return os.path.basename(b).startswith("pgbouncer")


def _as_postgres(cmd):
    """Prefix a command so it runs as the postgres OS user when we are root."""
    if IS_ROOT:
        return ["runuser", "-u", "postgres", "--"] + list(cmd)
    return list(cmd)


def _chown_postgres(path):
    if IS_ROOT:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


# --------------------------------------------------------------------------
# PostgreSQL cluster

class PgCluster:
    host = "127.0.0.1"

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
        self.data = self.dir / "data"
        self.logfile = self.dir / "postgres.log"
        self.port = free_port()
        self.sockdir = str(self.dir)
        self.started = False

    def _run(self, cmd, **kw):
        return subprocess.run(_as_postgres(cmd), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env=client_env(), timeout=120, **kw)

    def start(self):
        os.chmod(self.dir, 0o755)
        _chown_postgres(self.dir)
        r = self._run([str(PGBIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                       "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"""
# --- sluice e2e ---
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.sockdir}'
password_encryption = 'scram-sha-256'
max_connections = 200
max_prepared_transactions = 50
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
lc_messages = 'C'
log_min_messages = warning
""")
        (self.data / "pg_hba.conf").write_text(
            "# sluice e2e\n"
            "local all postgres trust\n"
            "local all all scram-sha-256\n"  # tests that reach PG from their own netns
            "host all trustuser 127.0.0.1/32 trust\n"
            "host all md5user 127.0.0.1/32 md5\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")
        r = self._run([str(PGBIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                       "-w", "-t", "60", "start"])
        if r.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(f"pg_ctl start failed:\n{r.stdout}\n{log}")
        self.started = True
        self._setup_roles()

    def _setup_roles(self):
        with self.connect() as c:
            c.execute("CREATE ROLE sluice_test LOGIN CREATEDB PASSWORD 'test_pw'")
            c.execute("CREATE DATABASE sluicedb OWNER sluice_test")
            c.execute("SET password_encryption = 'md5'")
            c.execute("CREATE ROLE md5user LOGIN PASSWORD 'md5_pw'")
            c.execute("RESET password_encryption")
            c.execute("CREATE ROLE trustuser LOGIN")
        with self.connect("sluicedb") as c:
            c.execute("GRANT ALL ON SCHEMA public TO PUBLIC")

    def stop(self):
        if self.started:
            self._run([str(PGBIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                       "-w", "-t", "30", "stop"])
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers exposed to tests
    def connect(self, dbname="postgres", **kw):
        """Superuser connection over the unix socket, autocommit."""
        return psycopg.connect(host=self.sockdir, port=self.port, user="postgres",
                               dbname=dbname, autocommit=True, connect_timeout=10, **kw)

    def connect_tcp(self, dbname="sluicedb", user="sluice_test", password="test_pw", **kw):
        kw.setdefault("autocommit", True)
        kw.setdefault("connect_timeout", 10)
        return psycopg.connect(host=self.host, port=self.port, user=user,
                               password=password, dbname=dbname, **kw)

    def sql(self, query, params=None, dbname="postgres"):
        """Run one statement as superuser; returns all rows (or [])."""
        with self.connect(dbname) as c:
            cur = c.execute(query, params)
            return cur.fetchall() if cur.description else []

    def db_line(self, dbname="sluicedb", **extra):
        """A [databases] value pointing at this cluster."""
        parts = [f"host={self.host}", f"port={self.port}", f"dbname={dbname}"]
        parts += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)

    def scram_verifier(self, role):
        return self.sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))[0][0]

    def backends(self, dbname):
        """Number of client backends connected to dbname (excluding ourselves)."""
        return self.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                        (dbname,))[0][0]


@pytest.fixture(scope="session")
def pg():
    if psycopg is None:
        pytest.fail("python3-psycopg is not installed (run scripts/install-deps.sh)")
    if not (PGBIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 binaries not found in {PGBIN} (run scripts/install-deps.sh)")
    cluster = PgCluster()
    atexit.register(cluster.stop)
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()
        atexit.unregister(cluster.stop)


def pgbench_database(pg, name, scale):
    """Generator for a module fixture: database `name` initialised with
    `pgbench -i -s scale` directly on PostgreSQL, dropped afterwards."""
    pg.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    pg.sql(f"CREATE DATABASE {name} OWNER sluice_test")
    r = subprocess.run([PGBENCH, "-i", "-q", "-s", str(scale), "-h", pg.host,
                        "-p", str(pg.port), "-U", "sluice_test", name],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120, env=client_env(PGPASSWORD="test_pw"))
    assert r.returncode == 0, r.stdout
    yield name
    pg.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def fresh_db(pg):
    """A new empty database owned by sluice_test; dropped afterwards."""
    name = unique("e2edb")
    pg.sql(f"CREATE DATABASE {name} OWNER sluice_test")
    try:
        yield name
    finally:
        try:
            pg.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except Exception:
            pass


# --------------------------------------------------------------------------
# sluice process

DEFAULT_USERLIST = {
    "sluice_test": "test_pw",
    "md5user": "md5_pw",
    "trustuser": "",
}


def default_bin():
    return os.environ.get("SLUICE_BIN") or str(REPO / "build" / "sluice")


def _quote_userlist(s):
    return '"' + s.replace('"', '""') + '"'


class Sluice:
    host = "127.0.0.1"

    def __init__(self, bin_path, workdir, ini_path, port, proc, logpath):
        self.bin = bin_path
        self.dir = workdir
        self.ini = ini_path
        self.port = port
        self.proc = proc
        self.logpath = logpath
        self.stopped = False

    @property
    def pid(self):
        return self.proc.pid

    def log_text(self):
        try:
            return Path(self.logpath).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def dsn(self, db="sluicedb", user="sluice_test", password="test_pw", **extra):
        parts = [f"host={self.host}", f"port={self.port}", f"dbname={db}", f"user={user}"]
        if password is not None:
            parts.append(f"password={password}")
        parts += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)

    def connect(self, db="sluicedb", user="sluice_test", password="test_pw", **kw):
        kw.setdefault("autocommit", True)
        kw.setdefault("connect_timeout", 10)
        # psycopg would otherwise switch to named prepared statements after 5
        # executions, which transaction pooling (like PgBouncer's) cannot carry.
        kw.setdefault("prepare_threshold", None)
        conn = psycopg.connect(self.dsn(db, user, password), **kw)
        return conn

    def psql(self, *args, db="sluicedb", user="sluice_test", password="test_pw",
             input=None, timeout=60, conn_extra=""):
        """Run psql against sluice; returns CompletedProcess (text)."""
        dsn = self.dsn(db, user, password) + (" " + conn_extra if conn_extra else "")
        cmd = [PSQL, "-X", "-d", dsn] + list(args)
        return subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout,
                              env=client_env())

    def pgbench(self, *args, db="sluicedb", user="sluice_test", password="test_pw",
                timeout=120):
        cmd = [PGBENCH, "-h", self.host, "-p", str(self.port), "-U", user] + list(args) + [db]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout,
                              env=client_env(PGPASSWORD=password or ""))

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait, SIGKILL. Returns a list of problems (empty = clean)."""
        if self.stopped:
            return []
        self.stopped = True
        problems = []
        rc = self.proc.poll()
        if rc is not None:
            problems.append(f"sluice exited on its own during the test (status {rc})")
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(timeout=10)
                problems.append(f"sluice did not stop within {STOP_TIMEOUT} s of SIGTERM")
        _live_procs.discard(self.proc)
        if rc is not None and rc < 0 and -rc in CRASH_SIGNALS:
            problems.append(f"sluice died from signal {signal.Signals(-rc).name}")
        log = self.log_text()
        for pat in SANITIZER_PATTERNS:
            if pat in log:
                problems.append(f"sanitizer report in log ({pat!r})")
                break
        return problems


class SluiceFactory:
    def __init__(self, pg, bin_path=None):
        self.pg = pg
        self.bin = bin_path or default_bin()
        self.instances = []
        self.dirs = []

    def _mkdir(self):
        d = Path(tempfile.mkdtemp(prefix="sluice-"))
        os.chmod(d, 0o755)
        self.dirs.append(d)
        return d

    def write_config(self, ini_main=None, databases=None, users=None, userlist=None,
                     workers=2, section=None, port=None, peers=None):
        """Write config + userlist into a new temp dir; returns (dir, ini path, port)."""
        compat = is_pgbouncer_compat(self.bin)
        d = self._mkdir()
        port = port or free_port()
        main = {
            "listen_addr": "127.0.0.1",
            "listen_port": port,
            "unix_socket_dir": str(d),
            "auth_type": "md5",
            "auth_file": str(d / "userlist.txt"),
            "pool_mode": "session",
        }
        if not compat:
            main["workers"] = workers
            # SLUICE_E2E_INI_EXTRA="key=value;key=value" adds settings to every
            # sluice the tests start (make e2e-bypass: bpf_bypass=on); a test's
            # own settings win.
            for item in os.environ.get("SLUICE_E2E_INI_EXTRA", "").split(";"):
                if "=" in item:
                    k, v = item.split("=", 1)
                    main[k.strip()] = v.strip()
        for k, v in (ini_main or {}).items():
            if v is None:
                main.pop(k, None)
            else:
                main[k] = v
        if databases is None:
            databases = {"sluicedb": self.pg.db_line("sluicedb")}
        if userlist is None:
            userlist = DEFAULT_USERLIST
        section = section or ("pgbouncer" if compat else "sluice")
        lines = ["; generated by tests/e2e/conftest.py", "[databases]"]
        lines += [f"{k} = {v}" for k, v in databases.items()]
        if users:
            lines += ["", "[users]"]
            lines += [f"{k} = {v}" for k, v in users.items()]
        if peers:
            lines += ["", "[peers]"]
            lines += [f"{k} = {v}" for k, v in peers.items()]
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {v}" for k, v in main.items()]
        ini = d / "sluice.ini"
        ini.write_text("\n".join(lines) + "\n")
        (d / "userlist.txt").write_text(
            "".join(f"{_quote_userlist(u)} {_quote_userlist(s)}\n" for u, s in userlist.items()))
        if compat:
            _chown_postgres(d)
        return d, ini, port

    def __call__(self, ini_main=None, databases=None, users=None, userlist=None,
                 workers=2, section=None, args=(), verbose=False, peers=None):
        if not os.path.isfile(self.bin) or not os.access(self.bin, os.X_OK):
            pytest.fail(f"sluice binary not found or not executable: {self.bin} "
                        f"(build it with `make`, or set SLUICE_BIN)", pytrace=False)
        fixed_port = (ini_main or {}).get("listen_port")
        for attempt in range(3):
            inst = self._start(ini_main, databases, users, userlist, workers, section, args, verbose,
                               peers, fixed_port)
            if inst is not None:
                return inst
        pytest.fail("sluice found its port taken three times in a row", pytrace=False)

    def _start(self, ini_main, databases, users, userlist, workers, section, args, verbose, peers,
               fixed_port):
        """One start; None when the port free_port chose was taken by
        another process meanwhile (a test running in parallel): sluice
        refuses a port another process listens on, and the caller picks
        another."""
        d, ini, port = self.write_config(ini_main, databases, users, userlist, workers, section,
                                         port=fixed_port, peers=peers)
        logpath = d / "sluice.log"
        cmd = [self.bin] + list(args)
        if verbose or os.environ.get("SLUICE_E2E_VERBOSE"):
            cmd.append("-v")
        if is_pgbouncer_compat(self.bin) and IS_ROOT:
            cmd += ["-u", "postgres"]
        cmd.append(str(ini))
        logf = open(logpath, "wb")
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                    cwd=str(d), start_new_session=True,
                                    preexec_fn=_die_with_parent)
        finally:
            logf.close()
        _live_procs.add(proc)
        inst = Sluice(self.bin, d, ini, port, proc, logpath)
        self.instances.append(inst)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                if not fixed_port and "another process listens on it" in inst.log_text():
                    self.instances.remove(inst)
                    _live_procs.discard(proc)
                    return None
                pytest.fail(f"sluice exited with status {proc.returncode} before listening "
                            f"on port {port}; log tail:\n{tail(inst.log_text())}", pytrace=False)
            # Its own log line too: a process of a test running in
            # parallel may hold the port (sluice then exits, see above).
            if port_open("127.0.0.1", port) and (is_pgbouncer_compat(self.bin)
                                                  or "listening on port" in inst.log_text()):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"sluice did not accept TCP connections on port {port} within "
                            f"{START_TIMEOUT} s; log tail:\n{tail(inst.log_text())}", pytrace=False)
            time.sleep(0.05)
        return inst

    def finish(self):
        problems = []
        for inst in self.instances:
            for p in inst.stop():
                problems.append(f"[port {inst.port}] {p}\nlog tail:\n{tail(inst.log_text())}")
        for d in self.dirs:
            # SLUICE_E2E_KEEP=1 keeps each instance's directory (config, log) for a post-mortem.
            if not os.environ.get("SLUICE_E2E_KEEP"):
                shutil.rmtree(d, ignore_errors=True)
        return problems


class ShardedFactory(SluiceFactory):
    """A SluiceFactory whose configurations end with a [sharded_tables]
    section of these lines (docs/sharding.md)."""

    def __init__(self, pg, tables, bin_path=None):
        super().__init__(pg, bin_path)
        self.tables = list(tables)

    def write_config(self, *a, **kw):
        d, ini, port = super().write_config(*a, **kw)
        with open(ini, "a") as f:
            f.write("\n[sharded_tables]\n" + "".join(f"{t}\n" for t in self.tables))
        return d, ini, port


@pytest.fixture
def sluice(pg):
    """Factory: sluice(ini_main, databases, users, userlist, workers=2) -> Sluice."""
    factory = SluiceFactory(pg)
    yield factory
    problems = factory.finish()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def run_sluice_raw():
    """run(ini_text, args=(), timeout=5) -> (CompletedProcess, ini_path, elapsed).
    Runs the binary on a hand-written config; kills it if still running at timeout."""
    dirs = []

    def run(ini_text, args=(), timeout=5.0, ini_name="bad.ini", write=True):
        b = default_bin()
        if not os.path.isfile(b):
            pytest.fail(f"sluice binary not found: {b}", pytrace=False)
        d = Path(tempfile.mkdtemp(prefix="sluice-cfg-"))
        dirs.append(d)
        ini = d / ini_name
        if write:
            ini.write_text(ini_text)
        t0 = time.monotonic()
        p = subprocess.Popen([b] + list(args) + [str(ini)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=str(d), start_new_session=True,
                             preexec_fn=_die_with_parent)
        _live_procs.add(p)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            p.returncode = None  # still running at the deadline
        _live_procs.discard(p)
        elapsed = time.monotonic() - t0
        return subprocess.CompletedProcess(p.args, p.returncode, out, err), ini, elapsed

    yield run
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# Minimal PostgreSQL wire-protocol client (to look at exact messages)

class PgError(Exception):
    def __init__(self, fields):
        self.fields = fields
        self.sqlstate = fields.get("C")
        self.message = fields.get("M", "")
        self.severity = fields.get("V") or fields.get("S")
        super().__init__(f"{self.severity} {self.sqlstate}: {self.message}")


def parse_data_row(body, errors="strict"):
    """DataRow body -> list of column values (str, or None for NULL)."""
    n = struct.unpack("!H", body[:2])[0]
    off, row = 2, []
    for _ in range(n):
        ln = struct.unpack("!i", body[off:off + 4])[0]
        off += 4
        if ln < 0:
            row.append(None)
        else:
            row.append(body[off:off + ln].decode(errors=errors))
            off += ln
    return row


def parse_error_fields(body):
    fields = {}
    i = 0
    while i < len(body) and body[i] != 0:
        code = chr(body[i])
        j = body.index(b"\0", i + 1)
        fields[code] = body[i + 1:j].decode(errors="replace")
        i = j + 1
    return fields


class RawConn:
    PROTO = 196608
    SSL_REQUEST = 80877103
    CANCEL_REQUEST = 80877102

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.params = {}
        self.backend_key = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, typ, body=b""):
        self.sock.sendall(typ + struct.pack("!I", len(body) + 4) + body)

    def read(self):
        """Next message as (type byte str, body bytes)."""
        hdr = self._recv_exact(5)
        typ = chr(hdr[0])
        ln = struct.unpack("!I", hdr[1:])[0]
        return typ, self._recv_exact(ln - 4)

    def ssl_request(self):
        self.sock.sendall(struct.pack("!II", 8, self.SSL_REQUEST))
        return self._recv_exact(1)

    def send_startup(self, params):
        body = struct.pack("!I", self.PROTO)
        for k, v in params.items():
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        self.sock.sendall(struct.pack("!I", len(body) + 4) + body)

    def login(self, user, database, password=None, **params):
        """Complete startup + authentication. Raises PgError on ErrorResponse.
        Returns the list of auth method codes the server asked for."""
        p = {"user": user, "database": database}
        p.update(params)
        self.send_startup(p)
        methods = []
        scram = None
        while True:
            typ, body = self.read()
            if typ == "E":
                raise PgError(parse_error_fields(body))
            if typ == "R":
                code = struct.unpack("!I", body[:4])[0]
                methods.append(code)
                if code == 0:
                    continue
                if code == 3:
                    self.send(b"p", (password or "").encode() + b"\0")
                elif code == 5:
                    salt = body[4:8]
                    inner = hashlib.md5(((password or "") + user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(b"p", b"md5" + outer.encode() + b"\0")
                elif code == 10:
                    mechs = [m.decode() for m in body[4:].split(b"\0") if m]
                    if "SCRAM-SHA-256" not in mechs:
                        raise AssertionError(f"no SCRAM-SHA-256 in {mechs}")
                    scram = _ScramClient(password or "")
                    first = scram.client_first().encode()
                    self.send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first)
                elif code == 11:
                    self.send(b"p", scram.client_final(body[4:].decode()).encode())
                elif code == 12:
                    scram.verify_server_final(body[4:].decode())
                else:
                    raise AssertionError(f"unsupported auth request {code}")
            elif typ == "S":
                k, v, _ = body.split(b"\0", 2)
                self.params[k.decode()] = v.decode()
            elif typ == "K":
                self.backend_key = struct.unpack("!II", body[:8])
            elif typ == "Z":
                return methods
            elif typ == "N":
                pass
            else:
                raise AssertionError(f"unexpected message {typ!r} during login")

    def simple_query(self, sql):
        """Send a Query; returns (rows as lists of str/None, error fields or None)."""
        self.send(b"Q", sql.encode() + b"\0")
        rows, err = [], None
        while True:
            typ, body = self.read()
            if typ == "D":
                rows.append(parse_data_row(body))
            elif typ == "E":
                err = parse_error_fields(body)
            elif typ == "Z":
                return rows, err

    def terminate(self):
        try:
            self.send(b"X")
        except OSError:
            pass
        self.close()


def send_cancel(host, port, pid, key, timeout=5.0):
    """Send a CancelRequest on a fresh connection and wait for the peer to close."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack("!IIII", 16, RawConn.CANCEL_REQUEST,
                              pid & 0xFFFFFFFF, key & 0xFFFFFFFF))
        try:
            while s.recv(1024):
                pass
        except (socket.timeout, ConnectionError):
            pass


class _ScramClient:
    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()

    def client_first(self):
        self.first_bare = f"n=,r={self.nonce}"
        return "n,," + self.first_bare

    def client_final(self, server_first):
        self.server_first = server_first
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise AssertionError("server nonce does not extend client nonce")
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        self.salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iters)
        client_key = hmac.new(self.salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        self.auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        sig = hmac.new(stored_key, self.auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify_server_final(self, server_final):
        attrs = dict(kv.split("=", 1) for kv in server_final.split(","))
        server_key = hmac.new(self.salted, b"Server Key", "sha256").digest()
        expect = hmac.new(server_key, self.auth_message, "sha256").digest()
        if base64.b64decode(attrs.get("v", "")) != expect:
            raise AssertionError("SCRAM server signature mismatch")


@pytest.fixture
def raw():
    """Factory: raw(host, port) -> RawConn; all closed at teardown."""
    conns = []

    def make(host, port, timeout=10.0):
        c = RawConn(host, port, timeout)
        conns.append(c)
        return c

    yield make
    for c in conns:
        c.close()


# --------------------------------------------------------------------------
# threads that must not outlive a test

class Worker(threading.Thread):
    """Thread that records its result or exception; join() re-raises."""

    def __init__(self, fn, *args, **kw):
        super().__init__(daemon=True)
        self.fn, self.args, self.kw = fn, args, kw
        self.result = None
        self.exc = None
        self.finished_at = None

    def run(self):
        try:
            self.result = self.fn(*self.args, **self.kw)
        except BaseException as e:  # noqa: BLE001 - reported by get()
            self.exc = e
        finally:
            self.finished_at = time.monotonic()

    def get(self, timeout=30):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"worker thread still running after {timeout} s")
        if self.exc is not None:
            raise self.exc
        return self.result


@pytest.fixture
def helpers():
    """Access to module helpers without importing conftest."""
    class H:
        pass
    h = H()
    h.md5_secret = md5_secret
    h.unique = unique
    h.Worker = Worker
    h.PgError = PgError
    h.send_cancel = send_cancel
    h.free_port = free_port
    h.client_env = client_env
    h.PSQL = PSQL
    h.PGBENCH = PGBENCH
    h.SluiceFactory = SluiceFactory
    h.ShardedFactory = ShardedFactory
    h.compat = is_pgbouncer_compat()
    # SQLSTATE for a failed password check: 28P01 as PostgreSQL sends it.
    # PgBouncer 1.18 sends 08P01 instead; accepted only when testing it.
    h.AUTH_FAILED = ("28P01", "08P01") if h.compat else ("28P01",)

    def assert_auth_failed(err, user):
        """err: PgError from RawConn.login. sluice answers like PostgreSQL:
        FATAL 28P01 'password authentication failed for user "USER"'.
        (PgBouncer 1.18: 08P01 'password/SASL authentication failed'.)"""
        assert err.severity == "FATAL", err
        assert err.sqlstate in h.AUTH_FAILED, err
        if h.compat:
            assert "authentication failed" in err.message, err
        else:
            assert err.message == f'password authentication failed for user "{user}"', err
    h.assert_auth_failed = assert_auth_failed
    h.AUTH_FAILED_RE = "authentication failed" if h.compat else \
        "password authentication failed for user"
    return h


# --------------------------------------------------------------------------
# Extended query protocol helpers (test_prepared.py, test_pinning.py).
# Appended; nothing above depends on them. Tests import them with
# `from conftest import ...`.

def _cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def msg_parse(name, query, oids=()):
    """Parse: (type, body) for RawConn.send / send_batch."""
    return (b"P", _cstr(name) + _cstr(query) + struct.pack("!H", len(oids)) +
            b"".join(struct.pack("!I", o) for o in oids))


def msg_bind(stmt, params=(), portal="", result_formats=()):
    """Bind with text parameters (None = NULL)."""
    body = _cstr(portal) + _cstr(stmt) + struct.pack("!H", 0)
    body += struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            v = str(p).encode()
            body += struct.pack("!i", len(v)) + v
    body += struct.pack("!H", len(result_formats))
    body += b"".join(struct.pack("!H", f) for f in result_formats)
    return (b"B", body)


def msg_describe(kind, name):
    """kind: 'S' (statement) or 'P' (portal)."""
    return (b"D", kind.encode() + _cstr(name))


def msg_execute(portal="", max_rows=0):
    return (b"E", _cstr(portal) + struct.pack("!I", max_rows))


def msg_close(kind, name):
    return (b"C", kind.encode() + _cstr(name))


def msg_sync():
    return (b"S", b"")


def msg_flush():
    return (b"H", b"")


def msg_query(sql):
    return (b"Q", _cstr(sql))


def send_batch(conn, msgs):
    """Send several messages in one write (a real pipeline)."""
    conn.sock.sendall(b"".join(t + struct.pack("!I", len(b) + 4) + b for t, b in msgs))


def decode_msg(typ, body):
    """A readable, comparable form of one backend message. Everything that
    PostgreSQL would send identically to any connection is kept; errors keep
    severity, SQLSTATE, message, detail, hint and position."""
    if typ == "1":
        return ("ParseComplete",)
    if typ == "2":
        return ("BindComplete",)
    if typ == "3":
        return ("CloseComplete",)
    if typ == "n":
        return ("NoData",)
    if typ == "s":
        return ("PortalSuspended",)
    if typ == "I":
        return ("EmptyQueryResponse",)
    if typ == "Z":
        return ("ReadyForQuery", chr(body[0]))
    if typ == "C":
        return ("CommandComplete", body.rstrip(b"\0").decode())
    if typ == "t":
        n = struct.unpack("!H", body[:2])[0]
        return ("ParameterDescription",
                tuple(struct.unpack("!I", body[2 + 4 * i:6 + 4 * i])[0] for i in range(n)))
    if typ == "T":
        n = struct.unpack("!H", body[:2])[0]
        off, cols = 2, []
        for _ in range(n):
            j = body.index(b"\0", off)
            name = body[off:j].decode()
            off = j + 1
            tab, att, typoid, typlen, typmod, fmt = struct.unpack("!IhIhih", body[off:off + 18])
            off += 18
            cols.append((name, tab, att, typoid, typlen, typmod, fmt))
        return ("RowDescription", tuple(cols))
    if typ == "D":
        return ("DataRow", tuple(parse_data_row(body, errors="backslashreplace")))
    if typ in ("E", "N"):
        f = parse_error_fields(body)
        kind = "Error" if typ == "E" else "Notice"
        return (kind, f.get("C"), f.get("M"), f.get("V") or f.get("S"),
                f.get("D"), f.get("H"), f.get("P"))
    return ("Other", typ, body)


# Messages that legitimately differ between a direct connection and one
# through a pooler: ParameterStatus and notifications (they carry a pid).
SKIP_MSG_TYPES = ("S", "A")


def read_messages(conn, ready=1, count=None):
    """Read until `ready` ReadyForQuery messages have arrived (or, with
    count=N, exactly N messages); returns decoded messages (decode_msg)."""
    out = []
    while True:
        if count is not None and len(out) >= count:
            return out
        typ, body = conn.read()
        if typ in SKIP_MSG_TYPES:
            continue
        out.append(decode_msg(typ, body))
        if count is None and typ == "Z":
            ready -= 1
            if ready <= 0:
                return out


def exchange(conn, msgs, count=None):
    """Send msgs as one pipeline, read the answers: until as many
    ReadyForQuery as there were Sync/Query messages, or `count` messages
    when the pipeline ends with Flush. Returns the decoded answers."""
    send_batch(conn, msgs)
    if count is not None:
        return read_messages(conn, count=count)
    n = sum(1 for t, _ in msgs if t in (b"S", b"Q"))
    assert n > 0, "pipeline without Sync/Query needs count="
    return read_messages(conn, ready=n)


def raw_connect(host, port, user="sluice_test", database="sluicedb", password="test_pw",
                timeout=15.0, **params):
    """A logged-in RawConn (caller closes it)."""
    c = RawConn(host, port, timeout)
    try:
        c.login(user, database, password, **params)
    except BaseException:
        c.close()
        raise
    return c


def run_steps(conns, steps):
    """steps: list of (client index, [messages]) or (client index, [messages], count).
    Runs them in order on conns; returns the transcript: a list of
    (client index, decoded answers) per step."""
    out = []
    for st in steps:
        i, msgs = st[0], st[1]
        count = st[2] if len(st) > 2 else None
        out.append((i, exchange(conns[i], msgs, count=count)))
    return out


def diff_transcripts(got, want):
    """'' when equal, else a readable description of the first difference."""
    if got == want:
        return ""
    for n, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return (f"step {n} (client {w[0]}) differs from PostgreSQL:\n"
                    f"  via pooler: {g[1]}\n  PostgreSQL: {w[1]}")
    return f"transcripts differ in length: {len(got)} vs {len(want)}"


@pytest.fixture(scope="session")
def maria():
    """A MariaDB server for this test session (tests/e2e/mysql_helpers.py)."""
    from mysql_helpers import MARIADBD, MariaDB
    if not os.path.exists(MARIADBD):
        pytest.fail("MariaDB is not installed (run scripts/install-deps.sh)")
    server = MariaDB(free_port())
    atexit.register(server.stop)
    try:
        server.start()
    except Exception:
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)
