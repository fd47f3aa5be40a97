"""Clients queue when the pool is exhausted: bounded server connections,
query_wait_timeout, and the reserve pool."""

import threading
import time

import psycopg
import pytest

from reliability_helpers import BackendMonitor


def test_pool_exhaustion_queues_clients(sluice, pg, fresh_db, helpers):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 2,
                "reserve_pool_size": 0, "max_client_conn": 100},
               databases={fresh_db: pg.db_line(fresh_db)})
    mon = BackendMonitor(pg, "datname = %s", (fresh_db,))
    mon.start()
    start = threading.Barrier(10)

    def client(i):
        with s.connect(db=fresh_db) as c:
            start.wait(timeout=20)
            t0 = time.monotonic()
            c.execute("select pg_sleep(0.3)")
            assert c.execute("select %s::int", (i,)).fetchone() == (i,)
            return t0, time.monotonic()

    t_begin = time.monotonic()
    workers = [helpers.Worker(client, i) for i in range(10)]
    for w in workers:
        w.start()
    results = [w.get(timeout=40) for w in workers]
    elapsed = time.monotonic() - t_begin
    mon.stop()
    assert len(results) == 10
    assert mon.samples > 10
    assert 1 <= mon.max_seen <= 2, f"saw {mon.max_seen} server connections with pool_size=2"
    # 10 x 0.3 s on 2 servers cannot take less than 1.5 s
    assert elapsed >= 1.4, f"10 sleeps finished in {elapsed:.2f} s: not queued on 2 servers"
    longest_wait = max(done - t0 for t0, done in results)
    assert longest_wait >= 1.0


def test_query_wait_timeout(sluice, pg, fresh_db):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1,
                "reserve_pool_size": 0, "query_wait_timeout": 1},
               databases={fresh_db: pg.db_line(fresh_db)})
    holder = s.connect(db=fresh_db)
    try:
        holder.execute("BEGIN")
        holder.execute("select 1")
        t0 = time.monotonic()
        with pytest.raises(psycopg.Error) as ei:
            with s.connect(db=fresh_db) as waiter:
                waiter.execute("select 'should not run'")
        elapsed = time.monotonic() - t0
        assert "query_wait_timeout" in str(ei.value)
        assert 0.8 <= elapsed <= 3.5, f"error after {elapsed:.2f} s"
        # the holder is unaffected
        assert holder.execute("select 'holder ok'").fetchone() == ("holder ok",)
        holder.execute("COMMIT")
    finally:
        holder.close()
    with s.connect(db=fresh_db) as c:
        assert c.execute("select 1").fetchone() == (1,)


def test_reserve_pool(sluice, pg, fresh_db, helpers):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1,
                "reserve_pool_size": 1, "reserve_pool_timeout": 0.5},
               databases={fresh_db: pg.db_line(fresh_db)})
    holder = s.connect(db=fresh_db)
    try:
        holder.execute("BEGIN")
        pid_holder = holder.execute("select pg_backend_pid()").fetchone()[0]
        with s.connect(db=fresh_db) as other:
            t0 = time.monotonic()
            pid_other = other.execute("select pg_backend_pid()").fetchone()[0]
            waited = time.monotonic() - t0
        assert pid_other != pid_holder
        assert 0.4 <= waited <= 3.0, f"served after {waited:.2f} s"
        assert pg.backends(fresh_db) <= 2
        holder.execute("COMMIT")
    finally:
        holder.close()
