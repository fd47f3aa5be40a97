/*
 * stats_buckets.h - the bounds of the duration histograms (SHOW STATS,
 * /metrics), in one place for sluice (stats.c) and the kernel fast path
 * (bpf/bypass.bpf.c), which counts the transactions it carries into the
 * same buckets. Plain macros: the eBPF build has no libc.
 */
#ifndef SLUICE_STATS_BUCKETS_H
#define SLUICE_STATS_BUCKETS_H

/* Buckets per histogram; the last (+Inf) has no bound. */
#define STATS_BUCKETS 12
/* Upper bounds of the other buckets, in microseconds. */
#define STATS_BUCKET_BOUNDS_US \
	100, 500, 1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000, 10000000

#endif
