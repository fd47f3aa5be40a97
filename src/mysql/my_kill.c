/*
 * my_kill.c - KILL through sluice: `KILL [QUERY | CONNECTION] <id>` and
 * COM_PROCESS_KILL name the connection id a client got in sluice's
 * greeting (its key in the cancel registry, cancel.h), never a server's.
 *
 * Owns: the KILL request on its way from the killer's worker to the
 * target's and back (struct my_kill_req), and the short connections that
 * carry a KILL QUERY to the server thread of the target's command (struct
 * kill_conn, on the target's worker).
 * Must not: touch a client or server of another worker. The request
 * travels as worker_run_on mail: the target is looked up, checked and
 * acted on by its own worker, the killer answered by its own.
 *
 * Why a connection of its own for the KILL QUERY: the server only lets
 * the session's own user (or one with CONNECTION ADMIN) kill its thread,
 * so the KILL must come from a session of the target's pool's server
 * user, on the same host. An idle server of that pool may not exist (the
 * target holds one, the others may all be busy, the pool may be at its
 * size), and waiting for one could take as long as the query to kill. So
 * sluice logs in anew as that user (as ProxySQL does), outside the
 * pool's count, sends the KILL, and quits. The whole exchange is bounded
 * by cancel_wait_timeout (server_connect_timeout when that is 0), after
 * which the killer gets an error: a KILL never hangs its sender.
 *
 * Meanwhile the target's server is held (my_server.kills): it does not go
 * back to the pool, so a KILL QUERY that arrives after the command ended
 * cannot hit another client's (MariaDB forgets a KILL QUERY that finds its
 * thread idle).
 */
#include "my_conn.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cancel.h"
#include "config.h"
#include "log.h"
#include "my_ops.h"
#include "pool.h"
#include "runtime.h"
#include "worker.h"

/* MySQL's and MariaDB's error numbers for KILL. */
#define ER_NO_SUCH_THREAD 1094       /* "Unknown thread id: %lu" */
#define ER_KILL_DENIED_ERROR 1095    /* "You are not owner of thread %lu" */
#define ER_NOT_SUPPORTED_YET 1235
#define ER_QUERY_INTERRUPTED 1317    /* "Query execution was interrupted", 70100 */
#define ER_MALFORMED_PACKET 1835
#define ER_CONNECTION_KILLED 1927    /* MariaDB: "Connection was killed", 70100 */
#define ER_UNKNOWN_ERROR 1105

/* A KILL on its way: made by the killer's worker, passed to the target's
 * and back; freed by the killer's worker once it has answered. */
struct my_kill_req {
	struct worker *from;       /* the killer's worker */
	uint64_t killer_id;        /* the killer's client id (its connection id may be reused) */
	uint32_t killer_pid;       /* the killer's connection id: finds it in the registry */
	uint32_t target;           /* the connection id it names */
	bool query;                /* KILL QUERY; else KILL CONNECTION */
	char user[64];             /* the killer's user: only its own are its to kill */
	uint16_t err;              /* the answer: 0 = OK, else this MySQL error */
	char sqlstate[6];
	char msg[200];
	struct my_kill_req *next;  /* in this thread's unsent answers */
};

/* Where a kill_conn is. */
enum kill_step {
	KILL_GREETING, /* connected (or connecting): the server speaks first */
	KILL_AUTH,     /* handshake response sent: OK, ERR, switch or more data next */
	KILL_SENT,     /* KILL sent: its OK or ERR next */
};

/* A short connection carrying one KILL to a server, on the target's worker. */
struct kill_conn {
	struct loop_handle h;      /* its socket (first: the callback's cast) */
	struct list node;          /* in this thread's kill list */
	struct worker *worker;     /* the target's worker, whose loop has h */
	struct pool *pool;         /* the target's pool: its server user logs in (pools
				    * are never freed while workers run) */
	struct my_server *hold;    /* the server held until the KILL is answered, or NULL */
	struct my_kill_req *req;   /* the killer to answer, or NULL */
	uint32_t thread;           /* the server's connection id to kill */
	bool connection;           /* KILL CONNECTION (the target's server closes anyway) */
	uint8_t step;              /* enum kill_step */
	struct my_pool_auth auth;  /* the login */
	int64_t start_us;          /* for the time limit */
	char addr[128];            /* the server's address, for log lines */
	struct iobuf out;          /* bytes to send */
	uint32_t in_len;           /* bytes in in[] */
	uint8_t in[4096];          /* bytes received: login packets (an RSA key) and one OK/ERR */
};

