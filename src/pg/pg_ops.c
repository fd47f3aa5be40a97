/*
 * pg_ops.c - PostgreSQL's entries in the core's protocol table (proto.h):
 * mostly the client and server state machines (client.c, server.c) as they
 * are, and the few answers the core asks for (SHOW cells, cancel keys).
 */
#include "pg_ops.h"

#include <stdlib.h>

#include "auth_crypto.h"
#include "config.h"
#include "bypass.h"
#include "cancel_conn.h"
#include "pg_client.h"
#include "pg_mirror.h"
#include "client_handover.h"
#include "peer.h"
#include "pool.h"
#include "replication.h"
#include "pg_server.h"
#include "pg_shard_recover.h"
#include "pg_monitor.h"

static void pg_client_cancel(struct client *core)
{
	struct pg_client *c = pg_client(core);
	/* bpf_bypass: the kernel may have linked c to a server; only a pair
	 * in user space has a server that is surely its own. */
	client_take_from_kernel(c);
	if (!c->closing && c->server)
		server_cancel(c->server, true);
}

static void pg_client_show(const struct client *core, struct proto_show *out)
{
	const struct pg_client *c = (const struct pg_client *)core;
	const struct pg_server *link = c->server ? c->server : bypass_client_kernel_server(c);
	*out = (struct proto_show){
		.replication = repl_kind_name(c->replication),
		.app_name = c->params[5],
		.prepared = c->stmts.n,
		.linked = link != NULL,
		.link_id = link ? link->id : 0,
		.cancel = (uint64_t)c->cancel_pid << 32 | c->cancel_key,
		.fd_params = { c->params[0], c->params[4], c->params[1], c->params[2] },
		.pinned = c->pinned ? "session state (see the debug log)" : NULL,
	};
}

static void pg_server_show(const struct server *core, struct proto_show *out)
{
	const struct pg_server *s = (const struct pg_server *)core;
	const struct pg_client *link = s->client ? s->client : bypass_server_kernel_client(s);
	*out = (struct proto_show){
		.replication = repl_kind_name(s->pool->replication),
		.app_name = s->params[5],
		.prepared = s->stmts.n,
		.remote_pid = s->backend_pid,
		.linked = link != NULL,
		.link_id = link ? link->id : 0,
		.cancel = (uint64_t)s->backend_pid << 32 | s->backend_key,
		.fd_params = { s->params[0], s->params[4], s->params[1], s->params[2] },
	};
}

static void pg_cancel_draw_key(uint32_t *pid, uint32_t *key)
{
	uint32_t v[2];
	if (auth_random_bytes((uint8_t *)v, sizeof(v)) < 0)
		abort(); /* no randomness: cancel keys would be guessable */
	/* PostgreSQL's pids are positive; keep ours looking like one. */
	v[0] &= 0x7fffffff;
	peer_shape_key(&v[0], &v[1]);
	*pid = v[0];
	*key = v[1];
}

/* The table's entries take the core's structs; PostgreSQL's functions take
 * its own (pg_client.h, pg_server.h), which begin with them. */
static void op_client_on_server(struct client *c, struct server *s) { client_on_server(pg_client(c), pg_server(s)); }
static void op_client_fail(struct client *c, const char *sqlstate, const char *msg)
{
	client_fail(pg_client(c), sqlstate, msg);
}

static void op_client_reroute(struct client *c)
{
	client_reroute(pg_client(c));
}
static void op_client_close(struct client *c, const char *reason) { client_close(pg_client(c), reason); }
static void op_client_free(struct client *c) { client_free(pg_client(c)); }
static void op_client_tick(struct client *c, int64_t now_us) { client_tick(pg_client(c), now_us); }
static void op_client_update_events(struct client *c) { client_update_events(pg_client(c)); }
static void op_client_maybe_move(struct client *c) { client_maybe_move(pg_client(c)); }
static void op_client_resume_admin(struct client *c) { client_resume_admin(pg_client(c)); }
static bool op_client_handover_ok(const struct client *c)
{
	return client_handover_ok((const struct pg_client *)c);
}
static int op_client_encode(struct client *c, struct takeover_enc *e) { return client_encode(pg_client(c), e); }
static void op_client_take_back(struct client *c, const char *where)
{
	client_take_from_kernel_at(pg_client(c), where);
}
static void op_server_check(struct server *s) { server_check(pg_server(s)); }
static void op_server_watch_idle(struct server *s) { server_watch_idle(pg_server(s)); }
static void op_server_detach(struct server *s) { server_detach(pg_server(s)); }
static bool op_server_at_boundary(const struct server *s)
{
	return server_at_boundary((const struct pg_server *)s);
}
static void op_server_tick(struct server *s, int64_t now_us) { server_tick(pg_server(s), now_us); }
static void op_server_close(struct server *s, const char *reason) { server_close(pg_server(s), reason); }
static void op_server_free(struct server *s) { server_free(pg_server(s)); }

/* Periodic upkeep of the worker's cancels and mirror channels. */
static void pg_worker_tick(struct worker *w, int64_t now_us, bool all)
{
	cancel_tick(w, now_us, all);
	pg_mirror_tick(w, now_us, all);
	shard_recover_tick(w, now_us);
}

const struct proto_ops pg_ops = {
	.name = "postgresql",
	.protocol = CONFIG_PROTO_PG,
	.takeover_frame = 'C',
	.client_accept = client_accept,
	.client_on_server = op_client_on_server,
	.client_fail = op_client_fail,
	.client_reroute = op_client_reroute,
	.client_close = op_client_close,
	.client_free = op_client_free,
	.client_tick = op_client_tick,
	.client_update_events = op_client_update_events,
	.client_maybe_move = op_client_maybe_move,
	.client_stay = client_core_stay,
	.client_arrive = client_core_arrive,
	.client_resume_admin = op_client_resume_admin,
	.client_cancel = pg_client_cancel,
	.client_handover_ok = op_client_handover_ok,
	.client_encode = op_client_encode,
	.client_adopt = client_adopt_state,
	.client_show = pg_client_show,
	.client_take_back = op_client_take_back,
	.server_launch = server_launch,
	.server_check = op_server_check,
	.monitor_open = monitor_open,
	.monitor_check = monitor_check,
	.server_watch_idle = op_server_watch_idle,
	.server_detach = op_server_detach,
	.server_at_boundary = op_server_at_boundary,
	.server_tick = op_server_tick,
	.server_close = op_server_close,
	.server_free = op_server_free,
	.server_show = pg_server_show,
	.worker_tick = pg_worker_tick,
	.cancel_draw_key = pg_cancel_draw_key,
};
