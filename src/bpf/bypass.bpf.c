// SPDX-License-Identifier: GPL-2.0
/*
 * bypass.bpf.c - the kernel fast path (Tigger's "user bypass"): stream
 * verdict programs that move a transaction's bytes from a client socket to
 * its server socket and back inside the kernel.
 *
 * Two sockhashes keyed by socket cookie: bp_clients (client_verdict runs on
 * what a client sends) and bp_servers (server_verdict runs on what a server
 * answers). A client message that finds its client unlinked takes an idle
 * server of its group; the server's ReadyForQuery 'I' that answers the last
 * outstanding request, at the end of an skb, puts the server back. Anything
 * else sluice must see makes the program pass the skb up (SK_PASS) and hand
 * the pair to user space, which goes on from the framing state left here.
 *
 * Each socket's verdict runs serialised (socket lock); the two directions of
 * a pair meet under the client slot's spin lock; sluice meets the programs
 * through compare-and-swap on the client's control word and the server's
 * owner word (bypass_shared.h).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bypass_shared.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, BP_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} bp_clients SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, BP_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} bp_servers SEC(".maps");

/* socket cookie -> slot */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * BP_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u32);
} bp_slot_of SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} bp_events SEC(".maps");

struct bp_lock {
	struct bpf_spin_lock l;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BP_MAX_SOCKS);
	__type(key, __u32);
	__type(value, struct bp_lock);
} bp_locks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bp_stats);
} bp_stats_map SEC(".maps");

/* The client's COPY bookkeeping while an skb is scanned: kept in map
 * memory, whose contents the verifier does not follow, so the counts do
 * not multiply the states it explores. Committed to bp_sock.cp when the
 * kernel carries the skb. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pgf_copy);
} bp_copy_scratch SEC(".maps");

struct sql_buf {
	__u8 b[PGF_SQL_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sql_buf);
} bp_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BP_MAX_SOCKS);
	__type(key, __u32);
	__type(value, struct bp_unnamed);
} bp_unnamed SEC(".maps");

/* Shared with sluice through the mapped .bss. */
struct bp_sock bp_socks[BP_MAX_SOCKS];
struct bp_group bp_groups[BP_MAX_GROUPS];
struct bp_traffic bp_traffic[BP_MAX_SOCKS]; /* by client slot */
__u32 bp_enabled;

static const __u64 bucket_bound_us[STATS_BUCKETS - 1] = { STATS_BUCKET_BOUNDS_US };

/* What one skb holds, judged before the pair is locked. */
struct skb_scan {
	__u32 requests;   /* client: Query/Sync/FunctionCall messages */
	__u32 z_count;    /* server: ReadyForQuery messages completed */
	__u32 z_idle;     /* server: of which with status 'I' */
	__s32 mid_batch;  /* client: -1 unchanged, else batch open after this skb */
	__u8 z_status;    /* server: status of the last one */
	__u8 ends_on_z;   /* server: the skb ends right after a ReadyForQuery */
	__u8 user;        /* a message sluice must see */
	__u8 bad;         /* framing error, or too much to examine */
	__u32 q_off;      /* client: offset of the Query text to inspect (0 = none) */
	__u32 q_len;
	__s32 unnamed;    /* client: -1 unchanged, else whether the linked server holds
			   * its unnamed statement after this skb */
};

static __always_inline struct bp_stats *stats(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&bp_stats_map, &zero);
}

/* The histogram bucket of a duration (stats_buckets.h). */
static __always_inline __u32 bucket_of(__u64 us)
{
	__u32 b = 0;
#pragma unroll
	for (__u32 k = 0; k < STATS_BUCKETS - 1; k++)
		if (us > bucket_bound_us[k])
			b = k + 1;
	return b < STATS_BUCKETS ? b : STATS_BUCKETS - 1;
}

/* Count what a server's answer carried for client slot cx: queries and
 * transactions, with durations as user space measures them. Called under
 * the pair's lock, with the client's busy_ns before this answer and the
 * requests still unanswered after it. The transaction and query counts go
 * last: sluice takes them first (bypass_client_count), so whatever it
 * finds of an answer's other figures, the rest follows with a count it
 * checks on its next look. */