/* Each worker's kill connections (they live and die on its thread). */
static __thread struct list kills;
/* The killer whose KILL is being started: its answer, when it comes at
 * once, is read on by the caller's loop rather than from inside it. */
static __thread struct my_client *starting;
/* Answers for another worker's killer that found no memory for their mail:
 * sent again by my_kill_tick (a killer is never left waiting). */
static __thread struct my_kill_req *unsent;

static struct list *kill_list(void)
{
	if (!kills.next)
		list_init(&kills);
	return &kills;
}

/* ---- answering the killer ---- */

static void set_error(struct my_kill_req *req, uint16_t code, const char *sqlstate, const char *msg)
{
	req->err = code;
	snprintf(req->sqlstate, sizeof(req->sqlstate), "%s", sqlstate);
	snprintf(req->msg, sizeof(req->msg), "%s", msg);
}

/* The answer (OK or ERR) to client c's KILL. */
static void answer(struct my_client *c, uint16_t err, const char *sqlstate, const char *msg)
{
	if (err) {
		my_err_build(&c->sock.wbuf, 1, err, sqlstate, msg);
	} else {
		uint16_t status = c->autocommit_off ? 0 : MY_STATUS_AUTOCOMMIT;
		if (c->server && c->server->in_trans)
			status |= MY_STATUS_IN_TRANS;
		my_ok_build(&c->sock.wbuf, 1, 0, 0, status, 0);
	}
}

/* On the killer's worker: answer it and read on. */
static void answer_killer(struct worker *w, void *arg)
{
	struct my_kill_req *req = arg;
	struct worker *elsewhere;
	struct client *k = cancel_find_here(w, req->killer_pid, 0, &elsewhere);
	if (k && k->proto == &my_ops && k->id == req->killer_id && !k->closing && my_client(k)->killing) {
		struct my_client *c = my_client(k);
		c->killing = false;
		answer(c, req->err, req->sqlstate, req->msg);
		c->sock.want_read = true;
		if (my_client_flush_own(c) && c != starting)
			my_client_resume(c);
	}
	free(req);
}

static void finish(struct my_kill_req *req)
{
	struct worker *self = worker_self();
	if (req->from == self)
		answer_killer(self, req);
	else if (worker_run_on(req->from, answer_killer, req) < 0) {
		req->next = unsent;
		unsent = req;
	}
}

/* ---- the connection that carries a KILL to the server ---- */

