"""Configuration problems are reported clearly: bad values stop sluice with
file, line and key named; unknown keys only warn; a missing file is an
error; PgBouncer's [pgbouncer] section name is accepted."""

import pytest

pytestmark = pytest.mark.sluice_only


def _ini(pg, port, sockdir, main_lines, section="sluice"):
    lines = [
        "[databases]",                                             # line 1
        f"sluicedb = {pg.db_line('sluicedb')}",                    # line 2
        "",                                                        # line 3
        f"[{section}]",                                            # line 4
        "listen_addr = 127.0.0.1",                                 # line 5
        f"listen_port = {port}",                                   # line 6
        f"unix_socket_dir = {sockdir}",                            # line 7
        "auth_type = trust",                                       # line 8
        f"auth_file = {sockdir}/userlist.txt",                     # line 9
        "workers = 1",                                             # line 10
    ]
    return "\n".join(lines + list(main_lines)) + "\n"


def test_invalid_value_names_file_line_key(pg, run_sluice_raw, tmp_path, helpers):
    (tmp_path / "userlist.txt").write_text('"sluice_test" "test_pw"\n')
    text = _ini(pg, helpers.free_port(), tmp_path, ["default_pool_size = abc"])  # line 11
    r, ini, elapsed = run_sluice_raw(text)
    assert r.returncode is not None, "sluice kept running with an invalid config"
    assert r.returncode != 0
    assert elapsed < 5
    err = r.stderr
    assert str(ini) in err, err
    assert f"{ini}:11" in err, err
    assert "default_pool_size" in err, err


@pytest.mark.parametrize("line", ["pool_mode = sometimes", "listen_port = 99999",
                                  "auth_type = kerberos", "query_wait_timeout = soon"])
def test_other_invalid_values(pg, run_sluice_raw, tmp_path, helpers, line):
    (tmp_path / "userlist.txt").write_text('"sluice_test" "test_pw"\n')
    text = _ini(pg, helpers.free_port(), tmp_path, [line])
    r, ini, elapsed = run_sluice_raw(text)
    assert r.returncode not in (None, 0), r.stderr
    key = line.split("=")[0].strip()
    assert f"{ini}:11" in r.stderr and key in r.stderr, r.stderr


def test_unknown_key_warns_but_starts(sluice):
    s = sluice({"no_such_setting_e2e": "42"})
    with s.connect() as c:
        assert c.execute("select 1").fetchone() == (1,)
    log = s.log_text()
    assert "no_such_setting_e2e" in log, log[-2000:]
    assert str(s.ini) in log, log[-2000:]


def test_missing_config_file(run_sluice_raw, tmp_path):
    r, ini, elapsed = run_sluice_raw("", write=False, ini_name="does-not-exist.ini")
    assert r.returncode not in (None, 0)
    assert elapsed < 5
    assert "does-not-exist.ini" in r.stderr, r.stderr


def test_no_config_argument(run_sluice_raw, helpers):
    import subprocess
    import conftest
    r = subprocess.run([conftest.default_bin()], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=5)
    assert r.returncode != 0
    assert r.stderr.strip(), "no usage message"


def test_pgbouncer_section_name_accepted(sluice):
    s = sluice(section="pgbouncer")
    assert "[pgbouncer]" in s.ini.read_text()
    with s.connect() as c:
        assert c.execute("select 'pgbouncer section'").fetchone() == ("pgbouncer section",)
