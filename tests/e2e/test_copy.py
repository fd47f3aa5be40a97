"""COPY FROM STDIN / COPY TO STDOUT through sluice, in session and
transaction pooling, including a COPY that fails half way."""

import hashlib

import psycopg
import psycopg.errors
import pytest

MODES = ["session", "transaction"]


def _table(c, helpers):
    name = helpers.unique("e2e_copy")
    c.execute(f"create table {name} (id int primary key, val text not null)")
    return name


@pytest.mark.parametrize("mode", MODES)
def test_copy_in_and_out(sluice, helpers, mode):
    s = sluice({"pool_mode": mode})
    with s.connect() as c:
        t = _table(c, helpers)
        try:
            rows = [(i, f"value {i}\twith tab") for i in range(1000)]
            with c.cursor().copy(f"COPY {t} (id, val) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            assert c.execute(f"select count(*), sum(id) from {t}").fetchone() == \
                (1000, sum(range(1000)))
            out = []
            with c.cursor().copy(f"COPY (select id, val from {t} order by id) TO STDOUT") as cp:
                for row in cp.rows():
                    out.append((int(row[0]), row[1]))
            assert out == rows
            # raw text form as well
            buf = bytearray()
            with c.cursor().copy(f"COPY (select id from {t} where id < 3 order by id) "
                                 "TO STDOUT") as cp:
                for chunk in cp:
                    buf += chunk
            assert bytes(buf) == b"0\n1\n2\n"
        finally:
            c.execute(f"drop table {t}")


@pytest.mark.parametrize("mode", MODES)
def test_copy_fails_mid_stream(sluice, helpers, mode):
    s = sluice({"pool_mode": mode, "default_pool_size": 1})
    with s.connect() as c:
        t = _table(c, helpers)
        try:
            with pytest.raises(psycopg.errors.InvalidTextRepresentation) as ei:
                with c.cursor().copy(f"COPY {t} (id, val) FROM STDIN") as cp:
                    for i in range(5000):
                        cp.write(f"{i}\tok\n")
                    cp.write("not-a-number\tbad\n")
                    for i in range(5001, 20000):
                        cp.write(f"{i}\tok\n")
            assert ei.value.sqlstate == "22P02"
            # the connection is usable and the table unchanged
            assert c.execute("select 'usable'").fetchone() == ("usable",)
            assert c.execute(f"select count(*) from {t}").fetchone() == (0,)
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            # a good COPY right after works
            with c.cursor().copy(f"COPY {t} (id, val) FROM STDIN") as cp:
                cp.write("1\tone\n2\ttwo\n")
            assert c.execute(f"select count(*) from {t}").fetchone() == (2,)
        finally:
            c.execute(f"drop table {t}")
    # with pool_size=1 the single server must be clean for the next client
    with s.connect() as c2:
        assert c2.execute("select 1").fetchone() == (1,)
        assert c2.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@pytest.mark.parametrize("mode", MODES)
def test_copy_fail_from_client(sluice, helpers, mode):
    """The client aborts the COPY itself (CopyFail)."""
    s = sluice({"pool_mode": mode})
    with s.connect() as c:
        t = _table(c, helpers)
        try:
            # psycopg sends CopyFail; the server answers 57014 with our reason
            with pytest.raises(psycopg.errors.QueryCanceled, match="client gives up"):
                with c.cursor().copy(f"COPY {t} (id, val) FROM STDIN") as cp:
                    cp.write("1\tone\n")
                    raise RuntimeError("client gives up")
            assert c.execute("select 'usable'").fetchone() == ("usable",)
            assert c.execute(f"select count(*) from {t}").fetchone() == (0,)
            assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        finally:
            c.execute(f"drop table {t}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
def test_large_copy(sluice, helpers, mode):
    s = sluice({"pool_mode": mode})
    n = 200000
    pad = "p" * 90
    with s.connect() as c:
        t = _table(c, helpers)
        try:
            h_in = hashlib.sha256()
            total = 0
            with c.cursor().copy(f"COPY {t} (id, val) FROM STDIN") as cp:
                batch = []
                for i in range(n):
                    line = f"{i}\t{pad}{i}\n"
                    batch.append(line)
                    if len(batch) == 5000:
                        data = "".join(batch).encode()
                        h_in.update(data)
                        total += len(data)
                        cp.write(data)
                        batch = []
                if batch:
                    data = "".join(batch).encode()
                    h_in.update(data)
                    total += len(data)
                    cp.write(data)
            assert total > 19 * 1024 * 1024
            assert c.execute(f"select count(*), sum(id) from {t}").fetchone() == \
                (n, n * (n - 1) // 2)
            h_out = hashlib.sha256()
            got = 0
            with c.cursor().copy(f"COPY (select id, val from {t} order by id) TO STDOUT") as cp:
                for chunk in cp:
                    h_out.update(chunk)
                    got += len(chunk)
            assert got == total
            assert h_out.hexdigest() == h_in.hexdigest()
        finally:
            c.execute(f"drop table {t}")