static void kill_free(struct kill_conn *k, uint16_t err, const char *sqlstate, const char *msg)
{
	if (k->step == KILL_SENT) {
		/* COM_QUIT, a polite goodbye; failure does not matter. */
		uint8_t quit[5] = { 1, 0, 0, 0, MY_COM_QUIT };
		if (send(k->h.fd, quit, sizeof(quit), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			(void)0;
	}
	loop_forget(&k->worker->loop, &k->h);
	close(k->h.fd);
	list_del(&k->node);
	iobuf_release(&k->out);
	if (err)
		log_write(LOG_LEVEL_WARNING, "KILL %s %u on %s not delivered: %s", k->connection ? "CONNECTION" : "QUERY",
			  k->thread, k->addr, msg);
	else
		log_write(LOG_LEVEL_DEBUG, "KILL %s %u on %s done", k->connection ? "CONNECTION" : "QUERY", k->thread,
			  k->addr);
	struct my_server *s = k->hold;
	struct my_kill_req *req = k->req;
	free(k);
	if (s && --s->kills == 0 && s->client && !s->answering && !s->internal)
		my_client_answered(s->client); /* it may go back to the pool now */
	if (req) {
		if (err)
			set_error(req, err, sqlstate, msg);
		finish(req);
	}
}

static void kill_fail(struct kill_conn *k, const char *why)
{
	char msg[200];
	snprintf(msg, sizeof(msg), "KILL not delivered to the server: %.160s", why);
	kill_free(k, ER_UNKNOWN_ERROR, "HY000", msg);
}

static bool kill_flush(struct kill_conn *k)
{
	while (iobuf_len(&k->out)) {
		ssize_t n = send(k->h.fd, iobuf_head(&k->out), iobuf_len(&k->out), MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			kill_fail(k, "write failed");
			return false;
		}
		iobuf_consume(&k->out, (uint32_t)n);
	}
	if (loop_set(&k->worker->loop, &k->h, EPOLLIN | (iobuf_len(&k->out) ? EPOLLOUT : 0)) < 0) {
		kill_fail(k, "epoll failure");
		return false;
	}
	return true;
}

static void server_error(struct kill_conn *k, const struct my_packet *pk)
{
	char msg[200];
	my_err_text(pk->payload, pk->len, "the server refused", msg, sizeof(msg));
	kill_fail(k, msg);
}

static bool greeting(struct kill_conn *k, const struct my_packet *pk)
{
	struct my_handshake h;
	if (pk->payload[0] == 0xff) {
		server_error(k, pk);
		return false;
	}
	if (my_handshake_parse(pk->payload, pk->len, &h) < 0) {
		kill_fail(k, "not a MySQL server (bad greeting)");
		return false;
	}
	const uint32_t want = MY_CLIENT_LONG_PASSWORD | MY_CLIENT_LONG_FLAG | MY_CLIENT_PROTOCOL_41 |
			      MY_CLIENT_TRANSACTIONS | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_PLUGIN_AUTH |
			      MY_CLIENT_PLUGIN_AUTH_LENENC;
	struct my_response r = { .caps = want & h.caps, .max_packet = 1u << 24, .charset = 45 };
	snprintf(r.user, sizeof(r.user), "%s", k->pool->server_user);
	memcpy(k->auth.scramble, h.scramble, MY_SCRAMBLE_LEN);
	const char *plugin = my_server_auth_answer(k->pool, h.auth_plugin, h.scramble, r.auth, &r.auth_len);
	snprintf(r.auth_plugin, sizeof(r.auth_plugin), "%s", plugin);
	snprintf(k->auth.plugin, sizeof(k->auth.plugin), "%s", plugin);
	k->auth.seq = (uint8_t)(pk->seq + 1);
	int rc = my_response_build(&k->out, k->auth.seq++, &r);
	OPENSSL_cleanse(r.auth, sizeof(r.auth));
	if (rc < 0) {
		kill_fail(k, "out of memory");
		return false;
	}
	k->step = KILL_AUTH;
	return true;
}

static bool send_kill(struct kill_conn *k)
{
	char text[64];
	int n = snprintf(text, sizeof(text), "%cKILL %s %u", MY_COM_QUERY, k->connection ? "CONNECTION" : "QUERY",
			 k->thread);
	if (my_packet_put(&k->out, 0, text, (uint32_t)n) < 0) {
		kill_fail(k, "out of memory");
		return false;
	}
	k->step = KILL_SENT;
	return true;
}

/* A packet of the login. */
static bool auth(struct kill_conn *k, const struct my_packet *pk)
{
	const uint8_t *p = pk->payload;
	k->auth.seq = (uint8_t)(pk->seq + 1);
	if (p[0] == 0x00)
		return send_kill(k);
	if (p[0] == 0xff) {
		server_error(k, pk);
		return false;
	}
	const char *sqlstate;
	char err[240];
	bool denied;
	if (my_pool_auth_more(k->pool, &k->auth, pk, false, &k->out, &sqlstate, err, sizeof(err), &denied) < 0) {
		kill_fail(k, err);
		return false;
	}
	return true;
}

/* One whole packet; false when k is gone. */
static bool kill_packet(struct kill_conn *k, const struct my_packet *pk)
{
	if (pk->len == 0) {
		kill_fail(k, "empty packet from the server");
		return false;
	}
	if (k->step == KILL_GREETING)
		return greeting(k, pk);
	if (k->step == KILL_AUTH)
		return auth(k, pk);
	/* The KILL's answer. A thread that is gone (1094) had nothing left
	 * to kill: done as well. */
	struct my_err e;
	if (pk->payload[0] == 0x00 ||
	    (my_err_parse(pk->payload, pk->len, &e) == 0 && e.code == ER_NO_SUCH_THREAD)) {
		kill_free(k, 0, NULL, NULL);
		return false;
	}
	if (pk->payload[0] == 0xff && my_err_parse(pk->payload, pk->len, &e) == 0) {
		char msg[200];
		snprintf(msg, sizeof(msg), "%.*s", (int)e.msg_len, e.msg);
		kill_free(k, e.code, e.sqlstate, msg); /* the server's own error, as it sent it */
		return false;
	}
	kill_fail(k, "unexpected answer to KILL");
	return false;
}

static void kill_cb(struct loop_handle *h, uint32_t revents)
{
	struct kill_conn *k = (struct kill_conn *)h;
	if (revents & EPOLLOUT) {
		if (!kill_flush(k))
			return;
	}
	if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	ssize_t n = recv(h->fd, k->in + k->in_len, sizeof(k->in) - k->in_len, 0);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		kill_fail(k, n == 0 ? "the server closed the connection" : strerror(errno));
		return;
	}
	k->in_len += (uint32_t)n;
	struct my_packet pk;
	uint32_t used = 0;
	while (my_packet_peek(k->in + used, k->in_len - used, &pk)) {
		used += MY_HEADER_LEN + pk.len;
		if (!kill_packet(k, &pk))
			return;
	}
	if (k->in_len - used >= MY_HEADER_LEN && my_header_len(k->in + used) + MY_HEADER_LEN > sizeof(k->in)) {
		kill_fail(k, "packet too long");
		return;
	}
	memmove(k->in, k->in + used, k->in_len - used);
	k->in_len -= used;
	kill_flush(k);
}

/* Send KILL QUERY (or CONNECTION) for the command s runs, on a new
 * connection to s's host as s's pool's user. hold: keep s out of the pool
 * until it is answered. req: the killer to answer then (or NULL). */
static void kill_start(struct worker *w, struct my_server *s, bool connection, struct my_kill_req *req)
{
	const struct pool_host *host = server_core_host(&s->base);
	struct kill_conn *k = calloc(1, sizeof(*k));
	int fd = k ? socket(host->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
	if (fd < 0) {
		free(k);
		if (req) {
			set_error(req, ER_UNKNOWN_ERROR, "HY000", "KILL not delivered to the server: out of resources");
			finish(req);
		}
		return;
	}
	k->h.fd = fd;
	k->h.cb = kill_cb;
	k->worker = w;
	k->pool = s->pool;
	k->thread = s->conn_id;
	k->connection = connection;
	k->req = req;
	k->start_us = w->loop.now_us;
	snprintf(k->addr, sizeof(k->addr), "%s", host->addr_text);
	if (!connection) {
		k->hold = s;
		s->kills++;
	}
	list_add_tail(kill_list(), &k->node);
	SLOG(s, LOG_LEVEL_DEBUG, "sending KILL %s %u on a connection of its own", connection ? "CONNECTION" : "QUERY",
	     s->conn_id);
	if (connect(fd, (const struct sockaddr *)&host->addr, host->addr_len) < 0 && errno != EINPROGRESS) {
		kill_fail(k, strerror(errno));
		return;
	}
	kill_flush(k); /* registers for the greeting */
}

void my_kill_forget_server(struct my_server *s)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, kill_list()) {
		struct kill_conn *k = list_entry(pos, struct kill_conn, node);
		if (k->hold == s)
			k->hold = NULL;
	}
	s->kills = 0;
}

