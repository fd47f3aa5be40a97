/*
 * bypass_shared.h - the state the kernel fast path and sluice share, laid
 * out once for both: the eBPF programs keep it in global arrays (.bss),
 * which sluice maps into its own memory through the skeleton, so either
 * side reads it directly and hands things over with compare-and-swap.
 *
 * Slots: every socket sluice puts into the sockhash gets a slot (index into
 * bp_socks). A client slot holds the pair: its link to a server slot, the
 * count of requests the server still owes, the control word. A server slot
 * says who owns the server (user space, the kernel's idle set, a client).
 *
 * Control word of a client slot (ctl): mode in the low byte, a generation
 * in the high 32 bits. Transitions:
 *   USER   -> KERNEL  sluice, by CAS, only when the generation is the one it
 *                     saw before checking that no byte waits in user space
 *   KERNEL -> BUSY    a verdict program while it works on the pair
 *   BUSY   -> KERNEL  the program, done (generation + 1)
 *   BUSY   -> USER    the program hands the pair to user space (gen + 1)
 *   KERNEL -> USER    sluice takes the pair back (switch off, close, kill)
 * Sluice never holds BUSY; it spins (briefly) until the program is done.
 */
#ifndef SLUICE_BYPASS_SHARED_H
#define SLUICE_BYPASS_SHARED_H

#include "pgframe.h"
#include "../core/stats_buckets.h"

#ifdef __BPF__
typedef __u64 bp_u64;
#else
typedef uint64_t bp_u64;
#endif

#define BP_MAX_SOCKS 16384u       /* slots; sockets beyond stay in user space */
#define BP_UNNAMED_MAX 256u       /* longest unnamed Parse the kernel carries (its body):
				   * sluice must be able to prepare the statement again */
#define BP_MAX_GROUPS 1024u       /* (pool, worker) groups of idle servers */
#define BP_GROUP_SERVERS 32u      /* idle servers the kernel can take per group */
#define BP_MAX_MSGS 65536u        /* messages examined per skb (bpf_loop turns); more = user space */
/* Bytes the kernel redirects to a socket that has sent nothing since: past
 * this, the pair goes to user space, whose buffers stop reading the sender
 * when the receiver does not keep up. The kernel's own queue of redirected
 * bytes has no such limit (a client that stops reading during a large
 * result would make it hold the whole result). */
#define BP_BURST_MAX (256u * 1024u)
/* Resent bytes: the kernel's stream verdict path takes whole skbs from the
 * TCP receive queue, and a retransmitted segment that overlaps bytes
 * already received can be queued whole (a plain recv() skips the overlap;
 * the verdict path does not, and counts the repeated bytes as read, so the
 * socket's wake-ups stop working for small answers after). The programs
 * track each socket's TCP sequence number and cut the repeated bytes off
 * the skb's head (bpf_skb_adjust_room, BP_CUT_MAX bytes a call, at most
 * BP_CUT_CALLS calls) before anything else looks at it. Should that fail,
 * the skb goes up to user space marked (bp_sock.resent), never to the
 * peer, and sluice closes that connection with a clear error instead of a
 * wrong answer or a hang. */
#define BP_CUT_MAX 4095u  /* the kernel's limit for one sk_skb adjust_room */
#define BP_CUT_CALLS 64   /* up to 262,080 bytes (four 64 KiB segments) */

enum bp_mode {
	BP_FREE = 0,   /* slot unused */
	BP_USER = 1,   /* user space has the pair: programs pass bytes up */
	BP_KERNEL = 2, /* the kernel carries the pair */
	BP_BUSY = 3,   /* a program is working on the pair */
};

enum bp_role {
	BP_CLIENT = 1,
	BP_SERVER = 2,
};

/* Owner of a server slot. */
#define BP_OWNER_USER 0u          /* sluice has it (not in the idle set) */
#define BP_OWNER_IDLE 0xffffffffu /* in its group's idle set, free to take */
/* any other value: slot + 1 of the client it serves in the kernel */

#define BP_CTL(mode, gen) (((bp_u64)(gen) << 32) | (bp_u64)(mode))
#define BP_CTL_MODE(ctl) ((pgf_u32)((ctl) & 0xff))
#define BP_CTL_GEN(ctl) ((pgf_u32)((ctl) >> 32))

/* Why the kernel handed a pair to user space (counted in bp_stats). */
enum bp_reason {
	BPR_MESSAGE = 0,    /* a message sluice must see (named statement, Terminate, ...) */
	BPR_NO_SERVER = 1,  /* no idle server in the group */
	BPR_FRAMING = 2,    /* framing error or too many messages in one skb */
	BPR_WAITERS = 3,    /* clients wait in user space, or sluice holds the pool
			     * (PAUSE, SUSPEND, shutdown, RECONNECT): the server goes to it */
	BPR_DISABLED = 4,   /* bypass switched off */
	BPR_SERVER_MSG = 5, /* the server sent something sluice must see */
	BPR_LARGE = 6,      /* more than BP_BURST_MAX bytes one way without an answer */
	BPR_RESENT = 7,     /* TCP handed the program bytes again and they could not be cut */
	BPR_COUNT = 8,
};

