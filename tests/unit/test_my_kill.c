/*
 * test_my_kill.c - what sluice reads in a KILL statement (my_kill_parse):
 * the forms MySQL and MariaDB accept that name a connection id, and the
 * ones sluice refuses.
 */
#include <stdint.h>
#include <string.h>

#include "my_conn.h"
#include "unit.h"

#define SELF 4242u

static const struct {
	const char *text;
	bool ok;          /* a connection id sluice acts on */
	uint64_t target;
	bool query;
} cases[] = {
	{ "KILL 17", true, 17, false },
	{ "kill   17 ;  ", true, 17, false },
	{ "KILL CONNECTION 17", true, 17, false },
	{ "KILL QUERY 17", true, 17, true },
	{ "KILL HARD QUERY 17;", true, 17, true },
	{ "KILL SOFT CONNECTION 17", true, 17, false },
	{ "KILL\tQUERY\n2147483647", true, 2147483647u, true },
	{ "KILL CONNECTION_ID()", true, SELF, false },
	{ "KILL QUERY connection_id ( )", true, SELF, true },
	{ "KILL 99999999999", true, 99999999999ull, false },
	{ "KILL 99999999999999999999999", true, 0, false }, /* too big: checked below */
	{ "KILL QUERY ID 5", false, 0, false },
	{ "KILL USER bob", false, 0, false },
	{ "KILL @x", false, 0, false },
	{ "KILL 5; SELECT 1", false, 0, false },
	{ "KILL 5x", false, 0, false },
	{ "KILL", false, 0, false },
	{ "KILL QUERY", false, 0, false },
	{ "KILL CONNECTION_ID(", false, 0, false },
	{ "KILL CONNECTION_ID() 5", false, 0, false },
	{ "KILL (5)", false, 0, false },
};

UNIT_MAIN({
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t target = 0;
		bool query = !cases[i].query;
		const char *why = my_kill_parse(cases[i].text, strlen(cases[i].text), SELF, &target, &query);
		if (!cases[i].ok) {
			CHECK(why != NULL);
			CHECK(why == NULL || strstr(why, "sluice") != NULL);
			continue;
		}
		CHECK(why == NULL);
		if (!why && cases[i].target)
			CHECK(target == cases[i].target);
		else if (!why)
			CHECK(target > UINT32_MAX);
		if (!why)
			CHECK(query == cases[i].query);
		if (why || (cases[i].target && target != cases[i].target))
			fprintf(stderr, "  case %zu: %s\n", i, cases[i].text);
	}
})
