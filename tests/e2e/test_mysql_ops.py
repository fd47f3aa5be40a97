"""MySQL through sluice (issue 17): what operators and hostile peers do to
it: LAST_INSERT_ID() in transaction mode, LOCAL INFILE, packets of 16 MiB
and more, a client that stops reading, limits and timeouts as MySQL
errors, the console's PAUSE/RESUME/RECONNECT/KILL on MySQL pools, and raw
bytes (split at every byte, garbage, commands sluice refuses). Against the
MariaDB the harness starts (mysql_helpers.py)."""

import hashlib
import socket
import struct
import threading
import time

import pytest

pymysql = pytest.importorskip("pymysql")

from conftest import free_port, is_pgbouncer_compat  # noqa: E402

pytestmark = pytest.mark.skipif(is_pgbouncer_compat(), reason="PgBouncer has no MySQL listener")


def start(sluice, pg, maria, size=2, extra=None):
    myport = free_port()
    main = {"mysql_listen_port": myport, "pool_mode": "transaction", "default_pool_size": size,
            "reserve_pool_size": 0, "admin_users": "sluice_test"}
    main.update(extra or {})
    s = sluice(main, databases={"sluicedb": pg.db_line("sluicedb"), "mydb": maria.db_line("mydb")})
    s.myport = myport
    return s


def connect(s, **kw):
    kw.setdefault("autocommit", True)
    return pymysql.connect(host="127.0.0.1", port=s.myport, user="sluice_test", password="test_pw",
                           database="mydb", connect_timeout=10, read_timeout=30, write_timeout=30, **kw)


def one(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def admin(s, command):
    with s.connect(db="sluice", user="sluice_test") as adm:
        return adm.execute(command).fetchall() if command.upper().startswith("SHOW") else adm.execute(command)


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_last_insert_id_is_the_clients_own(sluice, pg, maria):
    """Two clients over one server: each reads its own LAST_INSERT_ID()."""
    s = start(sluice, pg, maria, size=1)
    maria.sql("DROP TABLE IF EXISTS t_ai; CREATE TABLE t_ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
              db="mydb")
    with connect(s) as a, connect(s) as b, connect(s) as c:
        for i in range(5):
            with a.cursor() as cur:
                cur.execute("INSERT INTO t_ai (v) VALUES (%s)", (i,))
                a_id = cur.lastrowid
            with b.cursor() as cur:
                cur.execute("INSERT INTO t_ai (v) VALUES (%s), (%s)", (i, i))
                b_id = cur.lastrowid
            assert one(a, "SELECT LAST_INSERT_ID()") == (a_id,)
            assert one(b, "SELECT LAST_INSERT_ID()") == (b_id,)
            assert one(c, "SELECT LAST_INSERT_ID(), @@identity") == (0, 0)
            assert one(a, "select last_insert_id ( )") == (a_id,)
        # not pinned: all three share the one server
        assert len({one(x, "SELECT CONNECTION_ID()")[0] for x in (a, b, c)}) == 1


def test_load_data_local_infile(sluice, pg, maria, tmp_path):
    s = start(sluice, pg, maria)
    maria.sql("SET GLOBAL local_infile = 1; DROP TABLE IF EXISTS t_load; CREATE TABLE t_load (a INT, b TEXT)",
              db="mydb")
    path = tmp_path / "rows.csv"
    path.write_text("".join(f"{i},row {i}\n" for i in range(20000)))
    with connect(s, local_infile=True) as c:
        with c.cursor() as cur:
            cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE t_load FIELDS TERMINATED BY ','")
            assert cur.rowcount == 20000
        assert one(c, "SELECT COUNT(*), SUM(a) FROM t_load") == (20000, sum(range(20000)))
        assert one(c, "SELECT 1") == (1,)


def test_packets_of_16_mib_and_more(sluice, pg, maria):
    """A query and a row longer than one packet (16 MiB - 1: the payload
    continues in the next packet) pass both ways."""
    maria.sql("SET GLOBAL max_allowed_packet = 67108864")
    s = start(sluice, pg, maria)
    with connect(s, max_allowed_packet=64 * 1024 * 1024) as c:
        big = "x" * 17_000_000
        assert one(c, "SELECT LENGTH(%s)", (big,)) == (17_000_000,)
        row = one(c, "SELECT REPEAT('y', 17000000), 7")
        assert len(row[0]) == 17_000_000 and row[1] == 7
        exact = "z" * (0xFFFFFF - len("SELECT LENGTH('')") - 1)  # a payload of exactly 16 MiB - 1
        assert one(c, f"SELECT LENGTH('{exact}')") == (len(exact),)
        assert one(c, "SELECT 1") == (1,)


def test_a_client_that_stops_reading_costs_at_most_its_buffers(sluice, pg, maria):
    s = start(sluice, pg, maria)
    before = rss_kib(s.pid)
    c = connect(s, cursorclass=pymysql.cursors.SSCursor)
    cur = c.cursor()
    cur.execute("SELECT REPEAT('x', 1000) FROM seq_1_to_300000")  # 300 MB the client does not read
    cur.fetchone()
    time.sleep(2)
    grown = rss_kib(s.pid) - before
    assert grown < 16 * 1024, f"sluice grew by {grown} KiB"
    c.close()
    with connect(s) as d:
        assert one(d, "SELECT 2") == (2,)


def test_limits_and_timeouts_are_mysql_errors(sluice, pg, maria):
    s = start(sluice, pg, maria, size=1, extra={"max_client_conn": 2, "query_wait_timeout": 1})
    with connect(s) as a, connect(s) as b:
        a.begin()
        assert one(a, "SELECT 1") == (1,)  # a holds the only server
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(b, "SELECT 2")
        assert "query_wait_timeout" in str(e.value)
        a.rollback()
        with connect(s) as c:
            assert one(c, "SELECT 3") == (3,)
            with pytest.raises(pymysql.err.OperationalError) as e:
                connect(s)  # a and c are the two max_client_conn allows (b was closed)
            assert e.value.args[0] == 1040, e.value.args


def test_console_pause_resume_reconnect_and_kill_mysql_pools(sluice, pg, maria):
    s = start(sluice, pg, maria, size=1)
    with connect(s) as c:
        first = one(c, "SELECT CONNECTION_ID()")[0]
        admin(s, "PAUSE mydb")
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("v", one(c, "SELECT 42")))
        t.start()
        time.sleep(1)
        assert "v" not in result  # held while paused
        admin(s, "RESUME mydb")
        t.join(10)
        assert result.get("v") == (42,)
        admin(s, "RECONNECT mydb")
        deadline = time.monotonic() + 10
        while one(c, "SELECT CONNECTION_ID()")[0] == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert one(c, "SELECT CONNECTION_ID()")[0] != first
        admin(s, "KILL mydb")
        with pytest.raises(pymysql.err.OperationalError):
            one(c, "SELECT 1")
    admin(s, "RESUME mydb")  # KILL pauses the pool, as PgBouncer's does
    with connect(s) as d:
        assert one(d, "SELECT 5") == (5,)


