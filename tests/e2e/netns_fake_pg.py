"""A minimal PostgreSQL stand-in for the half-open test, run inside the
test's own network namespace (`ip netns exec NS python3 netns_fake_pg.py
ADDR PORT`): it refuses TLS ('N'), trusts every login and answers each simple Query with
CommandComplete + ReadyForQuery. Nothing else."""

import struct
import sys

from netns_helpers import serve_forever


def msg(typ, body=b""):
    return typ + struct.pack("!I", len(body) + 4) + body


def serve(conn):
    try:
        n = struct.unpack("!I", conn.recv(4))[0]
        rest = conn.recv(n - 4)
        if n == 8 and rest == struct.pack("!I", 80877103):
            # SSLRequest: no TLS here, as a PostgreSQL with ssl = off says.
            conn.sendall(b"N")
            n = struct.unpack("!I", conn.recv(4))[0]
            conn.recv(n - 4)
        conn.sendall(msg(b"R", struct.pack("!I", 0))
                     + msg(b"S", b"server_version\x0015.0\x00")
                     + msg(b"S", b"client_encoding\x00UTF8\x00")
                     + msg(b"K", struct.pack("!II", 4242, 77))
                     + msg(b"Z", b"I"))
        while True:
            head = conn.recv(5)
            if len(head) < 5:
                return
            typ, n = head[:1], struct.unpack("!I", head[1:])[0]
            body = b""
            while len(body) < n - 4:
                chunk = conn.recv(n - 4 - len(body))
                if not chunk:
                    return
                body += chunk
            if typ == b"X":
                return
            if typ == b"Q":
                conn.sendall(msg(b"C", b"SELECT 1\x00") + msg(b"Z", b"I"))
    except OSError:
        pass
    finally:
        conn.close()


def main():
    serve_forever(sys.argv[1], int(sys.argv[2]), serve)


if __name__ == "__main__":
    main()
