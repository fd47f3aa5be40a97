/*
 * unit.h - the smallest test runner that will do: CHECK records a failure
 * with file:line and carries on; UNIT_MAIN prints "N passed, N failed".
 */
#ifndef SLUICE_UNIT_H
#define SLUICE_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond) do { \
	if (cond) { unit_passed++; } \
	else { unit_failed++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *ua_ = (a), *ub_ = (b); \
	if (ua_ && ub_ && strcmp(ua_, ub_) == 0) { unit_passed++; } \
	else { unit_failed++; fprintf(stderr, "%s:%d: CHECK_STR failed: '%s' != '%s'\n", __FILE__, __LINE__, ua_ ? ua_ : "(null)", ub_ ? ub_ : "(null)"); } \
} while (0)

#define UNIT_MAIN(body) int main(void) { body; \
	printf("%s: %d passed, %d failed\n", __FILE__, unit_passed, unit_failed); \
	return unit_failed ? 1 : 0; }

#endif
