"""The harness itself: PostgreSQL starts, roles and pg_hba are as intended,
the raw protocol client speaks correctly, and a missing binary is reported."""

import psycopg
import pytest


def test_harness_pg_select1_direct(pg):
    with pg.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
        assert c.execute("show password_encryption").fetchone() == ("scram-sha-256",)
        assert c.execute("show max_connections").fetchone() == ("200",)


def test_harness_roles_and_hba(pg):
    with pg.connect_tcp() as c:
        assert c.execute("select current_user, current_database()").fetchone() == \
            ("sluice_test", "sluicedb")
    with pg.connect_tcp(user="md5user", password="md5_pw") as c:
        assert c.execute("select current_user").fetchone() == ("md5user",)
    with pg.connect_tcp(user="trustuser", password=None) as c:
        assert c.execute("select current_user").fetchone() == ("trustuser",)
    rows = dict(pg.sql("select rolname, left(rolpassword, 14) from pg_authid "
                       "where rolname in ('sluice_test', 'md5user')"))
    assert rows["sluice_test"].startswith("SCRAM-SHA-256$")
    assert rows["md5user"].startswith("md5")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pg.connect_tcp(password="wrong")


def test_harness_raw_client_direct(pg, raw, helpers):
    # SCRAM (sluice_test), md5 (md5user) and trust against PostgreSQL itself.
    c = raw(pg.host, pg.port)
    assert 10 in c.login("sluice_test", "sluicedb", "test_pw")
    assert c.simple_query("select 40 + 2") == ([["42"]], None)
    assert "server_version" in c.params and c.backend_key is not None
    c.terminate()
    c = raw(pg.host, pg.port)
    assert 5 in c.login("md5user", "sluicedb", "md5_pw")
    c.terminate()
    c = raw(pg.host, pg.port)
    with pytest.raises(helpers.PgError) as ei:
        c.login("sluice_test", "sluicedb", "nope")
    assert ei.value.sqlstate == "28P01"
    assert ei.value.message.startswith("password authentication failed for user")
    c = raw(pg.host, pg.port)
    assert c.ssl_request() == b"N"  # cluster has no TLS


def test_harness_missing_binary_reported(pg, tmp_path, helpers):
    missing = str(tmp_path / "no-such-sluice")
    factory = helpers.SluiceFactory(pg, bin_path=missing)
    with pytest.raises(pytest.fail.Exception, match="not found") as ei:
        factory()
    assert missing in str(ei.value)
    assert factory.finish() == []


def test_harness_crashing_binary_reported(pg, tmp_path, helpers):
    # A "sluice" that exits at once must be reported with its output.
    fake = tmp_path / "fake-sluice"
    fake.write_text("#!/bin/sh\necho 'fake: refusing to start' >&2\nexit 3\n")
    fake.chmod(0o755)
    factory = helpers.SluiceFactory(pg, bin_path=str(fake))
    with pytest.raises(pytest.fail.Exception, match="status 3") as ei:
        factory()
    assert "refusing to start" in str(ei.value)
    factory.finish()
