/*
 * bypass.c - see bypass.h. The protocol between sluice and the verdict
 * programs is described in bpf/bypass_shared.h.
 */
#include "bypass.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <linux/sockios.h>

#include "pg_client.h"
#include "pg_mirror.h"
#include "pg_ops.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "pg_proto.h"
#include "pool.h"
#include "runtime.h"
#include "pg_server.h"
#include "stats.h"
#include "track.h"
#include "worker.h"

const char *const bypass_reason_names[BYPASS_REASONS] = {
	"message", "no_server", "framing", "waiters", "disabled", "server_message", "large", "resent",
};

#ifdef SLUICE_BPF

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "bpf/bypass_shared.h"
#include "bypass.skel.h"

_Static_assert(BYPASS_REASONS == BPR_COUNT, "bypass_reason_names follows enum bp_reason");

static struct bypass_bpf *skel;
static struct bp_sock *socks;      /* mapped .bss: shared with the programs */
static struct bp_group *groups;
static struct bp_traffic *traffic; /* mapped .bss: what the kernel carried, by client slot */
static uint32_t *kernel_enabled;
static int fd_clients = -1, fd_servers = -1, fd_slot_of = -1, fd_stats = -1, fd_unnamed = -1;
static bool active;                /* atomic: switched on and loaded */
static bool load_failed;           /* never try again */
static char why_not[160] = "bpf_bypass = off";

static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t free_slots[BP_MAX_SOCKS];
static uint32_t n_free;
static void *slot_obj[BP_MAX_SOCKS]; /* struct pg_client * or struct pg_server * */
static int slot_worker[BP_MAX_SOCKS];  /* worker owning slot_obj (slot_lock) */
static uint64_t slot_serial[BP_MAX_SOCKS]; /* bumped at each allocation (slot_lock) */
static uint64_t next_serial;

/* Hand-over events from the programs, read on worker 0. */
static struct ring_buffer *events;
static struct loop_handle events_h = { .fd = -1 };
static bool events_on;

static int64_t n_kernel_clients, n_lent, n_slots, n_takeovers; /* atomics */
static int64_t n_kernel_xacts_counted; /* atomic: kernel transactions moved into pool counters */

static int64_t counter_add(int64_t *c, int64_t v)
{
	return __atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

/* ---- slots ---- */

static int slot_alloc(void *obj, int worker_id)
{
	int slot = -1;
	pthread_mutex_lock(&slot_lock);
	if (n_free > 0) {
		slot = (int)free_slots[--n_free];
		slot_obj[slot] = obj;
		slot_worker[slot] = worker_id;
		slot_serial[slot] = ++next_serial;
	}
	pthread_mutex_unlock(&slot_lock);
	if (slot >= 0)
		counter_add(&n_slots, 1);
	return slot;
}

static void slot_set_worker(uint32_t slot, int worker_id)
{
	pthread_mutex_lock(&slot_lock);
	slot_worker[slot] = worker_id;
	pthread_mutex_unlock(&slot_lock);
}

static void slot_free(uint32_t slot)
{
	struct bp_sock *st = &socks[slot];
	if (bpf_map_delete_elem(fd_slot_of, &st->cookie) < 0 && errno != ENOENT)
		log_debug("bypass: slot %u: %s", slot, strerror(errno));
	/* The programs look the slot up by cookie first: from here on they
	 * pass this socket's bytes up untouched. */
	__atomic_store_n(&st->ctl, BP_CTL(BP_FREE, 0), __ATOMIC_RELEASE);
	st->role = 0;
	st->peer = 0;
	__atomic_store_n(&st->owner, BP_OWNER_USER, __ATOMIC_RELEASE);
	pthread_mutex_lock(&slot_lock);
	slot_obj[slot] = NULL;
	free_slots[n_free++] = slot;
	pthread_mutex_unlock(&slot_lock);
	counter_add(&n_slots, -1);
}

/* Give fd a slot and put it into the sockhash map_fd. Returns slot + 1 or 0. */
static uint32_t slot_attach(int fd, int map_fd, int role, void *obj, int worker_id)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0)
		return 0;
	int slot = slot_alloc(obj, worker_id);
	if (slot < 0)
		return 0;
	struct bp_sock *st = &socks[slot];
	memset(&st->fr, 0, sizeof(st->fr));
	st->cookie = cookie;
	st->role = (uint32_t)role;
	st->peer = 0;
	st->pending = 0;
	st->mid_batch = 0;
	st->own_unnamed = 0;
	memset(&st->cp, 0, sizeof(st->cp));
	st->status = 'I';
	__atomic_store_n(&st->owner, BP_OWNER_USER, __ATOMIC_RELEASE);
	st->reason = BPR_COUNT;
	st->redir = 0;
	st->burst = 0;
	st->rx_seen = 0;
	st->resent = 0;
	__atomic_store_n(&st->ctl, BP_CTL(BP_USER, 0), __ATOMIC_RELEASE);
	uint32_t s32 = (uint32_t)slot;
	uint64_t fd64 = (uint64_t)fd;
	if (bpf_map_update_elem(fd_slot_of, &cookie, &s32, BPF_ANY) < 0) {
		slot_free(s32);
		return 0;
	}
	if (bpf_map_update_elem(map_fd, &cookie, &fd64, BPF_NOEXIST) < 0) {
		log_debug("bypass: cannot add socket to the sockhash: %s", strerror(errno));
		slot_free(s32);
		return 0;
	}
	return s32 + 1;
}

/* slot_attach for a socket sluice also writes to: record where its byte
 * stream stands, so that after a hand-over its writes can wait until the
 * kernel has written what it redirected (pgsock_flush). TCP only. */
static uint32_t sock_attach(struct pgsock *sk, int map_fd, int role, void *obj, int worker_id)
{
	int64_t queued = pgsock_tcp_queued(sk->h.fd);
	if (queued < 0)
		return 0;
	uint32_t slot1 = slot_attach(sk->h.fd, map_fd, role, obj, worker_id);
	if (!slot1)
		return 0;
	/* Quiet at attach: every byte so far is sluice's or an earlier
	 * process's (online restart), none the kernel's. */
	sk->bp_base = queued - (int64_t)sk->sent;
	sk->bp_slot = &socks[slot1 - 1];
	return slot1;
}

bool bypass_sock_resent(const struct pgsock *sk)
{
	const struct bp_sock *st = sk->bp_slot;
	return st && __atomic_load_n(&st->resent, __ATOMIC_ACQUIRE);
}

uint64_t bypass_sock_redirected(const struct pgsock *sk)
{
	const struct bp_sock *st = sk->bp_slot;
	return st ? __atomic_load_n(&st->redir, __ATOMIC_ACQUIRE) : 0;
}

/* ---- groups: (pool, worker) ---- */

static int group_of(const struct pool *p, const struct worker *w)
{
	if (p->bp_index < 0)
		return -1;
	long g = (long)p->bp_index * n_workers + w->id;
	return g < (long)BP_MAX_GROUPS ? (int)g : -1;
}

