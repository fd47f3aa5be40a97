"""The Prometheus endpoint (docs/operations.md, "Metrics"):

- GET /metrics answers 200 in the text format 0.0.4 that
  prometheus_client parses; every family has HELP and TYPE once, before
  its samples;
- per-pool counters follow the traffic: queries, transactions, bytes,
  the query histogram (cumulative buckets, _count = queries), errors by
  SQLSTATE class;
- the gauges show a client holding a server in a transaction;
- sluice_config_reloads_total counts SIGHUP reloads;
- other paths are 404, other methods 405, garbage 400;
- a client that connects and sends nothing delays a scrape by at most the
  2 s receive timeout (the endpoint serves one connection at a time);
- metrics_port = 0 (the default) listens on nothing more; a busy port is
  logged and sluice runs on without the endpoint.

All sluice-specific: PgBouncer has no such endpoint.
"""

import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, tail

pytestmark = pytest.mark.sluice_only

DB, USER = "sluicedb", "sluice_test"
POOL = {"database": DB, "user": USER}


# --------------------------------------------------------------------------
# helpers

def start(sluice, **extra):
    mport = free_port()
    main = {"metrics_port": mport, "pool_mode": "transaction"}
    main.update(extra)
    inst = sluice(ini_main=main)
    inst.mport = mport
    deadline = time.monotonic() + 5
    while True:
        try:
            with socket.create_connection(("127.0.0.1", mport), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"metrics port {mport} not listening; log:\n{tail(inst.log_text())}")
            time.sleep(0.05)
    return inst


