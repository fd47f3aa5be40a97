/*
 * admin.c - see admin.h. Command words follow PgBouncer's console; answers
 * are built whole in a heap reply and streamed into the socket buffer as it
 * drains, so a SHOW of 100,000 clients needs no buffer of that size in the
 * network path.
 */
#include "admin.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "runtime.h"
#include "server.h"
#include "version.h"
#include "worker.h"

enum admin_wait {
	WAIT_NONE,
	WAIT_PAUSE,      /* PAUSE: until the paused pools have no server open */
	WAIT_CLOSE,      /* WAIT_CLOSE: until no outdated server is left */
	WAIT_SUSPEND,    /* SUSPEND: until every worker stopped reading */
	WAIT_SHUTDOWN,   /* SHUTDOWN: no answer; the console closes with the
			  * process */
	WAIT_SHUTDOWN_ANSWER, /* SHUTDOWN WAIT_FOR_*: answered once every listener
			       * is closed (admin_shutdown_begun) */
};

struct admin_session {
	int level;                 /* enum admin_level */
	struct admin_reply reply;  /* answer being streamed to the client */
	bool skip_until_sync;      /* refused an extended-protocol message */
	int wait;                  /* enum admin_wait */
	char wait_db[64];          /* its database, "" = all */
	uint64_t wait_ticket;      /* WAIT_SUSPEND: control_suspend's ticket */
	struct admin_job *job;     /* cross-worker job in flight (origin owns) */
	int db_index;              /* its database in admin_console_dbs */
};

/* Console sessions logged in, per admin_console_dbs entry (atomic). */
static int n_sessions[ADMIN_CONSOLE_DBS];

#define ADM(c) ((struct admin_session *)(c)->adm)

/* ---- reply builder ---- */

static void reply_reserve(struct admin_reply *r, size_t n)
{
	if (r->oom || r->len + n <= r->cap)
		return;
	size_t cap = r->cap ? r->cap : 1024;
	while (cap < r->len + n)
		cap *= 2;
	uint8_t *d = realloc(r->data, cap);
	if (!d) {
		r->oom = true;
		return;
	}
	r->data = d;
	r->cap = cap;
}

void reply_append(struct admin_reply *r, const void *p, size_t n)
{
	if (n == 0)
		return; /* p may be NULL (an empty reply) */
	reply_reserve(r, n);
	if (r->oom)
		return;
	memcpy(r->data + r->len, p, n);
	r->len += n;
}

static void put_u8(struct admin_reply *r, uint8_t v) { reply_append(r, &v, 1); }

static void put_u16(struct admin_reply *r, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	reply_append(r, b, 2);
}

static void store_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_u32(struct admin_reply *r, uint32_t v)
{
	uint8_t b[4];
	store_u32(b, v);
	reply_append(r, b, 4);
}

static void put_str(struct admin_reply *r, const char *s) { reply_append(r, s, strlen(s) + 1); }

static void msg_begin(struct admin_reply *r, uint8_t type)
{
	r->msg_off = r->len;
	put_u8(r, type);
	put_u32(r, 0);
}

static void msg_end(struct admin_reply *r)
{
	if (!r->oom)
		store_u32(r->data + r->msg_off + 1, (uint32_t)(r->len - r->msg_off - 1));
}

void reply_columns(struct admin_reply *r, const struct admin_col *cols, int n)
{
	msg_begin(r, 'T');
	put_u16(r, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		put_str(r, cols[i].name);
		put_u32(r, 0);                 /* table oid */
		put_u16(r, 0);                 /* column number */
		put_u32(r, cols[i].type == 'i' ? 20 : 25); /* int8 or text */
		put_u16(r, cols[i].type == 'i' ? 8 : 0xffff);
		put_u32(r, 0xffffffff);        /* type modifier -1 */
		put_u16(r, 0);                 /* text format */
	}
	msg_end(r);
}

void reply_row_begin(struct admin_reply *r, int n)
{
	msg_begin(r, 'D');
	put_u16(r, (uint16_t)n);
}

void reply_cell(struct admin_reply *r, const char *s)
{
	if (!s) {
		put_u32(r, 0xffffffff);
		return;
	}
	size_t n = strlen(s);
	put_u32(r, (uint32_t)n);
	reply_append(r, s, n);
}