static void group_remove(int g, uint32_t slot1)
{
	for (uint32_t i = 0; i < BP_GROUP_SERVERS; i++)
		if (__atomic_load_n(&groups[g].srv[i], __ATOMIC_RELAXED) == slot1)
			__atomic_store_n(&groups[g].srv[i], 0, __ATOMIC_RELEASE);
}

static bool group_add(int g, uint32_t slot1)
{
	for (uint32_t i = 0; i < BP_GROUP_SERVERS; i++)
		if (__atomic_load_n(&groups[g].srv[i], __ATOMIC_RELAXED) == 0) {
			__atomic_store_n(&groups[g].srv[i], slot1, __ATOMIC_RELEASE);
			return true;
		}
	return false;
}

/* ---- reported parameters: the kernel links a client only to a server
 * whose values are the ones the client expects ---- */

static uint32_t fnv(uint32_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return (h ^ 0xff) * 16777619u;
}

/* The value the pool's first server reported for name (the client saw it
 * at login), or "". */
static void welcome_value(struct pool *p, const char *name, char *out, size_t len)
{
	out[0] = '\0';
	struct iobuf b = { 0 };
	if (!pool_copy_welcome(p, &b))
		return;
	const uint8_t *at = iobuf_head(&b);
	uint32_t left = iobuf_len(&b);
	struct pg_msg m;
	while (pg_msg_peek(at, left, &m) > 0 && m.len <= left) {
		const char *n, *v;
		if (m.type == 'S' && pg_be_param_parse(m.body, m.body_len, &n, &v) == 0 && strcasecmp(n, name) == 0) {
			snprintf(out, len, "%s", v);
			break;
		}
		at += m.len;
		left -= m.len;
	}
	iobuf_release(&b);
}

/* The session settings (session_vars.h), whatever their order: the kernel
 * links a client only to a server whose session holds exactly its own. */
static uint32_t vars_key(uint32_t h, const struct session_vars *vs)
{
	uint32_t sum = 0;
	for (uint16_t i = 0; i < vs->n; i++)
		sum += fnv(fnv(2166136261u, vs->v[i].name), vs->v[i].sql);
	return vs->n ? fnv(h, "") ^ sum : h;
}

static uint32_t client_pkey(struct pg_client *c)
{
	uint32_t h = 2166136261u;
	char def[256];
	for (int k = 0; k < TRACKED_PARAMS; k++) {
		const char *v = c->params[k];
		if (!v) {
			welcome_value(c->pool, tracked_param_names[k], def, sizeof(def));
			v = def;
		}
		h = fnv(h, v);
	}
	h = vars_key(h, &c->vars);
	return h ? h : 1;
}

static uint32_t server_pkey(const struct pg_server *s)
{
	uint32_t h = 2166136261u;
	for (int k = 0; k < TRACKED_PARAMS; k++)
		h = fnv(h, s->params[k] ? s->params[k] : "");
	h = vars_key(h, &s->vars);
	return h ? h : 1;
}

/* ---- clients ---- */

/* While the kernel carries a socket, epoll watches only for a hang-up:
 * hand-overs arrive as bp_events. */
static void set_quiet(struct pgsock *sk, struct worker *w, bool quiet)
{
	sk->bp_quiet = quiet;
	if (pgsock_update(&w->loop, sk, false) < 0)
		log_debug("bypass: epoll update failed: %s", strerror(errno));
}

/* A socket of a pair in the kernel woke sluice. The kernel itself wakes
 * readers after each skb it redirected, and epoll may see an skb the
 * program has not run on yet: only a hand-over (mode USER), a hang-up or
 * the end of the stream mean sluice must act. */
