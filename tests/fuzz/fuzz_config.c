/*
 * fuzz_config.c - libFuzzer harness for config_load / config_free
 * (src/core/config.c): the INI reader, %include, connection strings, the value
 * parsers and the auth_file reader.
 *
 * Input: the bytes before the first "\n@auth@\n" are the file main.ini, the
 * bytes after it the file auth.txt ("auth_file = auth.txt",
 * "%include auth.txt" and "%include main.ini" reach them).
 *
 * The files live in memory: scripts/run-fuzz.sh renames config.c's fopen
 * to fuzz_config_fopen (objcopy --redefine-sym, on config.o only, so
 * libFuzzer's own file I/O is untouched), and fuzz_config_fopen below
 * serves those two names with fmemopen and answers ENOENT for every other
 * path. So an input cannot make config.c read /dev/zero, /dev/stdin or a
 * big system file, no disk I/O slows the run, and a crash file reproduces
 * anywhere. At most FUZZ_MAX_OPENS opens are allowed per config_load: a
 * file that includes itself twice would otherwise be parsed 2^10 times
 * (include depth 10), which is slow by construction, not a bug.
 *
 * Invariants beyond memory safety:
 * - failure: *out is NULL and err holds a NUL-terminated message that fits;
 * - success: the snapshot is self-consistent (ranges of checked keys,
 *   lookups return what is stored) and config_free releases it (LeakSanitizer).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
FILE *fuzz_config_fopen(const char *path, const char *mode);
struct hba_rules;
int fuzz_config_hba_load(const char *path, struct hba_rules **out, char *err, size_t errlen);

/* config.c's hba_load is renamed to this (run-fuzz.sh): the hba parser has
 * its own target (fuzz_hba), and an input must not make config.c read a
 * real file through it. */
int fuzz_config_hba_load(const char *path, struct hba_rules **out, char *err, size_t errlen)
{
	(void)path;
	*out = NULL;
	snprintf(err, errlen, "auth_hba_file: not available while fuzzing");
	return -ENOENT;
}

struct ident_maps;
int fuzz_config_ident_load(const char *path, struct ident_maps **out, char *err, size_t errlen);

/* The same for auth_ident_file (never reached while hba_load fails, but a
 * real file must not be read even then). */
int fuzz_config_ident_load(const char *path, struct ident_maps **out, char *err, size_t errlen)
{
	(void)path;
	*out = NULL;
	snprintf(err, errlen, "auth_ident_file: not available while fuzzing");
	return -ENOENT;
}

#define FUZZ_MAX_OPENS 32

/* The two in-memory files of the current input. */
static const uint8_t *ini_data, *auth_data;
static size_t ini_size, auth_size;
static int opens_left;     /* fopen budget of the current config_load */

FILE *fuzz_config_fopen(const char *path, const char *mode)
{
	const uint8_t *p;
	size_t n;

	/* "./main.ini" (the load path below, sometimes) and includes relative
	 * to it ("./auth.txt") name the same two files */
	while (path && strncmp(path, "./", 2) == 0)
		path += 2;
	if (path && strcmp(path, "main.ini") == 0) {
		p = ini_data;
		n = ini_size;
	} else if (path && strcmp(path, "auth.txt") == 0) {
		p = auth_data;
		n = auth_size;
	} else {
		errno = ENOENT;
		return NULL;
	}
	if (opens_left <= 0) {
		errno = EMFILE;
		return NULL;
	}
	opens_left--;
	/* config.c only reads; fmemopen wants a writable pointer and refuses
	 * size 0, so an empty file is a stream at EOF over a dummy byte. */
	if (n == 0) {
		static char empty[1];
		FILE *f = fmemopen(empty, 1, "r");
		if (f)
			(void)fgetc(f);
		return f;
	}
	return fmemopen((void *)(uintptr_t)p, n, "r");
}

static void warn_noop(const char *msg)
{
	FUZZ_CHECK(msg != NULL);
	(void)strlen(msg);
}