void reply_cell_int(struct admin_reply *r, int64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "%lld", (long long)v);
	reply_cell(r, b);
}

void reply_cellf(struct admin_reply *r, const char *fmt, ...)
{
	char b[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	reply_cell(r, b);
}

void reply_row_end(struct admin_reply *r) { msg_end(r); }

void reply_complete(struct admin_reply *r, const char *tag)
{
	msg_begin(r, 'C');
	put_str(r, tag);
	msg_end(r);
}

static void reply_error_or_notice(struct admin_reply *r, uint8_t type, const char *severity,
				  const char *sqlstate, const char *msg, const char *detail)
{
	msg_begin(r, type);
	put_u8(r, 'S');
	put_str(r, severity);
	put_u8(r, 'V');
	put_str(r, severity);
	put_u8(r, 'C');
	put_str(r, sqlstate);
	put_u8(r, 'M');
	put_str(r, msg);
	if (detail) {
		put_u8(r, 'D');
		put_str(r, detail);
	}
	put_u8(r, 0);
	msg_end(r);
}

void reply_notice(struct admin_reply *r, const char *msg, const char *detail)
{
	reply_error_or_notice(r, 'N', "NOTICE", "00000", msg, detail);
}

static void reply_error(struct admin_reply *r, const char *sqlstate, const char *msg)
{
	reply_error_or_notice(r, 'E', "ERROR", sqlstate, msg, NULL);
}

static void reply_ready(struct admin_reply *r)
{
	msg_begin(r, 'Z');
	put_u8(r, 'I');
	msg_end(r);
}

void reply_free(struct admin_reply *r)
{
	free(r->data);
	memset(r, 0, sizeof(*r));
}

/* ---- who may use the console ---- */

const char *const admin_console_dbs[ADMIN_CONSOLE_DBS] = { "pgbouncer", "sluice" };

static int console_index(const char *db)
{
	for (int i = 0; i < ADMIN_CONSOLE_DBS; i++)
		if (strcmp(db, admin_console_dbs[i]) == 0)
			return i;
	return -1;
}

bool admin_is_console_db(const char *db)
{
	return console_index(db) >= 0;
}

bool admin_peer_is_own_user(int fd, const char *user)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	/* PgBouncer compares with the real uid (getuid), as here. */
	return strcmp(user, ADMIN_CONSOLE_USER) == 0 &&
	       getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_UNIX &&
	       getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.uid == getuid();
}

int admin_console_sessions(const char *db)
{
	int i = console_index(db);
	return i < 0 ? 0 : __atomic_load_n(&n_sessions[i], __ATOMIC_RELAXED);
}

int admin_console_clients(void)
{
	int n = 0;
	for (int i = 0; i < ADMIN_CONSOLE_DBS; i++)
		n += pool_limit_count("client-db", admin_console_dbs[i]);
	return n;
}

int admin_level_for(const struct config *cfg, const char *user)
{
	if (config_list_contains(cfg->admin_users, user))
		return ADMIN_FULL;
	if (config_list_contains(cfg->stats_users, user) || cfg->auth_type == AUTH_TYPE_ANY)
		return ADMIN_STATS;
	return ADMIN_NONE;
}

int admin_start(struct client *c, int level)
{
	struct admin_session *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->level = level;
	a->db_index = console_index(c->db);
	if (a->db_index >= 0)
		__atomic_add_fetch(&n_sessions[a->db_index], 1, __ATOMIC_RELAXED);
	c->adm = a;
	return 0;
}

void admin_free(struct client *c)
{
	struct admin_session *a = ADM(c);
	if (!a)
		return;
	if (a->db_index >= 0)
		__atomic_sub_fetch(&n_sessions[a->db_index], 1, __ATOMIC_RELAXED);
	reply_free(&a->reply);
	free(a);
	c->adm = NULL;
}

/* ---- streaming the reply ---- */

bool admin_wants_write(const struct client *c)
{
	const struct admin_session *a = ADM(c);
	return a && a->reply.sent < a->reply.len;
}

