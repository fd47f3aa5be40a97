"""A MariaDB primary and a replica of it for the routing tests
(test_mysql_routing.py): two `mariadbd --no-defaults` servers
(mysql_helpers.MariaDB) with binary logs, server ids 1 and 2 and GTID
replication (MASTER_USE_GTID = slave_pos); the replica is read_only, as
sluice's role check expects of a standby."""

import time

from mysql_helpers import MariaDB

REPL = ["--log-bin=binlog", "--binlog-format=ROW", "--log-slave-updates=1"]


class ReplicaPair:
    def __init__(self, primary_port, replica_port):
        self.primary = MariaDB(primary_port, REPL + ["--server-id=1"])
        self.replica = MariaDB(replica_port, REPL + ["--server-id=2", "--read-only=1"])

    def start(self):
        self.primary.start()
        # The replica gets the test user and databases by replication,
        # from the primary's first transaction on.
        self.replica.start(setup=False)
        self.replica.sql(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={self.primary.port}, "
                         "MASTER_USER='sluice_test', MASTER_PASSWORD='test_pw', "
                         "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE;")
        self.wait_caught_up()

    def wait_caught_up(self, timeout=30):
        """Until the replica applied everything the primary has logged."""
        deadline = time.monotonic() + timeout
        want = self.primary.sql("SELECT @@global.gtid_binlog_pos").strip()
        while True:
            got = self.replica.sql("SELECT @@global.gtid_slave_pos").strip()
            if got == want:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica stuck at {got!r}, primary at {want!r}:\n"
                                   + self.replica.sql("SHOW SLAVE STATUS\\G"))
            time.sleep(0.1)

    def db_line(self, dbname="mydb", **extra):
        parts = [f"host=127.0.0.1,127.0.0.1", f"port={self.primary.port},{self.replica.port}",
                 f"dbname={dbname}", "protocol=mysql"]
        parts += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)

    def stop(self):
        self.replica.stop()
        self.primary.stop()