void my_kill_tick(struct worker *w, int64_t now_us, bool all)
{
	(void)w;
	const struct config *cfg = runtime_config();
	int64_t limit = cfg->cancel_wait_timeout_us ? cfg->cancel_wait_timeout_us : cfg->server_connect_timeout_us;
	struct my_kill_req *retry = unsent;
	unsent = NULL;
	while (retry) {
		struct my_kill_req *req = retry;
		retry = req->next;
		if (all)
			free(req);
		else
			finish(req);
	}
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, kill_list()) {
		struct kill_conn *k = list_entry(pos, struct kill_conn, node);
		if (all) {
			/* The killer's worker is stopping too: no answer. */
			free(k->req);
			k->req = NULL;
			kill_fail(k, "sluice is shutting down");
		} else if (limit > 0 && now_us - k->start_us > limit) {
			kill_fail(k, "no answer within cancel_wait_timeout");
		}
	}
}

/* ---- on the target's worker ---- */

static void route(struct worker *w, void *arg)
{
	struct my_kill_req *req = arg;
	struct worker *elsewhere;
	struct client *t = cancel_find_here(w, req->target, 0, &elsewhere);
	if (elsewhere) {
		log_write(LOG_LEVEL_DEBUG, "KILL of connection %u from connection %u: to worker %d", req->target,
			  req->killer_pid, elsewhere->id);
		if (worker_run_on(elsewhere, route, req) < 0) {
			set_error(req, ER_UNKNOWN_ERROR, "HY000", "out of memory");
			finish(req);
		}
		return;
	}
	char msg[120];
	if (!t || t->closing || t->proto != &my_ops) {
		snprintf(msg, sizeof(msg), "Unknown thread id: %u", req->target);
		set_error(req, ER_NO_SUCH_THREAD, "HY000", msg);
		finish(req);
		return;
	}
	struct my_client *c = my_client(t);
	/* MySQL's rule: a user kills only its own threads (sluice has no
	 * CONNECTION ADMIN). One still logging in belongs to nobody yet. */
	if (c->login != MY_LOGIN_DONE || strcmp(c->user, req->user) != 0) {
		snprintf(msg, sizeof(msg), "You are not owner of thread %u", req->target);
		set_error(req, ER_KILL_DENIED_ERROR, "HY000", msg);
		finish(req);
		return;
	}
	struct my_server *s = c->server;
	bool running = s && s->answering;
	if (!req->query) {
		/* The server closes with the client (mid-answer): its thread
		 * stops the command too, rather than running on unseen. */
		if (running)
			kill_start(w, s, true, NULL);
		CLOG(c, LOG_LEVEL_INFO, "KILL CONNECTION from connection %u", req->killer_pid);
		my_client_close(c, "killed (KILL CONNECTION)");
		finish(req);
		return;
	}
	if (!running) {
		finish(req); /* no command on a server: nothing to kill, as for an idle session */
		return;
	}
	CLOG(c, LOG_LEVEL_INFO, "KILL QUERY from connection %u", req->killer_pid);
	kill_start(w, s, false, req);
}

