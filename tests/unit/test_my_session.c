/*
 * test_my_session.c - which SET statements sluice follows for a MySQL
 * client (my_session_screen), what a client's list of variables becomes,
 * and the statement that brings a server's session to a client's
 * (my_session_restore). Pure list work on calloc'd structs: no sockets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "my_conn.h"
#include "pool.h"
#include "unit.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Screen text as a whole COM_QUERY packet (header, command byte, text). */
static bool screen(struct my_client *c, const char *text)
{
	static uint8_t pkt[4096];
	uint32_t len = (uint32_t)strlen(text) + 1;
	pkt[0] = (uint8_t)len;
	pkt[1] = (uint8_t)(len >> 8);
	pkt[2] = 0;
	pkt[3] = 0;
	pkt[4] = MY_COM_QUERY;
	memcpy(pkt + 5, text, len - 1);
	return my_session_screen(c, pkt + 4, len);
}

static struct pool pool;
static uint8_t variant[5] = { 0, 0, 0, 0, 45 };

/* What the server needs to get to c's variables ("" = nothing). */
static const char *restore(struct my_server *s, struct my_client *c)
{
	static char out[8192];
	int n = my_session_restore(s, c, out, sizeof(out));
	if (n < 0)
		return "(too long)";
	out[n] = '\0';
	return out;
}

static void test_followed_or_not(void)
{
	struct {
		const char *text;
		bool followed;
	} cases[] = {
		{ "SET time_zone = '+05:00'", true },
		{ "  set SESSION sql_mode='ANSI_QUOTES';  ", true },
		{ "SET @@session.time_zone := \"+01:00\"", true },
		{ "SET @@local.max_join_size=1000, @@wait_timeout = 100", true },
		{ "SET NAMES latin1", true },
		{ "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_bin'", true },
		{ "SET CHARACTER SET latin1", true },
		{ "SET autocommit=0, sql_mode=DEFAULT", true },
		{ "SET sql_mode = ANSI_QUOTES, time_zone = SYSTEM, div_precision_increment = -0", true },
		{ "SET @x = 1", false },
		{ "SET GLOBAL time_zone = '+00:00'", false },
		{ "SET @@global.time_zone = '+00:00'", false },
		{ "SET time_zone = '+00:00', GLOBAL max_connections = 10", false },
		/* Expressions: followed with the values the server says after the
		 * SET (my_session_learned; one it cannot say again pins then). */
		{ "SET sql_mode = CONCAT(@@sql_mode, ',ANSI')", true },
		{ "SET sql_mode = @@global.sql_mode", true },
		{ "SET time_zone = 'a\\'b'", true },
		{ "SET time_zone = 'it''s'", true },
		{ "SET time_zone = 'x' 'y'", true },
		{ "SET lc_messages = 'fr\xc3\xa9'", true },
		{ "SET time_zone = _latin1'+01:00'", true },
		{ "SET sql_mode = 0x1f", true },
		{ "SET x = 1e5", true },
		{ "SET sql_mode = (SELECT 'ANSI')", false },
		{ "SET sql_mode = CONCAT(@m, 'X')", false },
		{ "SET sql_mode = CONCAT('a', 'b' -- c\n)", false },
		{ "SET time_zone = ('+05:00'", false },
		{ "SET time_zone = '+05:00'; SELECT 1", false },
		{ "SET time_zone = '+05:00' /* c */", false },
		{ "SET insert_id = 5", false },
		{ "SET last_insert_id = 5", false },
		{ "SET PASSWORD = 'x'", false },
		{ "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", false },
		{ "SET SESSION TRANSACTION READ ONLY", false },
		{ "SET STATEMENT max_statement_time=1 FOR SELECT 1", false },
		{ "SET ROLE admin", false },
		{ "SET session_track_system_variables = '*'", false },
		{ "SELECT 1", false },
		{ "SET", false },
	};
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		struct my_client *c = calloc(1, sizeof(*c));
		bool got = screen(c, cases[i].text);
		if (got != cases[i].followed)
			fprintf(stderr, "case: %s\n", cases[i].text);
		CHECK(got == cases[i].followed);
		CHECK(got == (c->want_vars != NULL));
		my_session_client_free(c);
		free(c);
	}
}

/* A screened SET that the server answered OK (on s). */
static void set_ok(struct my_client *c, struct my_server *s, const char *text)
{
	CHECK(screen(c, text));
	my_session_answered(c, s, true);
}

