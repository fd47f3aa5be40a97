/*
 * fuzz_shardroute.c - libFuzzer harness for shard_route (src/pg/
 * shardroute.c, over sqlparse.c, pghash.c and libpg_query). The first
 * byte picks the number of shards (1..64) and whether parameter types are
 * given; the rest is the SQL text, copied into an exact-size heap block
 * with its NUL, so a read past it is an ASan report.
 *
 * Invariants beyond memory safety:
 * - the decision is one of the kinds, and the same on a second call;
 * - ONE names a shard below the count, SEVERAL a non-empty subset of the
 *   shards (or rows all decided at Bind), BIND a parameter from $1;
 *   items only with SEVERAL, each row's shard below the count or -1 with
 *   a parameter;
 * - a REFUSE has a five-character SQLSTATE and a message;
 * - only a read over several shards may be concatenated;
 * - over a map without sharded tables no decision needs the shards' keys
 *   (no ONE, SEVERAL, BIND or MULTI);
 * - a text routed by its shape (sqlshape.h, the client side's cache of
 *   simple queries) goes where its own route sends it: when the shape's
 *   plan, checked on the text, says the key is one of the literals, the
 *   route of the text with other values in those literals is ONE, to the
 *   shard the new key literal gives.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pghash.h"
#include "shardroute.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct shard_table tables[] = {
	{ NULL, "t", "k", PGHASH_INT8 },
	{ NULL, "orders", "customer_id", PGHASH_INT4 },
	{ "public", "s", "k", PGHASH_TEXT },
	{ NULL, "u", "id", PGHASH_UUID },
	{ NULL, "e", "k", PGHASH_UNKNOWN },
};

static void check(const struct shard_route *r, int n_shards)
{
	uint64_t all = n_shards >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << n_shards) - 1;
	FUZZ_CHECK(r->kind >= 0 && r->kind < SHARD_ROUTE_KINDS);
	FUZZ_CHECK((r->items != NULL) == (r->n_items > 0));
	FUZZ_CHECK(!r->items || r->kind == SHARD_ROUTE_SEVERAL);
	FUZZ_CHECK(!r->concat || ((r->kind == SHARD_ROUTE_MULTI || r->kind == SHARD_ROUTE_SEVERAL) && !r->write));
	switch (r->kind) {
	case SHARD_ROUTE_ONE:
		FUZZ_CHECK(r->shard >= 0 && r->shard < n_shards);
		break;
	case SHARD_ROUTE_SEVERAL:
		FUZZ_CHECK((r->mask & ~all) == 0);
		FUZZ_CHECK(r->mask != 0 || r->n_items > 0);
		for (size_t i = 0; i < r->n_items; i++) {
			const struct shard_item *it = &r->items[i];
			FUZZ_CHECK(it->shard >= -1 && it->shard < n_shards);
			FUZZ_CHECK(it->shard >= 0 || it->param >= 1);
			FUZZ_CHECK(it->shard < 0 || (r->mask >> it->shard & 1));
		}
		break;
	case SHARD_ROUTE_BIND:
		FUZZ_CHECK(r->param >= 1);
		FUZZ_CHECK(r->param_type >= 0 && r->param_type < PGHASH_TYPES);
		break;
	case SHARD_ROUTE_REFUSE:
		FUZZ_CHECK(strlen(r->sqlstate) == 5);
		FUZZ_CHECK(r->message[0] != '\0');
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 1 << 16)
		return 0;
	int n_shards = data[0] % PGHASH_MAX_MODULUS + 1;
	bool with_types = data[0] & 0x80;
	static const uint32_t types[] = { 20, 25, 0, 2950, 23, 21, 1043, 700 };
	char *text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';

	struct shard_map map = { tables, sizeof(tables) / sizeof(tables[0]), n_shards };
	struct shard_route r, again;
	FUZZ_CHECK(shard_route(text, with_types ? types : NULL, with_types ? 8 : 0, &map, &r) == 0);
	check(&r, n_shards);
	FUZZ_CHECK(shard_route(text, with_types ? types : NULL, with_types ? 8 : 0, &map, &again) == 0);
	FUZZ_CHECK(again.kind == r.kind && again.shard == r.shard && again.mask == r.mask && again.param == r.param &&
		   again.n_items == r.n_items && strcmp(again.message, r.message) == 0);
	shard_route_deinit(&again);
	shard_route_deinit(&r);

	char shape[1024];
	struct sql_literal lits[SQL_SHAPE_MAX_LITERALS];
	int n = sql_shape(text, size - 1, shape, sizeof(shape), lits);
	struct shard_plan pl;
	if (n > 0 && shard_plan_of_shape(shape, text, lits, n, &map, &pl) == 0 &&
	    shard_plan_literal_shard(&pl, text, lits, n, n_shards) >= 0) {
		/* Another text of the same shape: each literal's digits changed
		 * (a 7 after them, then the value 0). */
		for (int variant = 0; variant < 2; variant++) {
			char *other = malloc(2 * size + 2);
			struct sql_literal olits[SQL_SHAPE_MAX_LITERALS];
			size_t o = 0, at = 0;
			for (int i = 0; i < n; i++) {
				memcpy(other + o, text + at, lits[i].off - at);
				o += lits[i].off - at;
				olits[i].off = (uint32_t)o;
				if (variant == 0) {
					memcpy(other + o, text + lits[i].off, lits[i].len);
					o += lits[i].len;
					other[o++] = '7';
				} else {
					other[o++] = '0';
				}
				olits[i].len = (uint32_t)o - olits[i].off;
				at = lits[i].off + lits[i].len;
			}
			memcpy(other + o, text + at, size - 1 - at);
			o += size - 1 - at;
			other[o] = '\0';
			int shard = shard_plan_literal_shard(&pl, other, olits, n, n_shards);
			if (shard >= 0) {
				FUZZ_CHECK(shard_route(other, NULL, 0, &map, &r) == 0);
				FUZZ_CHECK(r.kind == SHARD_ROUTE_ONE && r.shard == shard);
				shard_route_deinit(&r);
			}
			free(other);
		}
	}

	struct shard_map none = { tables, 0, n_shards };
	FUZZ_CHECK(shard_route(text, NULL, 0, &none, &r) == 0);
	check(&r, n_shards);
	FUZZ_CHECK(r.kind != SHARD_ROUTE_ONE && r.kind != SHARD_ROUTE_SEVERAL && r.kind != SHARD_ROUTE_BIND &&
		   r.kind != SHARD_ROUTE_MULTI);
	shard_route_deinit(&r);
	free(text);
	return 0;
}
