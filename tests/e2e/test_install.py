"""`make install` (issue 22): PREFIX and DESTDIR.

Checked here, each in a temporary directory (no root needed):
- with DESTDIR and the default PREFIX (/usr/local), exactly the expected
  files arrive: the binary (the one `make` built, byte for byte), sluice(1),
  sluice.ini(5), the example configuration and user list, the two systemd
  units; the binary runs (--version) and the example configuration passes
  its own check (sluice starts on it and serves the admin console);
- both man pages format with no groff warning;
- with PREFIX alone, the service's ExecStart= names PREFIX/bin/sluice and
  systemd-analyze verify finds nothing wrong with the installed units.

Runs against the plain build only (make test runs the suite again under
ASan, where it would only repeat itself).
"""

import filecmp
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import conftest
from conftest import REPO

pytestmark = [pytest.mark.sluice_only, pytest.mark.timeout(120)]

EXPECTED = {
    "bin/sluice",
    "share/man/man1/sluice.1",
    "share/man/man5/sluice.ini.5",
    "share/doc/sluice/examples/sluice.ini",
    "share/doc/sluice/examples/userlist.txt",
    "lib/systemd/system/sluice.service",
    "lib/systemd/system/sluice.socket",
}


def built_binary():
    b = Path(conftest.default_bin()).resolve()
    if b.parent != (REPO / "build").resolve() or b.name not in ("sluice", "sluice-nobpf"):
        pytest.skip(f"make install installs the plain build; SLUICE_BIN is {b}")
    return b


def make_install(**vars):
    b = built_binary()
    args = [f"{k}={v}" for k, v in vars.items()]
    if b.name == "sluice-nobpf":
        args.append("BPF=0")
    r = subprocess.run(["make", "-s", "-C", str(REPO), "install"] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=100)
    assert r.returncode == 0, r.stdout
    return b


def files_under(root):
    return {str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file()}


def test_destdir_default_prefix(tmp_path):
    dest = tmp_path / "root"
    b = make_install(DESTDIR=dest)
    prefix = dest / "usr" / "local"
    assert files_under(dest) == {f"usr/local/{f}" for f in EXPECTED}
    installed = prefix / "bin" / "sluice"
    assert filecmp.cmp(installed, b, shallow=False), "installed binary differs from the build"
    assert os.stat(installed).st_mode & 0o777 == 0o755
    for f in EXPECTED - {"bin/sluice"}:
        assert os.stat(prefix / f).st_mode & 0o777 == 0o644, f
    r = subprocess.run([str(installed), "--version"], stdout=subprocess.PIPE, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("sluice "), r.stdout
    unit = (prefix / "lib/systemd/system/sluice.service").read_text()
    assert "ExecStart=/usr/local/bin/sluice /etc/sluice/sluice.ini" in unit

    # The installed example configuration: sluice accepts it (with its
    # ports and paths moved to the test's) and answers the admin console.
    ini = (prefix / "share/doc/sluice/examples/sluice.ini").read_text()
    port = conftest.free_port()
    ini = re.sub(r"(?m)^listen_port = .*$", f"listen_port = {port}", ini)
    ini = re.sub(r"(?m)^unix_socket_dir = .*$", f"unix_socket_dir = {tmp_path}", ini)
    ini = re.sub(r"(?m)^auth_file = .*$",
                 f"auth_file = {prefix / 'share/doc/sluice/examples/userlist.txt'}", ini)
    (tmp_path / "example.ini").write_text(ini)
    log = open(tmp_path / "example.log", "wb")
    p = subprocess.Popen([str(installed), str(tmp_path / "example.ini")], stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL, cwd=str(tmp_path), start_new_session=True,
                         preexec_fn=conftest._die_with_parent)
    log.close()
    conftest._live_procs.add(p)
    try:
        deadline = time.monotonic() + 10
        while not conftest.port_open("127.0.0.1", port):
            assert p.poll() is None, (tmp_path / "example.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "example.log").read_text()
            time.sleep(0.05)
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=port, dbname="sluice", user="demo",
                             password="demo", autocommit=True, connect_timeout=10) as c:
            assert c.execute("SHOW VERSION").fetchone()[0].startswith("sluice ")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        conftest._live_procs.discard(p)
    text = (tmp_path / "example.log").read_text()
    assert p.returncode == 0, text
    assert "WARNING" not in text, text


@pytest.mark.parametrize("page", ["sluice.1", "sluice.ini.5"])
def test_man_pages_format_cleanly(page):
    r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", str(REPO / "man" / page)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30,
                       env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert r.returncode == 0 and r.stdout == "", r.stdout


def test_prefix_and_units(tmp_path):
    prefix = tmp_path / "opt"
    make_install(PREFIX=prefix)
    assert files_under(prefix) == EXPECTED
    units = prefix / "lib/systemd/system"
    assert f"ExecStart={prefix}/bin/sluice /etc/sluice/sluice.ini" in (units / "sluice.service").read_text()
    r = subprocess.run(["systemd-analyze", "verify", str(units / "sluice.service"), str(units / "sluice.socket")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    # The Documentation= man pages are not installed system-wide here.
    problems = [line for line in r.stdout.splitlines() if "Command 'man " not in line]
    assert not problems, r.stdout
