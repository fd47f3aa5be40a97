/*
 * test_hba.c - unit tests for hba.c: the pg_hba.conf tokenizer and parser
 * (every error names its line), and hba_match (first match wins, connection
 * types, TLS, IPv4/IPv6 networks, IPv4-mapped clients, name lists,
 * sameuser, quoting, comments).
 *
 * Table driven: a rules text, then requests with the method and line each
 * must get. hba_load is exercised on a private mkdtemp() file.
 */
#include "hba.h"
#include "ident.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[512];

/* ---- helpers ----------------------------------------------------------- */

/* Fill *ss from a numeric address; false when ip is not one. */
static bool sockaddr_of(const char *ip, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(5432);
		return true;
	}
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(5432);
		return true;
	}
	return false;
}

static int parse_str(const char *text, struct hba_rules **r)
{
	err[0] = '\0';
	return hba_parse(text, strlen(text), "t.conf", r, err, sizeof(err));
}

/* ---- parse errors ------------------------------------------------------ */

static void test_parse_errors(void)
{
	static const struct {
		const char *text;   /* whole file */
		int line;           /* line the message must name (0: no line) */
		const char *msg;    /* substring the message must contain */
	} cases[] = {
		{ "hots all all 0.0.0.0/0 md5\n", 1, "unknown connection type \"hots\"" },
		{ "HOST all all 0.0.0.0/0 md5\n", 1, "unknown connection type" },
		{ "# c\n\nhost all all 0.0.0.0/0 md55\n", 3, "unknown authentication method \"md55\"" },
		{ "local all all\n", 1, "end of line before the authentication method" },
		{ "local all\n", 1, "end of line before the user name" },
		{ "local\n", 1, "end of line before the database name" },
		{ "host all all\n", 1, "end of line before the IP address" },
		{ "host all all 0.0.0.0/0\n", 1, "end of line before the authentication method" },
		{ "host all all example.com md5\n", 1, "host names are not supported" },
		{ "host all all \"all\" md5\n", 1, "host names are not supported" },
		{ "host all all 10.0.0.0/33 md5\n", 1, "invalid prefix length" },
		{ "host all all ::1/129 md5\n", 1, "invalid prefix length" },
		{ "host all all 10.0.0.0/ md5\n", 1, "invalid prefix length" },
		{ "host all all 10.0.0.0/8x md5\n", 1, "invalid prefix length" },
		{ "host all all 10.0.0.0/-1 md5\n", 1, "invalid prefix length" },
		{ "host all all 10.0.0.0/0008 md5\n", 1, "invalid prefix length" },
		{ "host all all /8 md5\n", 1, "invalid IP address" },
		{ "host all all 10.0.0.1 md5\n", 1, "invalid IP mask \"md5\"" },
		{ "host all all 10.0.0.1\n", 1, "end of line before the netmask" },
		{ "host all all 10.0.0.1 ffff:: md5\n", 1, "not of the same family" },
		{ "host all all ::1 255.0.0.0 md5\n", 1, "not of the same family" },
		{ "host all all 10.0.0.0/8,10.1.0.0/16 md5\n", 1, "more than one IP address" },
		{ "host all all samehost md5\n", 1, "\"samehost\" is not supported" },
		{ "host all all samenet md5\n", 1, "\"samenet\" is not supported" },
		{ "host all +admins 0.0.0.0/0 md5\n", 1, "group \"+admins\" is not supported" },
		{ "host all @users.txt 0.0.0.0/0 md5\n", 1, "user name file \"@users.txt\" is not supported" },
		{ "host @dbs.txt all 0.0.0.0/0 md5\n", 1, "database name file" },
		{ "host samerole all 0.0.0.0/0 md5\n", 1, "\"samerole\" is not supported" },
		{ "host samegroup all 0.0.0.0/0 md5\n", 1, "\"samegroup\" is not supported" },
		{ "host /^db all 0.0.0.0/0 md5\n", 1, "regular expression" },
		{ "host all /^u 0.0.0.0/0 md5\n", 1, "regular expression" },
		{ "host all all 0.0.0.0/0 peer\n", 1, "peer authentication is only valid on local lines" },
		{ "local all all cert\n", 1, "cert authentication is only valid on hostssl lines" },
		{ "host all all 0.0.0.0/0 cert\n", 1, "cert authentication is only valid on hostssl lines" },
		{ "host all all 0.0.0.0/0 ldap ldapserver=x\n", 1, "\"ldap\" is not supported by sluice" },
		{ "local all all ident\n", 1, "\"ident\" is not supported by sluice" },
		{ "hostssl all all 0.0.0.0/0 md5 map=x\n", 1, "map= is only supported with the peer and cert methods, not md5" },
		{ "local all all trust map=omicron\n", 1, "map= is only supported with the peer and cert methods" },
		{ "local all all peer map=\n", 1, "map= needs a map name" },
		{ "local all all peer map=a map=b\n", 1, "more than one map= option" },
		{ "hostssl all all 0.0.0.0/0 md5 clientcert=verify-full\n", 1, "clientcert= is only supported with the cert method" },
		{ "hostssl all all all cert clientname=DN\n", 1, "clientname=DN" },
		{ "host all all 0.0.0.0/0 md5 foo\n", 1, "\"foo\" is not in name=value form" },
		{ "host all all 0.0.0.0/0 md5 =x\n", 1, "not in name=value form" },
		{ "host all all 0.0.0.0/0 md5,trust\n", 1, "more than one authentication method" },
		{ "host,local all all 0.0.0.0/0 md5\n", 1, "more than one connection type" },
		{ "host \"db all 0.0.0.0/0 md5\n", 1, "unterminated quoted string" },
		{ "host \"db\"\" all 0.0.0.0/0 md5\n", 1, "unterminated quoted string" },
		{ "host db1,,db2 all 0.0.0.0/0 md5\n", 1, "empty item" },
		{ "host db1, ,db2 all 0.0.0.0/0 md5\n", 1, "empty item" },
		{ "host ,db all 0.0.0.0/0 md5\n", 1, "more than one connection type" },
		{ "host \"\" all 0.0.0.0/0 md5\n", 1, "empty quoted string" },
		{ "local db1, # comment\n", 1, "list ends with a comma" },
		{ "local all all md5,\n", 1, "list ends with a comma" },
		{ "local all u1 , # comment\n", 1, "list ends with a comma" },
		/* "db1, all" is one list (blanks after a comma continue it), so
		 * the address lands in the METHOD field, as in PostgreSQL */
		{ "host db1, all 0.0.0.0/0 md5\n", 1, "invalid IP address \"md5\"" },
		{ "hostgssenc all all 0.0.0.0/0 md5\n", 1, "\"hostgssenc\" is not supported" },
		{ "hostnogssenc all all 0.0.0.0/0 md5\n", 1, "\"hostnogssenc\" is not supported" },
		{ "include other.conf\n", 1, "\"include\" is not supported" },
		{ "include_dir conf.d\n", 1, "\"include_dir\" is not supported" },
		/* errors name the first line of a continued record */
		{ "local all \\\n  all bogus\n", 1, "unknown authentication method \"bogus\"" },
		{ "local all \\\n  all md5\nbogus\n", 3, "unknown connection type" },
		{ "local all all md5\r\nlocal all all md5 \r\nbogus\r\n", 3, "unknown connection type \"bogus\"" },
		/* control bytes are not echoed */
		{ "ho\001st all all md5\n", 1, "\"ho?st\"" },
		/* no rules at all */
		{ "", 0, "no rules" },
		{ "# only a comment\n\n   \t\n", 0, "no rules" },
	};
	char want[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hba_rules *r = (struct hba_rules *)&r;
		int rc = parse_str(cases[i].text, &r);

		if (cases[i].line)
			snprintf(want, sizeof(want), "t.conf:%d: ", cases[i].line);
		else
			snprintf(want, sizeof(want), "t.conf: ");
		CHECK(rc == -EINVAL);
		CHECK(r == NULL);
		if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, cases[i].msg)) {
			fprintf(stderr, "case %zu: err '%s', want prefix '%s' and '%s'\n",
				i, err, want, cases[i].msg);
			CHECK(false);
		} else {
			CHECK(true);
		}
		hba_free(r);
	}
}