bool admin_blocked(const struct client *c)
{
	const struct admin_session *a = ADM(c);
	return a && (a->reply.sent < a->reply.len || a->wait != WAIT_NONE || a->job);
}

bool admin_job_pending(const struct client *c)
{
	return c->adm && ADM(c)->job;
}

void admin_pump(struct client *c)
{
	struct admin_session *a = ADM(c);
	if (!a)
		return;
	struct admin_reply *r = &a->reply;
	if (r->oom) {
		reply_free(r);
		c->proto->client_fail(c, "53200", "out of memory building the admin console answer");
		return;
	}
	while (r->sent < r->len) {
		uint32_t room = iobuf_block_size() > iobuf_len(&c->sock.wbuf) ?
				iobuf_block_size() - iobuf_len(&c->sock.wbuf) : 0;
		if (room == 0) {
			int rc = pgsock_flush(&c->sock, NULL);
			if (rc == -EAGAIN)
				break;
			if (rc < 0) {
				c->proto->client_close(c, "write failed");
				return;
			}
			continue;
		}
		size_t n = r->len - r->sent < room ? r->len - r->sent : room;
		if (iobuf_append(&c->sock.wbuf, r->data + r->sent, (uint32_t)n) < 0) {
			c->proto->client_fail(c, "53200", "out of memory");
			return;
		}
		r->sent += n;
	}
	if (r->sent == r->len && r->len) {
		r->len = r->sent = 0; /* keep the memory for the next answer */
		if (r->cap > 65536)
			reply_free(r);
	}
	int rc = pgsock_flush(&c->sock, NULL);
	if (rc < 0 && rc != -EAGAIN)
		c->proto->client_close(c, "write failed");
}

/* ---- jobs on every worker ---- */

static void job_free(struct admin_job *job)
{
	reply_free(&job->rows);
	pthread_mutex_destroy(&job->lock);
	free(job);
}

/* KILL_CLIENT finds, as PgBouncer's, any client past its password
 * exchange, console sessions included (what SHOW CLIENTS lists); KILL
 * never touches the console. */
static bool kill_matches(const struct client *c, const struct admin_job *job)
{
	if (job->kind == JOB_KILL_CLIENT)
		return c->id == job->id && c->state >= CLIENT_LOGIN_WAIT;
	if (c->adm || admin_is_console_db(c->db))
		return false;
	return !job->db[0] || strcmp(c->db, job->db) == 0;
}

static void kill_fn(struct worker *w, struct admin_job *job)
{
	int n = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->clients) {
		struct client *c = list_entry(pos, struct client, node);
		if (c->closing || !kill_matches(c, job))
			continue;
		/* PgBouncer's words and code (FATAL 08P01) for KILL_CLIENT. */
		c->proto->client_fail(c, "08P01", job->kind == JOB_KILL_CLIENT ? "admin forced disconnect"
									       : "database killed by admin (KILL)");
		n++;
	}
	if (job->kind == JOB_KILL_DB) {
		list_for_each_safe(pos, tmp, &w->servers) {
			struct server *s = list_entry(pos, struct server, node);
			if (s->closed || s->aside || (job->db[0] && strcmp(s->pool->db_name, job->db) != 0))
				continue;
			if (s->state == SERVER_IDLE && !pool_take_idle(s))
				continue;
			s->pool->proto->server_close(s, "database killed by admin (KILL)");
		}
	}
	pthread_mutex_lock(&job->lock);
	job->count += n;
	pthread_mutex_unlock(&job->lock);
}

static void count_old_fn(struct worker *w, struct admin_job *job)
{
	int n = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &w->servers) {
		struct server *s = list_entry(pos, struct server, node);
		if (!s->closed && !s->aside && (!job->db[0] || strcmp(s->pool->db_name, job->db) == 0) &&
		    (s->generation != __atomic_load_n(&s->pool->generation, __ATOMIC_RELAXED) ||
		     __atomic_load_n(&s->pool->stale, __ATOMIC_RELAXED)))
			n++;
	}
	pthread_mutex_lock(&job->lock);
	job->count += n;
	pthread_mutex_unlock(&job->lock);
}

