"""The command line (issue 22): long options beside the short ones.

Checked here:
- `--version` and `-V` print `sluice X.Y.Z` (the version in src/core/version.h)
  and say whether the kernel fast path is built in, which must agree with
  whether the binary links libbpf;
- `--help` and `-h` print the usage, naming every long option, on stdout
  and exit 0;
- an unknown option (long or short), or no config file, prints the usage on
  stderr and exits 2;
- `--quiet` writes nothing to stderr (the logfile still gets the log);
- `--verbose` (twice) turns on DEBUG lines;
- `--daemon` returns at once, the background process writes its pidfile,
  serves a query and stops on SIGTERM;
- `--reboot` and `--restart` do an online restart like -R: the new process
  takes the listening socket, the old one exits, queries still work.

sluice only: PgBouncer's output differs.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

import conftest
from conftest import REPO, tail

pytestmark = [pytest.mark.sluice_only, pytest.mark.timeout(60)]

LONG_OPTIONS = ("--daemon", "--reboot", "--restart", "--quiet", "--verbose", "--version", "--help")


def run(args, timeout=10):
    return subprocess.run([conftest.default_bin()] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


def source_version():
    text = (REPO / "src" / "core" / "version.h").read_text()
    return re.search(r'#define SLUICE_VERSION "([0-9]+\.[0-9]+\.[0-9]+)"', text).group(1)


def links_libbpf(path):
    r = subprocess.run(["ldd", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=10)
    return "libbpf" in r.stdout


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def query_one(port, sql="select 1"):
    with psycopg.connect(host="127.0.0.1", port=port, dbname="sluicedb", user="sluice_test",
                         password="test_pw", connect_timeout=10, autocommit=True) as c:
        return c.execute(sql).fetchone()[0]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    r = run([flag])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"sluice {source_version()}", r.stdout
    built_in = links_libbpf(conftest.default_bin())
    want = "bpf_bypass): built in" if built_in else "bpf_bypass): not built in"
    assert any(want in line for line in lines[1:]), r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(flag):
    r = run([flag])
    assert r.returncode == 0
    assert r.stdout.startswith("usage: sluice"), r.stdout
    for opt in LONG_OPTIONS:
        assert opt in r.stdout, f"{opt} missing from --help:\n{r.stdout}"
    assert r.stderr == ""


@pytest.mark.parametrize("args", [["--no-such-option", "x.ini"], ["-Z", "x.ini"], ["--version=1"], []])
def test_bad_usage_exits_2(args):
    r = run(args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "usage: sluice" in r.stderr, r.stderr
    assert r.stdout == ""


def test_quiet_writes_nothing_to_stderr(sluice):
    d, ini, port = sluice.write_config(ini_main={"logfile": "sluice-file.log"})
    logfile = Path(d) / "sluice-file.log"
    p = subprocess.Popen([conftest.default_bin(), "--quiet", str(ini)], cwd=str(d),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, preexec_fn=conftest._die_with_parent)
    conftest._live_procs.add(p)
    try:
        wait_for(lambda: conftest.port_open("127.0.0.1", port) or p.poll() is not None, 10,
                 "sluice to listen")
        assert p.poll() is None, p.communicate()[1]
        assert query_one(port, "select 'quiet'") == "quiet"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        conftest._live_procs.discard(p)
    assert p.returncode == 0
    assert err == b"" and out == b"", (out, err)
    log = logfile.read_text()
    assert "started" in log and "sluice stopped" in log, log


def test_verbose_turns_on_debug(sluice):
    s = sluice(args=["--verbose", "--verbose"])
    assert query_one(s.port, "select 'verbose'") == "verbose"
    wait_for(lambda: "DEBUG" in s.log_text(), 5, "a DEBUG line")
    plain = sluice()
    assert query_one(plain.port) == 1
    assert "DEBUG" not in plain.log_text(), tail(plain.log_text())


def test_daemon(sluice):
    d, ini, port = sluice.write_config(ini_main={"logfile": "daemon.log", "pidfile": "sluice.pid"})
    pidfile = Path(d) / "sluice.pid"
    r = subprocess.run([conftest.default_bin(), "--daemon", str(ini)], cwd=str(d),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    pid = None
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "the pidfile")
        pid = int(pidfile.read_text())
        wait_for(lambda: conftest.port_open("127.0.0.1", port), 10, "the daemon to listen")
        assert query_one(port, "select 'daemon'") == "daemon"
        # In the background: a session of its own, no longer the test's.
        assert os.getsid(pid) != os.getsid(0)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the daemon to exit")
        pid = None
        assert not pidfile.exists(), "pidfile left behind"
    finally:
        if pid is not None and Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    log = (Path(d) / "daemon.log").read_text()
    assert "sluice stopped" in log, log
    for pat in conftest.SANITIZER_PATTERNS:
        assert pat not in log, log


@pytest.mark.parametrize("flag", ["--reboot", "--restart"])
def test_online_restart_long_names(sluice, flag):
    s = sluice()
    assert query_one(s.port, "select 'before'") == "before"
    logpath = Path(s.dir) / "new.log"
    with open(logpath, "wb") as logf:
        new = subprocess.Popen([conftest.default_bin(), flag, str(s.ini)], cwd=str(s.dir),
                               stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                               start_new_session=True, preexec_fn=conftest._die_with_parent)
    conftest._live_procs.add(new)
    try:
        # The old process has no client: it hands over and exits.
        rc = s.proc.wait(timeout=20)
        s.stopped = True
        conftest._live_procs.discard(s.proc)
        assert rc == 0, tail(s.log_text())
        assert new.poll() is None, tail(logpath.read_text())
        # The old process may exit before the new one writes its line.
        deadline = time.monotonic() + 10
        while "taking over from the running process" not in logpath.read_text():
            assert time.monotonic() < deadline, tail(logpath.read_text())
            time.sleep(0.05)
        assert query_one(s.port, "select 'after'") == "after"
    finally:
        if new.poll() is None:
            new.send_signal(signal.SIGTERM)
            try:
                new.wait(timeout=10)
            except subprocess.TimeoutExpired:
                new.kill()
                new.wait()
        conftest._live_procs.discard(new)
    assert new.returncode == 0, tail(logpath.read_text())
    log = logpath.read_text()
    for pat in conftest.SANITIZER_PATTERNS:
        assert pat not in log, tail(log)