static void test_parse_edge(void)
{
	struct hba_rules *r;
	char big[HBA_MAX_LINE + 64];
	char small[8];
	int rc;

	/* a NUL byte is an error naming its physical line */
	{
		static const char text[] = "local all all md5\nlocal all\0all md5\n";

		rc = hba_parse(text, sizeof(text) - 1, "t.conf", &r, err, sizeof(err));
		CHECK(rc == -EINVAL && r == NULL);
		CHECK(strncmp(err, "t.conf:2: ", 10) == 0 && strstr(err, "NUL byte"));
	}
	/* a line longer than HBA_MAX_LINE */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "local ", 6);
	rc = parse_str(big, &r);
	CHECK(rc == -EINVAL && r == NULL);
	CHECK(strstr(err, "t.conf:1: line longer than") != NULL);
	/* ... also when continuation lines add up to it */
	{
		char *cont = malloc(3 * 5000);

		memset(cont, 'a', 3 * 5000);
		memcpy(cont, "local ", 6);
		cont[4998] = '\\';
		cont[4999] = '\n';
		cont[3 * 5000 - 1] = '\0';
		rc = hba_parse(cont, strlen(cont), "t.conf", &r, err, sizeof(err));
		CHECK(rc == -EINVAL && strstr(err, "line longer than"));
		free(cont);
	}
	/* exactly HBA_MAX_LINE bytes is fine */
	{
		char *line = malloc(HBA_MAX_LINE + 2);
		const char *head = "local all all md5 x=";

		memset(line, 'v', HBA_MAX_LINE);
		memcpy(line, head, strlen(head));
		line[HBA_MAX_LINE] = '\n';
		line[HBA_MAX_LINE + 1] = '\0';
		rc = parse_str(line, &r);
		CHECK(rc == 0 && hba_rule_count(r) == 1);
		hba_free(r);
		free(line);
	}
	/* too many names in one list */
	{
		size_t n = HBA_MAX_LIST + 1, i, o = 0;
		char *line = malloc(n * 2 + 64);

		o += (size_t)sprintf(line, "local ");
		for (i = 0; i < n; i++)
			o += (size_t)sprintf(line + o, "%s", i ? ",d" : "d");
		sprintf(line + o, " all md5\n");
		rc = parse_str(line, &r);
		CHECK(rc == -EINVAL && strstr(err, "more than 1024 names"));
		free(line);
	}
	/* a tiny error buffer truncates, never overflows */
	rc = hba_parse("bogus", 5, "some/long/file/name.conf", &r, small, sizeof(small));
	CHECK(rc == -EINVAL && strlen(small) < sizeof(small));
	rc = hba_parse("bogus", 5, NULL, &r, NULL, 0);
	CHECK(rc == -EINVAL);
	/* text is not read past len (no NUL terminator needed) */
	rc = hba_parse("local all all md5 bogus", 17, "t.conf", &r, err, sizeof(err));
	CHECK(rc == 0 && hba_rule_count(r) == 1);
	hba_free(r);

	/* accepted forms */
	static const char *const ok[] = {
		"hostssl all all 0.0.0.0/0 cert clientcert=verify-full\n",
		"hostssl all all all cert clientname=CN\n",
		"host all all 0.0.0.0/0 md5 foo=bar,baz=\"q u x\"\n",
		"host all all all trust\n",
		"host all all \\\n  10.0.0.0/8 \\\n md5\n",
		"local all all md5",                      /* no final newline */
		"local all all md5\\",                    /* a final backslash */
		"local all all md5\r\n",
		"\tlocal\tall\tall\tmd5\t# tabs\n",
		"local all all md5#comment glued on\n",
		"local \"a\"\"b\" all md5\n",
		"local a\"b c\"d all md5\n",
		"local replication all md5\n",
		"host all all 10.0.0.1 255.255.255.255 trust\n",
		"host all all 2001:db8:: ffff:ffff:: trust\n",
		"host all all 10.1.2.3/8 trust\n",
		"local +group all md5\n",                 /* '+' is only special for users */
		"local all \"+group\" md5\n",
		"local all \"@file\" md5\n",
		"local \"/regex\" all md5\n",
	};
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		rc = parse_str(ok[i], &r);
		if (rc != 0)
			fprintf(stderr, "ok case %zu: rc %d: %s\n", i, rc, err);
		CHECK(rc == 0 && hba_rule_count(r) == 1);
		hba_free(r);
	}
	CHECK(hba_rule_count(NULL) == 0);
	hba_free(NULL);
}