# ---- raw bytes ----

def read_packet(sock):
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            raise EOFError("closed")
        head += chunk
    n = head[0] | head[1] << 8 | head[2] << 16
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            raise EOFError("closed mid-packet")
        body += chunk
    return head[3], body


def packet(seq, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def native_answer(password, nonce):
    p1 = hashlib.sha1(password.encode()).digest()
    p2 = hashlib.sha1(p1).digest()
    mix = hashlib.sha1(nonce + p2).digest()
    return bytes(a ^ b for a, b in zip(p1, mix))


def parse_greeting(body):
    i = body.index(b"\0", 1) + 1
    part1 = body[i + 4:i + 12]
    j = i + 12 + 1 + 2 + 1 + 2 + 2 + 1 + 10
    part2 = body[j:j + 12]
    return part1 + part2


CAPS = 0x00000001 | 0x00000008 | 0x00000200 | 0x00002000 | 0x00008000 | 0x00080000 | 0x00020000


def login_bytes(greeting_body, db="mydb"):
    nonce = parse_greeting(greeting_body)
    auth = native_answer("test_pw", nonce)
    body = struct.pack("<IIB23x", CAPS, 1 << 24, 45) + b"sluice_test\0" + bytes([len(auth)]) + auth \
        + db.encode() + b"\0" + b"mysql_native_password\0"
    return packet(1, body)


def send_slowly(sock, data):
    for k in range(len(data)):
        sock.sendall(data[k:k + 1])
        time.sleep(0.002)


def raw_session(s, slowly=False):
    sock = socket.create_connection(("127.0.0.1", s.myport), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _, greeting = read_packet(sock)
    data = login_bytes(greeting)
    if slowly:
        send_slowly(sock, data)
    else:
        sock.sendall(data)
    seq, ok = read_packet(sock)
    assert ok[0] == 0x00, ok
    return sock


def command(sock, payload, slowly=False):
    data = packet(0, payload)
    if slowly:
        send_slowly(sock, data)
    else:
        sock.sendall(data)


def read_result(sock):
    """Packets of one text result set (no DEPRECATE_EOF): returns rows as lists of bytes."""
    _, first = read_packet(sock)
    if first[0] in (0x00, 0xFF):
        return first
    while read_packet(sock)[1][0] != 0xFE:  # column definitions, then EOF
        pass
    rows = []
    while True:
        _, p = read_packet(sock)
        if p[0] == 0xFE and len(p) < 9:
            return rows
        vals, i = [], 0
        while i < len(p):
            n = p[i]
            vals.append(p[i + 1:i + 1 + n])
            i += 1 + n
        rows.append(vals)


def test_every_byte_split_login_and_query(sluice, pg, maria):
    s = start(sluice, pg, maria)
    sock = socket.create_connection(("127.0.0.1", s.myport), timeout=10)
    _, greeting = read_packet(sock)
    send_slowly(sock, login_bytes(greeting))
    assert read_packet(sock)[1][0] == 0x00
    command(sock, b"\x03SELECT 40 + 2, 'split'", slowly=True)
    assert read_result(sock) == [[b"42", b"split"]]
    sock.close()


def test_commands_sluice_answers_or_refuses(sluice, pg, maria):
    s = start(sluice, pg, maria)
    maria.sql("DROP TABLE IF EXISTS t_fl; CREATE TABLE t_fl (a INT, b TEXT)", db="mydb")
    sock = raw_session(s)
    command(sock, b"\x09")  # COM_STATISTICS: a string from the server
    _, stat = read_packet(sock)
    assert b"Uptime" in stat
    command(sock, b"\x04t_fl\0")  # COM_FIELD_LIST: definitions, then EOF
    defs = []
    while True:
        _, p = read_packet(sock)
        if p[0] == 0xFE and len(p) < 9:
            break
        defs.append(p)
    assert len(defs) == 2
    for refused in (b"\x12\0\0\0\0\0\0\0\0\0\0", b"\x0d", b"\x99"):  # BINLOG_DUMP, DEBUG, unknown
        command(sock, refused)
        _, err = read_packet(sock)
        assert err[0] == 0xFF, (refused, err)
    command(sock, b"\x0e")  # COM_PING
    assert read_packet(sock)[1][0] == 0x00
    command(sock, b"\x03SELECT 'still here'")
    assert read_result(sock) == [[b"still here"]]
    sock.close()


@pytest.mark.parametrize("junk", [
    b"\xff" * 64,                                   # not a handshake response
    b"\x05\x00\x00\x01hello",                       # a short packet of nonsense
    b"\xff\xff\xff\x01" + b"a" * 1000,              # claims 16 MiB, then stops
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",          # another protocol
])
def test_garbage_before_login_is_refused(sluice, pg, maria, junk):
    s = start(sluice, pg, maria, extra={"client_login_timeout": 2})
    sock = socket.create_connection(("127.0.0.1", s.myport), timeout=10)
    read_packet(sock)
    sock.sendall(junk)
    sock.settimeout(8)
    try:
        while sock.recv(4096):
            pass  # an ERR packet, then the close
    except (ConnectionResetError, socket.timeout):
        pass
    sock.close()
    with connect(s) as c:
        assert one(c, "SELECT 1") == (1,)


def test_garbage_after_login_is_refused(sluice, pg, maria):
    s = start(sluice, pg, maria)
    sock = raw_session(s)
    sock.sendall(b"\x00\x00\x00\x00")  # an empty command packet
    _, err = read_packet(sock)
    assert err[0] == 0xFF
    sock.close()
    with connect(s) as c:
        assert one(c, "SELECT 1") == (1,)


def test_prepared_last_insert_id_is_the_clients_own(sluice, pg, maria):
    """A server-side statement that reads LAST_INSERT_ID() gets the
    client's own id too, over one server shared with another client."""
    s = start(sluice, pg, maria, size=1)
    maria.sql("DROP TABLE IF EXISTS t_pai; CREATE TABLE t_pai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
              db="mydb")
    a = raw_session(s)
    command(a, b"\x16SELECT LAST_INSERT_ID()")
    _, ok = read_packet(a)
    assert ok[0] == 0x00, ok
    stmt_id, ncols, nparams = struct.unpack("<IHH", ok[1:9])
    while not (lambda p: p[0] == 0xFE and len(p) < 9)(read_packet(a)[1]):
        pass  # column definitions, EOF

    def run_stmt():
        command(a, b"\x17" + struct.pack("<IBI", stmt_id, 0, 1))
        _, first = read_packet(a)
        assert first[0] not in (0x00, 0xFF), first
        while not (lambda p: p[0] == 0xFE and len(p) < 9)(read_packet(a)[1]):
            pass
        _, row = read_packet(a)
        assert read_packet(a)[1][0] == 0xFE
        return struct.unpack("<Q", row[2:10])[0]

    with connect(s) as b:
        for i in range(3):
            command(a, b"\x03INSERT INTO t_pai (v) VALUES (1)")
            _, okp = read_packet(a)
            assert okp[0] == 0x00
            a_id = okp[2]  # lenenc affected rows (1 byte), then the insert id (< 251 here)
            with b.cursor() as cur:
                cur.execute("INSERT INTO t_pai (v) VALUES (2), (3)")
            assert run_stmt() == a_id
    a.close()
