#!/usr/bin/env bash
# The layout's rule (README, "Source layout"): src/core includes only
# src/core headers, plus bypass.h (the kernel fast path's switchable
# interface) and, in main.c alone, the protocols' tables (pg_ops.h), which
# it hands to the core at start-up. src/pg and src/bpf include what they
# need. The eBPF program includes only src/bpf and core/stats_buckets.h.
# Prints each include that breaks the rule; exit 1 if any does.
set -uo pipefail
cd "$(dirname "$0")/.."

bad=0
for f in src/core/*.[ch]; do
	while IFS= read -r inc; do
		h=${inc#*\"}
		h=${h%\"*}
		[ -f "src/core/$h" ] && continue
		[ "$h" = bypass.h ] && continue
		[ "$f" = src/core/main.c ] && { [ "$h" = pg_ops.h ] || [ "$h" = my_ops.h ]; } && continue
		echo "check-layers: $f includes \"$h\", which is not a core header" >&2
		bad=1
	done < <(grep -E '^#include "' "$f")
done
while IFS= read -r inc; do
	h=${inc#*\"}
	h=${h%\"*}
	case $h in
	../core/stats_buckets.h) ;;
	*/*) echo "check-layers: src/bpf/bypass.bpf.c includes \"$h\"" >&2; bad=1 ;;
	*) [ -f "src/bpf/$h" ] || { echo "check-layers: src/bpf/bypass.bpf.c includes \"$h\"" >&2; bad=1; } ;;
	esac
done < <(grep -hE '^#include "' src/bpf/bypass.bpf.c src/bpf/bypass_shared.h src/bpf/pgframe.h)
[ $bad = 0 ] && echo "check-layers: core includes only core"
exit $bad