static __always_inline void count_answer(__u32 cx, const struct skb_scan *r, __u64 busy_ns,
					 __s32 pending, __u64 now, __u32 len)
{
	struct bp_traffic *t = &bp_traffic[cx & (BP_MAX_SOCKS - 1)];
	__sync_fetch_and_add(&t->bytes_out, len);
	if (!r->z_count)
		return;
	/* Pipelined answers in one skb: the first ran from the oldest
	 * request, the others from the answer before them (no time). */
	__u64 q_us = busy_ns && now > busy_ns ? (now - busy_ns) / 1000 : 0;
	__sync_fetch_and_add(&t->query_us, q_us);
	__sync_fetch_and_add(&t->query_hist[bucket_of(q_us)], 1);
	if (r->z_count > 1)
		__sync_fetch_and_add(&t->query_hist[0], r->z_count - 1);
	if (r->z_idle) {
		__u64 begin = t->begin_ns;
		__u64 x_us = begin && now > begin ? (now - begin) / 1000 : 0;
		__sync_fetch_and_add(&t->xact_us, x_us);
		__sync_fetch_and_add(&t->xact_hist[bucket_of(x_us)], 1);
		if (r->z_idle > 1)
			__sync_fetch_and_add(&t->xact_hist[0], r->z_idle - 1);
		/* Still in a transaction, or pipelined requests unanswered:
		 * the next one runs from here. */
		t->begin_ns = r->z_status == 'I' && pending == 0 ? 0 : now;
		__sync_fetch_and_add(&t->xacts, r->z_idle);
	}
	__sync_fetch_and_add(&t->queries, r->z_count);
}

/* Count a hand-over and tell sluice which slot to look at. */
static __always_inline void count_fallback(__u32 slot, __u32 reason)
{
	struct bp_stats *st = stats();
	if (st && reason < BPR_COUNT)
		st->fallbacks[reason]++;
	struct bp_event ev = { .slot = slot, .reason = reason };
	bpf_ringbuf_output(&bp_events, &ev, sizeof(ev), 0);
}

/* Feed up to 5 header bytes at off. Returns bytes consumed, or -1. */
static __always_inline int feed_header(struct __sk_buff *skb, struct pgframe *fr, __u32 off,
				       __u32 len, int *done)
{
	__u8 b[8] = {};
	__u32 need = pgf_hdr_need(fr);
	__u32 n = len - off < need ? len - off : need;
	*done = PGF_MORE;
	if (n < 1 || n > 5)
		return -1;
	if (bpf_skb_load_bytes(skb, off, b, n) < 0)
		return -1;
	for (__u32 k = 0; k < 5; k++) {
		if (k >= n)
			break;
		int rc = pgf_hdr_byte(fr, b[k]);
		if (rc == PGF_BAD)
			return -1;
		if (rc == PGF_HEADER)
			*done = PGF_HEADER;
	}
	return (int)n;
}

/* bpf_loop state: the verifier checks a callback once instead of every
 * turn of a bounded loop, which keeps these scans within its budget. */
struct scan_ctx {
	struct __sk_buff *skb;
	struct pgframe fr;
	struct skb_scan r;
	__u32 off, len, opts, z_end;
	const __u8 *sql;    /* Query text inspection: scratch buffer */
	__u32 sql_len;
	struct pgf_sqlscan sq; /* state of the Query text scan */
};

/* Header bytes at the cursor: *fresh says whether the type byte is in
 * this skb, *done whether the header completed. Returns 1 to stop. */
static __always_inline int step_header(struct scan_ctx *x, int *fresh, int *done)
{
	*fresh = x->fr.hdr_len == 0;
	int n = feed_header(x->skb, &x->fr, x->off, x->len, done);
	if (n < 0) {
		x->r.bad = 1;
		return 1;
	}
	x->off += (__u32)n;
	return 0;
}

