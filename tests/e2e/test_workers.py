"""adaptive_workers (docs/behaviour.md, "Workers"): sluice runs its traffic
on as few workers as the load needs.

- Under light load every client is on worker 0 and no server crosses
  between threads (sluice_server_handoffs_total stays 0).
- With adaptive_workers_busy = 1 (one more worker as soon as the active
  ones use 1% of a CPU) a pgbench run spreads clients over every worker
  (sluice_client_moves_total grows) without a failed transaction; once the
  load stops, the workers are given back one by one and the clients still
  connected move back to worker 0.
- A client that moved can still be cancelled (the cancel key registry
  follows it).
- adaptive_workers = 0: connections spread over the workers by the
  kernel's hash, as before the setting existed.
- A RELOAD that turns the setting off spreads new connections again.

All sluice-specific: PgBouncer has a single thread.
"""

import contextlib
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import free_port, tail

pytestmark = pytest.mark.sluice_only


def start(sluice, workers, **extra):
    mport = free_port()
    # adaptive_workers is on by default; set here since make e2e-asan turns
    # it off for every other test.
    main = {"metrics_port": mport, "pool_mode": "transaction", "default_pool_size": 8,
            "adaptive_workers": 1}
    main.update(extra)
    s = sluice(main, workers=workers)
    s.mport = mport
    deadline = time.monotonic() + 5
    while True:
        try:
            metrics(s)
            return s
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"metrics port not answering; log:\n{tail(s.log_text())}")
            time.sleep(0.05)


def metrics(s):
    """{name or name{labels}: float} of the sluice_* samples."""
    with urllib.request.urlopen(f"http://127.0.0.1:{s.mport}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("sluice_") and " " in line:
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def per_worker(m, workers):
    return [int(m[f'sluice_worker_clients{{worker="{i}"}}']) for i in range(workers)]


def wait_for(s, what, check, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(s)
        if check(m):
            return m
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen in {timeout} s; last metrics: "
                        f"{ {k: v for k, v in m.items() if 'worker' in k or 'moves' in k or 'handoff' in k} }")
        time.sleep(0.1)


@contextlib.contextmanager
def clients(s, n):
    """n autocommit connections to s, closed on the way out."""
    conns = [s.connect(autocommit=True) for _ in range(n)]
    try:
        yield conns
    finally:
        for c in conns:
            c.close()


def run_queries(conns, n=5):
    for c in conns:
        for _ in range(n):
            assert c.execute("select 1").fetchone() == (1,)


def test_light_load_stays_on_worker_zero(sluice):
    s = start(sluice, workers=4)
    with clients(s, 12) as conns:
        run_queries(conns)
        m = metrics(s)
        assert m["sluice_workers_active"] == 1
        assert per_worker(m, 4) == [12, 0, 0, 0]
        assert m["sluice_server_handoffs_total"] == 0
        assert m["sluice_client_moves_total"] == 0


def test_adaptive_off_spreads_by_hash(sluice):
    s = start(sluice, workers=4, adaptive_workers=0)
    with clients(s, 16) as conns:
        run_queries(conns, 1)
        m = metrics(s)
        assert m["sluice_workers_active"] == 4
        # 16 connections all hashed to one of four workers: 4^-15.
        assert sum(1 for n in per_worker(m, 4) if n) >= 2, per_worker(m, 4)


def test_spreads_under_load_and_gives_workers_back(sluice, tmp_path):
    s = start(sluice, workers=3, adaptive_workers_busy=1)
    script = tmp_path / "select.sql"
    script.write_text("select 1;\n")
    # Connections held open across the run: they move with the balance.
    with clients(s, 6) as held:
        out = {}

        def bench():
            out["r"] = s.pgbench("-n", "-c", "12", "-j", "2", "-T", "6", "-f", str(script), timeout=60)

        t = threading.Thread(target=bench)
        t.start()
        try:
            wait_for(s, "spreading to 3 workers", lambda m: m["sluice_workers_active"] == 3)
            wait_for(s, "clients moving", lambda m: m["sluice_client_moves_total"] > 0)
            # The held clients go on working wherever they are now.
            while t.is_alive():
                run_queries(held, 1)
                time.sleep(0.05)
        finally:
            t.join(70)
        r = out["r"]
        assert r.returncode == 0, r.stdout + r.stderr
        assert "number of failed transactions: 0 " in r.stdout, r.stdout
        # Idle now: back to one worker (2 s of low load per step), and the
        # held clients, idle, follow to worker 0.
        m = wait_for(s, "giving workers back", lambda m: m["sluice_workers_active"] == 1, timeout=20)
        wait_for(s, "held clients back on worker 0",
                 lambda m: per_worker(m, 3) == [len(held), 0, 0], timeout=10)
        run_queries(held, 2)
        assert m["sluice_worker_changes_total"] >= 4


def test_moved_client_can_be_cancelled(sluice):
    s = start(sluice, workers=2, adaptive_workers_busy=1)
    with clients(s, 6) as conns:
        # Traffic from all of them until the balance has moved some and
        # both workers have clients (a move is counted when decided and
        # done at the worker's next safe point).
        deadline = time.monotonic() + 20
        while True:
            run_queries(conns, 20)
            m = metrics(s)
            if m["sluice_client_moves_total"] > 0 and min(per_worker(m, 2)) >= 1:
                break
            assert time.monotonic() < deadline, f"no client moved: {per_worker(m, 2)}"
        for c in conns:
            errors = []

            def sleep(c=c):
                try:
                    c.execute("select pg_sleep(20)")
                except psycopg.errors.QueryCanceled:
                    errors.append("canceled")

            t = threading.Thread(target=sleep)
            t0 = time.monotonic()
            t.start()
            time.sleep(0.3)
            c.cancel()
            t.join(10)
            took = time.monotonic() - t0
            assert errors == ["canceled"] and took < 5, (errors, took)


def test_reload_turns_it_off(sluice):
    s = start(sluice, workers=4, admin_users="sluice_test")
    assert metrics(s)["sluice_workers_active"] == 1
    admin = s.connect(db="pgbouncer", autocommit=True)
    try:
        admin.execute("SET adaptive_workers = 0")
        wait_for(s, "all workers active", lambda m: m["sluice_workers_active"] == 4, timeout=5)
        with clients(s, 16) as conns:
            run_queries(conns, 1)
            assert sum(1 for n in per_worker(metrics(s), 4) if n) >= 2
        admin.execute("SET adaptive_workers = 1")
        wait_for(s, "back to one worker", lambda m: m["sluice_workers_active"] == 1, timeout=10)
    finally:
        admin.close()
