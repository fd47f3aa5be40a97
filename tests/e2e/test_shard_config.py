"""Sharded databases in the configuration (issue 19, docs/sharding.md):
`shards=a,b,...` in [databases] and the [sharded_tables] section are
checked at start-up, each mistake stopping sluice with file, line and key
named; a valid sharded entry starts, its shards serve as usual, and a
client of the sharded database itself gets a clear error (the client side
is served (tests/e2e/test_sharding.py has the rest), never a silent
fallback to one shard."""

import psycopg
import pytest

pytestmark = pytest.mark.sluice_only


def _ini(pg, port, sockdir, databases, tables=()):
    lines = [
        "[sluice]",                                                # line 1
        "listen_addr = 127.0.0.1",                                 # line 2
        f"listen_port = {port}",                                   # line 3
        f"unix_socket_dir = {sockdir}",                            # line 4
        "auth_type = trust",                                       # line 5
        f"auth_file = {sockdir}/userlist.txt",                     # line 6
        "workers = 1",                                             # line 7
        "[databases]",                                             # line 8
        f"shop_0 = {pg.db_line('sluicedb')}",                      # line 9
        f"shop_1 = {pg.db_line('sluicedb')}",                      # line 10
    ] + list(databases)                                            # from line 11
    if tables:
        lines += ["[sharded_tables]"] + list(tables)
    return "\n".join(lines) + "\n"


def _fails(pg, run_sluice_raw, tmp_path, helpers, databases, tables, line, key, why):
    (tmp_path / "userlist.txt").write_text('"sluice_test" "test_pw"\n')
    r, ini, elapsed = run_sluice_raw(_ini(pg, helpers.free_port(), tmp_path, databases, tables))
    assert r.returncode not in (None, 0), r.stderr
    err = r.stderr
    assert f"{ini}:{line}" in err, err
    assert f"key '{key}'" in err, err
    assert why in err, err


@pytest.mark.parametrize("entry,why", [
    ("shop = shards=shop_0,nosuch", "'nosuch': no database entry named so"),
    ("shop = shards=shop_0,shop", "a database cannot be its own shard"),
    ("shop = shards=", "the list is empty"),
    ("shop = shards=shop_0,,shop_1", "an empty name in the list"),
    ("shop = shards=shop_0,shop_0", "listed twice"),
    ("shop = shards=shop_0 host=127.0.0.1", "a sharded entry has no host of its own"),
])
def test_bad_shards_list(pg, run_sluice_raw, tmp_path, helpers, entry, why):
    _fails(pg, run_sluice_raw, tmp_path, helpers, [entry], [], 11, "shards", why)


def test_shard_itself_sharded(pg, run_sluice_raw, tmp_path, helpers):
    _fails(pg, run_sluice_raw, tmp_path, helpers, ["inner = shards=shop_0", "shop = shards=inner,shop_1"], [],
           12, "shards", "'inner': that entry is itself sharded")


def test_shard_of_another_protocol(pg, run_sluice_raw, tmp_path, helpers):
    _fails(pg, run_sluice_raw, tmp_path, helpers,
           ["my = host=127.0.0.1 port=3306 protocol=mysql", "shop = shards=shop_0,my"], [],
           12, "shards", "'my': that entry speaks another protocol")


def test_too_many_shards(pg, run_sluice_raw, tmp_path, helpers):
    names = ",".join(f"s{i}" for i in range(65))
    entries = [f"s{i} = host=127.0.0.1" for i in range(65)] + [f"shop = shards={names}"]
    _fails(pg, run_sluice_raw, tmp_path, helpers, entries, [], 11 + 65, "shards", "more than 64 shards")


@pytest.mark.parametrize("table,why", [
    ("shop.orders = total:numeric", "shard key type 'numeric' is not supported"),
    ("shop = id", "expected DATABASE.TABLE or DATABASE.SCHEMA.TABLE"),
    ("shop.a.b.c = id", "expected DATABASE.TABLE or DATABASE.SCHEMA.TABLE"),
    ("shop.2fast = id", "expected DATABASE.TABLE or DATABASE.SCHEMA.TABLE"),
    ("shop.orders = customer id", "must be the shard key column"),
    ("shop_0.orders = id", "'shop_0' is not a sharded [databases] entry"),
    ("nosuch.orders = id", "'nosuch' is not a sharded [databases] entry"),
])
def test_bad_sharded_table(pg, run_sluice_raw, tmp_path, helpers, table, why):
    # [sharded_tables] header on line 12, the table on 13.
    _fails(pg, run_sluice_raw, tmp_path, helpers, ["shop = shards=shop_0,shop_1"], [table],
           13, table.split("=")[0].strip(), why)


def test_duplicate_sharded_table(pg, run_sluice_raw, tmp_path, helpers):
    _fails(pg, run_sluice_raw, tmp_path, helpers, ["shop = shards=shop_0,shop_1"],
           ["shop.orders = customer_id", "shop.public.ORDERS = id:int8"],
           14, "shop.public.ORDERS", "the table is already listed at ")


def test_sharded_database_served(pg, helpers):
    """A valid sharded configuration starts; the shards serve; so does the
    sharded database, in transaction mode; in session mode it says why it
    cannot."""

    factory = helpers.ShardedFactory(pg, ["shop.orders = customer_id", "shop.sales.items = order_id:bigint",
                                          "shop.users = id:uuid"])
    try:
        s = factory(ini_main={"admin_users": "sluice_test"},
                    databases={"shop_0": pg.db_line("sluicedb", pool_mode="transaction"),
                               "shop_1": pg.db_line("sluicedb", pool_mode="transaction"),
                               "shop": "shards=shop_0,shop_1 pool_mode=transaction",
                               "shop_s": "shards=shop_0,shop_1 pool_mode=session"})
        with s.connect(db="shop_0") as c:
            assert c.execute("select 1").fetchone() == (1,)
        with s.connect(db="shop") as c:
            assert c.execute("select 3").fetchone() == (3,)  # no table: any shard answers
        with pytest.raises(psycopg.OperationalError) as e:
            with s.connect(db="shop_s"):
                pass
        assert "database \"shop_s\" is sharded: it needs pool_mode = transaction or statement" in str(e.value)
        with s.connect(db="shop_1") as c:
            assert c.execute("select 2").fetchone() == (2,)
        # The console lists the entry (no host of its own), and its pool
        # with no servers of its own.
        r = s.psql("-A", "-t", "-c", "SHOW DATABASES", db="pgbouncer")
        assert r.returncode == 0, r.stderr
        assert any(line.split("|")[0] == "shop" for line in r.stdout.splitlines()), r.stdout
        r = s.psql("-A", "-t", "-c", "SHOW POOLS", db="pgbouncer")
        assert r.returncode == 0, r.stderr
        assert any(line.split("|")[0] == "shop" for line in r.stdout.splitlines()), r.stdout
    finally:
        problems = factory.finish()
    assert not problems, problems