static int client_step(__u32 i, void *arg)
{
	struct scan_ctx *x = arg;
	struct pgframe *fr = &x->fr;
	struct skb_scan *r = &x->r;
	__u32 len = x->len;
	if (x->off >= len)
		return 1;
	if (fr->hdr_len == 5) {
		x->off += pgf_body(fr, len - x->off);
		return 0;
	}
	int fresh, done;
	if (step_header(x, &fresh, &done))
		return 1;
	__u32 off = x->off;
	if (!fresh) {
		if (done == PGF_HEADER)
			pgf_finish_empty(fr);
		return 0;
	}
	__u8 type = fr->hdr[0];
	__u8 first[2] = {};
	__u32 nfirst = 0;
	if (done == PGF_HEADER && off < len) {
		nfirst = fr->left < 2 ? fr->left : 2;
		if (len - off < nfirst)
			nfirst = len - off;
		if (nfirst == 1) {
			if (bpf_skb_load_bytes(x->skb, off, first, 1) < 0)
				nfirst = 0;
		} else if (nfirst == 2) {
			if (bpf_skb_load_bytes(x->skb, off, first, 2) < 0)
				nfirst = 0;
		}
	}
	/* The unnamed statement is this client's once it parsed it in this
	 * skb, or, before any change here, when the link says so. */
	__u32 own = r->unnamed > 0 || (r->unnamed < 0 && (x->opts & PGF_OPT_OWN_UNNAMED)) ? PGF_OPT_OWN_UNNAMED : 0;
	if (pgf_client_verdict(type, first, nfirst, (x->opts & ~PGF_OPT_OWN_UNNAMED) | own) != PGF_OK) {
		r->user = 1;
		return 1;
	}
	int ue = pgf_client_unnamed_effect(type, first, nfirst);
	if (ue >= 0)
		r->unnamed = ue;
	if ((type == 'Q' || type == 'P') && (x->opts & PGF_OPT_SQL)) {
		/* sluice reads SQL texts (pinning, DISCARD, DEALLOCATE): the
		 * whole text must be here, one per skb. A Parse of the unnamed
		 * statement (the only one that gets here) has its text after
		 * the empty name; the parameter types after it are scanned
		 * too, which can only send more to user space. */
		__u32 skip = type == 'P' ? 1 : 0;
		if (done != PGF_HEADER || r->q_off || off + fr->left > len || fr->left < skip + 1 ||
		    fr->left - skip - 1 > PGF_SQL_MAX) {
			r->user = 1;
			return 1;
		}
		r->q_off = off + skip;
		r->q_len = fr->left - skip - 1;

	}
	__u32 zero = 0;
	struct pgf_copy *cp = bpf_map_lookup_elem(&bp_copy_scratch, &zero);
	if (cp && pgf_copy_note(cp, type) != PGF_OK) {
		r->user = 1;
		return 1;
	}
	int eff = pgf_client_effect(type);
	if (eff == PGF_REQUEST) {
		r->requests++;
		/* Only a Sync closes a batch; a Query inside one leaves it open. */
		if (type == 'S')
			r->mid_batch = 0;
	} else if (eff == PGF_BATCH) {
		r->mid_batch = 1;
	}
	if (done == PGF_HEADER)
		pgf_finish_empty(fr);
	return 0;
}

static int server_step(__u32 i, void *arg)
{
	struct scan_ctx *x = arg;
	struct pgframe *fr = &x->fr;
	struct skb_scan *r = &x->r;
	__u32 len = x->len, off = x->off;
	if (off >= len)
		return 1;
	if (fr->hdr_len == 5) {
		if (fr->type == 'Z' && fr->left == 1) {
			__u8 st = 0;
			if (bpf_skb_load_bytes(x->skb, off, &st, 1) < 0 ||
			    (st != 'I' && st != 'T' && st != 'E')) {
				r->bad = 1;
				return 1;
			}
			r->z_count++;
			if (st == 'I')
				r->z_idle++;
			r->z_status = st;
			x->z_end = off + 1;
		}
		x->off = off + pgf_body(fr, len - off);
		return 0;
	}
	int fresh, done;
	if (step_header(x, &fresh, &done))
		return 1;
	if (fresh && pgf_server_verdict(fr->hdr[0]) != PGF_OK) {
		r->user = 1;
		return 1;
	}
	if (done == PGF_HEADER) {
		if (fr->type == 'Z' && fr->left != 1) {
			r->bad = 1;
			return 1;
		}
		pgf_finish_empty(fr);
	}
	return 0;
}