/* Every stored entry is found again by its own name. */
static void check_snapshot(const struct config *cfg, const char *path)
{
	FUZZ_CHECK(cfg->path && strcmp(cfg->path, path) == 0);
	FUZZ_CHECK(cfg->listen_port >= 1 && cfg->listen_port <= 65535);
	FUZZ_CHECK(cfg->workers >= 1 && cfg->workers <= 256);
	FUZZ_CHECK(cfg->pkt_buf >= 1024);
	FUZZ_CHECK(cfg->stats_period_us >= 1);
	FUZZ_CHECK(cfg->unix_socket_mode >= 0 && cfg->unix_socket_mode <= 07777);
	FUZZ_CHECK(cfg->server_reset_query && cfg->server_check_query);
	FUZZ_CHECK(cfg->auth_file || cfg->auth_type == AUTH_TYPE_ANY || cfg->auth_type == AUTH_TYPE_CERT ||
		   cfg->auth_type == AUTH_TYPE_HBA);
	for (size_t i = 0; i < cfg->n_databases; i++) {
		const struct config_database *db = &cfg->databases[i];

		FUZZ_CHECK(db->name && strcmp(db->name, "pgbouncer") != 0);
		FUZZ_CHECK(db->port >= 1 && db->port <= 65535);
		FUZZ_CHECK(config_find_database(cfg, db->name) == db);
		/* names are unique: a repeated name replaced the earlier entry */
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(cfg->databases[j].name, db->name) != 0);
	}
	for (size_t i = 0; i < cfg->n_users; i++)
		FUZZ_CHECK(config_find_user(cfg, cfg->users[i].name) == &cfg->users[i]);
	for (size_t i = 0; i < cfg->n_auth; i++) {
		const char *s = config_find_secret(cfg, cfg->auth[i].user);
		FUZZ_CHECK(s != NULL);
	}
	if (cfg->admin_users) {
		/* every non-empty item of the list is contained in it */
		char *copy = strdup(cfg->admin_users), *save = NULL;
		FUZZ_CHECK(copy != NULL);
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			while (*t == ' ' || *t == '\t')
				t++;
			size_t n = strlen(t);
			while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
				t[--n] = '\0';
			if (n > 0)
				FUZZ_CHECK(config_list_contains(cfg->admin_users, t));
		}
		free(copy);
	}
	(void)config_find_database(cfg, "postgres");
	(void)config_find_user(cfg, "postgres");
	(void)config_find_secret(cfg, "postgres");
}

/* The exported value parsers on the first line of the input. */
static void check_value_parsers(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t n = nl ? (size_t)(nl - data) : size;
	char *s = malloc(n + 1);
	int64_t v;
	bool b;
	int e;

	FUZZ_CHECK(s != NULL);
	memcpy(s, data, n);
	s[n] = '\0';
	if (config_parse_duration_us(s, &v) == 0)
		FUZZ_CHECK(v >= 0);
	if (config_parse_int(s, -1000, 1000, &v) == 0)
		FUZZ_CHECK(v >= -1000 && v <= 1000);
	(void)config_parse_bool(s, &b);
	if (config_parse_pool_mode(s, &e) == 0)
		FUZZ_CHECK(e >= POOL_MODE_SESSION && e <= POOL_MODE_STATEMENT);
	if (config_parse_auth_type(s, &e) == 0)
		FUZZ_CHECK(e >= AUTH_TYPE_TRUST && e <= AUTH_TYPE_HBA);
	(void)config_list_contains(s, "a");
	(void)config_list_contains(s, "");
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char sep[] = "\n@auth@\n";
	const uint8_t *auth = memmem(data, size, sep, sizeof(sep) - 1);
	size_t ini_len = auth ? (size_t)(auth - data) : size;
	struct config *cfg = (struct config *)1;
	size_t errlen = 1 + size % 257;   /* small buffers too: must truncate, not overflow */
	const char *path;
	char *err = malloc(errlen);
	int rc;

	FUZZ_CHECK(err != NULL);
	ini_data = data;
	ini_size = ini_len;
	auth_data = auth ? auth + sizeof(sep) - 1 : NULL;
	auth_size = auth ? size - ini_len - (sizeof(sep) - 1) : 0;
	opens_left = FUZZ_MAX_OPENS;
	memset(err, 'x', errlen);
	path = (size % 3 == 0) ? "./main.ini" : "main.ini";
	rc = config_load(path, &cfg, err, errlen, (size & 1) ? warn_noop : NULL);
	FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
	if (rc == 0) {
		FUZZ_CHECK(cfg != NULL);
		check_snapshot(cfg, path);
		config_free(cfg);
	} else {
		FUZZ_CHECK(rc < 0 && cfg == NULL);
		FUZZ_CHECK(err[0] != '\0' || errlen == 1);
	}
	free(err);
	check_value_parsers(data, size);
	return 0;
}
