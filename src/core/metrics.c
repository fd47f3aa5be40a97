/*
 * metrics.c - see metrics.h.
 *
 * The HTTP side is the least that Prometheus needs, and no more: one
 * request per connection, the request head only (no body is read), no
 * keep-alive, no chunked encoding. Every connection is bounded: the client
 * has METRICS_IO_MS to send a head of at most 8 KiB, then METRICS_SEND_MS
 * to take the answer and never more than METRICS_IO_MS without taking any
 * of it (SO_RCVTIMEO and SO_SNDTIMEO say the same to any call that would
 * still block). metrics_stop interrupts any of these waits. The
 * thread serves one connection at a time, so a client that connects and
 * sends nothing delays the next scrape by at most METRICS_IO_MS; that is
 * the known price of staying this simple.
 *
 * Answers: GET /metrics (any query string) -> 200; GET of another path ->
 * 404; another method -> 405; a head that is not HTTP/1.x, too long, or
 * has a broken header line -> 400. A client that goes quiet or closes
 * before its head is complete gets no answer.
 *
 * The body (metrics_render) is built in a growing heap buffer from
 * pool_foreach / pool_get_counts / pool_get_totals and the process
 * counters. Pools are merged by (database, user): after a RELOAD that
 * changed a database's server settings, the old (stale) pool and its
 * replacement coexist until the old one's connections are gone, and one
 * label set must never appear twice in a scrape. Merging also keeps the
 * counters monotonic when the old pool goes quiet.
 *
 * Must not: touch a worker's connections, or take more than one pool lock
 * at a time (pool_get_counts takes each briefly).
 */
#include "metrics.h"
#include "bypass.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "balance.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "loop.h"
#include "mirror.h"
#include "pool.h"
#include "route.h"
#include "runtime.h"
#include "stats.h"
#include "worker.h"

#define METRICS_HEAD_MAX 8192   /* bytes of request head accepted */
#define METRICS_IO_MS 2000      /* to receive the head; longest stall of a send */
#define METRICS_SEND_MS 10000   /* to send the whole answer */
#define METRICS_BACKLOG 16
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The running endpoint. Written only by metrics_start / metrics_stop (the
 * main thread); the metrics thread reads the fds while it runs. */
static struct {
	int listen_fd;              /* listening TCP socket, -1 = not started */
	int stop_rd;                /* stop pipe, read end: polled by the thread */
	int stop_wr;                /* stop pipe, write end: metrics_stop writes a byte */
	pthread_t thread;           /* the serving thread, valid while running */
	bool running;               /* thread started and not joined yet */
} ep = { .listen_fd = -1, .stop_rd = -1, .stop_wr = -1 };

/* ---- output buffer ---- */

/* A growing, NUL-terminated text buffer with a sticky error flag: callers
 * append without checking, and the flag is looked at once at the end. */
struct outbuf {
	char *data;                 /* heap, owned; NUL-terminated when !failed */
	size_t len;                 /* bytes used, not counting the NUL */
	size_t cap;                 /* bytes allocated */
	bool failed;                /* an allocation failed: the text is incomplete */
};

