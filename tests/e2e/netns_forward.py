"""A TCP-to-unix-socket forwarder for tests that need PostgreSQL behind a
link they shape themselves: run inside the test's network namespace
(`ip netns exec NS python3 netns_forward.py ADDR PORT UNIX_PATH`), it
accepts on ADDR:PORT and joins each connection to a new connection to
UNIX_PATH (PostgreSQL's socket, reachable from any namespace). Prints
"ready" once it listens."""

import socket
import sys
import threading

from netns_helpers import serve_forever


def pump(src, dst):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def join(conn, path):
    far = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        far.connect(path)
    except OSError:
        conn.close()
        far.close()
        return
    threading.Thread(target=pump, args=(conn, far), daemon=True).start()
    threading.Thread(target=pump, args=(far, conn), daemon=True).start()


def main():
    path = sys.argv[3]
    serve_forever(sys.argv[1], int(sys.argv[2]), lambda conn: join(conn, path))


if __name__ == "__main__":
    main()
