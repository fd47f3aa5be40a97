/*
 * fuzz.h - shared bits of the libFuzzer harnesses in tests/fuzz/.
 *
 * Owns: the invariant check macro. A broken invariant aborts, so libFuzzer
 * records the input as a crash just like an ASan or UBSan report.
 * Must not: hold state; every harness stays one self-contained file.
 */
#ifndef SLUICE_FUZZ_H
#define SLUICE_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",        \
				__FILE__, __LINE__, #cond);                     \
			abort();                                                \
		}                                                               \
	} while (0)

#endif
