"""The router reads key constants as PostgreSQL does: INSERT and SELECT
texts with the key written in many ways (plain and negative numbers,
numbers beyond int4, quoted strings with doubled quotes, escape strings,
Unicode escapes, dollar quoting, casts) are routed by sluice's router
(build/unit/test_shardroute, which answers for a file of texts when
SHARDROUTE_QUERIES is set) to the shard whose partition PostgreSQL puts
the row in (PARTITION BY HASH, MODULUS 4). Texts PostgreSQL refuses for a
bad key value are refused by the router too."""

import os
import random
import subprocess
import uuid

import psycopg
import pytest

from conftest import unit_binary

pytestmark = pytest.mark.sluice_only

@pytest.fixture(scope="module")
def router():
    return unit_binary("test_shardroute")


def route(router, tmp_path, rows):
    """rows: (key type, sql) -> list of (kind, shard, sqlstate)."""
    path = tmp_path / "queries.txt"
    path.write_text("".join(f"{t} {sql.encode().hex()}\n" for t, sql in rows))
    out = subprocess.run([str(router)], env=dict(os.environ, SHARDROUTE_QUERIES=str(path)),
                         capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert len(out) == len(rows)
    return [(k, int(s), st) for k, s, st in (line.split() for line in out)]


def int_literals(rng, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    for _ in range(40):
        v = rng.choice([rng.randint(-1000, 1000), rng.randint(lo, hi), lo, hi, 0])
        yield str(v)
        yield f"'{v}'"
        yield f"' {v} '"
        yield f"'{v}'::int8"
        yield f"CAST('{v}' AS bigint)"
        if -(1 << 15) <= v < (1 << 15):
            yield f"{v}::smallint"


def text_literals(rng):
    for _ in range(40):
        s = "".join(rng.choice("ab'Z9 é漢\\") for _ in range(rng.randint(0, 14)))
        q = s.replace("'", "''")
        yield f"'{q}'"
        yield f"'{q}'::text"
        yield f"'{q}'::varchar"
        yield f"$x${s}$x$"
        e = s.replace("\\", "\\\\").replace("'", "\\'")
        yield f"E'{e}'"
        u = "".join(f"\\{ord(ch):04x}" if ord(ch) < 0x10000 else ch for ch in s).replace("'", "''")
        yield f"U&'{u}'"
    yield "'a' 'b'" if False else "'ab'"
    yield "E'tab\\there'"


def uuid_literals(rng):
    for _ in range(40):
        u = uuid.UUID(int=rng.getrandbits(128))
        yield f"'{u}'"
        yield f"'{{{str(u).upper()}}}'"
        yield f"'{u.hex}'::uuid"


CASES = {
    "int2": ("smallint", lambda r: int_literals(r, 16)),
    "int4": ("integer", lambda r: int_literals(r, 32)),
    "int8": ("bigint", lambda r: int_literals(r, 64)),
    "text": ("text", text_literals),
    "uuid": ("uuid", uuid_literals),
}


@pytest.mark.parametrize("keytype", sorted(CASES))
def test_literals_routed_where_postgresql_puts_rows(pg, fresh_db, router, tmp_path, keytype):
    sqltype, gen = CASES[keytype]
    rng = random.Random(f"shardroute-{keytype}")
    literals = list(dict.fromkeys(gen(rng)))
    inserts = [f"INSERT INTO p (id, k) VALUES ({i}, {lit})" for i, lit in enumerate(literals)]
    selects = [f"SELECT * FROM p WHERE k = {lit} AND id = {i}" for i, lit in enumerate(literals)]
    routed = route(router, tmp_path, [(keytype, q) for q in inserts + selects])
    with pg.connect(fresh_db) as conn:
        conn.execute(f"CREATE TABLE p (id int, k {sqltype}) PARTITION BY HASH (k)")
        for r in range(4):
            conn.execute(f"CREATE TABLE p_{r} PARTITION OF p FOR VALUES WITH (MODULUS 4, REMAINDER {r})")
        checked = 0
        for i, lit in enumerate(literals):
            ins, sel = routed[i], routed[len(literals) + i]
            try:
                with conn.transaction():
                    conn.execute(inserts[i])
            except psycopg.errors.DataError:
                # PostgreSQL refuses the value: the router refuses it too, or
                # sends it to one shard, whose PostgreSQL refuses it the same
                # way (32768::smallint); never anything else.
                assert ins[0] == "refuse" and ins[2].startswith("22") or ins[0] == "one", (lit, ins)
                assert sel[0] in ("refuse", "one"), (lit, sel)
                continue
            assert ins[0] == "one", (lit, ins)
            part = conn.execute(f"SELECT tableoid::regclass::text FROM p WHERE id = {i}").fetchone()[0]
            assert part == f"p_{ins[1]}", (lit, part, ins)
            assert sel[0] == "one" and sel[1] == ins[1], (lit, sel, ins)
            checked += 1
        assert checked >= len(literals) // 2
