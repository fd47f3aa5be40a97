"""Protocol fidelity: sequences that hostile clients and real drivers send,
answered through the pooler exactly as PostgreSQL answers them directly.

PostgreSQL is the oracle: where it can be asked, each test runs the same
bytes against it first and requires the same answers from sluice.
"""

import socket
import struct

import pytest

from conftest import is_pgbouncer_compat, parse_error_fields

COMPAT = is_pgbouncer_compat()
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def negotiate(host, port, codes):
    """Send each negotiation request in turn; returns what came back for
    each: a single answer byte, ('E', sqlstate, message), or 'closed'."""
    out = []
    with socket.create_connection((host, port), timeout=5) as so:
        for code in codes:
            so.sendall(struct.pack("!II", 8, code))
            b = so.recv(1)
            if not b:
                out.append("closed")
                break
            if b != b"E":
                out.append(b.decode())
                continue
            data = b""
            while len(data) < 4 or len(data) < struct.unpack("!I", data[:4])[0]:
                chunk = so.recv(4096)
                if not chunk:
                    break
                data += chunk
            f = parse_error_fields(data[4:])
            out.append(("E", f.get("C"), f.get("M")))
            break
    return out


@pytest.mark.sluice_only
@pytest.mark.parametrize("codes", [
    [SSL_REQUEST, SSL_REQUEST],
    [GSSENC_REQUEST, GSSENC_REQUEST],
    [SSL_REQUEST, GSSENC_REQUEST, SSL_REQUEST],
    [GSSENC_REQUEST, SSL_REQUEST, GSSENC_REQUEST],
], ids=["ssl-ssl", "gss-gss", "ssl-gss-ssl", "gss-ssl-gss"])
def test_encryption_requests_follow_postgres_rule(sluice, pg, codes):
    """With TLS off, one SSLRequest and one GSSENCRequest are each answered
    'N' (in either order); a repeated one is read, as PostgreSQL reads it,
    as a startup packet of protocol 1234.567x and refused with FATAL 0A000."""
    s = sluice({})
    got = negotiate(s.host, s.port, codes)
    repeated = codes[-1]
    want = ["N"] * (len(codes) - 1) + [
        ("E", "0A000", f"unsupported frontend protocol 1234.{repeated & 0xffff}: "
                       "server supports 3.0 to 3.0")]
    assert got == want
    if codes == [SSL_REQUEST, SSL_REQUEST]:
        # PostgreSQL itself (no TLS configured on the test cluster) agrees.
        assert negotiate(pg.host, pg.port, codes) == want