static void test_lists_and_restore(void)
{
	struct my_client *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct my_server *s = calloc(1, sizeof(*s));
	pool.variant = variant;
	s->pool = &pool;
	CHECK_STR(restore(s, a), "");

	set_ok(a, s, "SET NAMES latin1, time_zone='+05:00'");
	set_ok(a, s, "SET sql_mode = \"ANSI_QUOTES\"");
	CHECK_STR(restore(s, a), ""); /* the server ran them: in step */
	CHECK_STR(restore(s, b), "SET character_set_client=45, character_set_results=45, collation_connection=45, "
				 "time_zone=DEFAULT, sql_mode=DEFAULT");
	CHECK(my_session_restored(s, b));
	CHECK_STR(restore(s, b), "");
	CHECK_STR(restore(s, a), "SET NAMES latin1, time_zone='+05:00', sql_mode='ANSI_QUOTES'");

	/* A refused SET changes nothing; DEFAULT forgets; a later SET of the
	 * same variable moves it to the end. */
	CHECK(my_session_restored(s, a));
	CHECK(screen(a, "SET time_zone = '+01:00'"));
	my_session_answered(a, s, false);
	CHECK_STR(restore(s, a), "");
	set_ok(a, s, "SET time_zone = '+01:00', sql_mode = DEFAULT");
	CHECK_STR(restore(s, b), "SET character_set_client=45, character_set_results=45, collation_connection=45, "
				 "time_zone=DEFAULT");
	set_ok(a, s, "SET CHARACTER SET utf8mb4, collation_connection = utf8mb4_bin");
	CHECK_STR(restore(s, b), "SET time_zone=DEFAULT, character_set_client=45, character_set_results=45, "
				 "collation_connection=45");
	my_session_server_clear(s);
	CHECK_STR(restore(s, a), "SET time_zone='+01:00', CHARACTER SET utf8mb4, collation_connection=utf8mb4_bin");

	/* Back to the login's value for everything: no list at all. */
	CHECK(my_session_restored(s, a));
	set_ok(a, s, "SET time_zone = DEFAULT, NAMES DEFAULT");
	CHECK_STR(restore(s, a), "");
	my_session_server_clear(s);
	CHECK_STR(restore(s, a), "SET NAMES DEFAULT");

	/* COM_RESET_CONNECTION: the next client gets the handshake's character set back. */
	my_session_reset_connection(a, s);
	CHECK(a->vars == NULL);
	CHECK_STR(restore(s, a), "SET character_set_client=45, character_set_results=45, collation_connection=45");
	/* ... also when the same client sets something else on it first. */
	set_ok(a, s, "SET time_zone = '+03:00'");
	CHECK_STR(restore(s, b), "SET character_set_client=45, character_set_results=45, collation_connection=45, "
				 "time_zone=DEFAULT");
	CHECK_STR(restore(s, a), "SET character_set_client=45, character_set_results=45, collation_connection=45, "
				 "time_zone='+03:00'");
	set_ok(a, s, "SET NAMES latin1");
	CHECK_STR(restore(s, a), "");
	my_session_reset_connection(a, s);

	/* wait_timeout on an interactive session comes back from interactive_timeout. */
	my_session_server_clear(s);
	s->caps = MY_CLIENT_INTERACTIVE;
	set_ok(b, s, "SET wait_timeout = 5");
	CHECK_STR(restore(s, a), "SET wait_timeout=@@global.interactive_timeout");

	/* A client whose list would outgrow MY_VARS_MAX is not followed. */
	static const char *const names[] = { "sql_mode", "time_zone", "lc_time_names", "storage_engine" };
	char big[300];
	for (size_t i = 0; i < N_ELEM(names); i++) {
		snprintf(big, sizeof(big), "SET %s = '%0230d'", names[i], 0);
		CHECK(screen(a, big));
		my_session_answered(a, s, true);
	}
	CHECK(!screen(a, "SET optimizer_switch = '0000000000000000000000000000000000000000000000000'"));
	CHECK(a->want_vars == NULL);

	my_session_client_free(a);
	my_session_client_free(b);
	my_session_server_clear(s);
	free(a);
	free(b);
	free(s);
}

/* A text row of lenenc strings. */
static uint32_t row_of(uint8_t *out, const char *const *values, size_t n)
{
	uint32_t len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(values[i]);
		out[len++] = (uint8_t)k;
		memcpy(out + len, values[i], k);
		len += (uint32_t)k;
	}
	return len;
}

static void test_values_of_expressions(void)
{
	struct my_client *a = calloc(1, sizeof(*a));
	struct my_server *s = calloc(1, sizeof(*s));
	s->pool = &pool;
	char q[600];
	uint8_t row[256];

	set_ok(a, s, "SET autocommit=1, sql_mode = CONCAT(@@sql_mode, ',X'), time_zone='+01:00', wait_timeout = 60 * 2");
	int n = my_session_learn_query(a, q, sizeof(q));
	CHECK(n > 0);
	q[n > 0 ? n : 0] = '\0';
	CHECK_STR(q, "SELECT @@session.sql_mode, @@session.wait_timeout");
	static const char *const values[] = { "STRICT_ALL_TABLES,X", "120" };
	my_session_learned(a, s, row, row_of(row, values, 2));
	CHECK(!a->pinned && !s->pinned);
	CHECK(my_session_learn_query(a, q, sizeof(q)) == 0);
	CHECK_STR(restore(s, a), ""); /* the server has them */
	struct my_server *t = calloc(1, sizeof(*t));
	t->pool = &pool;
	CHECK_STR(restore(t, a), "SET sql_mode='STRICT_ALL_TABLES,X', time_zone='+01:00', wait_timeout='120'");

	/* A value that cannot be said again as a literal, or no answer: pins. */
	set_ok(a, s, "SET time_zone = CONCAT('it', CHAR(39), 's')");
	static const char *const quote[] = { "it's" };
	my_session_learned(a, s, row, row_of(row, quote, 1));
	CHECK(a->pinned && s->pinned);

	struct my_client *b = calloc(1, sizeof(*b));
	set_ok(b, t, "SET sql_mode = @@global.sql_mode");
	my_session_learned(b, t, NULL, 0);
	CHECK(b->pinned && t->pinned);

	my_session_client_free(a);
	my_session_client_free(b);
	my_session_server_clear(s);
	my_session_server_clear(t);
	free(a);
	free(b);
	free(s);
	free(t);
}

UNIT_MAIN({
	test_followed_or_not();
	test_lists_and_restore();
	test_values_of_expressions();
})
