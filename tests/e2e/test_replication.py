"""Replication connections through sluice (PgBouncer 1.23's feature): a
client that asks for replication=true (physical) or replication=database
(logical) gets a server connection of its own, logged in with its own
startup parameters, in session mode whatever pool_mode says, closed when
the client leaves. pg_basebackup, pg_recvlogical and walsender commands
work through it. PgBouncer 1.18 refuses replication connections."""

import os
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import PGBIN, PSQL, PgCluster, client_env

# One process runs them all: the module builds a PostgreSQL of its own.
pytestmark = [pytest.mark.sluice_only, pytest.mark.xdist_group("replication")]


@pytest.fixture(scope="module")
def rpg():
    """A PostgreSQL of its own with wal_level = logical and replication
    allowed from 127.0.0.1 (the shared cluster is left as it is)."""
    cluster = PgCluster()
    try:
        cluster.start()
        with open(cluster.data / "postgresql.conf", "a") as f:
            f.write("wal_level = logical\nmax_wal_senders = 20\nmax_replication_slots = 10\n")
        with open(cluster.data / "pg_hba.conf", "a") as f:
            f.write("host replication sluice_test 127.0.0.1/32 scram-sha-256\n")
        r = cluster._run([str(PGBIN / "pg_ctl"), "-D", str(cluster.data), "-l", str(cluster.logfile),
                          "-w", "-t", "60", "restart"])
        assert r.returncode == 0, r.stdout
        cluster.sql("ALTER ROLE sluice_test REPLICATION")
        cluster.sql("CREATE TABLE repl_t (id int primary key, v text)", dbname="sluicedb")
        cluster.sql("ALTER TABLE repl_t OWNER TO sluice_test", dbname="sluicedb")
        yield cluster
    finally:
        cluster.stop()


def _sluice(sluice, rpg, **main):
    ini = {"pool_mode": "transaction", "default_pool_size": 4}
    ini.update(main)
    line = rpg.db_line("sluicedb")
    return sluice(ini, databases={"sluicedb": line, "replication": rpg.db_line("postgres")})


def _walsenders(rpg):
    return rpg.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'")[0][0]