/* One byte of the Query text scan (pgf_sql_needs_user, one turn). */
static int sql_step(__u32 i, void *arg)
{
	struct scan_ctx *x = arg;
	if (i >= x->sql_len)
		return 1;
	pgf_sql_byte(&x->sq, x->sql[i & (PGF_SQL_MAX - 1)]);
	return 0;
}

static __always_inline void scan(struct __sk_buff *skb, struct scan_ctx *x, int client)
{
	x->skb = skb;
	x->len = skb->len;
	x->off = 0;
	if (client)
		bpf_loop(BP_MAX_MSGS, client_step, x, 0);
	else
		bpf_loop(BP_MAX_MSGS, server_step, x, 0);
	if (!x->r.user && !x->r.bad && x->off < x->len)
		x->r.bad = 1; /* more messages than we examine per skb */
	if (!client)
		x->r.ends_on_z = x->z_end != 0 && x->z_end == x->len;
}

/* Query text inspection (tracking on): sluice reacts to some words. */
static __always_inline int sql_needs_user(struct __sk_buff *skb, struct scan_ctx *x)
{
	__u32 zero = 0, len = x->r.q_len;
	struct sql_buf *buf = bpf_map_lookup_elem(&bp_scratch, &zero);
	if (!buf || len > PGF_SQL_MAX)
		return 1;
	if (len == 0)
		return 0;
	if (bpf_skb_load_bytes(skb, x->r.q_off, buf->b, len) < 0)
		return 1;
	x->sql = buf->b;
	x->sql_len = len;
	if (pgf_sql_first_word_needs_user(buf->b, len < PGF_SQL_FIRST ? len : PGF_SQL_FIRST))
		return 1;
	pgf_sql_begin(&x->sq);
	bpf_loop(PGF_SQL_MAX, sql_step, x, 0);
	return pgf_sql_end(&x->sq);
}

/* Keep the client's unnamed statement where sluice can read it back
 * (bp_unnamed, unnamed_ver/len): a Parse of it carried in this skb, or its
 * drop. unnamed_ver is odd while the body is written. */
static __always_inline void mirror_unnamed(struct __sk_buff *skb, __u32 x, struct bp_sock *c,
					   const struct skb_scan *r)
{
	struct bp_unnamed *u = bpf_map_lookup_elem(&bp_unnamed, &x);
	if (!u || r->unnamed < 0 || !(c->opts & PGF_OPT_SQL) || (r->unnamed > 0 && !r->q_off))
		return; /* nothing changed, or sluice does not follow it (session mode) */
	/* unnamed == 1: the skb's one text is that Parse's; its body starts
	 * one byte before the text (the empty name) and is q_len + 2 long. */
	__u32 len = r->unnamed ? r->q_len + 2 : 0;
	__sync_fetch_and_add(&c->unnamed_ver, 1);
	if (len > BP_UNNAMED_MAX || (len > 0 && bpf_skb_load_bytes(skb, r->q_off - 1, u->body, len) < 0))
		len = 0xffffffff; /* unknown: sluice then forgets it */
	c->unnamed_len = len;
	__sync_fetch_and_add(&c->unnamed_ver, 1);
}

static __always_inline __u32 slot_of(struct __sk_buff *skb, int *ok)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	__u32 *p = bpf_map_lookup_elem(&bp_slot_of, &cookie);
	*ok = p && *p < BP_MAX_SOCKS;
	return p ? *p & (BP_MAX_SOCKS - 1) : 0;
}

/* Bytes at the head of skb that TCP handed to the programs before (see
 * "Resent bytes" in bypass_shared.h), from the sequence number TCP keeps
 * in the skb's control block (its first word). Verdicts for one socket
 * run one at a time. */
static __always_inline __u32 resent_bytes(struct __sk_buff *skb, struct bp_sock *me)
{
	__u32 seq = skb->cb[0], end = seq + skb->len, dup = 0;
	if (me->rx_seen && (__s32)(me->rx_next - seq) > 0)
		dup = me->rx_next - seq;
	if (!me->rx_seen || (__s32)(end - me->rx_next) > 0) {
		me->rx_next = end;
		me->rx_seen = 1;
	}
	if (dup) {
		struct bp_stats *st = stats();
		if (st)
			st->resent_bytes += dup < skb->len ? dup : skb->len;
	}
	return dup;
}