/* ---- map= -------------------------------------------------------------- */

static void test_maps(void)
{
	static const char text[] =
		"# maps\n"                                               /* 1 */
		"local all root peer map=admins\n"                       /* 2 */
		"local all all peer\n"                                   /* 3 */
		"hostssl all all 10.0.0.0/8 cert map=\"by cn\" clientcert=verify-full\n" /* 4 */
		"hostssl all all all cert map=undefined\n"               /* 5 */
		"host all all all md5\n";                                /* 6 */
	struct hba_rules *r;
	struct ident_maps *m;
	int line = -1;

	CHECK(parse_str(text, &r) == 0);
	CHECK_STR(hba_map_at(r, 2), "admins");
	CHECK(hba_map_at(r, 3) == NULL);
	CHECK_STR(hba_map_at(r, 4), "by cn");
	CHECK_STR(hba_map_at(r, 5), "undefined");
	CHECK(hba_map_at(r, 6) == NULL);
	CHECK(hba_map_at(r, 1) == NULL);   /* a comment line */
	CHECK(hba_map_at(r, 0) == NULL);   /* no match */
	CHECK(hba_map_at(r, 99) == NULL);
	CHECK(hba_map_at(NULL, 2) == NULL);

	/* without auth_ident_file every map is unknown: the first one is named */
	CHECK_STR(hba_unknown_map(r, NULL, &line), "admins");
	CHECK(line == 2);
	CHECK(ident_parse("admins root alice\n\"by cn\" x y\n", 30, "i.conf", &m, err, sizeof(err)) == 0);
	CHECK_STR(hba_unknown_map(r, m, &line), "undefined");
	CHECK(line == 5);
	ident_free(m);
	CHECK(ident_parse("admins root alice\n\"by cn\" x y\nundefined a b\n", 44, "i.conf", &m, err,
			  sizeof(err)) == 0);
	CHECK(hba_unknown_map(r, m, &line) == NULL);
	CHECK(line == 0);
	ident_free(m);
	hba_free(r);
}