static void job_run(struct worker *w, void *arg)
{
	struct admin_job *job = arg;
	switch (job->kind) {
	case JOB_SHOW_CLIENTS:
	case JOB_SHOW_SERVERS:
	case JOB_SHOW_FDS:
	case JOB_SHOW_PINS:
		admin_show_collect(w, job);
		break;
	case JOB_KILL_CLIENT:
	case JOB_KILL_DB:
		kill_fn(w, job);
		break;
	case JOB_COUNT_OLD:
		count_old_fn(w, job);
		break;
	}
}

static void finish_command(struct client *c);
static void finish_later(struct client *c);

/* Back on the console's worker with every worker's part. */
static void job_finish(struct worker *w, void *arg)
{
	struct admin_job *job = arg;
	struct client *c = job->c;
	struct admin_session *a = ADM(c);
	(void)w;
	a->job = NULL;
	if (c->closing) {
		/* Closed while the job ran: client_close left it to us. */
		job_free(job);
		worker_bury_client(c->worker, c);
		return;
	}
	struct admin_reply *r = &a->reply;
	switch (job->kind) {
	case JOB_SHOW_CLIENTS:
	case JOB_SHOW_SERVERS:
	case JOB_SHOW_FDS:
	case JOB_SHOW_PINS:
		admin_show_header(job->kind, r);
		reply_append(r, job->rows.data, job->rows.len);
		if (job->rows.oom)
			r->oom = true;
		reply_complete(r, "SHOW");
		break;
	case JOB_KILL_CLIENT:
		if (job->count == 0)
			reply_error(r, "42704", "client not found"); /* PgBouncer's words */
		else
			reply_complete(r, "KILL_CLIENT");
		break;
	case JOB_KILL_DB:
		reply_complete(r, "KILL");
		break;
	case JOB_COUNT_OLD:
		if (job->count > 0) {
			job_free(job);
			return; /* still waiting: the tick asks again */
		}
		a->wait = WAIT_NONE;
		reply_complete(r, "WAIT_CLOSE");
		break;
	}
	job_free(job);
	finish_later(c);
}

static void job_all_done(void *arg)
{
	struct admin_job *job = arg;
	/* Deliver on the console's own worker. */
	if (worker_run_on(job->origin, job_finish, job) < 0)
		log_error("admin console: out of memory delivering a result");
}

static bool start_job(struct client *c, int kind, const char *db, uint64_t id)
{
	struct admin_session *a = ADM(c);
	struct admin_job *job = calloc(1, sizeof(*job));
	if (!job)
		return false;
	job->c = c;
	job->origin = c->worker;
	job->kind = kind;
	job->id = id;
	snprintf(job->db, sizeof(job->db), "%s", db ? db : "");
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	job->now_wall_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	pthread_mutex_init(&job->lock, NULL);
	a->job = job;
	if (worker_run_all(job_run, job_all_done, job) < 0) {
		a->job = NULL;
		job_free(job);
		return false;
	}
	return true;
}

/* ---- commands ---- */

#define MAX_WORDS 8

struct command {
	char *words[MAX_WORDS];   /* point into text */
	int n;
	char text[1024];          /* copy of the query, cut into words */
};

/* Split "SET key = 'value';" into words; quotes group, '=' is a word. */
static int split_command(const char *sql, size_t len, struct command *cmd)
{
	if (len >= sizeof(cmd->text))
		return -E2BIG;
	memcpy(cmd->text, sql, len);
	cmd->text[len] = '\0';
	cmd->n = 0;
	char *p = cmd->text;
	for (;;) {
		while (*p && (isspace((unsigned char)*p) || *p == ';'))
			p++;
		if (!*p)
			break;
		if (cmd->n == MAX_WORDS)
			return -E2BIG;
		if (*p == '\'' || *p == '"') {
			char q = *p++;
			char *start = p, *out = p;
			while (*p && !(*p == q && p[1] != q)) {
				if (*p == q)
					p++; /* doubled quote */
				*out++ = *p++;
			}
			if (*p != q)
				return -EINVAL;
			p++;
			*out = '\0';
			cmd->words[cmd->n++] = start;
			continue;
		}
		if (*p == '=') {
			*p++ = '\0';
			cmd->words[cmd->n++] = (char *)"=";
			continue;
		}
		cmd->words[cmd->n++] = p;
		while (*p && !isspace((unsigned char)*p) && *p != ';' && *p != '=')
			p++;
		if (*p == '=') {
			/* "key=value": keep '=' as its own word */
			memmove(p + 1, p, strlen(p) + 1);
			*p = '\0';
			p[1] = '=';
			p++;
			continue;
		}
		if (*p)
			*p++ = '\0';
	}
	return 0;
}

