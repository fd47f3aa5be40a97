/*
 * fuzz_my_sqlread.c - libFuzzer harness for my_sql_read_class
 * (src/mysql/my_sqlread.c): any bytes, copied into an exact-size heap
 * block without a NUL, so a read past the text is an ASan report.
 *
 * Invariants beyond memory safety:
 * - the class is one of the three, and the same on a second call;
 * - a text with a NUL byte is MY_READ_NO;
 * - the text followed by a line with ";INSERT" is MY_READ_NO: the INSERT
 *   is a statement of its own, or (inside an unterminated string, quoted
 *   name or comment) the text does not end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "my_sqlread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 16)
		return 0;
	static const char tail[] = "\n;INSERT INTO t VALUES (1)";
	char *text = malloc(size ? size : 1);
	memcpy(text, data, size);
	int cls = my_sql_read_class(text, size);
	FUZZ_CHECK(cls == MY_READ_NO || cls == MY_READ_YES || cls == MY_READ_TX_READ_ONLY);
	FUZZ_CHECK(my_sql_read_class(text, size) == cls);
	if (memchr(data, 0, size))
		FUZZ_CHECK(cls == MY_READ_NO);
	free(text);

	text = malloc(size + sizeof(tail));
	memcpy(text, data, size);
	memcpy(text + size, tail, sizeof(tail) - 1);
	FUZZ_CHECK(my_sql_read_class(text, size + sizeof(tail) - 1) == MY_READ_NO);
	free(text);
	return 0;
}