struct bp_sock {
	bp_u64 cookie;      /* socket cookie = key in the sockhash */
	bp_u64 ctl;         /* client: control word (see above) */
	pgf_u32 role;       /* enum bp_role, 0 when free */
	pgf_u32 group;      /* (pool, worker) group */
	pgf_u32 peer;       /* client: slot + 1 of its server, 0 = none */
	pgf_u32 owner;      /* server: BP_OWNER_* or client slot + 1 */
	pgf_u32 opts;       /* client: PGF_OPT_* */
	pgf_u32 pkey;       /* hash of the reported parameters the client expects, or
			     * the server has: the kernel links only equal keys */
	pgf_u32 gen;        /* server: its pool's generation (RECONNECT, RELOAD) */
	pgf_u32 burst;      /* bytes redirected to this socket since it last sent (BP_BURST_MAX) */
	pgf_u32 unnamed_ver; /* client: bumped (twice: odd while written) each time the kernel
			     * carries an unnamed Parse (body in bp_unnamed) or its drop (a
			     * Query, Close of it: unnamed_len 0) */
	pgf_u32 unnamed_len; /* client: bytes of that Parse body, 0 = no unnamed statement */
	pgf_s32 pending;    /* client: Query/Sync/FunctionCall not yet answered */
	pgf_u8 mid_batch;   /* client: extended-protocol messages since the last Sync */
	pgf_u8 status;      /* client: status of the last ReadyForQuery it got */
	pgf_u8 reason;      /* client: enum bp_reason of the last hand-over */
	pgf_u8 own_unnamed; /* client: its linked server holds its unnamed statement (the
			     * kernel saw it parsed on this link) */
	struct pgframe fr;  /* framing of the bytes this socket receives */
	struct pgf_copy cp; /* client: its latest Execute/Query and the Syncs since (COPY) */
	/* CLOCK_MONOTONIC ns, for sluice's timeouts (0 = never): */
	bp_u64 active_ns;   /* client: last bytes from it; server: last unlinked */
	bp_u64 busy_ns;     /* client: oldest unanswered request sent */
	bp_u64 ready_ns;    /* client: last ReadyForQuery it got */
	bp_u64 xact_ns;     /* client: its transaction began (status left 'I') */
	bp_u64 redir;       /* bytes the programs redirected to this socket: the kernel
			     * writes them from a work queue after the program returns,
			     * and sluice's own writes after a hand-over wait for them */
	/* Receiving side, whatever the mode (see "Resent bytes"): */
	pgf_u32 rx_next;    /* TCP sequence number after the last byte seen */
	pgf_u32 rx_seen;    /* rx_next is set */
	pgf_u32 resent;     /* TCP repeated bytes the programs could not cut: the stream
			     * cannot go on */
};

/* The body of the last unnamed Parse the kernel carried for a client (by
 * client slot): the statement lives on after its transaction, so sluice
 * may have to prepare it again on another server. */
struct bp_unnamed {
	pgf_u8 body[BP_UNNAMED_MAX];
};

/* A hand-over, told to sluice through the bp_events ring buffer: sockets
 * of pairs in the kernel are not watched for input (the kernel's own
 * wake-ups after each redirect would cost a thread switch each). */
struct bp_event {
	pgf_u32 slot;       /* the client slot of the pair, or an idle server's slot */
	pgf_u32 reason;     /* enum bp_reason */
};

struct bp_group {
	pgf_u32 srv[BP_GROUP_SERVERS]; /* server slot + 1, 0 = empty; written by sluice only */
	pgf_u32 waiters;    /* clients of the pool queued in user space: a server the
			     * kernel frees goes to them instead of the idle set */
	pgf_u32 hold;       /* PAUSE, SUSPEND, shutdown: the kernel starts no
			     * transaction and hands every freed server up */
	pgf_u32 gen;        /* the pool's generation: a server lent before a
			     * RECONNECT or RELOAD is not linked again */
};

/* What the kernel carried for one client slot, for SHOW STATS and the pool
 * counters: the programs add to it (atomically, under the pair's lock);
 * the client's worker takes it with atomic exchanges to zero and adds it
 * to its pool (bypass_client_count). Durations as sluice measures them in
 * user space: a query from its request to its ReadyForQuery, a transaction
 * from its first request to ReadyForQuery 'I'. */
struct bp_traffic {
	bp_u64 xacts, queries;
	bp_u64 bytes_in;      /* from the client */
	bp_u64 bytes_out;     /* from the server, for the client */
	bp_u64 xact_us, query_us;
	bp_u64 begin_ns;      /* the open transaction's first request, 0 = none */
	pgf_u32 query_hist[STATS_BUCKETS], xact_hist[STATS_BUCKETS];
};

/* Counters the programs keep per CPU (one PERCPU_ARRAY element). */
struct bp_stats {
	bp_u64 kernel_transactions;  /* ended with ReadyForQuery 'I' in the kernel */
	bp_u64 kernel_bytes;         /* bytes redirected socket to socket */
	bp_u64 kernel_links;         /* servers taken from an idle set */
	bp_u64 fallbacks[BPR_COUNT]; /* pairs handed to user space, by reason */
	bp_u64 resent_bytes;         /* bytes TCP handed over twice (see "Resent bytes"): cut, or
				      * their connection closed (fallbacks[BPR_RESENT]) */
};

#endif
