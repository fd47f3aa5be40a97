"""The Debian package (issue 22): make deb, dpkg -i, serve, dpkg --purge.

Slow (it builds the package from a copy of the tree, about a minute) and it
installs into the machine: it runs only when SLUICE_PACKAGE_TEST=1 (make
test's package-test step), as root, and not where a package called sluice
is installed already.

Checked here:
- `make deb` succeeds, and lintian (run by it) reports no error or
  warning that debian/sluice.lintian-overrides does not explain;
- `dpkg -i` installs: the binary runs, the man pages are found by man, the
  configuration and user list are conffiles, the user list is readable by
  the sluice group only, the sluice system user exists with no login shell,
  /run/sluice belongs to it, systemd-analyze verify accepts the units;
- the packaged binary, run as the sluice user as the unit runs it, with the
  packaged configuration adapted to the test's PostgreSQL (the database
  line, the port, the user list), tells READY=1 on NOTIFY_SOCKET and serves
  a query over TCP and over the unix socket in /run/sluice;
- `dpkg --purge` leaves none of the package's files, no /etc/sluice,
  /var/log/sluice or /run/sluice, and no sluice user or group.
"""

import os
import pwd
import grp
import re
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

import conftest
from conftest import REPO, tail

pytestmark = [pytest.mark.sluice_only, pytest.mark.timeout(400)]


def sh(cmd, timeout=120, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{tail(r.stdout, 80)}"
    return r


def installed(pkg):
    r = sh(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", pkg], check=False)
    return r.returncode == 0 and r.stdout.strip() not in ("", "un", "pn")


def version():
    text = (REPO / "src" / "core" / "version.h").read_text()
    return re.search(r'#define SLUICE_VERSION "([^"]+)"', text).group(1)


@pytest.fixture
def package_slot():
    if os.environ.get("SLUICE_PACKAGE_TEST") != "1":
        pytest.skip("set SLUICE_PACKAGE_TEST=1 to build and install the package (make package-test)")
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root")
    if installed("sluice"):
        pytest.skip("a sluice package is installed on this machine; not replacing it")
    yield
    if installed("sluice"):
        sh(["dpkg", "--purge", "sluice"], check=False)


def test_build_install_serve_purge(pg, package_slot, tmp_path):
    r = sh(["make", "-C", str(REPO), "deb"], timeout=300)
    lintian = [line for line in r.stdout.splitlines() if re.match(r"[EW]: ", line)]
    assert not lintian, "\n".join(lintian)
    debs = list((REPO / "build" / "deb").glob(f"sluice_{version()}_*.deb"))
    assert len(debs) == 1, debs

    sh(["dpkg", "-i", str(debs[0])])
    files = [f for f in sh(["dpkg", "-L", "sluice"]).stdout.splitlines() if f.strip()]
    proc = None
    try:
        r = sh(["/usr/bin/sluice", "--version"])
        assert r.stdout.startswith(f"sluice {version()}\n"), r.stdout
        assert sh(["man", "-w", "sluice"]).stdout.strip().endswith("man1/sluice.1.gz")
        assert sh(["man", "-w", "5", "sluice.ini"]).stdout.strip().endswith("man5/sluice.ini.5.gz")
        conffiles = sh(["dpkg-query", "-W", "-f=${Conffiles}", "sluice"]).stdout
        for f in ("/etc/sluice/sluice.ini", "/etc/sluice/userlist.txt", "/etc/logrotate.d/sluice"):
            assert f in conffiles, conffiles
        user = pwd.getpwnam("sluice")
        assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false"), user
        assert user.pw_uid < 1000, user
        st = os.stat("/etc/sluice/userlist.txt")
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == grp.getgrnam("sluice").gr_gid, st
        st = os.stat("/run/sluice")
        assert st.st_uid == user.pw_uid, st
        r = sh(["systemd-analyze", "verify", "/lib/systemd/system/sluice.service",
                "/lib/systemd/system/sluice.socket"], check=False)
        assert r.returncode == 0 and not r.stdout.strip(), r.stdout

        # The packaged configuration, pointed at the test's PostgreSQL.
        port = conftest.free_port()
        ini = Path("/etc/sluice/sluice.ini").read_text()
        ini, n = re.subn(r"(?m)^\* = .*$", f"sluicedb = {pg.db_line('sluicedb')}", ini)
        assert n == 1, ini
        ini, n = re.subn(r"(?m)^listen_port = .*$", f"listen_port = {port}", ini)
        assert n == 1, ini
        Path("/etc/sluice/sluice.ini").write_text(ini)
        with open("/etc/sluice/userlist.txt", "a") as f:
            f.write('"sluice_test" "test_pw"\n')

        # As the unit runs it: user sluice, and a NOTIFY_SOCKET.
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f"sluice-package-test-{os.getpid()}"
        notify.bind("\0" + name)
        notify.settimeout(15)
        log = open(tmp_path / "packaged.log", "wb")
        proc = subprocess.Popen(["setpriv", "--reuid=sluice", "--regid=sluice", "--init-groups",
                                 "--no-new-privs", "/usr/bin/sluice", "/etc/sluice/sluice.ini"],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd="/",
                                env=dict(PATH="/usr/bin:/bin", NOTIFY_SOCKET="@" + name),
                                start_new_session=True, preexec_fn=conftest._die_with_parent)
        log.close()
        conftest._live_procs.add(proc)
        try:
            msg = notify.recv(4096).decode()
        except socket.timeout:
            msg = ""
        finally:
            notify.close()
        assert "READY=1" in msg, (msg, (tmp_path / "packaged.log").read_text())
        with psycopg.connect(host="127.0.0.1", port=port, dbname="sluicedb", user="sluice_test",
                             password="test_pw", autocommit=True, connect_timeout=10) as c:
            assert c.execute("select current_user, 'packaged'").fetchone() == ("sluice_test", "packaged")
        with psycopg.connect(host="/run/sluice", port=port, dbname="sluicedb", user="sluice_test",
                             password="test_pw", autocommit=True, connect_timeout=10) as c:
            assert c.execute("select 'unix'").fetchone() == ("unix",)
        assert sh(["stat", "-c", "%U", f"/run/sluice/.s.PGSQL.{port}"]).stdout.strip() == "sluice"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, (tmp_path / "packaged.log").read_text()
    finally:
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            conftest._live_procs.discard(proc)

    sh(["dpkg", "--purge", "sluice"])
    assert not installed("sluice")
    left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
    assert not left, left
    for d in ("/etc/sluice", "/var/log/sluice", "/run/sluice", "/usr/share/doc/sluice"):
        assert not os.path.lexists(d), d
    with pytest.raises(KeyError):
        pwd.getpwnam("sluice")
    with pytest.raises(KeyError):
        grp.getgrnam("sluice")