static bool wake_is_real(int fd, uint32_t revents, uint64_t ctl)
{
	if (BP_CTL_MODE(ctl) == BP_USER || (revents & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
		return true;
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

bool bypass_client_wake(struct pg_client *c, uint32_t revents)
{
	if (!c->bp_kernel || !socks)
		return true;
	return wake_is_real(c->sock.h.fd, revents,
			    __atomic_load_n(&socks[c->bp_slot - 1].ctl, __ATOMIC_ACQUIRE));
}

/* Is there a byte to read on fd (or the end of the stream)? Bytes that came
 * before the socket joined the map, or that the programs passed up. */
static bool input_waiting(int fd)
{
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Session mode: the client keeps its server; the pair goes to the kernel
 * whole, when both sides are quiet, and stays there until Terminate (or
 * anything else sluice must see). */
static uint64_t take64(bp_u64 *v)
{
	return __atomic_exchange_n(v, 0, __ATOMIC_RELAXED);
}

/* Move what the kernel carried for c into its pool's counters (SHOW STATS,
 * /metrics, log_stats). The programs add with atomic instructions; taking
 * each counter with an exchange to zero loses nothing between the two. */
void bypass_client_count(struct pg_client *c)
{
	if (!c->bp_slot || !traffic || !c->pool)
		return;
	struct bp_traffic *t = &traffic[c->bp_slot - 1];
	/* Every tick asks: four loads when nothing moved. */
	if (!__atomic_load_n(&t->bytes_in, __ATOMIC_RELAXED) && !__atomic_load_n(&t->bytes_out, __ATOMIC_RELAXED) &&
	    !__atomic_load_n(&t->queries, __ATOMIC_RELAXED) && !__atomic_load_n(&t->xacts, __ATOMIC_RELAXED))
		return;
	struct stats_slot *st = pool_stats(c->pool, c->worker);
	uint64_t xacts = take64(&t->xacts);
	stats_add(&st->xacts, xacts);
	stats_add(&st->queries, take64(&t->queries));
	stats_add(&st->bytes_in, take64(&t->bytes_in));
	stats_add(&st->bytes_out, take64(&t->bytes_out));
	stats_add(&st->xact_us, take64(&t->xact_us));
	stats_add(&st->query_us, take64(&t->query_us));
	for (int i = 0; i < STATS_BUCKETS; i++) {
		stats_add(&st->query_hist[i], __atomic_exchange_n(&t->query_hist[i], 0, __ATOMIC_RELAXED));
		stats_add(&st->xact_hist[i], __atomic_exchange_n(&t->xact_hist[i], 0, __ATOMIC_RELAXED));
	}
	counter_add(&n_kernel_xacts_counted, (int64_t)xacts);
}

static void session_enter(struct pg_client *c, int g)
{
	struct pg_server *s = c->server;
	if (!server_at_boundary(s) || s->sock.ssl || s->bp_refused || s->bp_lent || s->lookup)
		return;
	if (!s->bp_slot) {
		s->bp_slot = sock_attach(&s->sock, fd_servers, BP_SERVER, s, s->worker->id);
		if (!s->bp_slot) {
			s->bp_refused = true;
			return;
		}
	}
	slot_set_worker(s->bp_slot - 1, s->worker->id);
	struct bp_sock *st = &socks[c->bp_slot - 1], *ss = &socks[s->bp_slot - 1];
	uint64_t ctl = __atomic_load_n(&st->ctl, __ATOMIC_ACQUIRE);
	if (BP_CTL_MODE(ctl) != BP_USER || input_waiting(c->sock.h.fd) || input_waiting(s->sock.h.fd))
		return;
	memset(&st->fr, 0, sizeof(st->fr));
	memset(&ss->fr, 0, sizeof(ss->fr));
	st->pending = 0;
	st->mid_batch = 0;
	st->own_unnamed = 0;
	memset(&st->cp, 0, sizeof(st->cp));
	st->burst = ss->burst = 0;
	st->status = (uint8_t)s->tx_status;
	st->busy_ns = st->ready_ns = 0;
	st->xact_ns = s->xact_start_us > 0 ? (uint64_t)s->xact_start_us * 1000 : 0;
	st->active_ns = (uint64_t)c->last_active_us * 1000;
	traffic[c->bp_slot - 1].begin_ns = s->xact_begin_us > 0 ? (uint64_t)s->xact_begin_us * 1000 : 0;
	st->group = ss->group = (uint32_t)g;
	st->opts = PGF_OPT_SESSION;
	st->peer = s->bp_slot;
	__atomic_store_n(&ss->owner, c->bp_slot, __ATOMIC_RELEASE);
	/* Fails when either program passed bytes up meanwhile. */
	if (!__atomic_compare_exchange_n(&st->ctl, &ctl, BP_CTL(BP_KERNEL, BP_CTL_GEN(ctl)), false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		st->peer = 0;
		__atomic_store_n(&ss->owner, BP_OWNER_USER, __ATOMIC_RELEASE);
		return;
	}
	c->bp_kernel = true;
	s->bp_lent = true;
	counter_add(&n_kernel_clients, 1);
	counter_add(&n_lent, 1);
	set_quiet(&c->sock, c->worker, true);
	set_quiet(&s->sock, s->worker, true);
}

void bypass_client_maybe_enter(struct pg_client *c)
{
	if (!__atomic_load_n(&active, __ATOMIC_RELAXED) || c->bp_kernel || c->bp_refused)
		return;
	/* Replication streams (CopyBoth) stay in user space, and so does
	 * everyone while sluice must see each message's type and length
	 * (disable_pqexec, max_packet_size): the kernel checks neither. */
	const struct config *cfg = runtime_config();
	if (cfg->disable_pqexec || cfg->max_packet_size < INT32_MAX)
		return;
	/* A sharded database's statements are routed one by one (pg_shard.h). */
	if (!c->pool || c->pool->replication || c->pool->route || c->pool->n_shards || c->adm || c->sock.ssl || c->closing || c->queued || c->handoff_pending ||
	    pg_mirror_wanted(c) ||
	    __atomic_load_n(&c->pool->paused, __ATOMIC_RELAXED) || __atomic_load_n(&c->pool->stale, __ATOMIC_RELAXED))
		return;
	bool session = c->pool->mode == POOL_MODE_SESSION;
	if (session ? c->state != CLIENT_ACTIVE || !c->server
		    : c->state != CLIENT_IDLE || c->server || c->pinned || c->pool->mode != POOL_MODE_TRANSACTION)
		return;
	if (iobuf_len(&c->sock.rbuf) || iobuf_len(&c->sock.wbuf) || c->sock.fwd || c->sock.skip ||
	    c->hold_for_sync || c->skip_until_sync || c->worker->suspended || control_phase() != PHASE_RUNNING)
		return;
	int g = group_of(c->pool, c->worker);
	if (g < 0) {
		c->bp_refused = true;
		return;
	}
	if (!c->bp_slot) {
		c->bp_slot = sock_attach(&c->sock, fd_clients, BP_CLIENT, c, c->worker->id);
		if (!c->bp_slot) {
			c->bp_refused = true;
			return;
		}
	}
	if (session) {
		session_enter(c, g);
		return;
	}
	struct bp_sock *st = &socks[c->bp_slot - 1];
	uint64_t ctl = __atomic_load_n(&st->ctl, __ATOMIC_ACQUIRE);
	if (BP_CTL_MODE(ctl) != BP_USER || input_waiting(c->sock.h.fd))
		return;
	memset(&st->fr, 0, sizeof(st->fr));
	st->peer = 0;
	st->pending = 0;
	st->mid_batch = 0;
	st->own_unnamed = 0;
	memset(&st->cp, 0, sizeof(st->cp));
	st->burst = 0;
	st->status = 'I';
	st->busy_ns = st->ready_ns = st->xact_ns = 0;
	traffic[c->bp_slot - 1].begin_ns = 0;
	st->active_ns = (uint64_t)c->last_active_us * 1000;
	st->group = (uint32_t)g;
	st->pkey = client_pkey(c);
	st->opts = (track_renames(c->pool) ? PGF_OPT_TRACKING : 0) | (track_enabled(c->pool) ? PGF_OPT_SQL : 0);
	/* Fails when a program passed bytes up after the peek: then they are
	 * on their way to user space and the client stays here. */
	c->bp_unnamed_ver = __atomic_load_n(&st->unnamed_ver, __ATOMIC_ACQUIRE);
	if (!__atomic_compare_exchange_n(&st->ctl, &ctl, BP_CTL(BP_KERNEL, BP_CTL_GEN(ctl)), false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	c->bp_kernel = true;
	counter_add(&n_kernel_clients, 1);
	set_quiet(&c->sock, c->worker, true);
}

/* Taking the client back: the unnamed statement the kernel carried for it
 * (or dropped) becomes sluice's copy. A program may still be writing it
 * when the client was taken mid-skb: unnamed_ver is odd then, or moves. */
static bool unnamed_from_kernel(struct pg_client *c, struct bp_sock *st)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t v1 = __atomic_load_n(&st->unnamed_ver, __ATOMIC_ACQUIRE);
		if (v1 == c->bp_unnamed_ver)
			return false;
		if (v1 & 1) {
			sched_yield();
			continue;
		}
		uint32_t len = __atomic_load_n(&st->unnamed_len, __ATOMIC_ACQUIRE);
		struct bp_unnamed u;
		uint32_t slot = c->bp_slot - 1;
		bool have = len > 0 && len <= BP_UNNAMED_MAX && bpf_map_lookup_elem(fd_unnamed, &slot, &u) == 0;
		if (__atomic_load_n(&st->unnamed_ver, __ATOMIC_ACQUIRE) != v1)
			continue;
		track_unnamed_from_kernel(c, have ? u.body : NULL, len);
		c->bp_unnamed_ver = v1;
		return have;
	}
	track_unnamed_from_kernel(c, NULL, 0); /* never settled: not to be trusted */
	return false;
}

/* Continue a message the kernel already began to forward. */
static void resume_frame(struct pgsock *sk, const struct pgframe *fr, bool server_side)
{
	if (pgf_at_boundary(fr) || fr->bad)
		return;
	if (fr->hdr_len == 5 && !(server_side && fr->type == 'Z')) {
		sk->skip = fr->left; /* the rest of the body goes through unexamined */
		return;
	}
	/* A header cut short, or a ReadyForQuery whose status byte is still
	 * to come: sluice must read the whole message, so the header bytes
	 * the kernel sent are put back in front and not sent again. */
	iobuf_append(&sk->rbuf, fr->hdr, fr->hdr_len);
	sk->resync = fr->hdr_len;
}

int bypass_client_takeover(struct pg_client *c)
{
	if (!c->bp_kernel)
		return 0;
	struct bp_sock *st = &socks[c->bp_slot - 1];
	uint64_t ctl;
	for (int spins = 0;; spins++) {
		ctl = __atomic_load_n(&st->ctl, __ATOMIC_ACQUIRE);
		uint32_t mode = BP_CTL_MODE(ctl);
		if (mode == BP_USER)
			break;
		if (mode == BP_KERNEL &&
		    __atomic_compare_exchange_n(&st->ctl, &ctl, BP_CTL(BP_USER, BP_CTL_GEN(ctl) + 1), false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			counter_add(&n_takeovers, 1);
			break;
		}
		if (spins > 64)
			sched_yield(); /* a program holds the pair for a moment */
	}
	c->bp_kernel = false;
	c->sock.bp_quiet = false;
	counter_add(&n_kernel_clients, -1);
	bool parsed = unnamed_from_kernel(c, st);
	/* Mode is USER: the programs leave the pair's state alone now. */
	uint32_t peer = st->peer;
	struct pgframe cfr = st->fr;
	int32_t pending = st->pending;
	bool mid_batch = st->mid_batch;
	char status = (char)st->status;
	uint64_t begin_ns = traffic[c->bp_slot - 1].begin_ns;
	st->peer = 0;
	bypass_client_count(c); /* user space counts from here */
	log_debug("bypass: C-%llu back to user space (reason %s): server slot %u, %d unanswered%s, "
		  "client stream %s (left %u, header %u), status %c",
		  (unsigned long long)c->id, st->reason < BYPASS_REASONS ? bypass_reason_names[st->reason] : "?", peer, pending,
		  mid_batch ? ", batch open" : "", pgf_at_boundary(&cfr) ? "at a boundary" : "mid-message",
		  cfr.left, cfr.hdr_len, status ? status : '?');
	if ((int64_t)(st->active_ns / 1000) > c->last_active_us)
		c->last_active_us = (int64_t)(st->active_ns / 1000);
	if (!peer) {
		/* Unlinked only between messages (the programs release a
		 * server only then): anything else is a lost stream. */
		if (cfr.bad || !pgf_at_boundary(&cfr))
			return -1;
		c->sock.bp_settle = true;
		return 0;
	}
	struct pg_server *s = peer <= BP_MAX_SOCKS ? slot_obj[peer - 1] : NULL;
	struct bp_sock *ss = s ? &socks[peer - 1] : NULL;
	if (!s || s->bp_slot != peer || s->worker != c->worker || s->closed)
		return -1;
	__atomic_store_n(&ss->owner, BP_OWNER_USER, __ATOMIC_RELEASE);
	int g = group_of(s->pool, s->worker);
	if (g >= 0)
		group_remove(g, peer);
	if (s->bp_lent) {
		s->bp_lent = false;
		counter_add(&n_lent, -1);
	}
	s->sock.bp_quiet = false;
	if (cfr.bad || ss->fr.bad) {
		/* Cannot happen (the programs commit only good framing); if it
		 * does, neither side's position in the stream is known. */
		server_close(s, "bpf_bypass: framing state lost");
		return -1;
	}
	/* A client message whose header the kernel cut is read again whole
	 * here: do not count it twice. */
	if (cfr.hdr_len > 0 && cfr.hdr_len < 5 && pgf_client_effect(cfr.hdr[0]) == PGF_REQUEST && pending > 0)
		pending--;
	struct pgframe sfr = ss->fr;
	resume_frame(&c->sock, &cfr, false);
	resume_frame(&s->sock, &sfr, true);
	/* Bytes the kernel redirected are sent by a kernel worker after the
	 * program returns (the psock backlog): sluice's own writes to these
	 * sockets wait until they are out (pgsock_flush). */
	c->sock.bp_settle = true;
	s->sock.bp_settle = true;
	struct server_kernel_times t = {
		.query_start_us = (int64_t)(st->busy_ns / 1000),
		.ready_since_us = (int64_t)(st->ready_ns / 1000),
		.xact_start_us = (int64_t)(st->xact_ns / 1000),
		.xact_begin_us = (int64_t)(begin_ns / 1000),
	};
	server_link_from_kernel(s, c, pending, mid_batch, status, pgf_at_boundary(&sfr), &t);
	struct pgf_copy cp = st->cp;
	if (cfr.hdr_len > 0 && cfr.hdr_len < 5) {
		/* The cut message is read again whole here: it was noted. */
		if (cfr.hdr[0] == 'S' && cp.syncs > 0)
			cp.syncs--;
		else if (cfr.hdr[0] == 'E' || cfr.hdr[0] == 'Q')
			cp.flags = 0;
	}
	copy_watch_from_kernel(&s->copy, pending, cp.syncs, cp.end_syncs, cp.flags);
	if (st->own_unnamed) { /* the kernel saw it parsed on this link */
		s->unnamed_owner = c->id;
		s->unnamed_gen = c->unnamed_gen;
		/* An error in its batch may have been the Parse's own: the
		 * server is asked before it goes to anyone else. */
		c->unnamed_doubt = parsed && (st->reason == BPR_SERVER_MSG || pending > 0 || mid_batch);
	}
	return 0;
}

bool bypass_client_timeout_due(const struct pg_client *c, int64_t now_us)
{
	if (!c->bp_kernel || !socks)
		return false;
	/* Per user / database (pool.h); a client in the kernel has a pool. */
	const struct config_timeouts *cfg = &c->pool->t;
	const struct bp_sock *st = &socks[c->bp_slot - 1];
	int64_t last = (int64_t)(__atomic_load_n(&st->active_ns, __ATOMIC_RELAXED) / 1000);
	int64_t busy = (int64_t)(__atomic_load_n(&st->busy_ns, __ATOMIC_RELAXED) / 1000);
	int64_t ready = (int64_t)(__atomic_load_n(&st->ready_ns, __ATOMIC_RELAXED) / 1000);
	int64_t xact = (int64_t)(__atomic_load_n(&st->xact_ns, __ATOMIC_RELAXED) / 1000);
	int32_t pending = __atomic_load_n(&st->pending, __ATOMIC_RELAXED);
	uint8_t status = __atomic_load_n(&st->status, __ATOMIC_RELAXED);
	bool linked = __atomic_load_n(&st->peer, __ATOMIC_RELAXED) != 0;
	if (last < c->last_active_us)
		last = c->last_active_us;
	if (cfg->query_timeout_us && linked && pending > 0 && busy && now_us - busy > cfg->query_timeout_us)
		return true;
	if (cfg->transaction_timeout_us && linked && xact && now_us - xact > cfg->transaction_timeout_us)
		return true;
	if (cfg->idle_transaction_timeout_us && linked && status != 'I' && pending == 0 &&
	    now_us - (ready > last ? ready : last) > cfg->idle_transaction_timeout_us)
		return true;
	return cfg->client_idle_timeout_us && now_us - last > cfg->client_idle_timeout_us &&
	       now_us - c->state_since_us > cfg->client_idle_timeout_us;
}

int64_t bypass_server_last_used_us(const struct pg_server *s)
{
	if (!s->bp_slot || !socks)
		return 0;
	return (int64_t)(__atomic_load_n(&socks[s->bp_slot - 1].active_ns, __ATOMIC_RELAXED) / 1000);
}

struct pg_server *bypass_client_kernel_server(const struct pg_client *c)
{
	if (!c->bp_kernel || !c->bp_slot || !socks)
		return NULL;
	uint32_t peer = __atomic_load_n(&socks[c->bp_slot - 1].peer, __ATOMIC_ACQUIRE);
	if (!peer || peer > BP_MAX_SOCKS)
		return NULL;
	/* A group's servers are on the client's worker: alive while we run. */
	struct pg_server *s = __atomic_load_n(&slot_obj[peer - 1], __ATOMIC_ACQUIRE);
	return s && s->bp_slot == peer && s->worker == c->worker ? s : NULL;
}

struct pg_client *bypass_server_kernel_client(const struct pg_server *s)
{
	if (!s->bp_lent || !s->bp_slot || !socks)
		return NULL;
	uint32_t owner = __atomic_load_n(&socks[s->bp_slot - 1].owner, __ATOMIC_ACQUIRE);
	if (owner == BP_OWNER_USER || owner == BP_OWNER_IDLE || owner > BP_MAX_SOCKS)
		return NULL;
	struct pg_client *c = __atomic_load_n(&slot_obj[owner - 1], __ATOMIC_ACQUIRE);
	return c && c->bp_slot == owner && c->worker == s->worker ? c : NULL;
}

void bypass_client_forget(struct pg_client *c)
{
	if (!c->bp_slot || !socks)
		return;
	if (c->bp_kernel) {
		c->bp_kernel = false;
		counter_add(&n_kernel_clients, -1);
	}
	slot_free(c->bp_slot - 1);
	c->sock.bp_slot = NULL;
	bypass_client_count(c); /* and the slot starts from zero for its next socket */
	traffic[c->bp_slot - 1].begin_ns = 0;
	c->bp_slot = 0;
}

/* ---- servers ---- */

static void server_unlent(struct pg_server *s)
{
	if (s->sock.bp_quiet && s->worker)
		set_quiet(&s->sock, s->worker, false);
	int g = group_of(s->pool, s->worker);
	if (g >= 0)
		group_remove(g, s->bp_slot);
	if (s->bp_lent) {
		s->bp_lent = false;
		counter_add(&n_lent, -1);
	}
}

bool bypass_server_lend(struct server *core)
{
	if (core->pool->proto != &pg_ops)
		return false; /* the kernel path speaks PostgreSQL only (docs/bypass.md) */
	struct pg_server *s = pg_server(core);
	if (!__atomic_load_n(&active, __ATOMIC_RELAXED) || s->bp_refused || s->bp_lent)
		return false;
	if (s->pool->mode != POOL_MODE_TRANSACTION || s->pool->route || pool_server_outdated(&s->base) || s->sock.ssl ||
	    s->state != SERVER_IDLE || s->client ||
	    s->closed || s->lookup || s->pinned || iobuf_len(&s->sock.rbuf) || iobuf_len(&s->sock.wbuf) ||
	    s->sock.skip || s->sock.fwd || !s->worker || s->worker->suspended)
		return false;
	int g = group_of(s->pool, s->worker);
	if (g < 0)
		return false;
	if (!s->bp_slot) {
		s->bp_slot = sock_attach(&s->sock, fd_servers, BP_SERVER, s, s->worker->id);
		if (!s->bp_slot) {
			s->bp_refused = true;
			return false;
		}
	}
	slot_set_worker(s->bp_slot - 1, s->worker->id); /* servers move between workers */
	s->unnamed_owner = 0; /* the kernel may give it to any client */
	struct bp_sock *ss = &socks[s->bp_slot - 1];
	memset(&ss->fr, 0, sizeof(ss->fr));
	ss->group = (uint32_t)g;
	ss->pkey = server_pkey(s);
	ss->gen = s->generation;
	ss->burst = 0;
	/* A group first used after a RECONNECT learns the generation here. */
	if (s->generation == __atomic_load_n(&s->pool->generation, __ATOMIC_RELAXED))
		__atomic_store_n(&groups[g].gen, s->generation, __ATOMIC_RELEASE);
	ss->peer = 0;
	if (!group_add(g, s->bp_slot))
		return false;
	__atomic_store_n(&ss->owner, BP_OWNER_IDLE, __ATOMIC_RELEASE);
	s->bp_lent = true;
	s->sock.bp_quiet = true; /* the caller's server_watch_idle sets epoll */
	counter_add(&n_lent, 1);
	return true;
}

bool bypass_server_unlend(struct pg_server *s)
{
	if (!s->bp_lent)
		return true;
	struct bp_sock *ss = &socks[s->bp_slot - 1];
	uint32_t o = BP_OWNER_IDLE;
	if (!__atomic_compare_exchange_n(&ss->owner, &o, BP_OWNER_USER, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
	    o != BP_OWNER_USER)
		return false;
	server_unlent(s);
	return true;
}

bool bypass_server_wake(struct pg_server *s, uint32_t revents)
{
	if (!s->bp_lent || !socks)
		return true;
	uint32_t o = __atomic_load_n(&socks[s->bp_slot - 1].owner, __ATOMIC_ACQUIRE);
	uint64_t ctl = BP_CTL(BP_KERNEL, 0);
	if (o == BP_OWNER_USER)
		ctl = BP_CTL(BP_USER, 0);
	else if (o != BP_OWNER_IDLE && o <= BP_MAX_SOCKS)
		ctl = __atomic_load_n(&socks[o - 1].ctl, __ATOMIC_ACQUIRE);
	return wake_is_real(s->sock.h.fd, revents, ctl);
}

bool bypass_server_event(struct pg_server *s)
{
	while (s->bp_lent && !s->closed) {
		struct bp_sock *ss = &socks[s->bp_slot - 1];
		uint32_t o = __atomic_load_n(&ss->owner, __ATOMIC_ACQUIRE);
		if (o == BP_OWNER_IDLE || o == BP_OWNER_USER) {
			if (bypass_server_unlend(s))
				return true;
			continue;
		}
		struct pg_client *c = o <= BP_MAX_SOCKS ? slot_obj[o - 1] : NULL;
		if (c && c->bp_slot == o && c->worker == s->worker)
			client_take_from_kernel(c);
		if (s->bp_lent) {
			/* The pair could not be rebuilt (the client was closed):
			 * the server's state is unknown. */
			__atomic_store_n(&ss->owner, BP_OWNER_USER, __ATOMIC_RELEASE);
			server_unlent(s);
			return false;
		}
	}
	return true;
}

struct server *bypass_server_reclaim(struct pool *p, struct worker *w)
{
	if (!socks)
		return NULL;
	int g = group_of(p, w);
	if (g < 0)
		return NULL;
	for (uint32_t i = 0; i < BP_GROUP_SERVERS; i++) {
		uint32_t slot1 = __atomic_load_n(&groups[g].srv[i], __ATOMIC_ACQUIRE);
		if (!slot1)
			continue;
		struct pg_server *s = slot_obj[slot1 - 1];
		if (!s || s->bp_slot != slot1 || s->closed)
			continue;
		if (bypass_server_unlend(s))
			return &s->base;
	}
	return NULL;
}

int bypass_lent_count(struct pool *p, struct worker *w)
{
	if (!socks)
		return 0;
	int g = group_of(p, w), n = 0;
	if (g < 0)
		return 0;
	for (uint32_t i = 0; i < BP_GROUP_SERVERS; i++) {
		uint32_t slot1 = __atomic_load_n(&groups[g].srv[i], __ATOMIC_ACQUIRE);
		if (slot1 && __atomic_load_n(&socks[slot1 - 1].owner, __ATOMIC_RELAXED) == BP_OWNER_IDLE)
			n++;
	}
	return n;
}

void bypass_server_forget(struct pg_server *s)
{
	if (!s->bp_slot || !socks)
		return;
	if (s->bp_lent)
		bypass_server_event(s); /* take it back, with its client if it has one */
	slot_free(s->bp_slot - 1);
	s->sock.bp_slot = NULL;
	s->bp_slot = 0;
}

void bypass_pool_waiters(struct pool *p, int n_waiting)
{
	if (!groups || p->bp_index < 0)
		return;
	for (int w = 0; w < n_workers; w++) {
		long g = (long)p->bp_index * n_workers + w;
		if (g < (long)BP_MAX_GROUPS)
			__atomic_store_n(&groups[g].waiters, (uint32_t)(n_waiting > 0 ? n_waiting : 0),
					 __ATOMIC_RELEASE);
	}
}

/* ---- hand-over events: worker 0 reads the ring buffer, the worker that
 * owns the socket acts ---- */

/* Runs on the owning worker: the object is alive if the slot still has
 * the serial the event was posted with. */
static void deliver_event(struct worker *w, void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	uint32_t slot = (uint32_t)(v & 0xffff);
	uint64_t serial = (uint64_t)(v >> 16);
	pthread_mutex_lock(&slot_lock);
	void *obj = (slot_serial[slot] & 0xffffffffffffULL) == serial && slot_worker[slot] == w->id ? slot_obj[slot]
												     : NULL;
	pthread_mutex_unlock(&slot_lock);
	if (!obj)
		return;
	if (socks[slot].role == BP_CLIENT) {
		struct pg_client *c = obj;
		if (c->worker == w && c->bp_kernel && !c->closing)
			c->sock.h.cb(&c->sock.h, EPOLLIN);
	} else {
		struct pg_server *s = obj;
		if (s->worker == w && s->bp_lent && !s->closed)
			s->sock.h.cb(&s->sock.h, EPOLLIN);
	}
}

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	const struct bp_event *ev = data;
	if (size < sizeof(*ev) || ev->slot >= BP_MAX_SOCKS)
		return 0;
	uint32_t slot = ev->slot;
	pthread_mutex_lock(&slot_lock);
	int wid = slot_worker[slot];
	uint64_t serial = slot_serial[slot] & 0xffffffffffffULL;
	bool live = slot_obj[slot] != NULL;
	pthread_mutex_unlock(&slot_lock);
	if (!live || wid < 0 || wid >= n_workers)
		return 0;
	void *arg = (void *)(uintptr_t)((serial << 16) | slot);
	struct worker *self = worker_self();
	if (self && self->id == wid)
		deliver_event(self, arg);
	else if (worker_run_on(&workers[wid], deliver_event, arg) < 0)
		log_debug("bypass: out of memory posting a hand-over; the tick takes it");
	return 0;
}

static void events_cb(struct loop_handle *h, uint32_t revents)
{
	(void)h;
	(void)revents;
	if (ring_buffer__consume(events) < 0)
		log_debug("bypass: reading hand-over events failed");
}

static void events_register(struct worker *w, void *arg)
{
	(void)arg;
	if (events_on || !events || w->id != 0)
		return;
	events_h.fd = ring_buffer__epoll_fd(events);
	events_h.cb = events_cb;
	if (loop_set(&w->loop, &events_h, EPOLLIN) == 0)
		events_on = true;
	else
		log_warning("bpf_bypass: cannot watch hand-over events; the tick takes pairs back (slower)");
}

void bypass_worker_started(struct worker *w)
{
	if (w->id == 0)
		events_register(w, NULL);
}

bool bypass_client_handed_up(const struct pg_client *c)
{
	return c->bp_kernel && socks &&
	       BP_CTL_MODE(__atomic_load_n(&socks[c->bp_slot - 1].ctl, __ATOMIC_ACQUIRE)) == BP_USER;
}

bool bypass_server_handed_up(const struct pg_server *s)
{
	return s->bp_lent && socks &&
	       __atomic_load_n(&socks[s->bp_slot - 1].owner, __ATOMIC_ACQUIRE) == BP_OWNER_USER;
}

/* ---- loading, probing, switching ---- */

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN && log_get_level() >= LOG_LEVEL_DEBUG) {
		char line[512];
		vsnprintf(line, sizeof(line), fmt, ap);
		line[strcspn(line, "\n")] = '\0';
		log_debug("libbpf: %s", line);
	}
	return 0;
}

/* Two loopback connections linked through the programs: a Query written
 * on one must come out of the other, and the answer back, in the kernel. */
static int self_test(char *why, size_t len)
{
	int lfd = -1, fds[4] = { -1, -1, -1, -1 };
	uint32_t cs = 0, ss = 0;
	int rc = -1;
	snprintf(why, len, "self-test: loopback sockets failed");
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
		goto out;
	for (int i = 0; i < 2; i++) {
		fds[2 * i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[2 * i] < 0 || connect(fds[2 * i], (struct sockaddr *)&a, sizeof(a)) < 0)
			goto out;
		fds[2 * i + 1] = accept(lfd, NULL, NULL);
		if (fds[2 * i + 1] < 0)
			goto out;
	}
	/* fds[1]: "client" socket in sluice; fds[2]: "server" socket in sluice. */
	cs = slot_attach(fds[1], fd_clients, BP_CLIENT, NULL, -1);
	ss = slot_attach(fds[2], fd_servers, BP_SERVER, NULL, -1);
	if (!cs || !ss) {
		snprintf(why, len, "cannot add sockets to the sockhash: %s", strerror(errno));
		goto out;
	}
	struct bp_sock *c = &socks[cs - 1], *s = &socks[ss - 1];
	c->group = s->group = BP_MAX_GROUPS - 1;
	c->pkey = s->pkey = 1;
	groups[BP_MAX_GROUPS - 1].srv[0] = ss;
	__atomic_store_n(&s->owner, BP_OWNER_IDLE, __ATOMIC_RELEASE);
	__atomic_store_n(&c->ctl, BP_CTL(BP_KERNEL, 0), __ATOMIC_RELEASE);
	__atomic_store_n(kernel_enabled, 1, __ATOMIC_RELEASE);
	struct timeval tv = { .tv_sec = 1 };
	setsockopt(fds[3], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fds[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	static const uint8_t q[] = { 'Q', 0, 0, 0, 7, 'x', ';', 0 };
	static const uint8_t z[] = { 'Z', 0, 0, 0, 5, 'I' };
	uint8_t got[sizeof(q)];
	if (send(fds[0], q, sizeof(q), 0) != (ssize_t)sizeof(q) ||
	    recv(fds[3], got, sizeof(q), MSG_WAITALL) != (ssize_t)sizeof(q) || memcmp(got, q, sizeof(q)) != 0) {
		snprintf(why, len, "self-test: a request did not cross the kernel link");
		goto out;
	}
	if (send(fds[3], z, sizeof(z), 0) != (ssize_t)sizeof(z) ||
	    recv(fds[0], got, sizeof(z), MSG_WAITALL) != (ssize_t)sizeof(z) || memcmp(got, z, sizeof(z)) != 0) {
		snprintf(why, len, "self-test: an answer did not cross the kernel link");
		goto out;
	}
	if (__atomic_load_n(&c->peer, __ATOMIC_ACQUIRE) != 0 ||
	    __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE) != BP_OWNER_IDLE) {
		snprintf(why, len, "self-test: the pair was not unlinked at ReadyForQuery");
		goto out;
	}
	rc = 0;
out:
	if (kernel_enabled)
		__atomic_store_n(kernel_enabled, 0, __ATOMIC_RELEASE);
	if (cs)
		slot_free(cs - 1);
	if (ss)
		slot_free(ss - 1);
	groups[BP_MAX_GROUPS - 1].srv[0] = 0;
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (lfd >= 0)
		close(lfd);
	return rc;
}

static int load(char *why, size_t len)
{
	libbpf_set_print(libbpf_log);
	if (libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, NULL) != 1 ||
	    libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_SKB, NULL) != 1) {
		snprintf(why, len, "the kernel refuses sockhash maps or sk_skb programs (root or CAP_BPF needed)");
		return -1;
	}
	skel = bypass_bpf__open();
	if (!skel) {
		snprintf(why, len, "cannot open the BPF object: %s", strerror(errno));
		return -1;
	}
	int err = bypass_bpf__load(skel);
	if (err) {
		snprintf(why, len, "the kernel refused the BPF programs: %s", strerror(-err));
		goto fail;
	}
	fd_clients = bpf_map__fd(skel->maps.bp_clients);
	fd_servers = bpf_map__fd(skel->maps.bp_servers);
	fd_slot_of = bpf_map__fd(skel->maps.bp_slot_of);
	fd_stats = bpf_map__fd(skel->maps.bp_stats_map);
	fd_unnamed = bpf_map__fd(skel->maps.bp_unnamed);
	if (bpf_prog_attach(bpf_program__fd(skel->progs.client_verdict), fd_clients, BPF_SK_SKB_STREAM_VERDICT, 0) < 0 ||
	    bpf_prog_attach(bpf_program__fd(skel->progs.server_verdict), fd_servers, BPF_SK_SKB_STREAM_VERDICT, 0) < 0) {
		snprintf(why, len, "cannot attach the stream verdict programs: %s", strerror(errno));
		goto fail;
	}
	if (!skel->bss) {
		snprintf(why, len, "the kernel cannot map BPF global data");
		goto fail;
	}
	socks = skel->bss->bp_socks;
	groups = skel->bss->bp_groups;
	traffic = skel->bss->bp_traffic;
	kernel_enabled = &skel->bss->bp_enabled;
	n_free = 0;
	for (uint32_t i = BP_MAX_SOCKS; i-- > 0;)
		free_slots[n_free++] = i;
	if (self_test(why, len) < 0)
		goto fail;
	return 0;
fail:
	bypass_bpf__destroy(skel);
	skel = NULL;
	socks = NULL;
	groups = NULL;
	traffic = NULL;
	kernel_enabled = NULL;
	return -1;
}

/* Tell the kernel what user space holds back: a paused or replaced pool,
 * SUSPEND or shutdown (hold), and the pool's generation (servers lent
 * before a RECONNECT or RELOAD are not linked again). */
static void sync_pool(struct pool *p, void *arg)
{
	(void)arg;
	if (p->bp_index < 0)
		return;
	bool hold = __atomic_load_n(&p->paused, __ATOMIC_RELAXED) || __atomic_load_n(&p->stale, __ATOMIC_RELAXED) ||
		    control_suspended() || control_phase() != PHASE_RUNNING;
	uint32_t gen = __atomic_load_n(&p->generation, __ATOMIC_RELAXED);
	for (int w = 0; w < n_workers; w++) {
		long g = (long)p->bp_index * n_workers + w;
		if (g >= (long)BP_MAX_GROUPS)
			break;
		__atomic_store_n(&groups[g].gen, gen, __ATOMIC_RELEASE);
		__atomic_store_n(&groups[g].hold, (uint32_t)hold, __ATOMIC_RELEASE);
	}
}

void bypass_sync_pools(void)
{
	if (groups)
		pool_foreach_all(sync_pool, NULL); /* forgotten pools too: they may come back */
}

void bypass_worker_take_all(struct worker *w)
{
	if (!socks)
		return;
	struct list *pos, *tmp;
	/* The worker's lists hold every protocol's connections. */
	list_for_each_safe(pos, tmp, &w->clients) {
		struct client *core = list_entry(pos, struct client, node);
		struct pg_client *c = pg_client(core);
		if (core->proto == &pg_ops && c->bp_kernel && !c->closing)
			client_take_from_kernel(c);
	}
	/* Closed objects stay on the lists until the loop's safe point. */
	list_for_each_safe(pos, tmp, &w->servers) {
		struct server *core = list_entry(pos, struct server, node);
		struct pg_server *s = pg_server(core);
		if (core->pool->proto == &pg_ops && s->bp_lent && !s->closed && bypass_server_unlend(s))
			pool_release(core);
	}
}

static void take_all_fn(struct worker *w, void *arg)
{
	(void)arg;
	bypass_worker_take_all(w);
}

void bypass_apply(const struct config *cfg)
{
	bool want = cfg->bpf_bypass;
	bool was = __atomic_load_n(&active, __ATOMIC_RELAXED);
	if (want && !skel && !load_failed) {
		char why[160];
		if (load(why, sizeof(why)) < 0) {
			load_failed = true;
			snprintf(why_not, sizeof(why_not), "%s", why);
			log_warning("bpf_bypass: %s; running in user space", why);
			return;
		}
		events = ring_buffer__new(bpf_map__fd(skel->maps.bp_events), on_event, NULL, NULL);
		if (!events)
			log_warning("bpf_bypass: no hand-over event ring; the tick takes pairs back (slower)");
		else if (n_workers > 0 && workers)
			worker_run_on(&workers[0], events_register, NULL); /* started later: bypass_worker_started */
		log_info("bpf_bypass: kernel fast path loaded (sockhash + stream verdict programs)");
	}
	if (want && skel) {
		bypass_sync_pools(); /* PAUSE or RECONNECT may have come while off */
		__atomic_store_n(kernel_enabled, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&active, true, __ATOMIC_RELEASE);
		why_not[0] = '\0';
		return;
	}
	if (!want && !load_failed)
		snprintf(why_not, sizeof(why_not), "bpf_bypass = off");
	if (!skel || !was)
		return;
	/* Switching off: the programs hand every pair up at its next byte;
	 * the workers take back the quiet ones and their lent servers now. */
	__atomic_store_n(kernel_enabled, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&active, false, __ATOMIC_RELEASE);
	if (worker_run_all(take_all_fn, NULL, NULL) < 0)
		log_warning("bpf_bypass: out of memory while switching off; pairs return at their next byte");
	log_info("bpf_bypass: switched off; every pair returns to user space");
}

void bypass_shutdown(void)
{
	if (events)
		ring_buffer__free(events);
	events = NULL;
	events_on = false;
	if (skel)
		bypass_bpf__destroy(skel);
	skel = NULL;
	socks = NULL;
	groups = NULL;
	traffic = NULL;
	__atomic_store_n(&active, false, __ATOMIC_RELEASE);
}

bool bypass_active(void)
{
	return __atomic_load_n(&active, __ATOMIC_RELAXED);
}

static void add_totals(struct pool *p, void *arg)
{
	struct stats_totals t;
	pool_get_totals(p, &t);
	*(uint64_t *)arg += t.xacts;
}

void bypass_stats(struct bypass_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->built = true;
	out->enabled = bypass_active();
	snprintf(out->reason, sizeof(out->reason), "%s", out->enabled ? "" : why_not);
	/* The pools count the kernel's transactions too (bypass_client_count). */
	uint64_t all = 0, counted = (uint64_t)__atomic_load_n(&n_kernel_xacts_counted, __ATOMIC_RELAXED);
	pool_foreach(add_totals, &all);
	out->user_transactions = all > counted ? all - counted : 0;
	out->takeovers = (uint64_t)__atomic_load_n(&n_takeovers, __ATOMIC_RELAXED);
	out->kernel_clients = __atomic_load_n(&n_kernel_clients, __ATOMIC_RELAXED);
	out->lent_servers = __atomic_load_n(&n_lent, __ATOMIC_RELAXED);
	out->slots_used = __atomic_load_n(&n_slots, __ATOMIC_RELAXED);
	if (!skel)
		return;
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0 || ncpu > 4096)
		return;
	struct bp_stats *per = calloc((size_t)ncpu, sizeof(*per));
	uint32_t zero = 0;
	if (per && bpf_map_lookup_elem(fd_stats, &zero, per) == 0) {
		for (int i = 0; i < ncpu; i++) {
			out->kernel_transactions += per[i].kernel_transactions;
			out->kernel_bytes += per[i].kernel_bytes;
			out->kernel_links += per[i].kernel_links;
			out->resent_bytes += per[i].resent_bytes;
			for (int r = 0; r < BPR_COUNT; r++)
				out->fallback[r] += per[i].fallbacks[r];
		}
	}
	free(per);
	for (int r = 0; r < BPR_COUNT; r++)
		out->fallbacks += out->fallback[r];
}

#else /* !SLUICE_BPF */

bool bypass_sock_resent(const struct pgsock *sk)
{
	(void)sk;
	return false;
}

uint64_t bypass_sock_redirected(const struct pgsock *sk)
{
	(void)sk;
	return 0;
}

void bypass_apply(const struct config *cfg)
{
	static bool warned;
	if (cfg->bpf_bypass && !warned) {
		warned = true;
		log_warning("bpf_bypass: this sluice was built without BPF support (make BPF=0); running in user space");
	}
}
void bypass_shutdown(void) {}
bool bypass_active(void) { return false; }
void bypass_client_maybe_enter(struct pg_client *c) { (void)c; }
int bypass_client_takeover(struct pg_client *c) { (void)c; return 0; }
void bypass_client_forget(struct pg_client *c) { (void)c; }
void bypass_client_count(struct pg_client *c) { (void)c; }
struct pg_server *bypass_client_kernel_server(const struct pg_client *c) { (void)c; return NULL; }
struct pg_client *bypass_server_kernel_client(const struct pg_server *s) { (void)s; return NULL; }
bool bypass_server_lend(struct server *s) { (void)s; return false; }
bool bypass_server_unlend(struct pg_server *s) { (void)s; return true; }
bool bypass_server_event(struct pg_server *s) { (void)s; return true; }
bool bypass_client_wake(struct pg_client *c, uint32_t revents) { (void)c; (void)revents; return true; }
bool bypass_server_wake(struct pg_server *s, uint32_t revents) { (void)s; (void)revents; return true; }
struct server *bypass_server_reclaim(struct pool *p, struct worker *w) { (void)p; (void)w; return NULL; }
int bypass_lent_count(struct pool *p, struct worker *w) { (void)p; (void)w; return 0; }
void bypass_server_forget(struct pg_server *s) { (void)s; }
bool bypass_client_timeout_due(const struct pg_client *c, int64_t now_us) { (void)c; (void)now_us; return false; }
int64_t bypass_server_last_used_us(const struct pg_server *s) { (void)s; return 0; }
void bypass_pool_waiters(struct pool *p, int n) { (void)p; (void)n; }
void bypass_sync_pools(void) {}
void bypass_worker_take_all(struct worker *w) { (void)w; }
void bypass_worker_started(struct worker *w) { (void)w; }
bool bypass_client_handed_up(const struct pg_client *c) { (void)c; return false; }
bool bypass_server_handed_up(const struct pg_server *s) { (void)s; return false; }
void bypass_stats(struct bypass_stats *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->reason, sizeof(out->reason), "built without BPF support (make BPF=0)");
}

#endif
