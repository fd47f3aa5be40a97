/*
 * fuzz_sqlread.c - libFuzzer harness for sql_read_class (src/pg/sqlread.c,
 * over sqlparse.c and libpg_query): any bytes, copied into an exact-size
 * heap block without a NUL, so a read past the text is an ASan report.
 *
 * Invariants beyond memory safety:
 * - the class is one of the three, and the same on a second call;
 * - a text the prescreen refuses is SQL_READ_NO;
 * - counting the Query message's own NUL changes nothing (for a text
 *   without one);
 * - the text followed by a line with an INSERT is SQL_READ_NO: the INSERT
 *   is a statement of its own, or (inside an unterminated string, quoted
 *   name or comment) makes the text one PostgreSQL refuses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sqlread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 16)
		return 0;
	static const char tail[] = "\n;INSERT INTO t VALUES (1)";
	char *text = malloc(size ? size : 1);
	memcpy(text, data, size);
	int cls = sql_read_class(text, size);
	FUZZ_CHECK(cls == SQL_READ_NO || cls == SQL_READ_YES || cls == SQL_READ_TX_READ_ONLY);
	FUZZ_CHECK(sql_read_class(text, size) == cls);
	if (!sql_read_worth_parsing(text, size))
		FUZZ_CHECK(cls == SQL_READ_NO);
	free(text);

	text = malloc(size + sizeof(tail));
	memcpy(text, data, size);
	text[size] = '\0';
	if (!memchr(data, 0, size))
		FUZZ_CHECK(sql_read_class(text, size + 1) == cls);
	memcpy(text + size, tail, sizeof(tail) - 1);
	FUZZ_CHECK(sql_read_class(text, size + sizeof(tail) - 1) == SQL_READ_NO);
	free(text);
	return 0;
}
