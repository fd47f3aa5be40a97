"""A throwaway MariaDB server for the MySQL tests (mariadb-install-db +
mariadbd --no-defaults, as root, on a free port), and a helper that starts
sluice with a MySQL listener in front of it."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"
CLIENT = "/usr/bin/mariadb"


class MariaDB:
    host = "127.0.0.1"

    def __init__(self, port, extra_args=()):
        self.extra_args = list(extra_args)  # more mariadbd options (test_mysql_tls.py: --ssl-cert ...)
        self.dir = Path(tempfile.mkdtemp(prefix="sluice-maria-"))
        self.data = self.dir / "data"
        self.sock = str(self.dir / "mysqld.sock")
        self.port = port
        self.proc = None

    def start(self, setup=True):
        """setup=False: no test user and databases (a replica gets them
        from its primary, mysql_repl_helpers.py)."""
        r = subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.data}", "--user=root",
                            "--auth-root-authentication-method=normal", "--skip-test-db",
                            f"--tmpdir={self.dir}"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{r.stdout[-3000:]}")
        log = open(self.dir / "mariadbd.log", "wb")
        self.proc = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.data}", f"--socket={self.sock}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root",
             f"--pid-file={self.dir / 'mariadbd.pid'}", "--skip-log-bin",
             "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M", "--max-connections=300",
             "--skip-name-resolve", f"--tmpdir={self.dir}"] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mariadbd did not start:\n" + self.log_tail())
            time.sleep(0.1)
        if setup:
            self.setup()

    def setup(self):
        self.sql("CREATE USER 'sluice_test'@'%' IDENTIFIED BY 'test_pw';"
                 "CREATE DATABASE mydb; CREATE DATABASE otherdb;"
                 "GRANT ALL ON *.* TO 'sluice_test'@'%';")

    def log_tail(self):
        p = self.dir / "mariadbd.log"
        return p.read_text(errors="replace")[-3000:] if p.exists() else ""

    def sql(self, text, db=None):
        """Run SQL as root over the unix socket; returns stdout (tab separated)."""
        cmd = [CLIENT, "--no-defaults", f"--socket={self.sock}", "-uroot", "-N", "-B", "-e", text]
        if db:
            cmd.append(db)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb: {r.stdout}")
        return r.stdout

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def db_line(self, dbname="mydb", **extra):
        parts = [f"host={self.host}", f"port={self.port}", f"dbname={dbname}", "protocol=mysql"]
        parts += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)
