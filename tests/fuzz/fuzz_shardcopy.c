/*
 * fuzz_shardcopy.c - libFuzzer harness for shard_copy (src/pg/
 * shard_copy.c, over pghash.c): the rows of a COPY FROM STDIN split by
 * shard. The first byte picks the format (text or CSV), a header, the key's
 * field (0..3, or a replicated table) and the key's type; the second the
 * size of the pieces the data arrives in; the rest is the data.
 *
 * Invariants beyond memory safety:
 * - the shards that got rows are exactly those whose data is not empty;
 * - a sharded table's rows are the input's, each on one shard: the bytes
 *   over the shards and the header are at most the input's (plus the
 *   newline a last row without one gets), and each shard's data ends with
 *   a newline;
 * - a replicated table's rows are the same for every shard;
 * - a failure says why with a five-character SQLSTATE.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pghash.h"
#include "shard_copy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static const int types[] = { PGHASH_INT8, PGHASH_INT4, PGHASH_TEXT, PGHASH_UUID };
	uint8_t how = data[0];
	size_t piece = (size_t)data[1] + 1;
	data += 2;
	size_t len = size - 2;
	struct shard_copy_format f = {
		.key = (how & 7) >= 4 ? -1 : how & 3,
		.key_type = types[(how >> 3) & 3],
		.csv = how & 0x20,
		.header = how & 0x40,
		.quote = '"',
		.escape = how & 0x80 ? '\\' : '"',
	};
	f.delim = f.csv ? ',' : '\t';
	strcpy(f.null, f.csv ? "" : "\\N");
	const int n_shards = 4;
	struct shard_copy *s = shard_copy_new(&f, n_shards, 1 << 20);
	if (!s)
		return 0;
	int rc = 0;
	for (size_t at = 0; at < len && rc == 0; at += piece)
		rc = shard_copy_feed(s, data + at, at + piece > len ? len - at : piece);
	if (rc == 0)
		rc = shard_copy_end(s);
	if (rc < 0) {
		const char *msg, *code = shard_copy_error(s, &msg);
		FUZZ_CHECK(strlen(code) == 5 && msg[0]);
		shard_copy_free(s);
		return 0;
	}
	uint64_t mask = shard_copy_shards(s);
	size_t hlen, total = 0, first_len = 0;
	(void)shard_copy_header(s, &hlen);
	const uint8_t *first = NULL;
	for (int i = 0; i < n_shards; i++) {
		size_t n;
		const uint8_t *p = shard_copy_data(s, i, &n);
		FUZZ_CHECK(!!(mask >> i & 1) == (n > 0));
		FUZZ_CHECK(n == 0 || p[n - 1] == '\n');
		if (f.key < 0) {
			if (i == 0) {
				first = p;
				first_len = n;
			}
			FUZZ_CHECK(n == first_len && (n == 0 || memcmp(p, first, n) == 0));
		} else {
			total += n;
		}
	}
	FUZZ_CHECK((f.key < 0 ? first_len : total) + hlen <= len + 1);
	shard_copy_free(s);
	return 0;
}
