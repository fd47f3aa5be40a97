# bench/lib.sh: what the benchmark scripts share (sourced, not run):
# `bench_init NAME` sets SLUICE_BIN, PGBIN, PGBENCH, PY and OUT, checks
# that PostgreSQL and sluice are there, and makes the work directory WORK
# (/tmp/sluice-bench-NAME.*, readable by postgres); die and note print as
# the script.

SLUICE_BIN=${SLUICE_BIN:-$PWD/build/sluice}
PGBIN=/usr/lib/postgresql/15/bin
PGBENCH=$PGBIN/pgbench
PY=/usr/bin/python3
OUT=build/bench

IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1
# Run a command as the postgres user when root (PostgreSQL refuses root).
as_pg() { if [ $IS_ROOT -eq 1 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# A TCP port free on 127.0.0.1 now.
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT SECONDS: until something accepts on 127.0.0.1:PORT.
wait_port() {
	local port=$1 secs=$2 i
	for ((i = 0; i < secs * 10; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# proc_ticks PID: the process's CPU time so far (user + system), in clock ticks.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

die() { echo "bench/$BENCH_NAME.sh: $*" >&2; exit 1; }
note() { echo "$BENCH_NAME: $*" >&2; }
bench_init() {
	BENCH_NAME=$1
	mkdir -p "$OUT"
	[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 not found in $PGBIN (scripts/install-deps.sh)"
	[ -x "$SLUICE_BIN" ] || die "$SLUICE_BIN not built (make all)"
	WORK=$(mktemp -d "/tmp/sluice-bench-$BENCH_NAME.XXXXXX")
	chmod 755 "$WORK"
	if [ $IS_ROOT -eq 1 ]; then chown postgres: "$WORK"; fi
}

# bench_pg_start NAME PORT [LINE...]: initdb $WORK/NAME (owned by postgres)
# and start it on 127.0.0.1:PORT, its socket in $WORK, its log in
# $WORK/NAME.log: md5 logins over TCP, postgres trusted locally (also for
# replication), fsync off, shared_buffers 128MB, then the LINEs
# (postgresql.conf settings).
bench_pg_start() {
	local d=$WORK/$1 port=$2 line
	shift 2
	as_pg "$PGBIN/initdb" -D "$d" -U postgres -A trust -E UTF8 --locale=C --no-sync \
		>"$WORK/initdb-${d##*/}.log" 2>&1 || { cat "$WORK/initdb-${d##*/}.log" >&2; die "initdb failed"; }
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$WORK'"
		echo "password_encryption = md5"
		echo "fsync = off"
		echo "shared_buffers = 128MB"
		for line in "$@"; do echo "$line"; done
	} >>"$d/postgresql.conf"
	printf 'local all postgres trust\nlocal replication postgres trust\nhost all all 127.0.0.1/32 md5\n' \
		>"$d/pg_hba.conf"
	as_pg "$PGBIN/pg_ctl" -D "$d" -l "$WORK/${d##*/}.log" -w -t 60 start >/dev/null ||
		{ cat "$WORK/${d##*/}.log" >&2; die "PostgreSQL (${d##*/}) did not start"; }
}

# bench_start_sluice PORT [LINE...]: append the [sluice] section (user
# bench, password bench; transaction pooling, pool size 20; the LINEs
# after) to $WORK/sluice.ini, whose [databases] the caller wrote, and start
# sluice on 127.0.0.1:PORT (SPID; its log in $WORK/sluice.log).
bench_start_sluice() {
	local port=$1 line
	shift
	{
		echo "[sluice]"
		echo "listen_addr = 127.0.0.1"
		echo "listen_port = $port"
		echo "unix_socket_dir ="
		echo "auth_type = md5"
		echo "auth_file = $WORK/userlist.txt"
		echo "admin_users = bench"
		echo "pool_mode = transaction"
		echo "default_pool_size = 20"
		echo "max_client_conn = 500"
		for line in "$@"; do echo "$line"; done
	} >>"$WORK/sluice.ini"
	echo '"bench" "bench"' >"$WORK/userlist.txt"
	"$SLUICE_BIN" "$WORK/sluice.ini" >"$WORK/sluice.log" 2>&1 &
	SPID=$!
	wait_port "$port" 10 || { cat "$WORK/sluice.log" >&2; die "sluice did not start"; }
}
