#!/usr/bin/python3
"""Open N idle client connections to a PostgreSQL-protocol endpoint and hold them.

Used by bench.sh to measure a pooler's memory per idle client. Speaks just
enough of the v3 protocol itself (stdlib only): StartupMessage, then answers
trust / cleartext / md5 authentication, and waits for ReadyForQuery.

    idle_clients.py HOST PORT USER PASSWORD DBNAME N

Prints "ready N" on stdout once every connection has reached ReadyForQuery,
then holds them until stdin reaches EOF (or a line is read), sends Terminate
on each and exits. Exit status 1 (with a message on stderr) if any connection
fails; the connections already opened are closed.
"""
import hashlib
import resource
import socket
import struct
import sys


def die(msg):
    sys.stderr.write("idle_clients: %s\n" % msg)
    sys.stderr.flush()
    sys.exit(1)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return bytes(buf)


def read_message(sock):
    head = recv_exact(sock, 5)
    kind = head[:1]
    (length,) = struct.unpack("!I", head[1:])
    return kind, recv_exact(sock, length - 4)


def error_text(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1]] = part[1:].decode("utf-8", "replace")
    return "%s: %s" % (fields.get(b"S", "ERROR"), fields.get(b"M", "?"))


def password_message(text):
    payload = text.encode() + b"\0"
    return b"p" + struct.pack("!I", len(payload) + 4) + payload


def connect_one(host, port, user, password, dbname, timeout):
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        params = b"user\0" + user.encode() + b"\0database\0" + dbname.encode() + b"\0\0"
        body = struct.pack("!I", 196608) + params
        sock.sendall(struct.pack("!I", len(body) + 4) + body)
        while True:
            kind, msg = read_message(sock)
            if kind == b"R":
                (code,) = struct.unpack("!I", msg[:4])
                if code == 0:
                    continue
                if code == 3:
                    sock.sendall(password_message(password))
                elif code == 5:
                    salt = msg[4:8]
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    sock.sendall(password_message("md5" + outer))
                else:
                    raise ConnectionError("unsupported authentication request %d" % code)
            elif kind == b"E":
                raise ConnectionError(error_text(msg))
            elif kind == b"Z":
                sock.settimeout(None)
                return sock
            # 'S' ParameterStatus, 'K' BackendKeyData, 'N' notices: ignore.
    except BaseException:
        sock.close()
        raise


def main():
    if len(sys.argv) != 7:
        die("usage: idle_clients.py HOST PORT USER PASSWORD DBNAME N")
    host, port, user, password, dbname, n = sys.argv[1:]
    port, n = int(port), int(n)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            die("open-file limit %d too low for %d connections" % (hard, n))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    socks = []
    try:
        for i in range(n):
            try:
                socks.append(connect_one(host, port, user, password, dbname, 15.0))
            except (OSError, ConnectionError) as e:
                die("connection %d of %d failed: %s" % (i + 1, n, e))
        sys.stdout.write("ready %d\n" % len(socks))
        sys.stdout.flush()
        sys.stdin.readline()
    finally:
        terminate = b"X" + struct.pack("!I", 4)
        for s in socks:
            try:
                s.sendall(terminate)
            except OSError:
                pass
            s.close()


if __name__ == "__main__":
    main()