/* Make room for extra more bytes plus the NUL. */
static bool out_reserve(struct outbuf *b, size_t extra)
{
	if (b->failed)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *d = realloc(b->data, cap);
	if (!d) {
		b->failed = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

static void out_mem(struct outbuf *b, const char *s, size_t n)
{
	if (!out_reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void out_str(struct outbuf *b, const char *s)
{
	out_mem(b, s, strlen(s));
}

static void out_printf(struct outbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct outbuf *b, const char *fmt, ...)
{
	if (!out_reserve(b, 64))
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		if (!out_reserve(b, (size_t)n))
			return;
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* A label value, escaped as the text format requires: backslash, double
 * quote and line feed get a backslash. */
static void out_label_value(struct outbuf *b, const char *v)
{
	for (const char *s = v; *s; s++) {
		switch (*s) {
		case '\\': out_mem(b, "\\\\", 2); break;
		case '"':  out_mem(b, "\\\"", 2); break;
		case '\n': out_mem(b, "\\n", 2); break;
		default:   out_mem(b, s, 1); break;
		}
	}
}

/* Microseconds as seconds, exactly (no binary floating point on the way). */
static void out_seconds(struct outbuf *b, uint64_t us)
{
	out_printf(b, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

/* The HELP and TYPE lines of a family; called once per family, before
 * its samples. */
static void out_family(struct outbuf *b, const char *name, const char *type, const char *help)
{
	out_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* ---- per-pool data ---- */

/* One (database, user) with the numbers of every pool that has those
 * names (a stale pool and its replacement). */
struct metrics_pool {
	char db[64];                /* database name clients use */
	char user[64];              /* client user name */
	struct pool_counts counts;  /* summed; maxwait_us is the largest */
	struct stats_totals totals; /* summed over pools and workers */
};

/* What pool_foreach collects. */
struct pool_set {
	struct metrics_pool *v;     /* heap, owned; n used of cap */
	size_t n;                   /* entries used */
	size_t cap;                 /* entries allocated */
	bool failed;                /* out of memory: some pools are missing */
	int64_t now_us;             /* monotonic time of the scrape, for max wait */
};

static void collect_pool(struct pool *p, void *arg)
{
	struct pool_set *set = arg;
	if (set->failed)
		return;
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 16;
		struct metrics_pool *v = realloc(set->v, cap * sizeof(*v));
		if (!v) {
			set->failed = true;
			return;
		}
		set->v = v;
		set->cap = cap;
	}
	struct metrics_pool *m = &set->v[set->n++];
	/* The names are fixed when the pool is created. */
	snprintf(m->db, sizeof(m->db), "%s", p->db_name);
	snprintf(m->user, sizeof(m->user), "%s", p->user);
	pool_get_counts(p, set->now_us, &m->counts);
	if (m->counts.maxwait_us < 0)
		m->counts.maxwait_us = 0;
	pool_get_totals(p, &m->totals);
}

static int cmp_pool(const void *a, const void *b)
{
	const struct metrics_pool *x = a, *y = b;
	int c = strcmp(x->db, y->db);
	return c ? c : strcmp(x->user, y->user);
}

/* Sort by (database, user) and fold equal neighbours into one. */
static void merge_pools(struct pool_set *set)
{
	if (set->n < 2)
		return;
	qsort(set->v, set->n, sizeof(set->v[0]), cmp_pool);
	size_t out = 0;
	for (size_t i = 1; i < set->n; i++) {
		struct metrics_pool *a = &set->v[out], *m = &set->v[i];
		if (cmp_pool(a, m) != 0) {
			set->v[++out] = *m;
			continue;
		}
		a->counts.cl_active += m->counts.cl_active;
		a->counts.cl_waiting += m->counts.cl_waiting;
		a->counts.sv_active += m->counts.sv_active;
		a->counts.sv_idle += m->counts.sv_idle;
		a->counts.sv_login += m->counts.sv_login;
		if (m->counts.maxwait_us > a->counts.maxwait_us)
			a->counts.maxwait_us = m->counts.maxwait_us;
		a->counts.prepared += m->counts.prepared;
		a->counts.prepared_bytes += m->counts.prepared_bytes;
		stats_merge(&a->totals, &m->totals);
	}
	set->n = out + 1;
}

/* "name{database="..",user=".."" of a pool's sample; the caller adds
 * more labels (or none) and the closing brace. */
static void out_pool_labels(struct outbuf *b, const char *name, const struct metrics_pool *m)
{
	out_str(b, name);
	out_str(b, "{database=\"");
	out_label_value(b, m->db);
	out_str(b, "\",user=\"");
	out_label_value(b, m->user);
	out_str(b, "\"");
}

static void out_pool_u64(struct outbuf *b, const char *name, const struct metrics_pool *m, uint64_t v)
{
	out_pool_labels(b, name, m);
	out_printf(b, "} %" PRIu64 "\n", v);
}

static void out_pool_state(struct outbuf *b, const char *name, const struct metrics_pool *m,
			   const char *state, int v)
{
	out_pool_labels(b, name, m);
	out_printf(b, ",state=\"%s\"} %d\n", state, v < 0 ? 0 : v);
}

/* A duration histogram: cumulative buckets with le in seconds, +Inf, the
 * sum and the count. The buckets are loaded one by one while workers go
 * on counting, so _count is taken from the buckets (it always equals the
 * +Inf bucket) and may differ by a few from the matching _total counter
 * read a moment earlier. */
static void out_histogram(struct outbuf *b, const char *name, const struct metrics_pool *m,
			  const uint64_t hist[STATS_BUCKETS], uint64_t sum_us)
{
	char sample[128];
	uint64_t cum = 0;
	snprintf(sample, sizeof(sample), "%s_bucket", name);
	for (int i = 0; i < STATS_BUCKETS - 1; i++) {
		cum += hist[i];
		out_pool_labels(b, sample, m);
		out_printf(b, ",le=\"%g\"} %" PRIu64 "\n", (double)stats_bucket_us[i] / 1e6, cum);
	}
	cum += hist[STATS_BUCKETS - 1];
	out_pool_labels(b, sample, m);
	out_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
	snprintf(sample, sizeof(sample), "%s_sum", name);
	out_pool_labels(b, sample, m);
	out_str(b, "} ");
	out_seconds(b, sum_us);
	out_str(b, "\n");
	snprintf(sample, sizeof(sample), "%s_count", name);
	out_pool_u64(b, sample, m, cum);
}

/* ---- process data ---- */

/* Entries of /proc/self/fd, without the one opendir itself uses; -1 when
 * it cannot be read. */
static long count_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n > 0 ? n - 1 : 0;
}

static void render_process(struct outbuf *b)
{
	out_family(b, "sluice_up", "gauge", "Always 1 while sluice answers.");
	out_str(b, "sluice_up 1\n");

	int64_t up_us = loop_now_us() - control_started_us();
	out_family(b, "sluice_uptime_seconds", "gauge", "Seconds since sluice started.");
	out_str(b, "sluice_uptime_seconds ");
	out_seconds(b, up_us > 0 ? (uint64_t)up_us : 0);
	out_str(b, "\n");

	out_family(b, "sluice_config_reloads_total", "counter", "Successful configuration reloads.");
	out_printf(b, "sluice_config_reloads_total %" PRIu64 "\n", control_reloads());
	out_family(b, "sluice_config_reload_failures_total", "counter",
		   "Configuration reloads refused by validation.");
	out_printf(b, "sluice_config_reload_failures_total %" PRIu64 "\n", control_reload_failures());

	struct balance_counts bc;
	balance_get_counts(&bc);
	out_family(b, "sluice_workers_active", "gauge",
		   "Workers taking new connections and clients now (adaptive_workers; all of them when off).");
	out_printf(b, "sluice_workers_active %d\n", balance_active_workers());
	out_family(b, "sluice_worker_clients", "gauge", "Client connections (console included) on each worker.");
	for (int i = 0; i < n_workers; i++)
		out_printf(b, "sluice_worker_clients{worker=\"%d\"} %d\n", i,
			   __atomic_load_n(&workers[i].n_clients, __ATOMIC_RELAXED));
	out_family(b, "sluice_worker_changes_total", "counter",
		   "Times the number of workers taking traffic changed (adaptive_workers).");
	out_printf(b, "sluice_worker_changes_total %" PRIu64 "\n", bc.changes);
	out_family(b, "sluice_client_moves_total", "counter",
		   "Clients moved to another worker between transactions (adaptive_workers).");
	out_printf(b, "sluice_client_moves_total %" PRIu64 "\n", bc.moves);
	out_family(b, "sluice_server_handoffs_total", "counter",
		   "Idle servers handed to a waiting client on another worker (a mail between threads each).");
	out_printf(b, "sluice_server_handoffs_total %" PRIu64 "\n", bc.handoffs);

	out_family(b, "sluice_accept_failures_total", "counter",
		   "accept() calls that failed because the process or the system ran out of file descriptors "
		   "or memory, by errno; each made a worker pause accepting for a while.");
	for (int i = 0; i < RUNTIME_ACCEPT_ERRNOS; i++)
		out_printf(b, "sluice_accept_failures_total{errno=\"%s\"} %" PRIu64 "\n", runtime_accept_errno_names[i],
			   runtime_accept_failures(i));

	out_family(b, "sluice_open_fds", "gauge", "Open file descriptors.");
	long fds = count_open_fds();
	if (fds >= 0)
		out_printf(b, "sluice_open_fds %ld\n", fds);
	struct rlimit rl;
	out_family(b, "sluice_max_fds", "gauge", "File descriptor limit (RLIMIT_NOFILE, soft).");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur == RLIM_INFINITY)
			out_str(b, "sluice_max_fds +Inf\n");
		else
			out_printf(b, "sluice_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}

	out_family(b, "sluice_clients", "gauge", "Client connections now, logging in or logged in.");
	int clients = runtime_clients_add(0);
	out_printf(b, "sluice_clients %d\n", clients < 0 ? 0 : clients);
}

/* The kernel fast path: the same figures as SHOW BYPASS. */
static void render_bypass(struct outbuf *b)
{
	struct bypass_stats st;
	bypass_stats(&st);
	out_family(b, "sluice_bypass_enabled", "gauge", "1 when bpf_bypass is on and the kernel path works.");
	out_printf(b, "sluice_bypass_enabled %d\n", st.enabled ? 1 : 0);
	out_family(b, "sluice_bypass_kernel_transactions_total", "counter",
		   "Transactions carried entirely in the kernel (ended with ReadyForQuery 'I' there).");
	out_printf(b, "sluice_bypass_kernel_transactions_total %" PRIu64 "\n", st.kernel_transactions);
	out_family(b, "sluice_bypass_user_transactions_total", "counter", "Transactions that ended in user space.");
	out_printf(b, "sluice_bypass_user_transactions_total %" PRIu64 "\n", st.user_transactions);
	out_family(b, "sluice_bypass_kernel_bytes_total", "counter", "Bytes the kernel moved socket to socket.");
	out_printf(b, "sluice_bypass_kernel_bytes_total %" PRIu64 "\n", st.kernel_bytes);
	out_family(b, "sluice_bypass_fallbacks_total", "counter",
		   "Pairs the kernel handed to user space, by reason.");
	for (int i = 0; i < BYPASS_REASONS; i++)
		out_printf(b, "sluice_bypass_fallbacks_total{reason=\"%s\"} %" PRIu64 "\n", bypass_reason_names[i],
			   st.fallback[i]);
	out_family(b, "sluice_bypass_resent_bytes_total", "counter",
		   "Bytes TCP handed the kernel path twice (retransmitted overlaps), cut off by the programs.");
	out_printf(b, "sluice_bypass_resent_bytes_total %" PRIu64 "\n", st.resent_bytes);
	out_family(b, "sluice_bypass_kernel_clients", "gauge", "Clients the kernel carries now.");
	out_printf(b, "sluice_bypass_kernel_clients %lld\n", (long long)(st.kernel_clients > 0 ? st.kernel_clients : 0));
	out_family(b, "sluice_bypass_lent_servers", "gauge", "Servers lent to the kernel's idle sets now.");
	out_printf(b, "sluice_bypass_lent_servers %lld\n", (long long)(st.lent_servers > 0 ? st.lent_servers : 0));
}

/* ---- routed hosts (route.h) ---- */

struct host_pass {
	struct outbuf *b;
	const char *name;
	int what;               /* which number of the host */
};

enum { HOST_UP, HOST_LAG_BYTES, HOST_READS };

static void host_sample(const struct route *r, int i, void *arg)
{
	struct host_pass *hp = arg;
	const struct route_host *h = &r->host[i];
	const struct pool_host *ph = &r->home->hosts.h[i];
	if (hp->what == HOST_LAG_BYTES && h->lag_bytes < 0)
		return;
	out_str(hp->b, hp->name);
	out_str(hp->b, "{database=\"");
	out_label_value(hp->b, r->home->db_name);
	out_str(hp->b, "\",user=\"");
	out_label_value(hp->b, r->home->user);
	out_str(hp->b, "\",host=\"");
	out_label_value(hp->b, ph->addr_text);
	switch (hp->what) {
	case HOST_UP:
		out_printf(hp->b, "\",role=\"%s\"} 1\n", route_role_name(h->role));
		break;
	case HOST_LAG_BYTES:
		out_printf(hp->b, "\"} %" PRId64 "\n", h->lag_bytes);
		break;
	default:
		out_printf(hp->b, "\"} %" PRId64 "\n", h->reads);
		break;
	}
}

static void render_hosts(struct outbuf *b)
{
	static const struct { const char *name, *type, *help; } fams[] = {
		[HOST_UP] = { "sluice_host_role", "gauge", "Each routed host with its role as sluice last learned it." },
		[HOST_LAG_BYTES] = { "sluice_host_lag_bytes", "gauge", "WAL bytes (MySQL: transactions) a standby is behind its primary." },
		[HOST_READS] = { "sluice_host_reads_total", "counter", "Transactions read_routing sent to the host." },
	};
	for (int k = 0; k < 3; k++) {
		struct host_pass hp = { .b = b, .name = fams[k].name, .what = k };
		out_family(b, fams[k].name, fams[k].type, fams[k].help);
		route_foreach_host(host_sample, &hp);
	}
}

static void render_pools(struct outbuf *b, const struct pool_set *set)
{
	const struct metrics_pool *v = set->v;
	size_t n = set->n;

	/* Client states, as SHOW POOLS counts them:
	 *   active  - logged in to this pool and not queued: with a server, or
	 *             (transaction/statement mode) between transactions without
	 *             one; the pool does not tell those two apart;
	 *   waiting - queued for a server;
	 *   idle    - always 0: idle clients are inside "active" (see above);
	 *   login   - always 0: a client in login has no pool yet; the process
	 *             wide number is sluice_clients minus the pools' sum. */
	out_family(b, "sluice_pool_clients", "gauge", "Client connections of the pool by state.");
	for (size_t i = 0; i < n; i++) {
		out_pool_state(b, "sluice_pool_clients", &v[i], "active", v[i].counts.cl_active);
		out_pool_state(b, "sluice_pool_clients", &v[i], "waiting", v[i].counts.cl_waiting);
		out_pool_state(b, "sluice_pool_clients", &v[i], "idle", 0);
		out_pool_state(b, "sluice_pool_clients", &v[i], "login", 0);
	}
	/* Server states: active = linked to a client (or being reset), idle =
	 * in the pool, login = connecting or logging in. */
	out_family(b, "sluice_pool_servers", "gauge", "Server connections of the pool by state.");
	for (size_t i = 0; i < n; i++) {
		out_pool_state(b, "sluice_pool_servers", &v[i], "active", v[i].counts.sv_active);
		out_pool_state(b, "sluice_pool_servers", &v[i], "idle", v[i].counts.sv_idle);
		out_pool_state(b, "sluice_pool_servers", &v[i], "login", v[i].counts.sv_login);
	}
	out_family(b, "sluice_pool_max_wait_seconds", "gauge",
		   "How long the oldest waiting client has been waiting for a server.");
	for (size_t i = 0; i < n; i++) {
		out_pool_labels(b, "sluice_pool_max_wait_seconds", &v[i]);
		out_str(b, "} ");
		out_seconds(b, (uint64_t)v[i].counts.maxwait_us);
		out_str(b, "\n");
	}

	out_family(b, "sluice_pool_client_prepared_statements", "gauge",
		   "Named prepared statements the pool's clients hold (transaction and statement mode).");
	for (size_t i = 0; i < n; i++) {
		out_pool_labels(b, "sluice_pool_client_prepared_statements", &v[i]);
		out_printf(b, "} %lld\n", (long long)v[i].counts.prepared);
	}
	out_family(b, "sluice_pool_client_prepared_bytes", "gauge",
		   "Bytes of the pool's clients' named prepared statements: names, texts, parameter types "
		   "(bounded per client by max_client_prepared_bytes).");
	for (size_t i = 0; i < n; i++) {
		out_pool_labels(b, "sluice_pool_client_prepared_bytes", &v[i]);
		out_printf(b, "} %lld\n", (long long)v[i].counts.prepared_bytes);
	}

	out_family(b, "sluice_pool_transactions_total", "counter", "Transactions finished.");
	for (size_t i = 0; i < n; i++)
		out_pool_u64(b, "sluice_pool_transactions_total", &v[i], v[i].totals.xacts);
	out_family(b, "sluice_pool_queries_total", "counter", "Queries answered.");
	for (size_t i = 0; i < n; i++)
		out_pool_u64(b, "sluice_pool_queries_total", &v[i], v[i].totals.queries);
	out_family(b, "sluice_pool_server_assignments_total", "counter",
		   "Times a server was handed to a client (SHOW STATS total_server_assignment_count).");
	for (size_t i = 0; i < n; i++)
		out_pool_u64(b, "sluice_pool_server_assignments_total", &v[i], v[i].totals.assigns);
	out_family(b, "sluice_pool_received_bytes_total", "counter", "Bytes received from clients.");
	for (size_t i = 0; i < n; i++)
		out_pool_u64(b, "sluice_pool_received_bytes_total", &v[i], v[i].totals.bytes_in);
	out_family(b, "sluice_pool_sent_bytes_total", "counter", "Bytes sent to clients.");
	for (size_t i = 0; i < n; i++)
		out_pool_u64(b, "sluice_pool_sent_bytes_total", &v[i], v[i].totals.bytes_out);
	out_family(b, "sluice_pool_wait_seconds_total", "counter",
		   "Time clients spent waiting for a server.");
	for (size_t i = 0; i < n; i++) {
		out_pool_labels(b, "sluice_pool_wait_seconds_total", &v[i]);
		out_str(b, "} ");
		out_seconds(b, v[i].totals.wait_us);
		out_str(b, "\n");
	}

	out_family(b, "sluice_pool_query_duration_seconds", "histogram", "Query durations.");
	for (size_t i = 0; i < n; i++)
		out_histogram(b, "sluice_pool_query_duration_seconds", &v[i],
			      v[i].totals.query_hist, v[i].totals.query_us);
	out_family(b, "sluice_pool_transaction_duration_seconds", "histogram", "Transaction durations.");
	for (size_t i = 0; i < n; i++)
		out_histogram(b, "sluice_pool_transaction_duration_seconds", &v[i],
			      v[i].totals.xact_hist, v[i].totals.xact_us);

	out_family(b, "sluice_pool_errors_total", "counter",
		   "ErrorResponses sent to clients, by SQLSTATE class.");
	for (size_t i = 0; i < n; i++) {
		const struct stats_totals *t = &v[i].totals;
		for (uint32_t e = 0; e < t->n_errors && e < STATS_ERROR_CLASSES + 1; e++) {
			out_pool_labels(b, "sluice_pool_errors_total", &v[i]);
			out_str(b, ",class=\"");
			out_label_value(b, t->errors[e].cls);
			out_printf(b, "\"} %" PRIu64 "\n", t->errors[e].n);
		}
	}
}

char *metrics_render(void)
{
	struct outbuf b = { 0 };
	struct pool_set set = { .now_us = loop_now_us() };

	pool_foreach(collect_pool, &set);
	merge_pools(&set);
	render_process(&b);
	render_bypass(&b);
	render_pools(&b, &set);
	render_hosts(&b);
	char *mirrors = mirror_metrics_text();
	if (mirrors)
		out_str(&b, mirrors);
	bool failed = !mirrors;
	free(mirrors);
	failed = failed || set.failed || b.failed || !out_reserve(&b, 0);
	free(set.v);
	if (failed) {
		free(b.data);
		return NULL;
	}
	return b.data;
}

/* ---- HTTP ---- */

static int64_t now_ms(void)
{
	return loop_now_us() / 1000;
}

/* Wait until fd has one of events. Returns true when it has, false on
 * timeout or when metrics_stop asks the thread to leave. */
static bool wait_fd(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		int64_t left = deadline_ms - now_ms();
		if (left <= 0)
			return false;
		struct pollfd pfd[2] = { { .fd = fd, .events = events }, { .fd = ep.stop_rd, .events = POLLIN } };
		int n = poll(pfd, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		return n > 0 && !pfd[1].revents;
	}
}

enum head_result {
	HEAD_OK,                    /* buf holds a head ending in CRLF CRLF */
	HEAD_GONE,                  /* peer closed, timed out, or we are stopping */
	HEAD_TOO_LONG,              /* no end of head within METRICS_HEAD_MAX */
	HEAD_BAD,                   /* a NUL byte: not HTTP, and not a C string */
};

/* Read the request head into buf (METRICS_HEAD_MAX + 1 bytes), NUL-terminated. */
static enum head_result read_head(int fd, char *buf)
{
	int64_t deadline = now_ms() + METRICS_IO_MS;
	size_t n = 0;
	buf[0] = '\0';
	while (n < METRICS_HEAD_MAX) {
		if (!wait_fd(fd, POLLIN, deadline))
			return HEAD_GONE;
		ssize_t r = recv(fd, buf + n, METRICS_HEAD_MAX - n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return HEAD_GONE;
		if (memchr(buf + n, '\0', (size_t)r))
			return HEAD_BAD;
		size_t from = n > 3 ? n - 3 : 0;
		n += (size_t)r;
		buf[n] = '\0';
		if (strstr(buf + from, "\r\n\r\n"))
			return HEAD_OK;
	}
	return HEAD_TOO_LONG;
}

/* tchar of RFC 9110 section 5.6.2. */
static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The parts of a request line we look at. */
struct http_request {
	char method[16];            /* e.g. "GET"; longer methods are cut (and refused) */
	char path[256];             /* target up to '?', longer paths are cut (and not found) */
};

/* Parse "METHOD SP target SP HTTP/1.x CRLF *(header CRLF) CRLF" (RFC 9112
 * section 2.1); head holds no NUL and ends with CRLF CRLF. Returns 0 or
 * -EINVAL for a malformed head. */
static int parse_head(const char *head, struct http_request *req)
{
	const char *eol = strstr(head, "\r\n");
	const char *s = head;

	size_t mlen = 0;
	while (is_tchar(s[mlen]))
		mlen++;
	if (mlen == 0 || s[mlen] != ' ')
		return -EINVAL;
	snprintf(req->method, sizeof(req->method), "%.*s", (int)mlen, s);
	s += mlen + 1;

	const char *target = s;
	while (s < eol && *s != ' ') {
		if ((unsigned char)*s++ <= 0x20)
			return -EINVAL;
	}
	if (s == target || s >= eol || *s != ' ')
		return -EINVAL;
	const char *target_end = s++;
	if (eol - s != 8 || strncmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9')
		return -EINVAL;

	/* origin-form "/path?query", or absolute-form "http://host/path". */
	const char *path = target;
	if (*path != '/') {
		const char *scheme = strstr(target, "://");
		if (!scheme || scheme > target_end)
			return -EINVAL;
		path = scheme + 3;
		while (path < target_end && *path != '/')
			path++;
	}
	size_t path_len = 0;
	while (path + path_len < target_end && path[path_len] != '?' && path[path_len] != '#')
		path_len++;
	if (path_len == 0)
		snprintf(req->path, sizeof(req->path), "/");
	else
		snprintf(req->path, sizeof(req->path), "%.*s", (int)path_len, path);

	/* Header lines: "name: value", the name a token. */
	for (const char *line = eol + 2; strncmp(line, "\r\n", 2) != 0;) {
		const char *end = strstr(line, "\r\n");
		size_t nlen = 0;
		while (is_tchar(line[nlen]))
			nlen++;
		if (nlen == 0 || line[nlen] != ':' || !end)
			return -EINVAL;
		for (const char *c = line; c < end; c++) {
			if (*c == '\r' || *c == '\n')
				return -EINVAL;
		}
		line = end + 2;
	}
	return 0;
}

/* Send every byte of the iovecs (modified) by the deadline, giving up
 * when the peer takes nothing for METRICS_IO_MS or metrics_stop is
 * waiting. Returns 0 or a negative errno. */
static int send_all(int fd, struct iovec *iov, int n_iov, int64_t deadline_ms)
{
	while (n_iov > 0) {
		if (iov->iov_len == 0) {
			iov++;
			n_iov--;
			continue;
		}
		int64_t stall = now_ms() + METRICS_IO_MS;
		if (!wait_fd(fd, POLLOUT, stall < deadline_ms ? stall : deadline_ms))
			return -ETIMEDOUT;
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n_iov };
		ssize_t r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		size_t done = (size_t)r;
		while (n_iov > 0 && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++;
			n_iov--;
		}
		if (n_iov > 0) {
			iov->iov_base = (char *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return 0;
}

static int respond(int fd, int status, const char *reason, const char *extra_header,
		   const char *body, size_t body_len)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n%s\r\n",
			 status, reason, status == 200 ? CONTENT_TYPE : "text/plain; charset=utf-8",
			 body_len, extra_header ? extra_header : "");
	if (n < 0 || (size_t)n >= sizeof(head))
		return -EOVERFLOW;
	struct iovec iov[2] = { { head, (size_t)n }, { (void *)body, body_len } };
	return send_all(fd, iov, 2, now_ms() + METRICS_SEND_MS);
}

static void respond_text(int fd, int status, const char *reason, const char *extra_header)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason);
	respond(fd, status, reason, extra_header, body, (size_t)n);
}

/* One connection: read the head, answer, close. */
static void serve(int fd)
{
	struct timeval tv = { .tv_sec = METRICS_IO_MS / 1000, .tv_usec = (METRICS_IO_MS % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	char buf[METRICS_HEAD_MAX + 1];
	struct http_request req;
	switch (read_head(fd, buf)) {
	case HEAD_GONE:
		return;
	case HEAD_TOO_LONG:
	case HEAD_BAD:
		respond_text(fd, 400, "Bad Request", NULL);
		break;
	case HEAD_OK:
		if (parse_head(buf, &req) < 0) {
			respond_text(fd, 400, "Bad Request", NULL);
		} else if (strcmp(req.method, "GET") != 0) {
			respond_text(fd, 405, "Method Not Allowed", "Allow: GET\r\n");
		} else if (strcmp(req.path, "/metrics") != 0) {
			respond_text(fd, 404, "Not Found", NULL);
		} else {
			char *body = metrics_render();
			if (!body) {
				log_error("metrics: out of memory rendering /metrics");
				respond_text(fd, 500, "Internal Server Error", NULL);
			} else {
				respond(fd, 200, "OK", NULL, body, strlen(body));
				free(body);
			}
		}
		break;
	}
	/* Closing with unread bytes would reset the connection and could
	 * destroy the answer in flight: say we are done, then drop what the
	 * client already sent beyond the head. */
	shutdown(fd, SHUT_WR);
	char sink[512];
	for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
}

static void *metrics_main(void *arg)
{
	(void)arg;
	bool warned_accept = false;
	for (;;) {
		struct pollfd pfd[2] = { { .fd = ep.listen_fd, .events = POLLIN },
					 { .fd = ep.stop_rd, .events = POLLIN } };
		int n = poll(pfd, 2, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("metrics: poll: %s; endpoint stops", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		int fd = accept4(ep.listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (!warned_accept)
					log_warning("metrics: accept: %s", strerror(errno));
				warned_accept = true;
				/* The connection stays queued: back off instead of spinning. */
				struct pollfd stop = { .fd = ep.stop_rd, .events = POLLIN };
				if (poll(&stop, 1, 100) > 0)
					break;
			}
			continue;
		}
		warned_accept = false;
		serve(fd);
		close(fd);
	}
	return NULL;
}

/* ---- start / stop ---- */

/* Bind and listen on host:port. v6only < 0 leaves IPV6_V6ONLY alone.
 * Returns the fd or a negative errno; *gai_err is set when the address
 * itself could not be resolved. */
static int open_listener(const char *host, int port, int v6only, int *gai_err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	*gai_err = getaddrinfo(host, portstr, &hints, &res);
	if (*gai_err)
		return -EINVAL;
	int rc = -EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6 && v6only >= 0)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, METRICS_BACKLOG) == 0) {
			freeaddrinfo(res);
			return fd;
		}
		rc = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	return rc;
}

int metrics_start(const struct config *cfg)
{
	if (!cfg || cfg->metrics_port == 0)
		return 0;
	if (ep.running)
		return -EALREADY;
	const char *addr = cfg->metrics_addr && *cfg->metrics_addr ? cfg->metrics_addr : "127.0.0.1";
	int port = cfg->metrics_port;
	int gai_err = 0, rc;

	/* "*": every address, IPv6 and IPv4 on one dual-stack socket when the
	 * host has IPv6, else IPv4 alone. */
	if (strcmp(addr, "*") == 0) {
		rc = open_listener("::", port, 0, &gai_err);
		if (rc < 0 && rc != -EADDRINUSE && rc != -EACCES)
			rc = open_listener("0.0.0.0", port, -1, &gai_err);
	} else {
		rc = open_listener(addr, port, -1, &gai_err);
	}
	if (rc < 0) {
		if (gai_err)
			log_error("metrics_addr %s: %s", addr, gai_strerror(gai_err));
		else
			log_error("metrics: cannot listen on %s port %d: %s", addr, port, strerror(-rc));
		return rc;
	}
	ep.listen_fd = rc;

	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = -errno;
		log_error("metrics: pipe: %s", strerror(errno));
		goto fail_listen;
	}
	ep.stop_rd = pipefd[0];
	ep.stop_wr = pipefd[1];

	/* Signals belong to the main thread: the new thread starts with all
	 * of them blocked. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(&ep.thread, NULL, metrics_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		rc = -err;
		log_error("metrics: cannot start thread: %s", strerror(err));
		goto fail_pipe;
	}
	ep.running = true;
	log_info("metrics: serving http://%s:%d/metrics", addr, port);
	return 0;

fail_pipe:
	close(ep.stop_rd);
	close(ep.stop_wr);
	ep.stop_rd = ep.stop_wr = -1;
fail_listen:
	close(ep.listen_fd);
	ep.listen_fd = -1;
	return rc;
}

void metrics_stop(void)
{
	if (ep.running) {
		ssize_t w;
		do {
			w = write(ep.stop_wr, "x", 1);
		} while (w < 0 && errno == EINTR);
		pthread_join(ep.thread, NULL);
		ep.running = false;
	}
	if (ep.listen_fd >= 0)
		close(ep.listen_fd);
	if (ep.stop_rd >= 0)
		close(ep.stop_rd);
	if (ep.stop_wr >= 0)
		close(ep.stop_wr);
	ep.listen_fd = ep.stop_rd = ep.stop_wr = -1;
}
