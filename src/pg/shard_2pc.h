/*
 * shard_2pc.h - the names and bookkeeping of sluice's two-phase commits
 * over shards (docs/sharding.md, "Writes over several shards").
 *
 * A write over several shards runs on each in turn inside a transaction
 * that ends with PREPARE TRANSACTION. The first shard it runs on is the
 * coordinator: its transaction also reads its own id (txid_current()).
 * Once every shard has prepared, COMMIT PREPARED on the coordinator is the
 * decision, recorded durably by PostgreSQL's own commit log; the others
 * are committed after it. A participant's name carries the coordinator's
 * shard and transaction id, so that recovery (pg_shard_recover.h) can ask
 * the coordinator, with txid_status(), what was decided: coordinator
 * still prepared = no decision = roll back; committed = commit; aborted =
 * roll back.
 *
 * A name (gid) is "sluice:HOST:DB:PID:SEQ:SHARD" for the coordinator and
 * "sluice:HOST:DB:PID:SEQ:SHARD:COORD:XID" for a participant (names are
 * unique over a PostgreSQL cluster, whose databases may be several shards
 * of one database): HOST and DB are
 * 32-bit folds of FNV-1a hashes (hex) of this host's name and of the logical
 * database's, PID the sluice process, SEQ its count of such writes.
 *
 * Owns: the process's set of two-phase commits in flight (mutex), so that
 * recovery never touches one that is still running.
 */
#ifndef SLUICE_SHARD_2PC_H
#define SLUICE_SHARD_2PC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHARD_GID_MAX 96

struct shard_gid {
	uint32_t host;  /* hash of the host's name */
	uint32_t db;    /* hash of the logical database's name */
	int pid;
	uint64_t seq;
	int shard;      /* the shard it is on */
	int coord;      /* the coordinator's shard (= shard for the coordinator) */
	bool participant;
	uint64_t xid;   /* participant: the coordinator's transaction id */
};

/* One two-phase commit over shards as it goes: a write's, or a
 * transaction's that moved from shard to shard. */
struct shard_tpc {
	uint64_t seq;      /* shard_2pc_start's number */
	uint64_t xid;      /* the coordinator's transaction id, once it prepared */
	uint64_t prepared; /* shards whose part is prepared (bit i: shard i) */
	int8_t coord;      /* the coordinator (the first shard prepared); -1 = none yet */
};

/* The name of t's part on shard (of logical database db): out has
 * SHARD_GID_MAX bytes. The coordinator's when shard is t's coord. */
void shard_tpc_gid(const struct shard_tpc *t, const char *db, int shard, char *out);

/* This host's and database db's hashes, as names carry them. */
uint32_t shard_2pc_host(void);
uint32_t shard_2pc_db(const char *db);

/* Write g's name into out (SHARD_GID_MAX bytes). */
void shard_gid_format(const struct shard_gid *g, char *out);
/* Read a name; false when it is not one of sluice's. */
bool shard_gid_parse(const char *text, struct shard_gid *g);

/* A new two-phase commit of this process: its number, now in flight
 * until shard_2pc_done. 0 when memory ran out. */
uint64_t shard_2pc_start(void);
void shard_2pc_done(uint64_t seq);
/* Is commit seq of this process still in flight? (It is done only once
 * it resolved its names, or left them to the recovery.) */
bool shard_2pc_running(uint64_t seq);

/* A test's fault injection: when the environment variable
 * SLUICE_TEST_2PC_CRASH names this point ("prepared": every shard has
 * prepared, nothing decided; "decided": the coordinator committed, the
 * others not yet), the process kills itself with SIGKILL. */
void shard_2pc_crash_point(const char *point);

#endif
