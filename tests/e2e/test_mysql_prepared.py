"""MySQL server-side prepared statements (COM_STMT_*) in transaction mode
(issue 17): sluice hands out its own statement ids, prepares each
statement lazily on whichever server runs it, and adds the parameter types
a driver sent only once. Real clients with many clients over few server
connections, so that statements really move between servers: sysbench
(libmariadb, --db-ps-mode=auto), MariaDB Connector/J
(useServerPrepStmts=true&cachePrepStmts=true)."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import free_port, is_pgbouncer_compat  # noqa: E402

pytestmark = pytest.mark.skipif(is_pgbouncer_compat(), reason="PgBouncer has no MySQL listener")

JDBC_JAR = Path("/usr/share/java/mariadb-java-client.jar")
JDBC_SRC = Path(__file__).resolve().parent / "jdbc" / "MyPrepTest.java"


def start(sluice, pg, maria, size=2, extra=None, db="mydb"):
    myport = free_port()
    main = {"mysql_listen_port": myport, "pool_mode": "transaction", "default_pool_size": size,
            "reserve_pool_size": 0, "query_wait_timeout": 30, "admin_users": "sluice_test"}
    main.update(extra or {})
    s = sluice(main, databases={"sluicedb": pg.db_line("sluicedb"), db: maria.db_line(db)})
    s.myport = myport
    return s


def server_count(s, db="mydb"):
    with s.connect(db="sluice", user="sluice_test") as adm:
        return sum(1 for r in adm.execute("SHOW SERVERS").fetchall() if r[2] == db)


def sysbench(s, maria, workload, db, threads, seconds, port=None, extra=()):
    cmd = ["sysbench", workload, "--db-driver=mysql", "--mysql-host=127.0.0.1",
           f"--mysql-port={port or s.myport}", "--mysql-user=sluice_test", "--mysql-password=test_pw",
           f"--mysql-db={db}", "--tables=2", "--table-size=200", f"--threads={threads}",
           f"--time={seconds}", "--report-interval=0", "--db-ps-mode=auto", *extra]
    return subprocess.run(cmd + ["run"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=seconds + 60)


@pytest.fixture(scope="module")
def sbdb(maria):
    """A schema loaded by `sysbench oltp_common prepare` (straight to MariaDB)."""
    if not shutil.which("sysbench"):
        pytest.fail("sysbench is not installed (run scripts/install-deps.sh)")
    maria.sql("DROP DATABASE IF EXISTS sbps; CREATE DATABASE sbps")
    r = subprocess.run(["sysbench", "oltp_common", "--db-driver=mysql", "--mysql-host=127.0.0.1",
                        f"--mysql-port={maria.port}", "--mysql-user=sluice_test", "--mysql-password=test_pw",
                        "--mysql-db=sbps", "--tables=2", "--table-size=200", "prepare"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    return "sbps"


def sysbench_counts(out):
    q = re.search(r"queries:\s+(\d+)", out)
    e = re.search(r"ignored errors:\s+(\d+)", out)
    return int(q.group(1)) if q else 0, int(e.group(1)) if e else -1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workload", ["oltp_point_select", "oltp_read_write"])
def test_sysbench_prepared_statements_move_between_servers(sluice, pg, maria, sbdb, workload):
    """8 sysbench threads, each with its prepared statements (types sent
    once, at the first execute), over 2 server connections."""
    s = start(sluice, pg, maria, size=2, db=sbdb)
    r = sysbench(s, maria, workload, sbdb, threads=8, seconds=4)
    assert r.returncode == 0, r.stdout[-3000:]
    queries, errors = sysbench_counts(r.stdout)
    # ignored errors: deadlocks (1213) between threads, which sysbench retries
    assert queries > 100 and 0 <= errors <= queries // 100, r.stdout[-3000:]
    assert server_count(s, sbdb) <= 2


@pytest.mark.timeout(120)
def test_max_prepared_statements_0_pins_instead(sluice, pg, maria, sbdb):
    """max_prepared_statements = 0: statement ids pass through and a client
    that prepares keeps its server (PgBouncer 1.18's way for PostgreSQL)."""
    s = start(sluice, pg, maria, size=3, db=sbdb, extra={"max_prepared_statements": 0})
    r = sysbench(s, maria, "oltp_point_select", sbdb, threads=3, seconds=2)
    assert r.returncode == 0, r.stdout[-3000:]
    queries, errors = sysbench_counts(r.stdout)
    assert queries > 50 and errors == 0, r.stdout[-3000:]
    assert server_count(s, sbdb) == 3


def _ensure_jdbc():
    if not shutil.which("java") or not shutil.which("javac"):
        pytest.fail("java/javac not installed (run scripts/install-deps.sh)")
    if not JDBC_JAR.exists():
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-q", "libmariadb-java"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60, env=env)
    if not JDBC_JAR.exists():
        pytest.fail(f"{JDBC_JAR} missing (Debian package libmariadb-java; run scripts/install-deps.sh)")


def _jdbc_expected(tid, iters):
    out = []
    for i in range(iters):
        out.append(f"T{tid} {i} add {i + 1000}")
        out.append(f"T{tid} {i} echo v{i}" if tid % 2 == 0 else f"T{tid} {i} echo vs{i}")
        out.append(f"T{tid} {i} pair t{tid}-{i * 3}")
    return out


@pytest.mark.timeout(150)
@pytest.mark.parametrize("cache", [200, 1], ids=["cached", "evicting"])
def test_connector_j_server_prepared_statements(sluice, pg, maria, cache):
    """MariaDB Connector/J with useServerPrepStmts and cachePrepStmts: 6
    threads over 2 server connections; the same text bound with an int in
    some threads and a string in others; a transaction commits and another
    rolls back. With max_prepared_statements = 1 every server closes a
    statement to prepare the next one."""
    _ensure_jdbc()
    maria.sql("DROP TABLE IF EXISTS mydb.jdbc_rows; CREATE TABLE mydb.jdbc_rows (tid INT, n INT)")
    threads, iters = 6, 30
    s = start(sluice, pg, maria, size=2, extra={"max_prepared_statements": cache})
    with tempfile.TemporaryDirectory(prefix="sluice-myjdbc-") as tmp:
        r = subprocess.run(["javac", "-cp", str(JDBC_JAR), "-d", tmp, str(JDBC_SRC)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=90)
        assert r.returncode == 0, r.stdout
        url = (f"jdbc:mariadb://127.0.0.1:{s.myport}/mydb"
               "?useServerPrepStmts=true&cachePrepStmts=true&connectTimeout=10000&socketTimeout=30000")
        r = subprocess.run(["java", "-Xmx256m", "-cp", f"{tmp}:{JDBC_JAR}", "MyPrepTest", url,
                            "sluice_test", "test_pw", str(threads), str(iters)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=90)
    assert r.returncode == 0, (f"stdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-3000:]}\n"
                               f"sluice log:\n{s.log_text()[-6000:]}")
    lines = r.stdout.splitlines()
    for tid in range(threads):
        got = [ln for ln in lines if ln.startswith(f"T{tid} ")]
        assert got == _jdbc_expected(tid, iters), f"thread {tid}:\n" + "\n".join(got[:20])
        assert f"TX {tid} ok" in lines, r.stdout[-2000:]
    assert "DONE" in lines
    assert server_count(s) <= 2
    # Connector/J's connect-time SET sql_mode = CONCAT(@@sql_mode, ...) did not pin
    assert "pinned" not in s.log_text()
    assert maria.sql("SELECT COUNT(*) FROM mydb.jdbc_rows").strip() == str(5 * threads)
