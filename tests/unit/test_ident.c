/*
 * test_ident.c - unit tests for ident.c: the pg_ident.conf parser (every
 * error names its line), and ident_allows (no map: same name; literal
 * lines; regular expressions with \1; "all"; "/" database users; quoting;
 * unknown maps; several lines of one map).
 *
 * Table driven: a map text, then (map, system user, database user) triples
 * with the answer and line each must get. ident_load runs on a private
 * mkdtemp() file.
 */
#include "ident.h"
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[512];

static int parse_str(const char *text, struct ident_maps **m)
{
	err[0] = '\0';
	return ident_parse(text, strlen(text), "i.conf", m, err, sizeof(err));
}

static void test_parse_errors(void)
{
	static const struct {
		const char *text;   /* whole file */
		int line;           /* line the message must name */
		const char *msg;    /* substring the message must contain */
	} cases[] = {
		{ "m\n", 1, "end of line before the system user name" },
		{ "# c\nm root\n", 2, "end of line before the database user name" },
		{ "m root bob extra\n", 1, "extra field \"extra\"" },
		{ "m,n root bob\n", 1, "map name is a comma-separated list" },
		{ "m root,admin bob\n", 1, "system user name is a comma-separated list" },
		{ "m root bob,alice\n", 1, "database user name is a comma-separated list" },
		{ "m root +admins\n", 1, "group \"+admins\" is not supported" },
		{ "m /^(a root\n", 1, "invalid regular expression \"^(a\"" },
		{ "m root /a[\n", 1, "invalid regular expression \"a[\"" },
		{ "ok a b\nm /^a$ \\1\n", 2, "uses \\1 but the regular expression \"^a$\" has no parenthesized subexpression" },
		{ "m /^a+++$ b\n", 1, "a quantifier follows a quantifier" },
		{ "m /^a*?$ b\n", 1, "a quantifier follows a quantifier" },  /* non-greedy in PostgreSQL */
		{ "m /^a{256}$ b\n", 1, "bound over 255" },
		{ "m /((a{99}){99}){99} b\n", 1, "too large once its repetitions are expanded" },
		{ "m root /(((((((((((((((((((((((((((((((((a)))))))))))))))))))))))))))))))))\n", 1, "nested too deep" },
		{ "include other.conf\n", 1, "\"include\" is not supported" },
		{ "include_dir conf.d\n", 1, "\"include_dir\" is not supported" },
		{ "include_if_exists x\n", 1, "\"include_if_exists\" is not supported" },
		{ "m \"root bob\n", 1, "unterminated quoted string" },
		{ "m root \\\n  bob \\\n  extra\n", 1, "extra field" },
		{ "m ro\001ot\n", 1, "end of line before the database user name" },
		{ "m root bob \"x\001y\"\n", 1, "\"x?y\"" },
	};
	char want[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ident_maps *m = (struct ident_maps *)&m;
		int rc = parse_str(cases[i].text, &m);

		snprintf(want, sizeof(want), "i.conf:%d: ", cases[i].line);
		CHECK(rc == -EINVAL);
		CHECK(m == NULL);
		if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, cases[i].msg)) {
			fprintf(stderr, "case %zu: err '%s', want prefix '%s' and '%s'\n", i, err, want,
				cases[i].msg);
			CHECK(false);
		} else {
			CHECK(true);
		}
	}
}

