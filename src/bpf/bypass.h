/*
 * bypass.h - the kernel fast path, user-space half (bpf_bypass = on).
 *
 * Once a transaction-mode client is logged in and quiet (nothing buffered
 * either way), sluice puts its socket into the kernel's sockhash and lends
 * idle servers to its (pool, worker) group. The verdict programs
 * (bpf/bypass.bpf.c) then link the client to an idle server when it sends
 * a request and unlink them at ReadyForQuery 'I', without waking sluice.
 * When the kernel meets something sluice must see, it passes the bytes up
 * and marks the pair as user space's: the next event on either socket runs
 * bypass_client_takeover, which rebuilds sluice's view of the pair (linked
 * server, outstanding requests, a message cut in two) from the shared state.
 *
 * Owns: the loaded programs and maps, the slot table (slot -> client or
 * server), the per-group idle sets. Runs on the workers (a client and the
 * servers it can take are on the same worker) except bypass_apply and
 * bypass_stats, which the main thread and the console call.
 *
 * Without BPF support built in (make BPF=0) every function is a no-op and
 * bypass_apply reports why.
 */
#ifndef SLUICE_BYPASS_H
#define SLUICE_BYPASS_H

#include <stdbool.h>
#include <stdint.h>

struct pg_client;
struct pg_server;
struct server;
struct pool;
struct worker;
struct config;

/* Start-up and RELOAD (main thread): load and probe on first use, switch
 * the kernel path on or off. Never fails: when BPF cannot be used, logs
 * one line and sluice runs in user space (bypass_reason says why). */
void bypass_apply(const struct config *cfg);
/* Free everything at exit (after the workers stopped). */
void bypass_shutdown(void);

/* Is the kernel path switched on and working? */
bool bypass_active(void);

/* A quiet transaction-mode client may go to the kernel now (cheap checks
 * first; does nothing when it must not). */
void bypass_client_maybe_enter(struct pg_client *c);
/* Take the client (and its server, if the kernel linked one) back into
 * user space. Returns 0, or -1 when the client must be closed. */
int bypass_client_takeover(struct pg_client *c);
/* Would one of sluice's timeouts (query_timeout, transaction_timeout,
 * idle_transaction_timeout, client_idle_timeout) fire for this client in
 * the kernel? Then the tick takes it back and applies it. */
bool bypass_client_timeout_due(const struct pg_client *c, int64_t now_us);
/* When the kernel last gave this lent server back (monotonic us), 0 = never. */
int64_t bypass_server_last_used_us(const struct pg_server *s);

/* A socket of a pair in the kernel woke up: must sluice take the pair
 * back (the kernel handed it up, or the peer hung up)? False for the
 * kernel's own wake-ups after it redirected bytes. */
bool bypass_client_wake(struct pg_client *c, uint32_t revents);
bool bypass_server_wake(struct pg_server *s, uint32_t revents);

/* A worker thread began (worker 0 reads the kernel's hand-over events). */
void bypass_worker_started(struct worker *w);
/* Did the kernel hand this pair up (the tick's safety net, should an
 * event be lost)? */
bool bypass_client_handed_up(const struct pg_client *c);
bool bypass_server_handed_up(const struct pg_server *s);

/* Add what the kernel carried for the client to its pool's counters (the
 * tick calls it; takeover and close do too). On the client's worker. */
void bypass_client_count(struct pg_client *c);

/* SHOW CLIENTS / SHOW SERVERS: the server the kernel linked to this client,
 * and the client a lent server serves in the kernel, or NULL. On the
 * worker that owns them. */
struct pg_server *bypass_client_kernel_server(const struct pg_client *c);
struct pg_client *bypass_server_kernel_client(const struct pg_server *s);

/* The client is closing: release its slot. */
void bypass_client_forget(struct pg_client *c);

/* An idle, clean server of a transaction pool: lend it to the kernel's
 * idle set of its group. Returns false when it stays in user space. */
bool bypass_server_lend(struct server *s);
/* Take a lent server back when nobody uses it in the kernel. Returns false
 * when a client has it (try later). */
bool bypass_server_unlend(struct pg_server *s);
/* A lent server's socket woke up: sort out who has it. After the call the
 * server is not lent any more (linked again to its client, if the kernel
 * had linked one). Returns false when its state is unknown: close it. */
bool bypass_server_event(struct pg_server *s);
/* A kernel-idle server of pool p on worker w for a client in user space,
 * or NULL. */
struct server *bypass_server_reclaim(struct pool *p, struct worker *w);
/* Servers of (p, w) in the kernel's idle set right now. */
int bypass_lent_count(struct pool *p, struct worker *w);
/* The server is closing: take its kernel link back first. */
void bypass_server_forget(struct pg_server *s);

/* PAUSE, RESUME, SUSPEND, shutdown, RECONNECT or RELOAD changed what user
 * space holds back: tell the kernel before the command is answered, so no
 * transaction starts in the kernel that user space would not start. Any
 * thread. */
void bypass_sync_pools(void);
/* Take every client and lent server of worker w back into user space (a
 * lent server goes back to its pool). On w's thread. */
void bypass_worker_take_all(struct worker *w);

/* Clients of p wait in user space: the kernel gives freed servers to them. */
void bypass_pool_waiters(struct pool *p, int n_waiting);

/* SHOW BYPASS and /metrics. Reasons the kernel hands a pair up (enum
 * bp_reason in bpf/bypass_shared.h). */
#define BYPASS_REASONS 8
struct bypass_stats {
	bool built;                    /* compiled with BPF support */
	bool enabled;                  /* switched on and working */
	char reason[160];              /* why not, or "" */
	uint64_t kernel_transactions;
	uint64_t kernel_bytes;
	uint64_t kernel_links;
	uint64_t user_transactions;
	uint64_t fallbacks;            /* sum of the below */
	uint64_t fallback[BYPASS_REASONS]; /* enum bp_reason */
	uint64_t takeovers;            /* pairs taken back by sluice itself */
	uint64_t resent_bytes;         /* bytes TCP handed over twice, cut off by the programs */
	int64_t kernel_clients;        /* clients in the kernel now */
	int64_t lent_servers;          /* servers lent now */
	int64_t slots_used;
};
extern const char *const bypass_reason_names[BYPASS_REASONS];
void bypass_stats(struct bypass_stats *out);

/* pgsock_read: did TCP hand the kernel path bytes of this socket twice
 * that the programs could not cut off ("Resent bytes" in
 * bpf/bypass_shared.h)? Then the stream cannot go on. */
struct pgsock;
bool bypass_sock_resent(const struct pgsock *sk);
/* The bytes the kernel has redirected to this socket so far. */
uint64_t bypass_sock_redirected(const struct pgsock *sk);

#endif
