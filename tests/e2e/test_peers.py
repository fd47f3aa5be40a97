"""peer_id and [peers] (PgBouncer 1.19+): sluice processes behind one load
balancer (or one SO_REUSEPORT port) pass a CancelRequest on to the process
that issued its key, so a cancel that lands on the wrong process still
cancels. PgBouncer 1.18 has no peering."""

import threading
import time

import pytest

from conftest import RawConn, free_port, send_cancel

pytestmark = pytest.mark.sluice_only


def _peers(pa, pb, third=None):
    peers = {"1": f"host=127.0.0.1 port={pa}", "2": f"host=127.0.0.1 port={pb}"}
    if third:
        peers["3"] = third
    return peers


def _sleep_and_cancel(query_on, cancel_to, timeout=15):
    """Start pg_sleep on query_on; send its key's CancelRequest to cancel_to.
    Returns (error or None, seconds until the query ended)."""
    c = RawConn(query_on.host, query_on.port, timeout=30)
    try:
        c.login("sluice_test", "sluicedb", "test_pw")
        pid, key = c.backend_key
        result = {}

        def run():
            t0 = time.monotonic()
            rows, err = c.simple_query("select pg_sleep(%d)" % timeout)
            result["err"], result["t"] = err, time.monotonic() - t0
        t = threading.Thread(target=run, daemon=True)
        t.start()
        # A cancel that arrives before the query reached PostgreSQL (a
        # slow machine, ASan) cancels nothing: send it again until the
        # query ends, as a user pressing Ctrl-C twice would.
        deadline = time.monotonic() + timeout + 10
        time.sleep(0.7)
        while t.is_alive() and time.monotonic() < deadline:
            send_cancel(cancel_to.host, cancel_to.port, pid, key)
            t.join(1.5)
        return result.get("err"), result.get("t"), (pid, key)
    finally:
        c.close()


def test_cancel_sent_to_the_other_peer_is_forwarded(sluice, pg):
    pa, pb = free_port(), free_port()
    a = sluice({"peer_id": 1, "listen_port": pa}, peers=_peers(pa, pb))
    b = sluice({"peer_id": 2, "listen_port": pb}, peers=_peers(pa, pb))
    err, took, (pid, key) = _sleep_and_cancel(a, b)
    assert err is not None and err.get("C") == "57014", err
    assert took < 8
    # the key names its peer (bits 16..29 of the process id)
    assert (pid >> 16) & 0x3FFF == 1
    # and the other way round
    err, took, _ = _sleep_and_cancel(b, a)
    assert err is not None and err.get("C") == "57014", err


def test_without_peering_a_cancel_on_another_process_does_nothing(sluice, pg):
    a = sluice({"pool_mode": "session"})
    b = sluice({"pool_mode": "session"})
    err, took, _ = _sleep_and_cancel(a, b, timeout=3)
    assert err is None and took >= 2.5


def test_unknown_peer_and_hop_limit(sluice, pg):
    """A key of a peer not listed is dropped; two processes that each
    think the other issued it pass it back and forth at most three times."""
    pa, pb = free_port(), free_port()
    # both list peer 3 at the other's address: a misconfiguration loop
    a = sluice({"peer_id": 1, "listen_port": pa}, peers=_peers(pa, pb, f"host=127.0.0.1 port={pb}"))
    b = sluice({"peer_id": 2, "listen_port": pb}, peers=_peers(pa, pb, f"host=127.0.0.1 port={pa}"))
    send_cancel(a.host, a.port, (3 << 16) | 5, 0xC0000001)
    time.sleep(1.5)
    assert "passed on too often" in a.log_text() + b.log_text()
    send_cancel(a.host, a.port, (9 << 16) | 5, 0xC0000001)  # peer 9: not listed
    # both still serve
    with a.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
    with b.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)


def test_shared_port_with_so_reuseport(sluice, pg, tmp_path):
    """Two peered processes on one TCP port (so_reuseport), each with a
    unix socket of its own for its peer's forwards: every cancel works,
    whichever process the kernel gives the query's and the cancel's
    connections to."""
    import os
    port = free_port()
    dirs = {}
    for name in ("a", "b"):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        os.chmod(dirs[name], 0o755)
    os.chmod(tmp_path, 0o755)
    peers = {"1": f"host={dirs['a']} port={port}", "2": f"host={dirs['b']} port={port}"}
    a = sluice({"peer_id": 1, "listen_port": port, "so_reuseport": 1, "unix_socket_dir": str(dirs["a"])},
               peers=peers)
    b = sluice({"peer_id": 2, "listen_port": port, "so_reuseport": 1, "unix_socket_dir": str(dirs["b"])},
               peers=peers)
    sock_b = dirs["b"] / f".s.PGSQL.{port}"
    deadline = time.monotonic() + 10
    while not sock_b.exists():
        assert time.monotonic() < deadline, "second sluice did not start"
        time.sleep(0.05)
    owners = set()
    for _ in range(6):
        err, took, (pid, _key) = _sleep_and_cancel(a, a)  # a.port == b.port
        assert err is not None and err.get("C") == "57014", err
        assert took < 8
        owners.add((pid >> 16) & 0x3FFF)
    assert owners <= {1, 2}
    assert b.alive()


@pytest.mark.sluice_only
@pytest.mark.timeout(30)
def test_second_process_refused_on_a_port_without_so_reuseport(sluice):
    """so_reuseport = 0 (the default), as PgBouncer: a second sluice given
    a port the first listens on stops at start-up with a clear message,
    instead of silently taking half of the first one's connections."""
    import subprocess
    a = sluice()
    d, ini, _port = sluice.write_config(port=a.port)
    r = subprocess.run([sluice.bin, str(ini)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=20, cwd=str(d))
    assert r.returncode != 0, r.stdout
    assert f"cannot listen on 127.0.0.1:{a.port}: another process listens on it" in r.stdout, r.stdout
    assert a.alive()
    with a.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
