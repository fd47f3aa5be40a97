/*
 * fuzz_ident.c - libFuzzer harness for ident_parse / ident_allows /
 * ident_free (src/core/ident.c, tokenizer in src/core/hba_lex.c): pg_ident.conf
 * lines, regular expressions compiled from the input, \1 substitution.
 *
 * Input: the whole file, in an exact-size heap block with no NUL after it
 * (ident_parse takes pointer + length), so a read past the text is an ASan
 * report. The error buffer size varies with the input.
 *
 * When the text parses, words of the input are tried as map, system user
 * and database user names through ident_allows.
 *
 * Invariants beyond memory safety:
 * - failure: rc is -EINVAL or -ENOMEM, *out is NULL, err is NUL-terminated;
 * - success: an allowed pair names a line within the input, a refused one
 *   line 0; without a map the answer is "same name";
 * - the text with one '\n' appended parses the same way (same rc, same
 *   number of lines).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hba_lex.h"
#include "ident.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longest name taken from the input. */
#define FUZZ_NAME_MAX 32
/* Names tried: fixed ones plus words of the input. */
#define FUZZ_NAMES 6

/* The skip-th printable word of the input (between blanks and quotes), or
 * "root" when there are fewer. */
static void pick_word(const uint8_t *data, size_t size, size_t skip, char out[FUZZ_NAME_MAX + 1])
{
	size_t i = 0, words = 0;

	while (i < size) {
		size_t n = 0;

		while (i < size && (data[i] <= ' ' || data[i] == '"' || data[i] >= 0x7f))
			i++;
		while (i < size && n < FUZZ_NAME_MAX && data[i] > ' ' && data[i] != '"' && data[i] < 0x7f)
			out[n++] = (char)data[i++];
		while (i < size && data[i] > ' ' && data[i] != '"' && data[i] < 0x7f)
			i++;
		if (n && words++ == skip) {
			out[n] = '\0';
			return;
		}
	}
	strcpy(out, "root");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t errlen = 1 + size % 301;
	struct ident_maps *m = (struct ident_maps *)1, *m2 = (struct ident_maps *)1;
	char names[FUZZ_NAMES][FUZZ_NAME_MAX + 1];
	char *text, *text2, *err;
	int rc, rc2, max_line = 1;

	if (size > 4 * HBA_MAX_LINE)
		return 0;
	for (size_t i = 0; i < size; i++)
		max_line += data[i] == '\n';
	text = malloc(size ? size : 1);
	text2 = malloc(size + 1);
	err = malloc(errlen);
	FUZZ_CHECK(text && text2 && err);
	if (size) {
		memcpy(text, data, size);
		memcpy(text2, data, size);
	}
	text2[size] = '\n';

	memset(err, 'x', errlen);
	rc = ident_parse(text, size, "fuzz.conf", &m, err, errlen);
	FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
	if (rc != 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
		FUZZ_CHECK(m == NULL);
	} else {
		strcpy(names[0], "root");
		strcpy(names[1], "all");
		for (size_t k = 2; k < FUZZ_NAMES; k++)
			pick_word(data, size, k - 2 + (k == FUZZ_NAMES - 1 ? size % 7 : 0), names[k]);
		for (size_t a = 0; a < FUZZ_NAMES; a++) {
			for (size_t b = 0; b < FUZZ_NAMES; b++) {
				for (size_t c = 0; c < FUZZ_NAMES; c++) {
					int line = -1;
					bool ok = ident_allows(m, names[a], names[b], names[c], &line);

					FUZZ_CHECK(ok ? line >= 1 && line <= max_line : line == 0);
					FUZZ_CHECK(!ok || ident_has_map(m, names[a]));
				}
				FUZZ_CHECK(ident_allows(m, NULL, names[a], names[b], NULL) ==
					   (strcmp(names[a], names[b]) == 0));
			}
		}
	}

	rc2 = ident_parse(text2, size + 1, "fuzz.conf", &m2, err, errlen);
	/* a final continuation backslash now joins an empty line: the same
	 * record, so the same outcome */
	FUZZ_CHECK(rc == rc2);
	FUZZ_CHECK(ident_line_count(m) == ident_line_count(m2));
	ident_free(m);
	ident_free(m2);
	free(text);
	free(text2);
	free(err);
	return 0;
}
