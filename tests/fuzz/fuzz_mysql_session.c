/*
 * fuzz_mysql_session.c - libFuzzer harness for the screen of a MySQL
 * client's SET statements and the restore of its session variables
 * (src/mysql/my_session.c), and for the session state information in an
 * OK packet that the server's tracking reports (my_session_tracked).
 *
 * The input is cut at NUL bytes into statements, the first byte of each
 * saying whether the server answers it OK (bit 0), whether a
 * COM_RESET_CONNECTION follows (bit 1), and whether the rest of the input
 * is rather the payload of an OK packet with session state (bit 2, NULs
 * and all: it ends the input). Each statement is
 * copied into an exact-size heap packet, so a read past it is an ASan
 * report.
 *
 * Invariants beyond memory safety:
 * - a client's list never outgrows MY_VARS_MAX and holds no "?" value;
 * - right after a client's SET was answered, the server it ran on is at the
 *   client's variables (nothing to restore), but for a character set a
 *   reset left unknown;
 * - the statement that brings a fresh server to a client's variables is a
 *   SET the screen follows itself, and it yields the same list (the
 *   restore says what the client said).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "my_conn.h"
#include "pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void log_write(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

/* A COM_QUERY packet of text in an exact-size heap block: its payload. */
static uint8_t *packet(const uint8_t *text, size_t n, uint32_t *len)
{
	uint8_t *p = malloc(n + 5);
	*len = (uint32_t)n + 1;
	p[0] = (uint8_t)*len;
	p[1] = (uint8_t)(*len >> 8);
	p[2] = (uint8_t)(*len >> 16);
	p[3] = 0;
	p[4] = MY_COM_QUERY;
	memcpy(p + 5, text, n);
	return p;
}

static bool same(const struct my_vars *a, const struct my_vars *b)
{
	size_t la = a ? a->len : 0, lb = b ? b->len : 0;
	return la == lb && (la == 0 || memcmp(a->text, b->text, la) == 0);
}

/* The restore text for a fresh server, screened by a fresh client. */
static void check_round_trip(const struct my_client *c, struct pool *pool)
{
	static char out[8192];
	struct my_server fresh;
	memset(&fresh, 0, sizeof(fresh));
	fresh.pool = pool;
	int n = my_session_restore(&fresh, c, out, sizeof(out));
	FUZZ_CHECK(n >= 0 && (size_t)n < sizeof(out));
	FUZZ_CHECK((n == 0) == (c->vars == NULL));
	if (n == 0)
		return;
	FUZZ_CHECK(memchr(out, '\0', (size_t)n) == NULL);
	uint32_t len;
	uint8_t *p = packet((const uint8_t *)out, (size_t)n, &len);
	struct my_client *d = calloc(1, sizeof(*d));
	FUZZ_CHECK(my_session_screen(d, p + 4, len));
	FUZZ_CHECK(same(d->want_vars, c->vars));
	my_session_client_free(d);
	free(d);
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t variant[5] = { 0, 0, 0, 0, 45 };
	struct pool pool;
	memset(&pool, 0, sizeof(pool));
	pool.variant = variant;
	struct my_client *c = calloc(1, sizeof(*c));
	struct my_server *s = calloc(1, sizeof(*s));
	s->pool = &pool;
	s->client = c;
	s->caps = MY_CLIENT_PROTOCOL_41 | MY_CLIENT_SESSION_TRACK;
	c->server = s;
	size_t at = 0;
	for (int k = 0; k < 8 && at < size; k++) {
		const uint8_t *end = memchr(data + at, 0, size - at);
		size_t n = end ? (size_t)(end - (data + at)) : size - at;
		const uint8_t *stmt = data + at;
		at += n + 1;
		if (n == 0)
			continue;
		uint8_t flags = stmt[0];
		stmt++;
		n--;
		if (flags & 4) {
			/* An OK packet's payload, as the last of an answer. */
			n = size - (size_t)(stmt - data);
			at = size;
			uint8_t *ok = malloc(n ? n : 1);
			memcpy(ok, stmt, n);
			s->answer.status_known = true;
			s->answer.status = MY_STATUS_SESSION_STATE_CHANGED;
			s->answer.command = MY_COM_QUERY;
			c->pinned = false;
			my_session_tracked(s, ok, (uint32_t)n);
			free(ok);
			continue;
		}
		uint32_t len;
		uint8_t *p = packet(stmt, n, &len);
		bool followed = my_session_screen(c, p + 4, len);
		FUZZ_CHECK(followed == (c->want_vars != NULL));
		bool unknown_before = s->vars && s->vars->len >= 8 && memcmp(s->vars->text, "NAMES\0?\0", 8) == 0;
		my_session_answered(c, s, flags & 1);
		FUZZ_CHECK(c->want_vars == NULL);
		if (c->vars) {
			FUZZ_CHECK(c->vars->len > 0 && c->vars->len <= MY_VARS_MAX);
			FUZZ_CHECK(memmem(c->vars->text, c->vars->len, "\0?\0", 3) == NULL);
		}
		if (followed && (flags & 1) && !unknown_before) {
			char out[8192];
			FUZZ_CHECK(my_session_restore(s, c, out, sizeof(out)) == 0);
		}
		check_round_trip(c, &pool);
		if (flags & 2) {
			my_session_reset_connection(c, s);
			FUZZ_CHECK(c->vars == NULL);
		}
		free(p);
	}
	my_session_client_free(c);
	my_session_server_clear(s);
	free(c);
	free(s);
	return 0;
}