def fetch(port, path="/metrics", timeout=5):
    """(status, headers, body text) of a GET."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def scrape(inst):
    status, headers, body = fetch(inst.mport)
    assert status == 200, body
    return body


def samples(body):
    """{(sample name, frozenset(labels)): value}"""
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"sample {key} twice"
            out[key] = s.value
    return out


def get(smp, name, **labels):
    return smp.get((name, frozenset(labels.items())))


def pool_value(smp, name, **labels):
    return get(smp, name, **POOL, **labels)


def wait_for(inst, cond, timeout=5.0):
    """Scrape until cond(samples) is true; returns the last samples."""
    deadline = time.monotonic() + timeout
    while True:
        smp = samples(scrape(inst))
        if cond(smp):
            return smp
        if time.monotonic() > deadline:
            return smp
        time.sleep(0.05)


def raw_request(port, data, timeout=5):
    """Send raw bytes, return the status code of the answer (None = no answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        buf = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            pass
    if not buf:
        return None
    line = buf.split(b"\r\n", 1)[0].split()
    assert line[0].startswith(b"HTTP/1."), buf[:200]
    return int(line[1])


def listening_ports(pid):
    """TCP ports the process listens on (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A = LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


# --------------------------------------------------------------------------
# tests

def test_format_and_traffic_counters(sluice):
    inst = start(sluice)
    status, headers, body = fetch(inst.mport)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body.encode())
    smp = samples(body)
    assert get(smp, "sluice_up") == 1
    assert get(smp, "sluice_uptime_seconds") >= 0
    assert get(smp, "sluice_open_fds") > 0
    assert get(smp, "sluice_max_fds") >= get(smp, "sluice_open_fds")

    # HELP and TYPE exactly once per family, before any of its samples.
    seen_type = {}
    help_count = {}
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in seen_type, f"TYPE {name} twice"
            seen_type[name] = True
        elif line.startswith("# HELP "):
            name = line.split()[2]
            help_count[name] = help_count.get(name, 0) + 1
        elif line:
            sample = line.split("{")[0].split()[0]
            fams = [f for f in seen_type if sample == f or
                    sample in (f + "_bucket", f + "_sum", f + "_count")]
            assert fams, f"sample before its TYPE: {line}"
    assert all(n == 1 for n in help_count.values()), help_count
    assert set(help_count) == set(seen_type)
    for fam in ("sluice_up", "sluice_uptime_seconds", "sluice_config_reloads_total",
                "sluice_config_reload_failures_total", "sluice_open_fds", "sluice_max_fds",
                "sluice_clients", "sluice_pool_clients", "sluice_pool_servers",
                "sluice_pool_max_wait_seconds", "sluice_pool_transactions_total",
                "sluice_pool_queries_total", "sluice_pool_received_bytes_total",
                "sluice_pool_sent_bytes_total", "sluice_pool_wait_seconds_total",
                "sluice_pool_query_duration_seconds",
                "sluice_pool_transaction_duration_seconds", "sluice_pool_errors_total"):
        assert fam in seen_type, fam

    n = 25
    with inst.connect() as conn:
        for i in range(n):
            assert conn.execute("SELECT %s::int", (i,)).fetchone()[0] == i
        with pytest.raises(Exception):
            conn.execute("SELECT 1/0")
        conn.execute("SELECT 1")

        smp = wait_for(inst, lambda s: (pool_value(s, "sluice_pool_queries_total") or 0) >= n + 2
                       and (pool_value(s, "sluice_pool_errors_total", **{"class": "22"}) or 0) >= 1)
        queries = pool_value(smp, "sluice_pool_queries_total")
        assert queries >= n + 2
        assert pool_value(smp, "sluice_pool_transactions_total") >= n
        assert pool_value(smp, "sluice_pool_received_bytes_total") > 0
        assert pool_value(smp, "sluice_pool_sent_bytes_total") > 0
        assert pool_value(smp, "sluice_pool_wait_seconds_total") >= 0
        assert pool_value(smp, "sluice_pool_errors_total", **{"class": "22"}) >= 1

        for hist, total in (("sluice_pool_query_duration_seconds", "sluice_pool_queries_total"),
                            ("sluice_pool_transaction_duration_seconds",
                             "sluice_pool_transactions_total")):
            buckets = sorted(
                ((float(dict(labels)["le"]), v) for (name, labels), v in smp.items()
                 if name == hist + "_bucket" and dict(labels).get("database") == DB
                 and dict(labels).get("user") == USER),
                key=lambda x: x[0])
            assert len(buckets) >= 2 and buckets[-1][0] == float("inf"), buckets
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{hist} buckets not cumulative: {buckets}"
            count = pool_value(smp, hist + "_count")
            assert count == counts[-1]
            assert count == pool_value(smp, total), (hist, count, pool_value(smp, total))
            assert pool_value(smp, hist + "_sum") > 0


def test_pool_gauges_follow_a_held_server(sluice):
    inst = start(sluice)
    conn = inst.connect(autocommit=False)
    try:
        conn.execute("SELECT 1")  # BEGIN; SELECT 1 - the server stays linked
        smp = wait_for(inst, lambda s: (pool_value(s, "sluice_pool_servers", state="active") or 0) >= 1)
        assert pool_value(smp, "sluice_pool_servers", state="active") >= 1
        assert pool_value(smp, "sluice_pool_clients", state="active") >= 1
        assert pool_value(smp, "sluice_pool_clients", state="waiting") == 0
        assert pool_value(smp, "sluice_pool_max_wait_seconds") == 0
        for st in ("idle", "login"):
            assert pool_value(smp, "sluice_pool_clients", state=st) is not None
            assert pool_value(smp, "sluice_pool_servers", state=st) is not None
        assert get(smp, "sluice_clients") >= 1

        conn.commit()  # transaction mode: the server goes back to the pool
        smp = wait_for(inst, lambda s: pool_value(s, "sluice_pool_servers", state="active") == 0)
        assert pool_value(smp, "sluice_pool_servers", state="active") == 0
        assert pool_value(smp, "sluice_pool_servers", state="idle") >= 1
    finally:
        conn.close()
    # The two gauges drop at different moments of the close: wait for both.
    smp = wait_for(inst, lambda s: get(s, "sluice_clients") == 0
                   and pool_value(s, "sluice_pool_clients", state="active") == 0)
    assert get(smp, "sluice_clients") == 0
    assert pool_value(smp, "sluice_pool_clients", state="active") == 0


def test_reload_counter(sluice):
    inst = start(sluice)
    before = get(samples(scrape(inst)), "sluice_config_reloads_total")
    failures = get(samples(scrape(inst)), "sluice_config_reload_failures_total")
    assert before is not None and failures is not None
    os.kill(inst.pid, signal.SIGHUP)
    smp = wait_for(inst, lambda s: get(s, "sluice_config_reloads_total") > before)
    assert get(smp, "sluice_config_reloads_total") == before + 1, tail(inst.log_text())
    assert get(smp, "sluice_config_reload_failures_total") == failures


def test_stale_pool_is_merged_after_reload(sluice, pg):
    """A RELOAD that changes the server settings leaves the old pool
    draining next to the new one: one label set, counters that go on."""
    inst = start(sluice)
    held = inst.connect(autocommit=False)
    try:
        held.execute("SELECT 1")  # the old pool's server stays linked
        before = samples(scrape(inst))
        q0 = pool_value(before, "sluice_pool_queries_total")
        r0 = get(before, "sluice_config_reloads_total")
        ini = Path(inst.ini)
        ini.write_text(ini.read_text().replace(
            pg.db_line("sluicedb"), pg.db_line("sluicedb", application_name="metrics_stale")))
        os.kill(inst.pid, signal.SIGHUP)
        wait_for(inst, lambda s: get(s, "sluice_config_reloads_total") > r0)
        assert "server settings changed" in inst.log_text(), tail(inst.log_text())
        with inst.connect() as fresh:  # logs in to the new pool
            for _ in range(3):
                fresh.execute("SELECT 1")
            # The server goes idle just after its last answer is counted.
            smp = wait_for(inst, lambda s: pool_value(s, "sluice_pool_queries_total") >= q0 + 3
                           and pool_value(s, "sluice_pool_servers", state="idle") >= 1)
        # samples() fails on a label set seen twice.
        assert pool_value(smp, "sluice_pool_queries_total") >= q0 + 3
        assert pool_value(smp, "sluice_pool_servers", state="active") >= 1
        assert pool_value(smp, "sluice_pool_servers", state="idle") >= 1
        held.commit()
    finally:
        held.close()


def test_http_answers(sluice):
    inst = start(sluice)
    port = inst.mport
    assert fetch(port, "/nope")[0] == 404
    assert fetch(port, "/")[0] == 404
    assert fetch(port, "/metricsx")[0] == 404
    status, _, body = fetch(port, "/metrics?name[]=sluice_up")
    assert status == 200 and "sluice_up 1" in body
    assert raw_request(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n") == 405
    assert raw_request(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == 405
    assert raw_request(port, b"GET /metrics HTTP/1.0\r\n\r\n") == 200
    assert raw_request(port, b"hello there\r\n\r\n") == 400
    assert raw_request(port, b"GET /metrics SMTP/1.0\r\n\r\n") == 400
    assert raw_request(port, b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n") == 400
    assert raw_request(port, b"GET /metrics HTTP/1.1\r\nX: \0\r\n\r\n") == 400
    big = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    assert raw_request(port, big) == 400
    # Still serving after all that.
    assert get(samples(scrape(inst)), "sluice_up") == 1


def test_silent_client_does_not_block_scrapes(sluice):
    inst = start(sluice)
    silent = socket.create_connection(("127.0.0.1", inst.mport), timeout=5)
    try:
        time.sleep(0.1)  # the endpoint is now waiting on the silent client
        t0 = time.monotonic()
        status, _, body = fetch(inst.mport, timeout=5)
        took = time.monotonic() - t0
        assert status == 200 and "sluice_up 1" in body
        assert took < 3.0, f"scrape took {took:.1f} s behind a silent client"
        # The silent client was dropped without an answer.
        silent.settimeout(2)
        assert silent.recv(100) == b""
    finally:
        silent.close()
    assert inst.alive()


def test_port_zero_listens_on_nothing_more(sluice):
    inst = sluice(ini_main={"metrics_port": 0, "pool_mode": "transaction"})
    assert listening_ports(inst.pid) == {inst.port}
    on = start(sluice)
    assert listening_ports(on.pid) == {on.port, on.mport}


def test_busy_port_is_logged_and_sluice_runs_on(sluice):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        mport = busy.getsockname()[1]
        inst = sluice(ini_main={"metrics_port": mport, "pool_mode": "transaction"})
        with inst.connect() as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        log = inst.log_text()
        assert "metrics: cannot listen on 127.0.0.1 port %d" % mport in log, tail(log)
        assert inst.port in listening_ports(inst.pid)
        assert mport not in listening_ports(inst.pid)