/* Find bytes of slot's socket TCP handed before and cut them off the head
 * of skb, so that the peer or sluice gets each byte once. The kernel
 * counts as read what is left of the skb after the program (tcp_eat_skb
 * on a redirect, recvmsg on a pass), so the socket's count of read bytes
 * stays right too. Returns 0 when nothing is repeated any more; else the
 * skb must not go on (pass_up marks the socket). A global function: the
 * verifier checks it once, not on every path of both programs. */
__noinline int cut_resent(struct __sk_buff *skb, __u32 slot)
{
	struct bp_sock *me = &bp_socks[slot & (BP_MAX_SOCKS - 1)];
	__u32 dup = resent_bytes(skb, me);
	if (dup == 0)
		return 0;
	if (dup >= skb->len)
		return 1; /* TCP does not queue a whole old segment */
	for (int i = 0; i < BP_CUT_CALLS && dup; i++) {
		__u32 n = dup < BP_CUT_MAX ? dup : BP_CUT_MAX;
		if (bpf_skb_adjust_room(skb, -(__s32)n, 0, 0) < 0)
			return 1;
		dup -= n;
	}
	return dup != 0;
}

/* The skb goes up to user space; one with repeated bytes left in it marks
 * the socket. */
static __always_inline int pass_up(struct bp_sock *me, int repeated)
{
	if (repeated)
		me->resent = 1; /* before the bytes reach the queue sluice reads */
	return SK_PASS;
}

/* User space has the pair: pass, and let sluice see that bytes went up
 * (the generation moves) so it does not hand the client back too early. */
static __always_inline int pass_user(struct bp_sock *c)
{
	for (int i = 0; i < 4; i++) {
		__u64 old = c->ctl;
		if (BP_CTL_MODE(old) != BP_USER)
			return 0;
		if (__sync_val_compare_and_swap(&c->ctl, old, BP_CTL(BP_USER, BP_CTL_GEN(old) + 1)) == old)
			return 1;
	}
	return 1;
}