/* ---- matching ---------------------------------------------------------- */

/* Line numbers below are the file's (comment on line 1). */
static const char rules_main[] =
	"# sluice test rules\n"                                                        /* 1 */
	"local   all        postgres                      peer\n"                     /* 2 */
	"local   sameuser   all                           md5   # comment after rule\n" /* 3 */
	"local   \"all\"      all                           trust\n"                  /* 4 */
	"hostssl app,reports alice,bob  10.0.0.0/8         scram-sha-256\n"           /* 5 */
	"hostnossl app      alice      10.0.0.0/8         reject\n"                   /* 6 */
	"host    \"my db\",\"a,b\" \"user one\" 192.168.1.0 255.255.255.0 password\n" /* 7 */
	"host    all        carol      ::1/128            trust\n"                    /* 8 */
	"host    all        carol      2001:db8::/32      md5\n"                      /* 9 */
	"host    all        dave       0.0.0.0/0          trust\n"                    /* 10 */
	"host    all        erin       203.0.113.7/32     md5\n"                      /* 11 */
	"host    replication all       all                trust\n"                    /* 12 */
	"host    all        frank      fe80::/10          password\n"                 /* 13 */
	"hostssl all        frank      all                cert\n"                     /* 14 */
	"host    \"db#1\",postgres \"all\" 172.16.0.0 255.240.0.0 scram-sha-256\n"     /* 15 */
	"host    all        grace      ::ffff:198.51.100.0/120 trust\n"               /* 16 */
	"host    all        all        10.1.0.0/16        trust\n"                    /* 17 */
	"host    db1, db2   heidi,\tivan 2001:db8:: ffff:ffff:: md5\n"               /* 18 */
	"local   all        all                           reject\n"                   /* 19 */
	"host    all        user1,user2 , user3 192.0.2.0/24 trust\n";              /* 20 */