static void test_parse_ok(void)
{
	static const char *const ok[] = {
		"",                                 /* an empty file maps nobody */
		"# only comments\n\n  \t\n",
		"m root bob",                       /* no final newline */
		"m root bob\r\n",
		"m root \\\n bob\n",                /* continued line */
		"m root \"+admins\"\n",             /* quoted: a plain name */
		"m root \"all\"\n",
		"m /^(.*)$ \\1\n",
		"m /^(.*)$ /^(a)\\1$\n",            /* a "/" database user: \1 is its own back reference */
		"include a b\n",                    /* three fields: a map called include */
		"\"include\" a\" \"b c\n",
		"m \"/^x(.*)$\" \"\\1\"\n",         /* quotes change neither '/' nor \1 */
		/* quantifiers as bracket members are none; a comma needs quotes */
		"m \"/^[[:alpha:]]{1,255}[]*+]{2}(a|b){0,3}\\.x$\" b\n",
	};
	struct ident_maps *m;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int rc = parse_str(ok[i], &m);

		if (rc != 0)
			fprintf(stderr, "ok case %zu: rc %d: %s\n", i, rc, err);
		CHECK(rc == 0 && m != NULL);
		ident_free(m);
	}
	CHECK(parse_str("# x\nm a b\n\nn c d # comment\n", &m) == 0);
	CHECK(ident_line_count(m) == 2);
	CHECK(ident_has_map(m, "m") && ident_has_map(m, "n") && !ident_has_map(m, "o"));
	ident_free(m);
	CHECK(ident_line_count(NULL) == 0);
	CHECK(!ident_has_map(NULL, "m"));
	ident_free(NULL);
	/* text is not read past len */
	CHECK(ident_parse("m a b extra", 5, "i.conf", &m, err, sizeof(err)) == 0);
	ident_free(m);
	/* a NUL byte names its line */
	CHECK(ident_parse("m a b\nm\0 a b\n", 13, "i.conf", &m, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "i.conf:2: NUL byte") != NULL);
}

/* Line numbers are the file's. */
static const char maps_main[] =
	"# MAPNAME  SYSTEM-USERNAME          DATABASE-USERNAME\n"  /* 1 */
	"omicron    bryanh                   bryanh\n"             /* 2 */
	"omicron    ann                      ann\n"                /* 3 */
	"omicron    robert                   bob\n"                /* 4 */
	"omicron    bryanh                   guest1\n"             /* 5 */
	"mymap      /^(.*)@mydomain\\.com$   \\1\n"                /* 6 */
	"mymap      /^(.*)@otherdomain\\.com$ guest\n"             /* 7 */
	"admins     root                     all\n"                /* 8 */
	"quoted     root                     \"all\"\n"            /* 9 */
	"pre        /^svc-([a-z]+)$          app_\\1_rw\n"         /* 10 */
	"rx         /^ops                    /^(report|audit)_\n"  /* 11 */
	"opt        /^x(y)?$                 \\1z\n"               /* 12 */
	"\"my map\"   \"u 1\"                  \"+g\"\n"           /* 13 */
	"twice      /(a)(b)                  \\1-\\1\n"            /* 14 */
	"nosub      root                     \\1\n";               /* 15: literal: no \1 substitution */

