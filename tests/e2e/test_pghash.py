"""Shard placement is PostgreSQL's own hash partitioning, bit for bit:
hundreds of random values of each key type (int2, int4, int8, text,
varchar, uuid; text and binary forms) get from sluice's pghash.c (through
build/unit/test_pghash, which answers for a values file when PGHASH_VALUES
is set) the remainder that satisfies_hash_partition() on a
hash-partitioned table of the real PostgreSQL 15 accepts, for several
moduli. Also: values PostgreSQL refuses for the type are errors."""

import os
import random
import struct
import subprocess
import uuid

import pytest

from conftest import unit_binary

pytestmark = pytest.mark.sluice_only

MODULI = (1, 2, 3, 4, 7, 16, 64)
PER_TYPE = 300


@pytest.fixture(scope="module")
def oracle():
    return unit_binary("test_pghash")


def ask(oracle, tmp_path, rows):
    """rows: (type, modulus, form 't'|'b', bytes) -> list of int or None."""
    path = tmp_path / "values.txt"
    path.write_text("".join(f"{t} {m} {f} {v.hex()}\n" for t, m, f, v in rows))
    out = subprocess.run([str(oracle)], env=dict(os.environ, PGHASH_VALUES=str(path)),
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert len(out) == len(rows)
    return [None if o == "error" else int(o) for o in out]


def pg_shards(conn, table, sqltype, values, modulus):
    """The remainder PostgreSQL accepts for each value (None for NULL)."""
    rows = conn.execute(
        f"SELECT i, r FROM unnest(%s::{sqltype}[]) WITH ORDINALITY AS u(v, i), "
        f"generate_series(0, %s - 1) AS r "
        f"WHERE satisfies_hash_partition('{table}'::regclass, %s, r, u.v)",
        (values, modulus, modulus)).fetchall()
    got = {}
    for i, r in rows:
        assert i not in got, f"two remainders for {values[i - 1]!r}"
        got[i] = r
    return [got.get(i + 1) for i in range(len(values))]


def rand_int(rng, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    pick = rng.random()
    if pick < 0.1:
        return rng.choice([lo, hi, 0, -1, 1, lo + 1, hi - 1])
    if pick < 0.5:
        return rng.randint(-1000, 1000)
    return rng.randint(lo, hi)


def rand_text(rng):
    n = rng.choice([0, 1, 3, 4, 5, 8, 11, 12, 13, 23, 24, 25, rng.randint(0, 200)])
    alphabet = "abcXYZ019 _-'\"\\\té€漢😀"
    return "".join(rng.choice(alphabet) for _ in range(n))


TYPES = {
    # name: (sql type, random value, text form, binary form)
    "int2": ("int2", lambda r: rand_int(r, 16), str, lambda v: struct.pack(">h", v)),
    "int4": ("int4", lambda r: rand_int(r, 32), str, lambda v: struct.pack(">i", v)),
    "int8": ("int8", lambda r: rand_int(r, 64), str, lambda v: struct.pack(">q", v)),
    "text": ("text", rand_text, str, lambda v: v.encode()),
    "varchar": ("varchar", rand_text, str, lambda v: v.encode()),
    "uuid": ("uuid", lambda r: uuid.UUID(int=r.getrandbits(128)), str, lambda v: v.bytes),
}


@pytest.mark.parametrize("name", sorted(TYPES))
def test_placement_matches_postgresql(pg, fresh_db, oracle, tmp_path, name):
    sqltype, gen, text_form, binary_form = TYPES[name]
    rng = random.Random(f"pghash-{name}")
    values = [gen(rng) for _ in range(PER_TYPE)]
    with pg.connect(fresh_db) as conn:
        conn.execute(f"CREATE TABLE p (k {sqltype}) PARTITION BY HASH (k)")
        for m in MODULI:
            want = pg_shards(conn, "p", sqltype, values, m)
            rows = []
            for v in values:
                rows.append((sqltype, m, "t", text_form(v).encode()))
                rows.append((sqltype, m, "b", binary_form(v)))
            got = ask(oracle, tmp_path, rows)
            for k, v in enumerate(values):
                assert want[k] is not None
                assert got[2 * k] == want[k], f"{name} {v!r} modulus {m}: text form"
                assert got[2 * k + 1] == want[k], f"{name} {v!r} modulus {m}: binary form"


def test_rows_land_where_postgresql_puts_them(pg, fresh_db, oracle, tmp_path):
    """The same through real partitions: INSERT, then tableoid."""
    rng = random.Random("pghash-insert")
    values = [rand_int(rng, 64) for _ in range(200)]
    with pg.connect(fresh_db) as conn:
        conn.execute("CREATE TABLE o (k int8) PARTITION BY HASH (k)")
        for r in range(4):
            conn.execute(f"CREATE TABLE o_{r} PARTITION OF o FOR VALUES WITH (MODULUS 4, REMAINDER {r})")
        conn.execute("INSERT INTO o SELECT unnest(%s::int8[])", (values,))
        placed = dict(conn.execute("SELECT k, tableoid::regclass::text FROM o").fetchall())
    got = ask(oracle, tmp_path, [("int8", 4, "t", str(v).encode()) for v in values])
    for v, shard in zip(values, got):
        assert placed[v] == f"o_{shard}", v


def test_values_postgresql_refuses_are_errors(pg, fresh_db, oracle, tmp_path):
    bad = [("int2", "32768"), ("int2", "-32769"), ("int4", "2147483648"), ("int4", "4.2"),
           ("int4", ""), ("int4", "1_000"), ("int4", "0x10"), ("int8", "9223372036854775808"),
           ("int8", "- 1"), ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"),
           ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-"), ("uuid", "a0eebc999-c0b-4ef8-bb6d-6bb9bd380a11"),
           ("uuid", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), ("uuid", " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")]
    ok = [("int4", " 42 "), ("int4", "+7"), ("int8", "-0"), ("int2", "00012"),
          ("uuid", "{A0EEBC999C0B4EF8BB6D6BB9BD380A11}"), ("uuid", "a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11")]
    got = ask(oracle, tmp_path, [(t, 4, "t", v.encode()) for t, v in bad + ok])
    assert got[:len(bad)] == [None] * len(bad)
    with pg.connect(fresh_db) as conn:
        for t, v in bad:
            with pytest.raises(Exception):
                with conn.transaction():
                    conn.execute(f"SELECT %s::text::{t}", (v,))
        for (t, v), shard in zip(ok, got[len(bad):]):
            conn.execute(f"CREATE TABLE IF NOT EXISTS q_{t} (k {t}) PARTITION BY HASH (k)")
            want = pg_shards(conn, f"q_{t}", t, [conn.execute(f"SELECT %s::text::{t}", (v,)).fetchone()[0]], 4)
            assert shard == want[0], (t, v)
