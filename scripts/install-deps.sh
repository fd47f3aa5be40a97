#!/usr/bin/env bash
# Install the Debian packages sluice needs to build and test, only when missing.
# Quiet and idempotent when everything is present. As non-root it only
# reports what is missing (exit 1 if anything is).
set -euo pipefail

required=(
	gcc make libc6-dev libssl-dev pkg-config
	libpg-query-dev libprotobuf-c-dev
	postgresql-15 postgresql-client-15 postgresql-contrib
	pgbouncer
	python3-pytest python3-pytest-xdist python3-psycopg python3-prometheus-client
	procps util-linux iproute2 curl
	libpostgresql-jdbc-java libmariadb-java
	clang libbpf-dev bpftool
	mariadb-server mariadb-client python3-pymysql sysbench python3-mysqldb python3-cryptography
	systemd groff-base
	debhelper dpkg-dev lintian adduser
)
# The JDBC end-to-end test compiles a small Java program: a JDK is needed
# unless one is already on PATH.
command -v javac >/dev/null 2>&1 || required+=(default-jdk-headless)
# Installed when the archive has it; the e2e suite falls back to its own
# SIGALRM-based timeout otherwise.
optional=(python3-pytest-timeout)

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

in_archive() {
	local cand
	cand=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
	[ -n "$cand" ] && [ "$cand" != "(none)" ]
}

missing=()
for p in "${required[@]}"; do
	installed "$p" || missing+=("$p")
done
missing_opt=()
for p in "${optional[@]}"; do
	installed "$p" || missing_opt+=("$p")
done

if [ ${#missing[@]} -eq 0 ] && [ ${#missing_opt[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	if [ ${#missing[@]} -ne 0 ]; then
		echo "install-deps: missing Debian packages: ${missing[*]}" >&2
		echo "install-deps: run as root: apt-get install -y --no-install-recommends ${missing[*]} ${missing_opt[*]}" >&2
		exit 1
	fi
	echo "install-deps: optional package(s) not installed: ${missing_opt[*]} (continuing)" >&2
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing missing packages:" ${missing[@]+"${missing[@]}"} ${missing_opt[@]+"${missing_opt[@]}"} >&2
apt-get update -qq >/dev/null

# Optional packages only if the (now refreshed) archive knows them.
to_install=(${missing[@]+"${missing[@]}"})
for p in ${missing_opt[@]+"${missing_opt[@]}"}; do
	if in_archive "$p"; then
		to_install+=("$p")
	else
		echo "install-deps: $p not available in this archive (skipped)" >&2
	fi
done

if [ ${#to_install[@]} -ne 0 ]; then
	apt-get install -y -qq --no-install-recommends "${to_install[@]}" >/dev/null 2> >(grep -v "^debconf: delaying" >&2 || true)
fi

still=()
for p in ${missing[@]+"${missing[@]}"}; do
	installed "$p" || still+=("$p")
done
if [ ${#still[@]} -ne 0 ]; then
	echo "install-deps: failed to install: ${still[*]}" >&2
	exit 1
fi
echo "install-deps: done" >&2