SEC("sk_skb/stream_verdict")
int client_verdict(struct __sk_buff *skb)
{
	int ok;
	__u32 x = slot_of(skb, &ok);
	if (!ok)
		return SK_PASS;
	struct bp_sock *c = &bp_socks[x];
	int repeated = cut_resent(skb, x); /* bytes TCP gave twice are left in skb */
	if (BP_CTL_MODE(c->ctl) == BP_USER && pass_user(c))
		return pass_up(c, repeated);

	/* Read outside the lock: a link that changes meanwhile is caught
	 * below (used_unnamed on a new link goes to user space). */
	__u32 opts = c->opts | (c->peer && c->own_unnamed ? PGF_OPT_OWN_UNNAMED : 0);
	__u32 zero = 0;
	struct pgf_copy *cp = bpf_map_lookup_elem(&bp_copy_scratch, &zero);
	if (!cp)
		return pass_up(c, repeated);
	*cp = c->cp;
	struct scan_ctx x_ = { .fr = c->fr, .opts = opts, .r = { .mid_batch = -1, .unnamed = -1 } };
	scan(skb, &x_, 1);
	if (!x_.r.user && !x_.r.bad && x_.r.q_off && sql_needs_user(skb, &x_))
		x_.r.user = 1;
	if (x_.r.unnamed > 0 && x_.r.q_len + 2 > BP_UNNAMED_MAX)
		x_.r.user = 1; /* sluice could not prepare it again */
	struct skb_scan r = x_.r;
	struct pgframe fr = x_.fr;
	/* Before the lock (no helper may run under it). Should the skb go to
	 * user space after all, sluice reads the same Parse again anyway. */
	if (!r.user && !r.bad && BP_CTL_MODE(c->ctl) == BP_KERNEL)
		mirror_unnamed(skb, x, c, &r);

	struct bp_lock *lk = bpf_map_lookup_elem(&bp_locks, &x);
	if (!lk)
		return pass_up(c, repeated);
	__u64 now = bpf_ktime_get_ns();
	__u32 reason = BPR_COUNT;
	__u64 peer_cookie = 0;
	__u32 links = 0;
	bpf_spin_lock(&lk->l);
	__u64 old = c->ctl;
	if (BP_CTL_MODE(old) != BP_KERNEL ||
	    __sync_val_compare_and_swap(&c->ctl, old, BP_CTL(BP_BUSY, BP_CTL_GEN(old))) != old) {
		bpf_spin_unlock(&lk->l);
		pass_user(c);
		return pass_up(c, repeated);
	}
	__u32 gen = BP_CTL_GEN(old) + 1;
	__u32 srv = c->peer;
	if (!bp_enabled)
		reason = BPR_DISABLED;
	else if (repeated)
		reason = BPR_RESENT; /* never to the peer */
	else if (r.user || ((x_.opts & PGF_OPT_OWN_UNNAMED) && (srv == 0 || !c->own_unnamed)))
		reason = BPR_MESSAGE; /* the link it judged by has changed */
	else if (r.bad)
		reason = BPR_FRAMING;
	else if (srv == 0) {
		struct bp_group *g = &bp_groups[c->group & (BP_MAX_GROUPS - 1)];
		if (!pgf_at_boundary(&c->fr))
			reason = BPR_FRAMING;
		else if (g->waiters || g->hold)
			reason = BPR_WAITERS;
		else {
			for (__u32 i = 0; i < BP_GROUP_SERVERS; i++) {
				__u32 cand = g->srv[i];
				if (cand == 0 || cand > BP_MAX_SOCKS)
					continue;
				struct bp_sock *s = &bp_socks[(cand - 1) & (BP_MAX_SOCKS - 1)];
				if (s->owner == BP_OWNER_IDLE && s->pkey == c->pkey && s->gen == g->gen &&
				    __sync_val_compare_and_swap(&s->owner, BP_OWNER_IDLE, x + 1) == BP_OWNER_IDLE) {
					srv = cand;
					break;
				}
			}
			if (srv == 0)
				reason = BPR_NO_SERVER;
			else {
				c->peer = srv;
				links = 1;
			}
		}
	}
	struct bp_sock *target = &bp_socks[(srv - 1) & (BP_MAX_SOCKS - 1)];
	if (reason == BPR_COUNT && target->burst + skb->len > BP_BURST_MAX)
		reason = BPR_LARGE; /* the server is not reading: user space's buffers limit it */
	if (reason != BPR_COUNT) {
		c->reason = (__u8)reason;
		c->ctl = BP_CTL(BP_USER, gen);
		bpf_spin_unlock(&lk->l);
		count_fallback(x, reason);
		return pass_up(c, repeated);
	}
	c->fr = fr;
	c->cp = *cp;
	c->active_ns = now;
	if (c->pending == 0 && r.requests)
		c->busy_ns = now;
	struct bp_traffic *t = &bp_traffic[x & (BP_MAX_SOCKS - 1)];
	__sync_fetch_and_add(&t->bytes_in, skb->len);
	if (r.requests && !t->begin_ns)
		t->begin_ns = now;
	c->pending += (__s32)r.requests;
	if (r.mid_batch >= 0)
		c->mid_batch = (__u8)r.mid_batch;
	if (r.unnamed >= 0)
		c->own_unnamed = (__u8)r.unnamed;
	peer_cookie = target->cookie;
	/* Counted before the pair is unlocked: sluice, once it has the
	 * pair, must find every redirected byte here. */
	__sync_fetch_and_add(&target->redir, skb->len);
	target->burst += skb->len;
	c->burst = 0;
	c->ctl = BP_CTL(BP_KERNEL, gen);
	bpf_spin_unlock(&lk->l);

	struct bp_stats *st = stats();
	if (st) {
		st->kernel_bytes += skb->len;
		st->kernel_links += links;
	}
	return bpf_sk_redirect_hash(skb, &bp_servers, &peer_cookie, 0);
}