def _poll(fn, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _repl_psql(s, sql, mode="true", db="sluicedb", extra=""):
    dsn = f"host={s.host} port={s.port} user=sluice_test password=test_pw dbname={db} replication={mode} {extra}"
    return subprocess.run([PSQL, "-X", "-A", "-t", "-d", dsn, "-c", sql], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=30, env=client_env())


def test_pg_basebackup_through_sluice(sluice, rpg):
    """A physical base backup with streamed WAL (two replication
    connections at once) through a transaction-mode sluice."""
    s = _sluice(sluice, rpg)
    with tempfile.TemporaryDirectory() as d:
        target = os.path.join(d, "backup")
        r = subprocess.run([str(PGBIN / "pg_basebackup"), "-h", s.host, "-p", str(s.port), "-U", "sluice_test",
                            "-D", target, "-X", "stream", "-c", "fast", "--no-sync"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
                           env=client_env(PGPASSWORD="test_pw"))
        assert r.returncode == 0, r.stderr
        assert open(os.path.join(target, "PG_VERSION")).read().strip() == "15"
        assert os.path.exists(os.path.join(target, "backup_manifest"))
        assert os.listdir(os.path.join(target, "pg_wal"))
    _poll(lambda: _walsenders(rpg) == 0, what="walsenders to end with their clients")


def test_walsender_commands_and_own_startup_parameters(sluice, rpg):
    """IDENTIFY_SYSTEM answers as PostgreSQL does; the client's own
    application_name reaches its walsender (synchronous_standby_names
    depends on it); no SET is sent to a physical walsender."""
    s = _sluice(sluice, rpg)
    sysid = rpg.sql("SELECT system_identifier FROM pg_control_system()")[0][0]
    r = _repl_psql(s, "IDENTIFY_SYSTEM")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("|")[0].strip() == str(sysid)
    r = _repl_psql(s, "SHOW application_name", extra="application_name=standby_x")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "standby_x"
    _poll(lambda: _walsenders(rpg) == 0, what="walsenders to end with their clients")


def test_logical_decoding_through_sluice(sluice, rpg):
    """replication=database: create a logical slot and stream decoded
    changes with pg_recvlogical (CopyBoth: feedback flows both ways)."""
    s = _sluice(sluice, rpg)
    env = client_env(PGPASSWORD="test_pw")
    base = [str(PGBIN / "pg_recvlogical"), "-h", s.host, "-p", str(s.port), "-U", "sluice_test",
            "-d", "sluicedb", "-S", "sluice_slot"]
    r = subprocess.run(base + ["--create-slot", "-P", "test_decoding"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    try:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "changes")
            rl = subprocess.Popen(base + ["--start", "-f", out, "-F", "0", "--no-loop"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            try:
                with s.connect() as c:
                    c.execute("INSERT INTO repl_t VALUES (1, 'through sluice')")
                want = "table public.repl_t: INSERT: id[integer]:1 v[text]:'through sluice'"
                _poll(lambda: os.path.exists(out) and want in open(out).read(), timeout=20,
                      what="the decoded INSERT")
            finally:
                rl.send_signal(signal.SIGINT)  # its graceful stop
                _, err = rl.communicate(timeout=20)
            assert rl.returncode == 0, err
    finally:
        subprocess.run(base + ["--drop-slot"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30, env=env)
    _poll(lambda: _walsenders(rpg) == 0, what="walsenders to end with their clients")


def test_replication_servers_are_not_shared(sluice, rpg):
    """Two replication clients have two walsenders; ordinary clients keep
    their pooled servers; a replication client leaving closes its server
    instead of giving it to anyone."""
    s = _sluice(sluice, rpg, default_pool_size=1)
    import psycopg
    dsn = f"host={s.host} port={s.port} user=sluice_test password=test_pw dbname=sluicedb replication=database"
    a = psycopg.connect(dsn, autocommit=True)
    b = psycopg.connect(dsn, autocommit=True)
    try:
        a.execute("IDENTIFY_SYSTEM")
        b.execute("IDENTIFY_SYSTEM")
        assert _walsenders(rpg) == 2
        with s.connect() as c:  # the ordinary pool is separate
            assert c.execute("select 1").fetchone() == (1,)
    finally:
        a.close()
        b.close()
    _poll(lambda: _walsenders(rpg) == 0, what="walsenders to end with their clients")


def test_invalid_replication_value_is_refused(sluice, rpg):
    s = _sluice(sluice, rpg)
    r = _repl_psql(s, "IDENTIFY_SYSTEM", mode="maybe")
    assert r.returncode != 0
    assert 'invalid value for parameter "replication": "maybe"' in r.stderr


def test_replication_refused_by_server_is_reported(sluice, rpg):
    """PostgreSQL's own refusal (no pg_hba.conf line for a physical
    replication connection of this user) reaches the client."""
    s = sluice({"pool_mode": "session"}, databases={"sluicedb": rpg.db_line("sluicedb")},
               userlist={"md5user": "md5_pw", "sluice_test": "test_pw"})
    dsn = f"host={s.host} port={s.port} user=md5user password=md5_pw dbname=sluicedb replication=true"
    r = subprocess.run([PSQL, "-X", "-d", dsn, "-c", "IDENTIFY_SYSTEM"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30, env=client_env())
    assert r.returncode != 0
    assert "replication connection" in r.stderr, r.stderr


def test_console_shows_replication_kind(sluice, rpg):
    """SHOW CLIENTS and SHOW SERVERS name each connection's replication
    kind (PgBouncer 1.23's replication column)."""
    import psycopg
    from admin_helpers import ADMIN, ADMIN_PW, USERLIST, Console
    s = sluice({"pool_mode": "session", "admin_users": ADMIN}, userlist=USERLIST,
               databases={"sluicedb": rpg.db_line("sluicedb")})
    dsn = f"host={s.host} port={s.port} user=sluice_test password=test_pw dbname=sluicedb"
    logical = psycopg.connect(dsn + " replication=database", autocommit=True)
    plain = psycopg.connect(dsn, autocommit=True)
    try:
        logical.execute("IDENTIFY_SYSTEM")
        plain.execute("select 1")
        with Console(s.port, ADMIN, ADMIN_PW) as con:
            clients = [r["replication"] for r in con.show("CLIENTS") if r["database"] == "sluicedb"]
            servers = [r["replication"] for r in con.show("SERVERS") if r["database"] == "sluicedb"]
        assert sorted(clients) == ["logical", "none"]
        assert sorted(servers) == ["logical", "none"]
    finally:
        logical.close()
        plain.close()


def test_hba_replication_keyword(sluice, rpg, tmp_path):
    """auth_type = hba: the database keyword "replication" admits physical
    replication connections and nothing else; "all" does not admit them;
    a logical replication connection matches by database name."""
    hba = tmp_path / "hba.conf"
    hba.write_text("host replication sluice_test 127.0.0.1/32 scram-sha-256\n"
                   "host sluicedb md5user 127.0.0.1/32 scram-sha-256\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(hba, 0o644)
    s = sluice({"auth_type": "hba", "auth_hba_file": str(hba)},
               databases={"sluicedb": rpg.db_line("sluicedb"), "replication": rpg.db_line("postgres")},
               userlist={"sluice_test": "test_pw", "md5user": "md5_pw"})
    r = _repl_psql(s, "IDENTIFY_SYSTEM", db="replication")
    assert r.returncode == 0, r.stderr
    r = _repl_psql(s, "IDENTIFY_SYSTEM", mode="database")
    assert r.returncode != 0 and "no pg_hba.conf entry" in r.stderr, r.stderr
    with pytest.raises(Exception, match="no pg_hba.conf entry"):
        s.connect()