/* Line numbers of rules_cidr. */
static const char rules_cidr[] =
	"host all a 0.0.0.0/0 md5\n"          /* 1 */
	"host all b 192.0.2.1/32 trust\n"     /* 2 */
	"host all b 192.0.2.0/24 md5\n"       /* 3 */
	"host all c ::/0 password\n"          /* 4 */
	"host all d 10.0.0.0 255.0.0.0 md5\n" /* 5 */
	"host all d 10.0.0.0/8 trust\n";      /* 6: shadowed by 5 */

/* A physical replication connection matches only the database keyword
 * "replication"; "all" and names match every other connection. */
static void test_physical_replication(void)
{
	struct hba_rules *r = NULL;
	CHECK(parse_str("host all all 10.0.0.0/8 md5\n"
			"host replication repl 10.0.0.0/8 scram-sha-256\n"
			"host \"replication\" all 0.0.0.0/0 trust\n", &r) == 0);
	struct sockaddr_storage ss;
	CHECK(sockaddr_of("10.1.2.3", &ss));
	struct hba_request req = { .addr = (const struct sockaddr *)&ss, .database = "replication", .user = "repl" };
	int line = 0;
	CHECK(hba_match(r, &req, &line) == HBA_MD5 && line == 1);
	req.physical_replication = true;
	CHECK(hba_match(r, &req, &line) == HBA_SCRAM && line == 2);
	req.user = "other"; /* the quoted name is a database, not the keyword */
	CHECK(hba_match(r, &req, &line) == HBA_REJECT && line == 0);
	hba_free(r);
}