static void test_allows(void)
{
	static const struct {
		const char *map;         /* map name, NULL = none */
		const char *sys;         /* system user */
		const char *db;          /* requested database user */
		bool ok;                 /* expected answer */
		int line;                /* expected line (0 when refused or no map) */
	} cases[] = {
		/* no map: the names must be the same */
		{ NULL, "alice", "alice", true, 0 },
		{ NULL, "alice", "bob", false, 0 },
		{ "", "alice", "alice", true, 0 },
		/* literal lines; several lines of one map */
		{ "omicron", "bryanh", "bryanh", true, 2 },
		{ "omicron", "bryanh", "guest1", true, 5 },
		{ "omicron", "robert", "bob", true, 4 },
		{ "omicron", "robert", "robert", false, 0 },
		{ "omicron", "ann", "bob", false, 0 },
		{ "omicron", "nobody", "nobody", false, 0 },
		{ "omicron", "Ann", "ann", false, 0 },          /* case matters */
		/* regular expressions and \1 */
		{ "mymap", "joe@mydomain.com", "joe", true, 6 },
		{ "mymap", "joe@mydomain.com", "joe@mydomain.com", false, 0 },
		{ "mymap", "joe@mydomainXcom", "joe", false, 0 },
		{ "mymap", "joe@otherdomain.com", "guest", true, 7 },
		{ "mymap", "joe@otherdomain.com", "joe", false, 0 },
		{ "pre", "svc-billing", "app_billing_rw", true, 10 },
		{ "pre", "svc-billing", "app_billing_r", false, 0 },
		{ "pre", "svc-billing", "app_billing_rwx", false, 0 },
		{ "pre", "svc-Billing", "app_Billing_rw", false, 0 },
		{ "twice", "xaby", "a-\\1", true, 14 },          /* only the first \1 */
		{ "twice", "xaby", "a-a", false, 0 },
		{ "nosub", "root", "\\1", true, 15 },
		/* a subexpression that took no part: the search stops, refused */
		{ "opt", "x", "z", false, 0 },
		{ "opt", "xy", "yz", true, 12 },
		/* all, and its quoted form */
		{ "admins", "root", "anyone", true, 8 },
		{ "admins", "toor", "anyone", false, 0 },
		{ "quoted", "root", "anyone", false, 0 },
		{ "quoted", "root", "all", true, 9 },
		/* a "/" database user is searched in the requested name */
		{ "rx", "ops-1", "report_daily", true, 11 },
		{ "rx", "ops-1", "audit_x", true, 11 },
		{ "rx", "ops-1", "x_report", false, 0 },
		{ "rx", "dev", "report_daily", false, 0 },
		/* quoted names with blanks; "+g" is the user called +g */
		{ "my map", "u 1", "+g", true, 13 },
		{ "my map", "u", "+g", false, 0 },
		/* unknown map */
		{ "nomap", "root", "root", false, 0 },
	};
	struct ident_maps *m;

	CHECK(parse_str(maps_main, &m) == 0);
	if (!m) {
		fprintf(stderr, "maps_main: %s\n", err);
		return;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int line = -1;
		bool ok = ident_allows(m, cases[i].map, cases[i].sys, cases[i].db, &line);

		if (ok != cases[i].ok || line != cases[i].line) {
			fprintf(stderr, "case %zu (%s, %s, %s): got %d line %d, want %d line %d\n", i,
				cases[i].map ? cases[i].map : "-", cases[i].sys, cases[i].db, ok, line,
				cases[i].ok, cases[i].line);
			CHECK(false);
		} else {
			CHECK(true);
		}
	}
	CHECK(!ident_allows(m, "omicron", NULL, "x", NULL));
	CHECK(!ident_allows(m, "omicron", "x", NULL, NULL));
	CHECK(ident_allows(m, "omicron", "ann", "ann", NULL));
	ident_free(m);
	/* no maps loaded at all: only map-less checks can succeed */
	CHECK(!ident_allows(NULL, "omicron", "ann", "ann", NULL));
	CHECK(ident_allows(NULL, NULL, "ann", "ann", NULL));
}

static void test_load(void)
{
	char dir[] = "/tmp/sluice_test_ident_XXXXXX";
	char path[600], missing[600], want[700];
	struct ident_maps *m = (struct ident_maps *)&m;
	FILE *f;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		CHECK(false);
		return;
	}
	snprintf(path, sizeof(path), "%s/ident.conf", dir);
	snprintf(missing, sizeof(missing), "%s/missing.conf", dir);

	CHECK(ident_load(missing, &m, err, sizeof(err)) == -ENOENT && m == NULL);
	CHECK(strstr(err, "missing.conf: cannot open") != NULL);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs("# ident\nm root postgres\n", f);
	fclose(f);
	CHECK(ident_load(path, &m, err, sizeof(err)) == 0 && ident_line_count(m) == 1);
	CHECK(ident_allows(m, "m", "root", "postgres", NULL));
	ident_free(m);

	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs("m root postgres\nm root\n", f);
	fclose(f);
	CHECK(ident_load(path, &m, err, sizeof(err)) == -EINVAL && m == NULL);
	snprintf(want, sizeof(want), "%s:2: end of line before the database user name", path);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	CHECK(ident_load(dir, &m, err, sizeof(err)) == -EISDIR);
	CHECK(ident_load(NULL, &m, err, sizeof(err)) == -EINVAL);
	unlink(path);
	rmdir(dir);
}

UNIT_MAIN(
	test_parse_errors();
	test_parse_ok();
	test_allows();
	test_load();
)
