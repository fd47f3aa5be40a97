#!/usr/bin/env python3
"""Write the seed corpora under tests/fuzz/corpus/NAME/ (run from anywhere).

Seeds are tiny valid inputs for each harness; libFuzzer mutates from there.
Regenerating is deterministic, so the checked-in files match this script.
"""
import base64
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def startup(params, code=196608):
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params) + b"\0"
    return struct.pack("!II", 8 + len(body), code) + body


def msg(t, body):
    return t + struct.pack("!I", 4 + len(body)) + body


# ---- fuzz_startup ----
put("startup", "startup_basic", startup([("user", "alice"), ("database", "app")]))
put("startup", "startup_appname", startup([("user", "bob"), ("database", "db"),
                                           ("application_name", "psql"),
                                           ("client_encoding", "UTF8")]))
put("startup", "startup_options", startup([("user", "u"), ("options", "-c search_path=x")]))
put("startup", "ssl_request", struct.pack("!II", 8, 80877103))
put("startup", "gssenc_request", struct.pack("!II", 8, 80877104))
put("startup", "cancel_request", struct.pack("!IIII", 16, 80877102, 4242, 0x12345678))
put("startup", "protocol_2", struct.pack("!II", 8, 0x00020000))
put("startup", "protocol_3_2", startup([("user", "u")], code=0x00030002))

# ---- fuzz_framer (backend stream) ----
auth_ok = msg(b"R", struct.pack("!I", 0))
params = msg(b"S", b"server_version\x0016.2\x00") + msg(b"S", b"client_encoding\x00UTF8\x00")
key = msg(b"K", struct.pack("!II", 1234, 5678))
ready = msg(b"Z", b"I")
err = msg(b"E", b"SERROR\x00VERROR\x00C28P01\x00Mpassword authentication failed\x00\x00")
notice = msg(b"N", b"SNOTICE\x00VNOTICE\x00C00000\x00Mhello\x00\x00")
rowdesc = msg(b"T", struct.pack("!H", 1) + b"?column?\x00" + struct.pack("!IHIhih", 0, 0, 23, 4, -1, 0))
datarow = msg(b"D", struct.pack("!HI", 1, 1) + b"1")
complete = msg(b"C", b"SELECT 1\x00")
sasl = msg(b"R", struct.pack("!I", 10) + b"SCRAM-SHA-256\x00\x00")
put("framer", "login", auth_ok + params + key + ready)
put("framer", "error", err + ready)
put("framer", "notice_query", notice + rowdesc + datarow + complete + ready)
put("framer", "sasl", sasl)
put("framer", "partial", params + msg(b"S", b"TimeZone\x00UTC\x00")[:9])
put("framer", "bad_len", b"Z\x00\x00\x00\x03I")

# ---- fuzz_pgframe: mode byte (1 = server, 2 = tracking), k, k chunk sizes - 1, stream ----
def pgframe(mode, sizes, stream):
    return bytes([mode, len(sizes)]) + bytes(sizes) + stream


parse = msg(b"P", b"\0SELECT abalance FROM pgbench_accounts WHERE aid = $1\0\0\0")
bind = msg(b"B", b"\0\0\0\0\0\x01" + struct.pack("!I", 2) + b"42\0\0")
batch = parse + bind + msg(b"D", b"P\0") + msg(b"E", b"\0\0\0\0\0") + msg(b"S", b"")
put("pgframe", "client_query", pgframe(2, [2, 6], msg(b"Q", b"SELECT 1;\0") + msg(b"Q", b"LISTEN chan;\0")))
put("pgframe", "client_batch", pgframe(2, [0, 3, 10], batch + batch))
put("pgframe", "client_named", pgframe(2, [4], msg(b"P", b"s1\0SELECT 1\0\0\0") +
                                       msg(b"B", b"\0s1\0\0\0\0\0\0\0") + msg(b"C", b"Ss1\0") +
                                       msg(b"S", b"") + msg(b"X", b"")))
put("pgframe", "client_copy", pgframe(0, [], msg(b"Q", b"COPY t FROM STDIN\0") + msg(b"d", b"1\t2\n") +
                                      msg(b"c", b"") + msg(b"H", b"")))
put("pgframe", "server_rows", pgframe(1, [4, 0], rowdesc + datarow * 4 + complete + ready))
put("pgframe", "server_extended", pgframe(1, [5, 5], msg(b"1", b"") + msg(b"2", b"") + rowdesc + datarow +
                                          complete + msg(b"Z", b"T") + notice + msg(b"Z", b"E") + ready))
