/*
 * my_ops.c - MySQL's entries in the core's protocol table (proto.h): the
 * client and server state machines (my_client.c, my_server.c), and the few
 * answers the core asks for.
 */
#include "my_ops.h"

#include <stdlib.h>

#include <openssl/rand.h>

#include "config.h"
#include "my_conn.h"
#include "my_handover.h"
#include "my_mirror.h"
#include "my_monitor.h"
#include "my_route.h"
#include "pool.h"

/* The table's entries take the core's structs; MySQL's functions take its
 * own (my_conn.h), which begin with them. */
static void op_client_on_server(struct client *c, struct server *s) { my_client_on_server(my_client(c), my_server(s)); }
static void op_client_fail(struct client *c, const char *sqlstate, const char *msg)
{
	my_client_fail(my_client(c), sqlstate, msg);
}
static void op_client_close(struct client *c, const char *reason) { my_client_close(my_client(c), reason); }
static void op_client_free(struct client *c) { my_client_free(my_client(c)); }
static void op_client_tick(struct client *c, int64_t now_us) { my_client_tick(my_client(c), now_us); }
static void op_client_update_events(struct client *c) { my_client_update_events(my_client(c)); }
/* Between transactions, to another worker (my_handover.c). */
static void op_client_maybe_move(struct client *c) { my_client_maybe_move(my_client(c)); }
static void op_client_resume_admin(struct client *c) { (void)c; } /* no console on the MySQL port */
/* A PostgreSQL CancelRequest cannot name a MySQL client (its key is 0):
 * MySQL's cancel is KILL QUERY, my_kill.c. */
static void op_client_cancel(struct client *c) { (void)c; }
/* Online restart: the new process takes idle clients with their state
 * (my_handover.c). */
static bool op_client_handover_ok(const struct client *c)
{
	return my_handover_ok((const struct my_client *)c);
}
static int op_client_encode(struct client *c, struct takeover_enc *e) { return my_handover_encode(my_client(c), e); }
static void op_client_show(const struct client *c, struct proto_show *out)
{
	const struct my_client *mc = (const struct my_client *)c;
	*out = (struct proto_show){
		.replication = "no",
		.linked = mc->server != NULL,
		.link_id = mc->server ? mc->server->id : 0,
		.cancel = mc->cancel_pid,
		.pinned = !mc->pinned ? NULL : mc->pin_why ? mc->pin_why
				      : "server-side prepared statement, COM_SET_OPTION or a long multi-statement query",
	};
}
static void op_server_check(struct server *s) { my_server_check(my_server(s)); }
static void op_server_watch_idle(struct server *s) { my_server_watch_idle(my_server(s)); }
static void op_server_detach(struct server *s) { my_server_detach(my_server(s)); }
static bool op_server_at_boundary(const struct server *s)
{
	return my_server_at_boundary((const struct my_server *)s);
}
static void op_server_tick(struct server *s, int64_t now_us) { my_server_tick(my_server(s), now_us); }
static void op_server_close(struct server *s, const char *reason) { my_server_close(my_server(s), reason); }
static void op_server_free(struct server *s) { my_server_free(my_server(s)); }
static void op_server_show(const struct server *s, struct proto_show *out)
{
	const struct my_server *ms = (const struct my_server *)s;
	*out = (struct proto_show){
		.replication = "no",
		.remote_pid = ms->conn_id,
		.linked = ms->client != NULL,
		.link_id = ms->client ? ms->client->id : 0,
		.cancel = ms->conn_id,
	};
}

/* The worker's periodic upkeep: KILLs on their way, mirror channels. */
static void op_worker_tick(struct worker *w, int64_t now_us, bool all)
{
	my_kill_tick(w, now_us, all);
	my_mirror_tick(w, now_us, all);
}

/* A MySQL connection id: 31 random bits, never 0; KILL names only this. */
static void op_cancel_draw_key(uint32_t *pid, uint32_t *key)
{
	uint32_t v;
	if (RAND_bytes((uint8_t *)&v, sizeof(v)) != 1)
		abort(); /* no randomness: connection ids would be guessable */
	*pid = (v & 0x7fffffff) | 1;
	*key = 0;
}

const struct proto_ops my_ops = {
	.name = "mysql",
	.protocol = CONFIG_PROTO_MYSQL,
	.takeover_frame = 'M',
	.client_accept = my_client_accept,
	.client_on_server = op_client_on_server,
	.client_fail = op_client_fail,
	.client_close = op_client_close,
	.client_free = op_client_free,
	.client_tick = op_client_tick,
	.client_update_events = op_client_update_events,
	.client_maybe_move = op_client_maybe_move,
	.client_stay = client_core_stay,
	.client_arrive = client_core_arrive,
	.client_resume_admin = op_client_resume_admin,
	.client_cancel = op_client_cancel,
	.client_handover_ok = op_client_handover_ok,
	.client_encode = op_client_encode,
	.client_adopt = my_handover_adopt,
	.client_show = op_client_show,
	.client_take_back = NULL,
	.client_reroute = my_route_reroute,
	.server_launch = my_server_launch,
	.server_check = op_server_check,
	.server_watch_idle = op_server_watch_idle,
	.server_detach = op_server_detach,
	.server_at_boundary = op_server_at_boundary,
	.server_tick = op_server_tick,
	.server_close = op_server_close,
	.server_free = op_server_free,
	.server_show = op_server_show,
	.worker_tick = op_worker_tick,
	.monitor_open = my_monitor_open,
	.monitor_check = my_monitor_check,
	.cancel_draw_key = op_cancel_draw_key,
};
