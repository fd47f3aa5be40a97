/*
 * test_shard_2pc.c - the names of sluice's prepared transactions over
 * shards read back as written (coordinator and participant), other names
 * refused, and the numbers of commits in flight.
 */
#include <string.h>

#include "shard_2pc.h"
#include "unit.h"

static void round_trip(const struct shard_gid *g)
{
	char text[SHARD_GID_MAX];
	struct shard_gid back;
	shard_gid_format(g, text);
	CHECK(shard_gid_parse(text, &back));
	CHECK(back.host == g->host && back.db == g->db && back.pid == g->pid && back.seq == g->seq);
	CHECK(back.shard == g->shard && back.coord == g->coord && back.participant == g->participant);
	CHECK(!g->participant || back.xid == g->xid);
}

static void test_names(void)
{
	struct shard_gid g = { .host = 0xdeadbeef, .db = 0x1234, .pid = 4242, .seq = 7, .shard = 0, .coord = 0 };
	round_trip(&g);
	char text[SHARD_GID_MAX];
	shard_gid_format(&g, text);
	CHECK(strcmp(text, "sluice:deadbeef:00001234:4242:7:0") == 0);
	g = (struct shard_gid){ .host = 1, .db = 2, .pid = 3, .seq = UINT64_C(18446744073709551615), .shard = 63,
				.coord = 2, .participant = true, .xid = UINT64_C(9223372036854775807) };
	round_trip(&g);
	shard_gid_format(&g, text);
	CHECK(strlen(text) < SHARD_GID_MAX);

	struct shard_gid out;
	const char *bad[] = {
		"", "sluice", "sluice:", "someone_else", "sluice:1:2:3:4", "sluice:1:2:3:4:5:", "sluice:1:2:3:4:5:6",
		"sluice:1:2:3:4:5:5:9", /* a participant on its coordinator's shard */
		"sluice:1:2:3:4:5:6:7:8", "sluice:xyz:2:3:4:5", "sluice:1:2:-3:4:5", "sluice:123456789:2:3:4:5",
		"sluice:1:2:3:4:5:6:7'; DROP TABLE x; --", "sluice:1:2:3:4:5 ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (shard_gid_parse(bad[i], &out))
			fprintf(stderr, "parsed: %s\n", bad[i]);
		CHECK(!shard_gid_parse(bad[i], &out));
	}
	CHECK(shard_gid_parse("sluice:1:2:3:4:5", &out) && !out.participant && out.shard == 5 && out.coord == 5);
	CHECK(shard_gid_parse("sluice:1:2:3:4:5:0:99", &out) && out.participant && out.coord == 0 && out.xid == 99);
	CHECK(shard_2pc_db("shop") != shard_2pc_db("shop2"));
}

static void test_in_flight(void)
{
	uint64_t a = shard_2pc_start(), b = shard_2pc_start(), c = shard_2pc_start();
	CHECK(a && b > a && c > b);
	CHECK(shard_2pc_running(a) && shard_2pc_running(b) && shard_2pc_running(c));
	shard_2pc_done(a);
	CHECK(!shard_2pc_running(a) && shard_2pc_running(b));
	shard_2pc_done(c);
	CHECK(shard_2pc_running(b) && !shard_2pc_running(c));
	shard_2pc_done(b);
	CHECK(!shard_2pc_running(b));
}

UNIT_MAIN(test_names(); test_in_flight())