static void test_match(void)
{
	static const struct {
		const char *rules;       /* rule set */
		bool is_unix;            /* request: unix socket */
		bool tls;                /* request: TLS */
		const char *ip;          /* request: address, NULL for none */
		const char *db;          /* request: database */
		const char *user;        /* request: user */
		enum hba_method method;  /* expected answer */
		int line;                /* expected line, 0 = none */
	} cases[] = {
		/* local lines: only unix sockets, first match wins */
		{ rules_main, true, false, NULL, "x", "postgres", HBA_PEER, 2 },
		{ rules_main, true, false, NULL, "alice", "alice", HBA_MD5, 3 },
		{ rules_main, true, false, NULL, "all", "alice", HBA_TRUST, 4 },
		{ rules_main, true, false, NULL, "other", "alice", HBA_REJECT, 19 },
		{ rules_main, true, true, NULL, "x", "postgres", HBA_PEER, 2 },
		/* unix never matches host lines (dave has 0.0.0.0/0 trust) */
		{ rules_main, true, false, NULL, "x", "dave", HBA_REJECT, 19 },
		/* host lines never match unix; TCP never matches local */
		{ rules_main, false, false, "10.1.2.3", "x", "postgres", HBA_TRUST, 17 },
		{ rules_main, false, false, "10.9.9.9", "alice", "alice", HBA_REJECT, 0 },
		/* hostssl / hostnossl; first match wins over line 17 */
		{ rules_main, false, true, "10.1.2.3", "app", "alice", HBA_SCRAM, 5 },
		{ rules_main, false, false, "10.1.2.3", "app", "alice", HBA_REJECT, 6 },
		{ rules_main, false, false, "10.1.2.3", "reports", "bob", HBA_TRUST, 17 },
		{ rules_main, false, true, "10.2.0.1", "reports", "bob", HBA_SCRAM, 5 },
		{ rules_main, false, true, "10.2.0.1", "other", "bob", HBA_REJECT, 0 },
		{ rules_main, false, true, "11.0.0.1", "app", "alice", HBA_REJECT, 0 },
		/* quoted names with spaces and commas; IP + mask */
		{ rules_main, false, false, "192.168.1.77", "my db", "user one", HBA_PASSWORD, 7 },
		{ rules_main, false, true, "192.168.1.77", "a,b", "user one", HBA_PASSWORD, 7 },
		{ rules_main, false, false, "192.168.1.77", "a", "user one", HBA_REJECT, 0 },
		{ rules_main, false, false, "192.168.1.77", "my db", "user", HBA_REJECT, 0 },
		{ rules_main, false, false, "192.168.2.1", "my db", "user one", HBA_REJECT, 0 },
		/* IPv6 */
		{ rules_main, false, false, "::1", "x", "carol", HBA_TRUST, 8 },
		{ rules_main, false, false, "::2", "x", "carol", HBA_REJECT, 0 },
		{ rules_main, false, false, "2001:db8:1::5", "x", "carol", HBA_MD5, 9 },
		{ rules_main, false, false, "2001:db9::5", "x", "carol", HBA_REJECT, 0 },
		{ rules_main, false, false, "127.0.0.1", "x", "carol", HBA_REJECT, 0 },
		/* 0.0.0.0/0 is every IPv4 client (mapped ones too), no IPv6 one */
		{ rules_main, false, false, "1.2.3.4", "x", "dave", HBA_TRUST, 10 },
		{ rules_main, false, false, "::ffff:1.2.3.4", "x", "dave", HBA_TRUST, 10 },
		{ rules_main, false, false, "2001:db8::1", "x", "dave", HBA_REJECT, 0 },
		/* /32 and IPv4-mapped clients */
		{ rules_main, false, false, "203.0.113.7", "x", "erin", HBA_MD5, 11 },
		{ rules_main, false, false, "203.0.113.8", "x", "erin", HBA_REJECT, 0 },
		{ rules_main, false, false, "::ffff:203.0.113.7", "x", "erin", HBA_MD5, 11 },
		{ rules_main, false, false, "::ffff:203.0.113.8", "x", "erin", HBA_REJECT, 0 },
		/* the keyword replication is not a database called replication
		 * (physical replication: test_physical_replication) */
		{ rules_main, false, false, "1.2.3.4", "replication", "zed", HBA_REJECT, 0 },
		/* fe80::/10, hostssl all + cert, no address */
		{ rules_main, false, false, "fe80::1", "x", "frank", HBA_PASSWORD, 13 },
		{ rules_main, false, false, "febf::1", "x", "frank", HBA_PASSWORD, 13 },
		{ rules_main, false, false, "fec0::1", "x", "frank", HBA_REJECT, 0 },
		{ rules_main, false, true, "1.2.3.4", "x", "frank", HBA_CERT, 14 },
		{ rules_main, false, true, NULL, "x", "frank", HBA_CERT, 14 },
		{ rules_main, false, false, "1.2.3.4", "x", "frank", HBA_REJECT, 0 },
		/* quoted "all" user, '#' inside quotes, 255.240.0.0 mask */
		{ rules_main, false, false, "172.20.0.1", "db#1", "all", HBA_SCRAM, 15 },
		{ rules_main, false, false, "172.31.255.255", "postgres", "all", HBA_SCRAM, 15 },
		{ rules_main, false, false, "172.32.0.1", "postgres", "all", HBA_REJECT, 0 },
		{ rules_main, false, false, "172.20.0.1", "db", "all", HBA_REJECT, 0 },
		{ rules_main, false, false, "172.20.0.1", "db#1", "zed", HBA_REJECT, 0 },
		/* an IPv4-mapped rule is an IPv4 rule */
		{ rules_main, false, false, "198.51.100.9", "x", "grace", HBA_TRUST, 16 },
		{ rules_main, false, false, "::ffff:198.51.100.9", "x", "grace", HBA_TRUST, 16 },
		{ rules_main, false, false, "198.51.101.9", "x", "grace", HBA_REJECT, 0 },
		/* "db1, db2" and "heidi,<tab>ivan" are lists; IPv6 address + mask */
		{ rules_main, false, false, "2001:db8:ffff::1", "db2", "ivan", HBA_MD5, 18 },
		{ rules_main, false, false, "2001:db8::1", "db1", "heidi", HBA_MD5, 18 },
		{ rules_main, false, false, "2001:db9::1", "db1", "heidi", HBA_REJECT, 0 },
		{ rules_main, false, false, "2001:db8::1", "db3", "heidi", HBA_REJECT, 0 },
		/* blanks before a comma continue the list too (PgBouncer) */
		{ rules_main, false, false, "192.0.2.7", "x", "user2", HBA_TRUST, 20 },
		{ rules_main, false, false, "192.0.2.7", "x", "user3", HBA_TRUST, 20 },
		{ rules_main, false, false, "192.0.2.7", "x", "user4", HBA_REJECT, 0 },
		/* /0 and /32, and the mask form shadowing the CIDR form */
		{ rules_cidr, false, false, "0.0.0.0", "x", "a", HBA_MD5, 1 },
		{ rules_cidr, false, false, "255.255.255.255", "x", "a", HBA_MD5, 1 },
		{ rules_cidr, false, false, "::1", "x", "a", HBA_REJECT, 0 },
		{ rules_cidr, false, false, "192.0.2.1", "x", "b", HBA_TRUST, 2 },
		{ rules_cidr, false, false, "192.0.2.2", "x", "b", HBA_MD5, 3 },
		{ rules_cidr, false, false, "::ffff:192.0.2.1", "x", "b", HBA_TRUST, 2 },
		{ rules_cidr, false, false, "::", "x", "c", HBA_PASSWORD, 4 },
		{ rules_cidr, false, false, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "x", "c", HBA_PASSWORD, 4 },
		{ rules_cidr, false, false, "1.2.3.4", "x", "c", HBA_REJECT, 0 },
		{ rules_cidr, false, false, "10.255.0.1", "x", "d", HBA_MD5, 5 },
		{ rules_cidr, false, false, "11.0.0.1", "x", "d", HBA_REJECT, 0 },
		{ rules_cidr, true, false, NULL, "x", "a", HBA_REJECT, 0 },
		{ rules_cidr, false, false, NULL, "x", "a", HBA_REJECT, 0 },
	};
	const char *loaded_text = NULL;
	struct hba_rules *r = NULL;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		struct hba_request req;
		enum hba_method m;
		int line = -1;

		if (cases[i].rules != loaded_text) {
			hba_free(r);
			r = NULL;
			CHECK(parse_str(cases[i].rules, &r) == 0);
			if (!r) {
				fprintf(stderr, "rules do not parse: %s\n", err);
				return;
			}
			loaded_text = cases[i].rules;
		}
		memset(&req, 0, sizeof(req));
		req.is_unix = cases[i].is_unix;
		req.tls = cases[i].tls;
		if (cases[i].ip) {
			CHECK(sockaddr_of(cases[i].ip, &ss));
			req.addr = (const struct sockaddr *)&ss;
		}
		req.database = cases[i].db;
		req.user = cases[i].user;
		m = hba_match(r, &req, &line);
		if (m != cases[i].method || line != cases[i].line) {
			fprintf(stderr, "match case %zu (%s db=%s user=%s): got %s line %d, want %s line %d\n",
				i, cases[i].ip ? cases[i].ip : "-", cases[i].db, cases[i].user,
				hba_method_name(m), line, hba_method_name(cases[i].method), cases[i].line);
			CHECK(false);
		} else {
			CHECK(true);
		}
	}
	CHECK(hba_rule_count(r) == 6);
	hba_free(r);

	/* NULL database / user / request / rules match nothing */
	CHECK(parse_str(rules_main, &r) == 0);
	CHECK(hba_rule_count(r) == 19);
	{
		struct hba_request req = { .is_unix = true, .database = NULL, .user = "postgres" };
		int line = -1;

		CHECK(hba_match(r, &req, &line) == HBA_REJECT && line == 0);
		req.database = "x";
		req.user = NULL;
		line = -1;
		CHECK(hba_match(r, &req, &line) == HBA_REJECT && line == 0);
		req.user = "postgres";
		CHECK(hba_match(r, &req, NULL) == HBA_PEER);
		line = -1;
		CHECK(hba_match(NULL, &req, &line) == HBA_REJECT && line == 0);
		line = -1;
		CHECK(hba_match(r, NULL, &line) == HBA_REJECT && line == 0);
	}
	/* an unknown address family only matches "all" */
	{
		struct sockaddr sa;
		struct hba_request req = { .addr = &sa, .database = "x", .user = "frank", .tls = true };
		int line = -1;

		memset(&sa, 0, sizeof(sa));
		sa.sa_family = AF_UNIX;
		CHECK(hba_match(r, &req, &line) == HBA_CERT && line == 14);
		req.user = "dave";
		CHECK(hba_match(r, &req, &line) == HBA_REJECT && line == 0);
	}
	hba_free(r);
}

