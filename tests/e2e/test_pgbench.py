"""pgbench through sluice: initialisation (uses COPY) and the standard
workloads in transaction, session and statement pooling."""

import re

import pytest

pytestmark = pytest.mark.timeout(150)

SCALE = 2
DURATION = "5"


def check_run(r):
    """pgbench exited 0, processed transactions, and none failed."""
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"pgbench exit {r.returncode}:\n{out[-3000:]}"
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    assert m, out[-3000:]
    assert int(m.group(1)) > 0, out[-3000:]
    m = re.search(r"number of failed transactions: (\d+)", out)
    if m:
        assert int(m.group(1)) == 0, out[-3000:]
    assert "pgbench: error" not in out, out[-3000:]
    return out


@pytest.fixture(scope="module")
def bench_db(pg):
    """A database initialised with pgbench -i directly on PostgreSQL."""
    import conftest  # harness module (already loaded by pytest)
    yield from conftest.pgbench_database(pg, "e2e_bench_mod", SCALE)


def _bench_sluice(sluice, pg, db, mode):
    return sluice({"pool_mode": mode, "default_pool_size": 10, "reserve_pool_size": 0,
                   "max_client_conn": 200},
                  databases={db: pg.db_line(db)}, workers=2)


def test_pgbench_init_through_sluice(sluice, pg, fresh_db):
    s = _bench_sluice(sluice, pg, fresh_db, "transaction")
    r = s.pgbench("-i", "-s", str(SCALE), db=fresh_db)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "done in" in r.stderr + r.stdout
    counts = pg.sql("select (select count(*) from pgbench_accounts), "
                    "(select count(*) from pgbench_branches), "
                    "(select count(*) from pgbench_tellers), "
                    "(select sum(abalance) from pgbench_accounts)", dbname=fresh_db)[0]
    assert counts == (100000 * SCALE, SCALE, 10 * SCALE, 0)


@pytest.mark.parametrize("mode,args", [
    ("transaction", ["-S", "-c", "8", "-j", "2"]),
    ("transaction", ["-S", "-M", "extended", "-c", "8", "-j", "2"]),
    ("session", ["-S", "-M", "prepared", "-c", "8", "-j", "2"]),
    ("transaction", ["-c", "8", "-j", "2"]),          # default TPC-B-like script
    ("transaction", ["-C", "-c", "4", "-j", "2"]),    # new connection per transaction
    ("statement", ["-S", "-c", "8", "-j", "2"]),
], ids=["tx-select", "tx-extended", "session-prepared", "tx-tpcb", "tx-connect",
        "stmt-select"])
def test_pgbench_run(sluice, pg, bench_db, mode, args):
    s = _bench_sluice(sluice, pg, bench_db, mode)
    r = s.pgbench(*args, "-T", DURATION, "-n", db=bench_db)
    check_run(r)
    # sluice never opened more server connections than the pool allows
    assert pg.backends(bench_db) <= 10
