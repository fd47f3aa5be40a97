"""Half-open server connections: the server's host vanishes without a FIN or
RST (a pulled cable). The test makes its own network namespace with a veth
pair and a minimal PostgreSQL stand-in inside it, then takes the link down.
sluice must notice through TCP keepalive (idle server) or TCP_USER_TIMEOUT
(server with unacknowledged data), tell the client, and serve again once the
host is back. Needs root (ip netns).
The link is taken down on the namespace's side: the host side keeps its
connected route (NO-CARRIER), so packets for the vanished host are dropped
on this machine and never follow the default route off it. Every step
checks that route before it sends anything."""

import re
import time
from pathlib import Path

import pytest

from netns_helpers import NEEDS, ip, veth_namespace
from reliability_helpers import raw_login, wait_for

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(not NEEDS[0], reason=NEEDS[1])


@pytest.fixture
def far_host():
    """A namespace reachable over a veth pair, with the stand-in server."""
    with veth_namespace("slh", 200, ["/usr/bin/python3", str(HERE / "netns_fake_pg.py"),
                                     "{addr}", "5432"]) as far:
        yield far


def _route_is_local(far):
    out = ip("route", "get", far["addr"]).stdout
    assert f"dev {far['link']} " in out, f"route left the test's veth: {out}"


def link(far, state):
    """Take the far host off the wire (or back): its side of the veth."""
    _route_is_local(far)
    ip("netns", "exec", far["ns"], "ip", "link", "set", far["ns_link"], state)
    time.sleep(0.2)
    _route_is_local(far)


# A server connection closed, in sluice's log ("S-12 db/user@... closing
# because") or PgBouncer's ("S-0x55d0c...: db/user@... closing because").
SERVER_CLOSING = r"S-(?:\d+|0x[0-9a-f]+):? \S+ closing because"


def _query_outcome(c, sql, timeout):
    """(rows, err) or ('closed', None) when the connection went away."""
    c.sock.settimeout(timeout)
    try:
        return c.simple_query(sql)
    except (ConnectionError, OSError, EOFError) as e:
        return "closed", repr(e)


def test_half_open_server_is_detected(sluice, far_host):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1,
                "tcp_keepalive": 1, "tcp_keepidle": 1, "tcp_keepintvl": 1, "tcp_keepcnt": 2,
                "tcp_user_timeout": 1500, "server_login_retry": 0.5,
                "query_wait_timeout": 20},
               databases={"fardb": f"host={far_host['addr']} port=5432 dbname=fardb"})

    # 1. an idle server whose host vanishes is dropped by keepalive
    c = raw_login(s.host, s.port, database="fardb")
    assert c.simple_query("select 1")[1] is None
    link(far_host, "down")
    wait_for(lambda: re.search(SERVER_CLOSING, s.log_text()), 10,
             what="sluice to drop the idle half-open server")
    link(far_host, "up")
    time.sleep(0.6)  # server_login_retry
    rows, err = _query_outcome(c, "select 2", 10)
    assert err is None, err  # a fresh server connection serves the same client

    # 2. a server that stops answering mid-request: the client is told
    link(far_host, "down")
    t0 = time.monotonic()
    rows, err = _query_outcome(c, "select 3", 15)
    elapsed = time.monotonic() - t0
    assert rows == "closed" or err is not None, (rows, err)
    assert elapsed < 12, f"took {elapsed:.1f} s"
    if rows != "closed":
        assert "server connection lost" in err.get("M", "") or err.get("C", "").startswith("08"), err
    c.close()

    # 3. once the host is back, new clients are served again
    link(far_host, "up")
    time.sleep(0.6)

    def serves():
        try:
            c2 = raw_login(s.host, s.port, database="fardb", timeout=3)
        except Exception:
            return False
        try:
            return c2.simple_query("select 4")[1] is None
        finally:
            c2.close()
    wait_for(serves, 10, interval=0.5, what="service after the host came back")
    assert s.proc.poll() is None
    # Stop sluice while the test network still exists (see far_host).
    problems = s.stop()
    assert not problems, problems