static void test_method_names(void)
{
	CHECK_STR(hba_method_name(HBA_REJECT), "reject");
	CHECK_STR(hba_method_name(HBA_TRUST), "trust");
	CHECK_STR(hba_method_name(HBA_PASSWORD), "password");
	CHECK_STR(hba_method_name(HBA_MD5), "md5");
	CHECK_STR(hba_method_name(HBA_SCRAM), "scram-sha-256");
	CHECK_STR(hba_method_name(HBA_CERT), "cert");
	CHECK_STR(hba_method_name(HBA_PEER), "peer");
	CHECK_STR(hba_method_name((enum hba_method)99), "unknown");
}

/* ---- hba_load ---------------------------------------------------------- */

static void test_load(void)
{
	char dir[] = "/tmp/sluice_test_hba_XXXXXX";
	char path[600], missing[600];
	struct hba_rules *r = (struct hba_rules *)&r;
	FILE *f;
	int rc;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		CHECK(false);
		return;
	}
	snprintf(path, sizeof(path), "%s/hba.conf", dir);
	snprintf(missing, sizeof(missing), "%s/missing.conf", dir);

	rc = hba_load(missing, &r, err, sizeof(err));
	CHECK(rc == -ENOENT && r == NULL);
	CHECK(strstr(err, "missing.conf: cannot open") != NULL);

	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs("# hba\nlocal all all trust\nhost all all 127.0.0.1/32 md5\n", f);
	fclose(f);
	rc = hba_load(path, &r, err, sizeof(err));
	CHECK(rc == 0 && hba_rule_count(r) == 2);
	hba_free(r);

	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs("local all all trust\nlocal all all nope\n", f);
	fclose(f);
	rc = hba_load(path, &r, err, sizeof(err));
	CHECK(rc == -EINVAL && r == NULL);
	{
		char want[700];

		snprintf(want, sizeof(want), "%s:2: unknown authentication method", path);
		CHECK(strncmp(err, want, strlen(want)) == 0);
	}
	/* a directory cannot be read */
	rc = hba_load(dir, &r, err, sizeof(err));
	CHECK(rc == -EISDIR && r == NULL);
	CHECK(hba_load(NULL, &r, err, sizeof(err)) == -EINVAL);

	unlink(path);
	rmdir(dir);
}

UNIT_MAIN(
	test_parse_errors();
	test_parse_edge();
	test_match();
	test_physical_replication();
	test_method_names();
	test_maps();
	test_load();
)
