#!/usr/bin/env bash
# `make run`: start a throwaway PostgreSQL 15 and sluice in front of it (with
# examples/sluice.ini, ports and paths rewritten), print how to connect, and
# stay in the foreground until Ctrl-C / SIGTERM; everything is removed on exit.
# With stdin not a terminal and SLUICE_DEMO_SECONDS set, it runs that many
# seconds and then cleans up (smoke test).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
PGBIN=/usr/lib/postgresql/15/bin
SLUICE_BIN="${SLUICE_BIN:-$REPO/build/sluice}"
PY=/usr/bin/python3
WANT_PORT=6432

die() { echo "run-demo: $*" >&2; exit 1; }
[ -x "$SLUICE_BIN" ] || die "sluice binary not found: $SLUICE_BIN (run make first)"
[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 not found in $PGBIN (run scripts/install-deps.sh)"

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_free() {
	"$PY" - "$1" <<'PYEOF'
import socket, sys
s = socket.socket()
try:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PYEOF
}

any_free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

DEMO_DIR=$(mktemp -d /tmp/sluice-demo.XXXXXX)
chmod 755 "$DEMO_DIR"
PGDATA_DIR="$DEMO_DIR/pgdata"
SLUICE_PID=
PG_STARTED=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	echo
	echo "run-demo: stopping"
	if [ -n "$SLUICE_PID" ] && kill -0 "$SLUICE_PID" 2>/dev/null; then
		kill -TERM "$SLUICE_PID" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$SLUICE_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$SLUICE_PID" 2>/dev/null || true
		wait "$SLUICE_PID" 2>/dev/null || true
	fi
	if [ -n "$PG_STARTED" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
	fi
	rm -rf "$DEMO_DIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- PostgreSQL
PG_PORT=$(any_free_port)
[ "$(id -u)" -eq 0 ] && chown postgres: "$DEMO_DIR"
echo "run-demo: starting PostgreSQL 15 on 127.0.0.1:$PG_PORT"
as_pg "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$DEMO_DIR/initdb.log" 2>&1 ||
	{ cat "$DEMO_DIR/initdb.log" >&2; die "initdb failed"; }
cat >>"$PGDATA_DIR/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DEMO_DIR'
password_encryption = 'scram-sha-256'
max_connections = 100
fsync = off
CONF
cat >"$PGDATA_DIR/pg_hba.conf" <<HBA
local all postgres trust
host all all 127.0.0.1/32 scram-sha-256
HBA
as_pg "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$DEMO_DIR/postgres.log" -w -t 60 start >/dev/null ||
	{ cat "$DEMO_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
PG_STARTED=1
as_pg "$PGBIN/psql" -X -q -h "$DEMO_DIR" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 <<SQL >/dev/null
CREATE ROLE demo LOGIN PASSWORD 'demo';
CREATE DATABASE demo OWNER demo;
SQL

# --- sluice config: examples/sluice.ini with ports and paths rewritten
if port_free "$WANT_PORT"; then SL_PORT=$WANT_PORT; else SL_PORT=$(any_free_port); fi
cp "$REPO/examples/userlist.txt" "$DEMO_DIR/userlist.txt"
INI="$DEMO_DIR/sluice.ini"
"$PY" - "$REPO/examples/sluice.ini" "$INI" "$PG_PORT" "$SL_PORT" "$DEMO_DIR" <<'PYEOF'
import re, sys
src, dst, pg_port, sl_port, tmp = sys.argv[1:]
out, section = [], ""
for line in open(src):
    s = line.strip()
    m = re.match(r"\[(.*)\]$", s)
    if m:
        section = m.group(1)
    elif s and s[0] not in ";#" and "=" in s:
        key, val = (x.strip() for x in s.split("=", 1))
        if section == "databases":
            val = re.sub(r"\bport=\d+", f"port={pg_port}", val)
            val = re.sub(r"\bhost=\S+", "host=127.0.0.1", val)
            line = f"{key} = {val}\n"
        elif key == "listen_port":
            line = f"listen_port = {sl_port}\n"
        elif key == "unix_socket_dir":
            line = f"unix_socket_dir = {tmp}\n"
        elif key == "auth_file":
            line = f"auth_file = {tmp}/userlist.txt\n"
        elif key in ("logfile", "pidfile"):
            line = ";" + line
    out.append(line)
open(dst, "w").write("".join(out))
PYEOF

echo "run-demo: starting sluice on 127.0.0.1:$SL_PORT ($SLUICE_BIN $INI)"
"$SLUICE_BIN" "$INI" </dev/null 2> >(tee "$DEMO_DIR/sluice.log" >&2) &
SLUICE_PID=$!

for _ in $(seq 100); do
	kill -0 "$SLUICE_PID" 2>/dev/null || die "sluice exited during start-up (see messages above)"
	if (exec 3<>"/dev/tcp/127.0.0.1/$SL_PORT") 2>/dev/null; then break; fi
	sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$SL_PORT") 2>/dev/null || die "sluice is not accepting connections on port $SL_PORT"

CONNSTR="host=127.0.0.1 port=$SL_PORT dbname=demo user=demo password=demo"
if ! out=$(PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -At -d "$CONNSTR" -c "select 'ok: ' || version()" 2>&1); then
	echo "$out" >&2
	die "a test query through sluice failed"
fi
echo "run-demo: $out"

cat <<MSG

  sluice is running in front of a throwaway PostgreSQL 15.
  Connect with:

    psql "$CONNSTR"

  The admin console (SHOW POOLS, SHOW STATS, PAUSE, RELOAD, ...):

    psql "${CONNSTR/dbname=demo/dbname=sluice}"

  (pool_mode and other settings: $INI)
  Press Ctrl-C to stop; everything is removed on exit.

MSG

if [ ! -t 0 ] && [ -n "${SLUICE_DEMO_SECONDS:-}" ]; then
	sleep "$SLUICE_DEMO_SECONDS" &
	wait $! || true
	kill -0 "$SLUICE_PID" 2>/dev/null || die "sluice exited while the demo was running"
	exit 0
fi
wait "$SLUICE_PID" || die "sluice exited with status $?"
die "sluice exited"
