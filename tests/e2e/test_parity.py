"""What users of current PgBouncer (1.23-1.25) rely on and find the same in
sluice: regression tests for the differences found when moving a setup over.
Tests that PgBouncer 1.18 (the reference binary here) also passes are not
marked; sluice-only behaviour is."""

import pytest


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_connect_query_runs_once_per_server_login(sluice, pg, mode):
    """connect_query runs when a server logs in, and the login then
    finishes: clients are served, and see what it set."""
    line = pg.db_line("sluicedb") + " connect_query='SET statement_timeout = 4242'"
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "query_wait_timeout": 10},
               databases={"sluicedb": line})
    with s.connect() as c:
        assert c.execute("show statement_timeout").fetchone() == ("4242ms",)
        assert c.execute("select 1").fetchone() == (1,)
    with s.connect() as c:
        assert c.execute("select 2").fetchone() == (2,)