static bool word_is(const struct command *cmd, int i, const char *w)
{
	return i < cmd->n && strcasecmp(cmd->words[i], w) == 0;
}

/* The answer is complete: ReadyForQuery. */
static void finish_command(struct client *c)
{
	reply_ready(&ADM(c)->reply);
	admin_pump(c);
}

/* An answer that came later (a job, a wait): the client may have sent
 * more meanwhile. Never called from inside admin_message, whose message
 * is still at the read cursor. */
static void finish_later(struct client *c)
{
	finish_command(c);
	if (!c->closing)
		c->proto->client_resume_admin(c);
}

static bool known_database(const char *db)
{
	const struct config *cfg = runtime_config();
	return config_find_database(cfg, db) && strcmp(db, "*") != 0;
}

static void cmd_pause(struct client *c, const char *db)
{
	struct admin_session *a = ADM(c);
	pool_set_paused(db, true);
	a->wait = WAIT_PAUSE;
	snprintf(a->wait_db, sizeof(a->wait_db), "%s", db ? db : "");
	log_info("PAUSE %s by admin C-%llu", db ? db : "(all)", (unsigned long long)c->id);
}

/* Run one command; returns false when the answer comes later (async). */
static bool run_command(struct client *c, struct command *cmd)
{
	struct admin_session *a = ADM(c);
	struct admin_reply *r = &a->reply;
	char err[512];
	if (cmd->n == 0) {
		msg_begin(r, 'I'); /* EmptyQueryResponse */
		msg_end(r);
		return true;
	}
	const char *verb = cmd->words[0];
	const char *arg1 = cmd->n > 1 ? cmd->words[1] : NULL;
	if (strcasecmp(verb, "SHOW") == 0) {
		if (!arg1) {
			reply_error(r, "42601", "SHOW needs a subject; try SHOW HELP");
			return true;
		}
		int job_kind = -1;
		if (!admin_show(c, arg1, r, &job_kind)) {
			snprintf(err, sizeof(err), "unknown SHOW command: %.64s (try SHOW HELP)", arg1);
			reply_error(r, "42601", err);
			return true;
		}
		if (job_kind >= 0) {
			if (!start_job(c, job_kind, NULL, 0)) {
				reply_error(r, "53200", "out of memory");
				return true;
			}
			return false;
		}
		return true;
	}
	static const char *const known[] = { "PAUSE", "RESUME", "SUSPEND", "DISABLE", "ENABLE", "KILL",
		"KILL_CLIENT", "RECONNECT", "WAIT_CLOSE", "RELOAD", "SET", "SHUTDOWN", NULL };
	bool is_known = false;
	for (const char *const *k = known; *k; k++)
		is_known = is_known || strcasecmp(verb, *k) == 0;
	if (!is_known) {
		snprintf(err, sizeof(err), "unknown command: %.64s (try SHOW HELP)", verb);
		reply_error(r, "42601", err);
		return true;
	}
	if (a->level < ADMIN_FULL) {
		reply_error(r, "42501", "admin access needed");
		return true;
	}
	bool needs_db = strcasecmp(verb, "DISABLE") == 0 || strcasecmp(verb, "ENABLE") == 0;
	bool takes_db = needs_db || strcasecmp(verb, "PAUSE") == 0 || strcasecmp(verb, "RESUME") == 0 ||
			strcasecmp(verb, "RECONNECT") == 0 || strcasecmp(verb, "WAIT_CLOSE") == 0 ||
			strcasecmp(verb, "KILL") == 0;
	if (takes_db) {
		if (needs_db && !arg1) {
			snprintf(err, sizeof(err), "%s needs a database name", verb);
			reply_error(r, "42601", err);
			return true;
		}
		if (arg1 && !known_database(arg1)) {
			snprintf(err, sizeof(err), "no such database: %.64s", arg1);
			reply_error(r, "3D000", err);
			return true;
		}
		if (cmd->n > 2) {
			snprintf(err, sizeof(err), "%s takes at most one database name", verb);
			reply_error(r, "42601", err);
			return true;
		}
	}
	if (strcasecmp(verb, "PAUSE") == 0) {
		cmd_pause(c, arg1);
		return false; /* answered by admin_tick */
	}
	if (strcasecmp(verb, "RESUME") == 0) {
		if (!arg1 && control_suspended())
			control_suspend(false);
		pool_set_paused(arg1, false);
		log_info("RESUME %s by admin C-%llu", arg1 ? arg1 : "(all)", (unsigned long long)c->id);
		reply_complete(r, "RESUME");
		return true;
	}
	if (strcasecmp(verb, "SUSPEND") == 0) {
		a->wait_ticket = control_suspend(true);
		a->wait = WAIT_SUSPEND;
		log_info("SUSPEND by admin C-%llu", (unsigned long long)c->id);
		return false; /* answered by admin_tick once every worker stopped reading */
	}
	if (strcasecmp(verb, "DISABLE") == 0 || strcasecmp(verb, "ENABLE") == 0) {
		bool off = strcasecmp(verb, "DISABLE") == 0;
		pool_set_disabled(arg1, off);
		log_info("%s %s by admin C-%llu", off ? "DISABLE" : "ENABLE", arg1, (unsigned long long)c->id);
		reply_complete(r, off ? "DISABLE" : "ENABLE");
		return true;
	}
	if (strcasecmp(verb, "KILL") == 0) {
		/* Without a database (PgBouncer 1.25): every database. */
		pool_set_paused(arg1, true);
		log_info("KILL %s by admin C-%llu", arg1 ? arg1 : "(all)", (unsigned long long)c->id);
		if (!start_job(c, JOB_KILL_DB, arg1, 0)) {
			reply_error(r, "53200", "out of memory");
			return true;
		}
		return false;
	}
	if (strcasecmp(verb, "KILL_CLIENT") == 0) {
		char *end = NULL;
		unsigned long long id = arg1 && isdigit((unsigned char)arg1[0]) ? strtoull(arg1, &end, 10) : 0;
		if (!end || *end || cmd->n > 2) {
			/* PgBouncer's words: the id was once a pointer. */
			reply_error(r, "42601", "invalid client pointer supplied");
			return true;
		}
		if (!start_job(c, JOB_KILL_CLIENT, NULL, id)) {
			reply_error(r, "53200", "out of memory");
			return true;
		}
		return false;
	}
	if (strcasecmp(verb, "RECONNECT") == 0) {
		pool_reconnect(arg1);
		log_info("RECONNECT %s by admin C-%llu", arg1 ? arg1 : "(all)", (unsigned long long)c->id);
		reply_complete(r, "RECONNECT");
		return true;
	}
	if (strcasecmp(verb, "WAIT_CLOSE") == 0) {
		a->wait = WAIT_CLOSE;
		snprintf(a->wait_db, sizeof(a->wait_db), "%s", arg1 ? arg1 : "");
		return false;
	}
	if (strcasecmp(verb, "RELOAD") == 0) {
		if (cmd->n > 1) {
			reply_error(r, "42601", "RELOAD takes no argument");
			return true;
		}
		log_info("RELOAD by admin C-%llu", (unsigned long long)c->id);
		if (control_reload(false, err, sizeof(err)) < 0) {
			char msg[600];
			snprintf(msg, sizeof(msg), "RELOAD failed: %s", err);
			reply_error(r, "F0000", msg);
		} else {
			reply_complete(r, "RELOAD");
		}
		return true;
	}
	if (strcasecmp(verb, "SET") == 0) {
		if (cmd->n != 4 || strcmp(cmd->words[2], "=") != 0) {
			reply_error(r, "42601", "usage: SET key = value");
			return true;
		}
		log_info("SET %s = %s by admin C-%llu", cmd->words[1], cmd->words[3], (unsigned long long)c->id);
		int rc = control_set(cmd->words[1], cmd->words[3], err, sizeof(err));
		if (rc < 0)
			reply_error(r, rc == -ENOENT ? "42704" : rc == -EPERM ? "55P02" : "22023", err);
		else
			reply_complete(r, "SET");
		return true;
	}
	/* SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS] */
	int phase = PHASE_EXIT;
	if (word_is(cmd, 1, "WAIT_FOR_SERVERS"))
		phase = PHASE_DRAIN_SERVERS;
	else if (word_is(cmd, 1, "WAIT_FOR_CLIENTS"))
		phase = PHASE_DRAIN_CLIENTS;
	else if (cmd->n > 1) {
		reply_error(r, "42601", "usage: SHUTDOWN [WAIT_FOR_SERVERS | WAIT_FOR_CLIENTS]");
		return true;
	}
	log_info("SHUTDOWN%s%s by admin C-%llu", cmd->n > 1 ? " " : "", cmd->n > 1 ? cmd->words[1] : "",
		 (unsigned long long)c->id);
	if (phase == PHASE_EXIT) {
		/* No answer, as PgBouncer: the console closes with the process. */
		a->wait = WAIT_SHUTDOWN;
		control_begin(phase);
		return false;
	}
	/* WAIT_FOR_*: answered, as PgBouncer, once the listeners are closed;
	 * the session goes on until the process exits. */
	switch (control_phase()) {
	case PHASE_RUNNING:
		a->wait = WAIT_SHUTDOWN_ANSWER;
		control_begin(phase);
		return false;
	case PHASE_HANDOVER:
		reply_error(r, "55000", "an online restart is in progress; SHUTDOWN (without WAIT_FOR) ends it now");
		return true;
	default:
		reply_complete(r, "SHUTDOWN"); /* a graceful shutdown is already under way */
		return true;
	}
}

