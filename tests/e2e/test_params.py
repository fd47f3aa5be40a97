"""Reported parameters (client_encoding, DateStyle, TimeZone, IntervalStyle,
standard_conforming_strings, application_name) follow each client across
the servers it borrows in transaction mode, and never leak to another
client."""

import pytest


def _pid(c):
    return c.execute("select pg_backend_pid()").fetchone()[0]


@pytest.mark.sluice_only
@pytest.mark.parametrize("mode", ["transaction", "statement"])
def test_set_stays_with_its_client_on_a_shared_server(sluice, mode):
    """PgBouncer 1.18 lets a's SET application_name leak to b, which never
    set one, on the shared server (b sees 'client-a')."""
    s = sluice({"pool_mode": mode, "default_pool_size": 1, "reserve_pool_size": 0})
    with s.connect(autocommit=True) as a, s.connect(autocommit=True) as b:
        assert _pid(a) == _pid(b)  # one server shared by both
        a.execute("SET TimeZone = 'Asia/Tokyo'")
        a.execute("SET application_name = 'client-a'")
        b.execute("SET TimeZone = 'America/Lima'")
        for _ in range(3):
            assert a.execute("show timezone").fetchone() == ("Asia/Tokyo",)
            assert b.execute("show timezone").fetchone() == ("America/Lima",)
            assert a.execute("show application_name").fetchone() == ("client-a",)
            assert b.execute("show application_name").fetchone() != ("client-a",)
        assert _pid(a) == _pid(b)


def test_startup_parameters_are_honoured(sluice):
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1})
    with s.connect(autocommit=True, application_name="first") as a, \
            s.connect(autocommit=True, application_name="second",
                      options=None) as b:
        for _ in range(3):
            assert a.execute("show application_name").fetchone() == ("first",)
            assert b.execute("show application_name").fetchone() == ("second",)


def test_reset_follows_the_client(sluice, pg):
    default_tz = pg.sql("show timezone")[0][0]
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1})
    with s.connect(autocommit=True) as a, s.connect(autocommit=True) as b:
        a.execute("SET TimeZone = 'Asia/Tokyo'")
        b.execute("select 1")
        a.execute("RESET TimeZone")
        b.execute("select 1")
        assert a.execute("show timezone").fetchone() == (default_tz,)


@pytest.mark.parametrize("value", [
    "x'; select pg_sleep(5); --",
    "x\\'; select pg_sleep(5); --'",
    "back\\slash and 'quotes'",
])
def test_parameter_values_cannot_inject_sql(sluice, value):
    """The SET sluice sends for a client's value must keep the value whole."""
    s = sluice({"pool_mode": "transaction", "default_pool_size": 1})
    with s.connect(autocommit=True, application_name=value) as a, \
            s.connect(autocommit=True) as b:
        b.execute("select 1")  # the server goes to b, then back to a
        got = a.execute("show application_name").fetchone()[0]
        assert got == value