/* ---- on the killer's worker ---- */

/* The KILL of client c for connection id target. */
static void start(struct my_client *c, uint32_t target, bool query)
{
	if (target == c->cancel_pid) {
		/* Its own: the KILL is what it runs. The server answers a
		 * KILL QUERY of oneself with 1317, and a KILL of oneself with
		 * MariaDB's 1927 before it closes. */
		if (query) {
			answer(c, ER_QUERY_INTERRUPTED, "70100", "Query execution was interrupted");
			my_client_flush_own(c);
			return;
		}
		answer(c, ER_CONNECTION_KILLED, "70100", "Connection was killed");
		if (my_client_flush_own(c))
			my_client_close(c, "killed itself (KILL CONNECTION)");
		return;
	}
	struct my_kill_req *req = calloc(1, sizeof(*req));
	if (!req) {
		answer(c, ER_UNKNOWN_ERROR, "HY000", "out of memory");
		my_client_flush_own(c);
		return;
	}
	req->from = c->worker;
	req->killer_id = c->id;
	req->killer_pid = c->cancel_pid;
	req->target = target;
	req->query = query;
	snprintf(req->user, sizeof(req->user), "%s", c->user);
	c->killing = true;
	c->sock.want_read = false;
	my_client_update_events(c);
	starting = c;
	route(c->worker, req);
	starting = NULL;
}

static bool is_word_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '$';
}

/* Is the word w (any case) at s[*i], after blanks? Steps over both when it is. */
static bool next_word(const char *s, size_t n, size_t *i, const char *w)
{
	size_t j = *i, k = strlen(w);
	while (j < n && isspace((unsigned char)s[j]))
		j++;
	if (j + k > n || strncasecmp(s + j, w, k) != 0 || (j + k < n && is_word_char(s[j + k])))
		return false;
	*i = j + k;
	return true;
}