put("pgframe", "server_z_split", pgframe(1, [4], ready + ready))
put("pgframe", "bad_len", pgframe(0, [1], msg(b"S", b"") + b"Q\x00\x00\x00\x03"))

# ---- fuzz_scram: byte 0 = mode | flags, parts split at '\n' ----
proof = base64.b64encode(hashlib.sha256(b"proof").digest())
sig = base64.b64encode(hashlib.sha256(b"sig").digest())
salt = base64.b64encode(b"0123456789abcdef")
put("scram", "server_plain", b"\x00" + b"n,,n=,r=rOprNGfwEbeRWgbNEkqO\nc=biws,r=x,p=" + proof)
put("scram", "server_nonce", b"\x10" + b"n,,n=,r=rOprNGfwEbeRWgbNEkqO\nc=biws,r=@@,p=" + proof)
put("scram", "server_ext", b"\x10" + b"y,,n=user,r=abc,x=ext\nc=eSws,r=@@,z=1,p=" + proof)
put("scram", "server_cbind", b"\x00" + b"p=tls-server-end-point,,n=,r=abc\n")
put("scram", "client_keys", b"\x11" + b"r=@@srv,s=" + salt + b",i=4096\nv=" + sig)
put("scram", "client_pw", b"\x12" + b"r=@@srv,s=" + salt + b",i=2\nv=" + sig)
put("scram", "client_err", b"\x11" + b"r=@@srv,s=" + salt + b",i=1\ne=invalid-proof")
put("scram", "roundtrip", b"\x03")
put("scram", "roundtrip_mut", b"\x03" + b"\n\x05A\n")
put("scram", "raw_verifier", b"\x04" + b"SCRAM-SHA-256$4096:" + salt + b"$" + proof + b":" + sig)
put("scram", "raw_md5", b"\x04" + b"md5" + hashlib.md5(b"pwalice").hexdigest().encode())
put("scram", "raw_b64", b"\x04" + b"QUJDRA==")

# ---- fuzz_config: main.ini, then "\n@auth@\n", then auth.txt ----
put("config", "basic",
    b"[sluice]\nlisten_addr = 127.0.0.1\nlisten_port = 6432\nauth_type = md5\n"
    b"auth_file = auth.txt\npool_mode = transaction\ndefault_pool_size = 10\n"
    b"server_idle_timeout = 1.5min\nadmin_users = admin, alice\n"
    b"[databases]\napp = host=127.0.0.1 port=5432 dbname=app pool_size=5\n"
    b"* = host=/var/run/postgresql\n[users]\nalice = pool_mode=session max_user_connections=3\n"
    b"\n@auth@\n"
    b"\"alice\" \"md5" + hashlib.md5(b"pwalice").hexdigest().encode() + b"\"\n"
    b"\"bob\" \"SCRAM-SHA-256$4096:" + salt + b"$" + proof + b":" + sig + b"\"\n")
put("config", "any_quoted",
    b"; comment\n[pgbouncer]\nauth_type = any\n\"weird key\" = 1\n"
    b"[databases]\nq = host=h password='it''s' connect_query='select 1' application_name=x\n"
    b"[peers]\n1 = host=x\n")
put("config", "include",
    b"[sluice]\nauth_type = trust\n%include auth.txt\n"
    b"\n@auth@\n"
    b"auth_file = auth.txt\nunix_socket_mode = 0700\nstats_period = 250ms\n")
put("config", "errors", b"[sluice]\nlisten_port = 99999\n")
put("config", "unknown", b"\xef\xbb\xbf[sluice]\nauth_type = any\nfoo = bar\nserver_round_robin = 1\n"
    b"[databases]\nd = host=x timezone=UTC bogus=1\n[users]\nu = query_timeout=1 pool_size=2\n")

# ---- fuzz_hba ----
put("hba", "basic", b"local all all trust\nhost all all 127.0.0.1/32 md5\n")
put("hba", "lists", b'host db1,db2 "user one",bob 10.0.0.0 255.0.0.0 scram-sha-256\n')
put("hba", "ssl", b"hostssl all all ::1/128 cert\nhostnossl sameuser all all reject\n")
put("hba", "comments", b"# comment\n\nhost all all 0.0.0.0/0 password # end\n")
put("hba", "continuation", b"host all \\\n all ::ffff:10.0.0.1/120 md5\n")