void admin_shutdown_begun(struct client *c)
{
	struct admin_session *a = ADM(c);
	if (!a || a->wait != WAIT_SHUTDOWN_ANSWER)
		return;
	a->wait = WAIT_NONE;
	reply_complete(&a->reply, "SHUTDOWN");
	finish_later(c);
}

void admin_message(struct client *c, uint8_t type, const uint8_t *body, uint32_t body_len)
{
	struct admin_session *a = ADM(c);
	struct admin_reply *r = &a->reply;
	if (a->skip_until_sync) {
		if (type == 'S') {
			a->skip_until_sync = false;
			finish_command(c);
		}
		return;
	}
	switch (type) {
	case 'Q': {
		struct command cmd;
		size_t len = body_len ? body_len - 1 : 0; /* without the NUL */
		if (split_command((const char *)body, len, &cmd) < 0) {
			reply_error(r, "42601", "cannot parse the command (too long, or an unclosed quote)");
			finish_command(c);
			return;
		}
		if (run_command(c, &cmd))
			finish_command(c);
		else
			admin_pump(c);
		return;
	}
	case 'P': case 'B': case 'D': case 'E': case 'C': case 'H':
		reply_error(r, "08P01", "the admin console supports only the simple query protocol");
		a->skip_until_sync = true;
		admin_pump(c);
		return;
	case 'S':
		finish_command(c);
		return;
	default: {
		char msg[80];
		snprintf(msg, sizeof(msg), "unsupported message type '%c' on the admin console", type);
		c->proto->client_fail(c, "08P01", msg);
	}
	}
}

void admin_tick(struct client *c, int64_t now_us)
{
	struct admin_session *a = ADM(c);
	(void)now_us;
	if (!a || a->job)
		return;
	const char *db = a->wait_db[0] ? a->wait_db : NULL;
	if (a->wait == WAIT_PAUSE && pool_open_servers(db) == 0) {
		a->wait = WAIT_NONE;
		reply_complete(&a->reply, "PAUSE");
		finish_later(c);
	} else if (a->wait == WAIT_SUSPEND && control_suspend_applied(a->wait_ticket)) {
		a->wait = WAIT_NONE;
		reply_complete(&a->reply, "SUSPEND");
		finish_later(c);
	} else if (a->wait == WAIT_CLOSE) {
		if (!start_job(c, JOB_COUNT_OLD, db, 0))
			return; /* try again at the next tick */
	}
}