const char *my_kill_parse(const char *s, size_t n, uint32_t self, uint64_t *target, bool *query)
{
	size_t i = 0;
	next_word(s, n, &i, "kill");
	if (!next_word(s, n, &i, "hard"))
		next_word(s, n, &i, "soft");
	*query = false;
	if (next_word(s, n, &i, "query")) {
		*query = true;
		if (next_word(s, n, &i, "id"))
			return "KILL QUERY ID (a query id) is not supported through sluice: use KILL QUERY with the "
			       "connection id";
	} else {
		next_word(s, n, &i, "connection");
	}
	if (next_word(s, n, &i, "user"))
		return "KILL USER is not supported through sluice: use KILL with a connection id";
	while (i < n && isspace((unsigned char)s[i]))
		i++;
	uint64_t id = 0;
	size_t digits = 0;
	while (i < n && isdigit((unsigned char)s[i])) {
		id = id <= (UINT64_MAX - 9) / 10 ? id * 10 + (uint64_t)(s[i] - '0') : UINT64_MAX; /* too big */
		i++;
		digits++;
	}
	if (digits) {
		*target = id;
	} else if (next_word(s, n, &i, "connection_id")) {
		while (i < n && isspace((unsigned char)s[i]))
			i++;
		if (i >= n || s[i++] != '(')
			return "KILL through sluice takes a connection id (a number, or CONNECTION_ID())";
		while (i < n && isspace((unsigned char)s[i]))
			i++;
		if (i >= n || s[i++] != ')')
			return "KILL through sluice takes a connection id (a number, or CONNECTION_ID())";
		*target = self;
	} else {
		return "KILL through sluice takes a connection id (a number, or CONNECTION_ID())";
	}
	while (i < n && isspace((unsigned char)s[i]))
		i++;
	if (i < n && s[i] == ';')
		i++;
	while (i < n && isspace((unsigned char)s[i]))
		i++;
	if (i < n)
		return "KILL through sluice takes a connection id (a number, or CONNECTION_ID()) and nothing after it";
	return NULL;
}

void my_kill_query(struct my_client *c, const struct my_packet *pk)
{
	if (my_header_len(pk->payload - MY_HEADER_LEN) != pk->len) {
		/* Not all here: a KILL is never that long. */
		my_client_fail(c, "08S01", "KILL statement too long");
		return;
	}
	uint64_t target = 0;
	bool query;
	const char *bad = my_kill_parse((const char *)pk->payload + 1, pk->len - 1, c->cancel_pid, &target, &query);
	pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
	if (bad) {
		answer(c, ER_NOT_SUPPORTED_YET, "42000", bad);
		my_client_flush_own(c);
		return;
	}
	if (target == 0 || target > UINT32_MAX) {
		/* sluice's ids are 31 bits, never 0 (my_ops.c). */
		char msg[64];
		snprintf(msg, sizeof(msg), "Unknown thread id: %llu", (unsigned long long)target);
		answer(c, ER_NO_SUCH_THREAD, "HY000", msg);
		my_client_flush_own(c);
		return;
	}
	start(c, (uint32_t)target, query);
}

void my_kill_command(struct my_client *c, const struct my_packet *pk)
{
	struct my_reader r = my_reader_of(pk->payload + 1, pk->len - 1);
	uint32_t target = my_get_u32(&r);
	bool bad = r.err || my_left(&r) != 0;
	pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
	if (bad) {
		answer(c, ER_MALFORMED_PACKET, "HY000", "Malformed communication packet (COM_PROCESS_KILL)");
		my_client_flush_own(c);
		return;
	}
	start(c, target, false);
}

/* ---- clients without a database ---- */

void my_kill_login_finish(struct my_client *c)
{
	my_ok_build(&c->sock.wbuf, c->seq, 0, 0, MY_STATUS_AUTOCOMMIT, 0);
	c->login = MY_LOGIN_DONE;
	my_client_set_state(c, CLIENT_IDLE);
	CLOG(c, LOG_LEVEL_DEBUG, "logged in without a database: KILL only");
	my_client_flush_own(c);
}

bool my_kill_refuse_without_pool(struct my_client *c, const struct my_packet *pk)
{
	uint8_t cmd = pk->payload[0];
	if (cmd == MY_COM_QUIT || cmd == MY_COM_PING || cmd == MY_COM_PROCESS_KILL ||
	    (cmd == MY_COM_QUERY && my_query_is_kill(pk->payload + 1, pk->len - 1)))
		return false;
	if (my_header_len(pk->payload - MY_HEADER_LEN) != pk->len) {
		my_client_fail(c, "08S01", "No database selected");
		return true;
	}
	pgsock_drop(&c->sock, MY_HEADER_LEN + pk->len);
	answer(c, 1046, "3D000",
	       "No database selected: give a database when connecting (sluice pools connections per "
	       "[databases] entry; without one, a connection can only KILL)");
	my_client_flush_own(c);
	return true;
}
