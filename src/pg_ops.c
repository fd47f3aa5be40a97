/*
 * pg_ops.c - PostgreSQL's entries in the core's protocol table (proto.h):
 * mostly the client and server state machines (client.c, server.c) as they
 * are, and the few answers the core asks for (SHOW cells, cancel keys).
 */
#include "pg_ops.h"

#include <stdlib.h>

#include "auth_crypto.h"
#include "bypass.h"
#include "cancel_conn.h"
#include "client.h"
#include "client_handover.h"
#include "peer.h"
#include "pool.h"
#include "replication.h"
#include "server.h"

static void pg_client_cancel(struct client *c)
{
	/* bpf_bypass: the kernel may have linked c to a server; only a pair
	 * in user space has a server that is surely its own. */
	client_take_from_kernel(c);
	if (!c->closing && c->server)
		server_cancel(c->server, true);
}

static void pg_client_show(const struct client *c, struct proto_show *out)
{
	const struct server *link = c->server ? c->server : bypass_client_kernel_server(c);
	*out = (struct proto_show){
		.replication = repl_kind_name(c->replication),
		.app_name = c->params[5],
		.prepared = c->stmts.n,
		.linked = link != NULL,
		.link_id = link ? link->id : 0,
		.cancel = (uint64_t)c->cancel_pid << 32 | c->cancel_key,
		.fd_params = { c->params[0], c->params[4], c->params[1], c->params[2] },
	};
}

static void pg_server_show(const struct server *s, struct proto_show *out)
{
	const struct client *link = s->client ? s->client : bypass_server_kernel_client(s);
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

const struct proto_ops pg_ops = {
	.name = "postgresql",
	.client_accept = client_accept,
	.client_on_server = client_on_server,
	.client_fail = client_fail,
	.client_close = client_close,
	.client_free = client_free,
	.client_tick = client_tick,
	.client_update_events = client_update_events,
	.client_maybe_move = client_maybe_move,
	.client_stay = client_stay,
	.client_arrive = client_arrive,
	.client_resume_admin = client_resume_admin,
	.client_cancel = pg_client_cancel,
	.client_handover_ok = client_handover_ok,
	.client_encode = client_encode,
	.client_adopt = client_adopt_state,
	.client_show = pg_client_show,
	.client_take_back = client_take_from_kernel_at,
	.server_launch = server_launch,
	.server_check = server_check,
	.server_watch_idle = server_watch_idle,
	.server_detach = server_detach,
	.server_at_boundary = server_at_boundary,
	.server_tick = server_tick,
	.server_close = server_close,
	.server_free = server_free,
	.server_show = pg_server_show,
	.worker_tick = cancel_tick,
	.cancel_draw_key = pg_cancel_draw_key,
};