SEC("sk_skb/stream_verdict")
int server_verdict(struct __sk_buff *skb)
{
	int ok;
	__u32 x = slot_of(skb, &ok);
	if (!ok)
		return SK_PASS;
	struct bp_sock *s = &bp_socks[x];
	int repeated = cut_resent(skb, x); /* bytes TCP gave twice are left in skb */
	__u32 owner = s->owner;
	if (owner == BP_OWNER_USER)
		return pass_up(s, repeated);
	if (owner == BP_OWNER_IDLE) {
		/* Nobody asked: a notice, or the server going away. Sluice
		 * decides; no client may take this server meanwhile. */
		if (__sync_val_compare_and_swap(&s->owner, BP_OWNER_IDLE, BP_OWNER_USER) == BP_OWNER_IDLE) {
			count_fallback(x, BPR_SERVER_MSG);
			return pass_up(s, repeated);
		}
		owner = s->owner;
		if (owner == BP_OWNER_USER || owner == BP_OWNER_IDLE)
			return pass_up(s, repeated);
	}
	__u32 cx = (owner - 1) & (BP_MAX_SOCKS - 1);
	struct bp_sock *c = &bp_socks[cx];

	struct scan_ctx x_ = { .fr = s->fr, .r = { .mid_batch = -1 } };
	scan(skb, &x_, 0);
	struct skb_scan r = x_.r;
	struct pgframe fr = x_.fr;

	struct bp_lock *lk = bpf_map_lookup_elem(&bp_locks, &cx);
	if (!lk)
		return pass_up(s, repeated);
	__u64 now = bpf_ktime_get_ns();
	bpf_spin_lock(&lk->l);
	__u64 old = c->ctl;
	if (BP_CTL_MODE(old) != BP_KERNEL || c->peer != x + 1 ||
	    __sync_val_compare_and_swap(&c->ctl, old, BP_CTL(BP_BUSY, BP_CTL_GEN(old))) != old) {
		bpf_spin_unlock(&lk->l);
		pass_user(c); /* sluice may be linking the pair: it must see this */
		return pass_up(s, repeated);
	}
	__u32 gen = BP_CTL_GEN(old) + 1;
	__u32 reason = BPR_COUNT;
	__s32 pending = c->pending - (__s32)r.z_count;
	if (pending < 0)
		pending = 0;
	/* The client must be between messages too: one still sending COPY
	 * data after the server's error keeps its server until it is done. */
	int release = !(c->opts & PGF_OPT_SESSION) && r.z_count && r.ends_on_z && pending == 0 &&
		      !c->mid_batch && r.z_status == 'I' && pgf_at_boundary(&c->fr);
	if (!bp_enabled)
		reason = BPR_DISABLED;
	else if (repeated)
		reason = BPR_RESENT; /* never to the peer */
	else if (r.user)
		reason = BPR_SERVER_MSG;
	else if (r.bad)
		reason = BPR_FRAMING;
	else if (release) {
		struct bp_group *g = &bp_groups[s->group & (BP_MAX_GROUPS - 1)];
		if (g->waiters || g->hold || s->gen != g->gen)
			reason = BPR_WAITERS;
	}
	if (reason == BPR_COUNT && c->burst + skb->len > BP_BURST_MAX)
		reason = BPR_LARGE; /* the client is not reading: see BP_BURST_MAX */
	if (reason != BPR_COUNT) {
		c->reason = (__u8)reason;
		c->ctl = BP_CTL(BP_USER, gen);
		bpf_spin_unlock(&lk->l);
		count_fallback(cx, reason);
		return pass_up(s, repeated);
	}
	s->fr = fr;
	count_answer(cx, &r, c->busy_ns, pending, now, skb->len);
	c->pending = pending;
	if (r.z_count) {
		if (r.z_status == 'I')
			c->xact_ns = 0;
		else if (c->status == 'I')
			c->xact_ns = now;
		c->status = r.z_status;
		c->ready_ns = now;
		c->busy_ns = now; /* a pipelined request runs from here */
	}
	__u64 client_cookie = c->cookie;
	__sync_fetch_and_add(&c->redir, skb->len); /* see client_verdict */
	c->burst += skb->len;
	s->burst = 0;
	if (release) {
		c->peer = 0;
		c->own_unnamed = 0; /* the next server may hold another client's */
		s->active_ns = now;
		s->owner = BP_OWNER_IDLE;
	}
	c->ctl = BP_CTL(BP_KERNEL, gen);
	bpf_spin_unlock(&lk->l);

	struct bp_stats *st = stats();
	if (st) {
		st->kernel_bytes += skb->len;
		st->kernel_transactions += r.z_idle;
	}
	return bpf_sk_redirect_hash(skb, &bp_clients, &client_cookie, 0);
}
