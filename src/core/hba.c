/*
 * hba.c - parser and matcher for auth_hba_file (PostgreSQL's pg_hba.conf
 * syntax, the subset PgBouncer's auth_type = hba supports).
 *
 * Owns: struct hba_rules (every byte of it lives in three arrays owned by
 * that struct), the pg_hba.conf tokenizer, and hba_match.
 * Must not: log, keep global state, resolve names, touch sockets, or read
 * any file but the one hba_load is handed. A rule set is immutable once
 * hba_parse returns it.
 *
 * Lexical rules (comments, quoting, comma lists, continued lines): see
 * hba_lex.h, shared with the auth_ident_file parser. Any quoting makes a
 * word a plain name: "all" is the database or user called all, never the
 * keyword.
 *
 * Deliberate strictness: PgBouncer logs a line it cannot parse and skips
 * it; we refuse the whole file instead (a skipped reject line would let
 * clients in, and a reload then keeps the previous rules), and
 * we refuse every construct whose PostgreSQL meaning sluice cannot honour
 * rather than approximate it:
 * - host names, samehost, samenet (sluice neither resolves names nor
 *   enumerates its interfaces);
 * - +group, samerole, samegroup (sluice does not know role membership);
 * - @file includes and include/include_if_exists/include_dir directives
 *   (one file is the whole policy; list the names on the line instead);
 * - unquoted names starting with '/' (PostgreSQL 16 regular expressions);
 * - hostgssenc/hostnogssenc, and the methods ident, gss, sspi, pam, ldap,
 *   radius, bsd;
 * - options: map= on any method but peer and cert (the only methods that
 *   have a system user name to map); clientcert= on any method but cert
 *   (sluice cannot demand a certificate on top of a password, and dropping
 *   the demand silently would weaken the rule; with cert it is implied);
 *   clientname=DN (sluice matches the certificate's CN). Every other
 *   name=value option is accepted and ignored.
 * - peer is only valid on local lines and cert only on hostssl lines, as in
 *   PostgreSQL.
 * - A file without a single rule is an error (PostgreSQL refuses it too).
 *
 * Matching notes:
 * - The database keyword "replication" matches physical replication
 *   connections (replication=true) and only those; "all" and database
 *   names match every other connection, logical replication included, as
 *   in PostgreSQL.
 * - An IPv4-mapped IPv6 client (::ffff:a.b.c.d, from a dual-stack socket)
 *   is treated exactly as the IPv4 client a.b.c.d: it matches IPv4 rules and
 *   no IPv6 rule, so the policy does not depend on how sluice listens. For
 *   the same reason a rule written as ::ffff:a.b.c.d/N (N >= 96) is stored
 *   as the IPv4 rule a.b.c.d/(N - 96).
 * - Host bits beyond the prefix or mask are ignored (10.1.2.3/8 is 10/8),
 *   as in PostgreSQL. Names compare case-sensitively, keywords too.
 */
#include "hba.h"
#include "hba_lex.h"
#include "ident.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest textual IP address we try to parse (IPv6 with an IPv4 tail). */
#define HBA_IP_TEXT_MAX 64

/* Name-list flags (struct hba_rule db_flags / user_flags). */
#define HBA_NAME_ALL      0x1u  /* keyword all: every name matches */
#define HBA_NAME_SAMEUSER 0x2u  /* keyword sameuser: database name == user name */
#define HBA_NAME_REPLICATION 0x4u /* keyword replication: physical replication connections */

/* One record of the file. */
struct hba_rule {
	int line_no;                 /* first physical line of the record, 1-based */
	enum hba_conn_type conn;     /* local / host / hostssl / hostnossl */
	enum hba_method method;      /* what a match asks for */
	unsigned db_flags;           /* HBA_NAME_ALL | HBA_NAME_SAMEUSER | HBA_NAME_REPLICATION */
	unsigned user_flags;         /* HBA_NAME_ALL */
	size_t db_first;             /* database names: hba_rules.names[db_first ..] */
	size_t db_count;             /* ... this many of them */
	size_t user_first;           /* user names: hba_rules.names[user_first ..] */
	size_t user_count;           /* ... this many of them */
	bool addr_all;               /* host*: address keyword all, every client matches */
	int family;                  /* host* without addr_all: AF_INET or AF_INET6; else 0 */
	uint8_t addr[16];            /* network, already masked (IPv4: first 4 bytes) */
	uint8_t mask[16];            /* netmask (IPv4: first 4 bytes) */
	bool has_map;                /* peer/cert with map=NAME (auth_ident_file) */
	size_t map_name;             /* has_map: the name is hba_rules.names[map_name] */
};

struct hba_rules {
	struct hba_rule *rules;      /* records in file order; owned */
	size_t n_rules;              /* used entries of rules */
	size_t cap_rules;            /* allocated entries of rules */
	size_t *names;               /* offset into strings of each listed name; owned */
	size_t n_names;              /* used entries of names */
	size_t cap_names;            /* allocated entries of names */
	char *strings;               /* NUL-terminated names back to back; owned */
	size_t strings_len;          /* bytes used in strings */
	size_t strings_cap;          /* bytes allocated for strings */
};

/* The parse of one hba_parse call. Heap allocated (the lexer's buffers). */
struct hba_parser {
	struct hba_lex lx;           /* tokenizer over the file's text; its err is the caller's */
	struct hba_rules *r;         /* rules being built, owned until returned */
};

static const struct {
	const char *name;            /* keyword in the file */
	enum hba_method method;      /* its meaning */
} method_names[] = {
	{ "reject", HBA_REJECT },
	{ "trust", HBA_TRUST },
	{ "password", HBA_PASSWORD },
	{ "md5", HBA_MD5 },
	{ "scram-sha-256", HBA_SCRAM },
	{ "cert", HBA_CERT },
	{ "peer", HBA_PEER },
};

/* PostgreSQL methods sluice refuses by name (a clearer message than "unknown"). */
static const char *const unsupported_methods[] = {
	"ident", "gss", "sspi", "pam", "ldap", "radius", "bsd", "krb5", "crypt",
};

/* ---- storage ------------------------------------------------------------ */

/* Append a name (len bytes, no NUL inside) to the name arena. */
static int add_name(struct hba_rules *r, const char *s, size_t len)
{
	void *strings = r->strings, *names = r->names;
	int rc;

	rc = hba_lex_grow(&strings, &r->strings_cap, r->strings_len + len + 1, 1);
	r->strings = strings;
	if (rc < 0)
		return rc;
	rc = hba_lex_grow(&names, &r->cap_names, r->n_names + 1, sizeof(*r->names));
	r->names = names;
	if (rc < 0)
		return rc;
	memcpy(r->strings + r->strings_len, s, len);
	r->strings[r->strings_len + len] = '\0';
	r->names[r->n_names++] = r->strings_len;
	r->strings_len += len + 1;
	return 0;
}

static int add_rule(struct hba_rules *r, const struct hba_rule *rule)
{
	void *rules = r->rules;
	int rc;

	rc = hba_lex_grow(&rules, &r->cap_rules, r->n_rules + 1, sizeof(*r->rules));
	r->rules = rules;
	if (rc < 0)
		return rc;
	r->rules[r->n_rules++] = *rule;
	return 0;
}

void hba_free(struct hba_rules *r)
{
	if (!r)
		return;
	free(r->rules);
	free(r->names);
	free(r->strings);
	free(r);
}

size_t hba_rule_count(const struct hba_rules *r)
{
	return r ? r->n_rules : 0;
}

/* ---- fields ------------------------------------------------------------- */

static int parse_conn_type(struct hba_parser *p, const struct hba_token *t, enum hba_conn_type *out)
{
	char e[HBA_ECHO_MAX + 4];

	if (t->more)
		return hba_lex_fail(&p->lx, -EINVAL, "more than one connection type");
	if (strcmp(t->text, "local") == 0)
		*out = HBA_LOCAL;
	else if (strcmp(t->text, "host") == 0)
		*out = HBA_HOST;
	else if (strcmp(t->text, "hostssl") == 0)
		*out = HBA_HOSTSSL;
	else if (strcmp(t->text, "hostnossl") == 0)
		*out = HBA_HOSTNOSSL;
	else if (strcmp(t->text, "hostgssenc") == 0 || strcmp(t->text, "hostnogssenc") == 0)
		return hba_lex_fail(&p->lx, -EINVAL, "connection type \"%s\" is not supported (sluice has no GSSAPI encryption)",
			    t->text);
	else if (strcmp(t->text, "include") == 0 || strcmp(t->text, "include_if_exists") == 0 ||
		 strcmp(t->text, "include_dir") == 0)
		return hba_lex_fail(&p->lx, -EINVAL, "\"%s\" is not supported (put all rules in this one file)", t->text);
	else
		return hba_lex_fail(&p->lx, -EINVAL, "unknown connection type \"%s\" (expected local, host, hostssl or hostnossl)",
			    hba_lex_echo(t->text, e));
	return 0;
}

/* A DATABASE (is_db) or USER field starting at *t; leaves the tokenizer
 * after its last item. */
static int parse_names(struct hba_parser *p, struct hba_token *t, bool is_db,
		       unsigned *flags, size_t *first, size_t *count)
{
	const char *field = is_db ? "database" : "user";
	char e[HBA_ECHO_MAX + 4];
	size_t items = 0;
	int rc;

	*first = p->r->n_names;
	*count = 0;
	for (;;) {
		if (++items > HBA_MAX_LIST)
			return hba_lex_fail(&p->lx, -EINVAL, "more than %d names in the %s field", HBA_MAX_LIST, field);
		if (hba_lex_is_kw(t, "all")) {
			*flags |= HBA_NAME_ALL;
		} else if (is_db && hba_lex_is_kw(t, "sameuser")) {
			*flags |= HBA_NAME_SAMEUSER;
		} else if (is_db && hba_lex_is_kw(t, "replication")) {
			*flags |= HBA_NAME_REPLICATION;
		} else if (is_db && (hba_lex_is_kw(t, "samerole") || hba_lex_is_kw(t, "samegroup"))) {
			return hba_lex_fail(&p->lx, -EINVAL, "database keyword \"%s\" is not supported (sluice does not know role membership)",
				    t->text);
		} else if (!t->quoted && t->text[0] == '@') {
			return hba_lex_fail(&p->lx, -EINVAL, "%s name file \"%s\" is not supported (list the names on the line instead)",
				    field, hba_lex_echo(t->text, e));
		} else if (!is_db && !t->quoted && t->text[0] == '+') {
			return hba_lex_fail(&p->lx, -EINVAL, "group \"%s\" is not supported (sluice does not know role membership)",
				    hba_lex_echo(t->text, e));
		} else if (!t->quoted && t->text[0] == '/') {
			return hba_lex_fail(&p->lx, -EINVAL, "%s regular expression \"%s\" is not supported (quote it to mean that literal name)",
				    field, hba_lex_echo(t->text, e));
		} else {
			rc = add_name(p->r, t->text, t->len);
			if (rc < 0)
				return hba_lex_fail(&p->lx, rc, "out of memory");
			(*count)++;
		}
		if (!t->more)
			return 0;
		rc = hba_lex_next(&p->lx, t);
		if (rc < 0)
			return rc;
		if (rc == 0) /* cannot happen after t->more (see lex_next) */
			return hba_lex_fail(&p->lx, -EINVAL, "list ends with a comma");
	}
}

/* Set the first bits bits of mask (family's size) and clear the rest. */
static void prefix_mask(uint8_t mask[16], unsigned bits)
{
	unsigned i;

	memset(mask, 0, 16);
	for (i = 0; i < bits / 8; i++)
		mask[i] = 0xff;
	if (bits % 8)
		mask[i] = (uint8_t)(0xff << (8 - bits % 8));
}

/* An IPv6 rule inside ::ffff:0:0/96 (mask covering at least those 96
 * bits) is about IPv4 clients: turn it into the IPv4 rule it means, since
 * mapped clients are matched as IPv4 (see the header comment). */
static void ipv4_mapped_rule_to_ipv4(struct hba_rule *rule)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	size_t i;

	if (rule->family != AF_INET6)
		return;
	for (i = 0; i < 12; i++)
		if (rule->mask[i] != 0xff || rule->addr[i] != mapped[i])
			return;
	rule->family = AF_INET;
	memmove(rule->addr, rule->addr + 12, 4);
	memmove(rule->mask, rule->mask + 12, 4);
	memset(rule->addr + 4, 0, 12);
	memset(rule->mask + 4, 0, 12);
}

/* IP/PREFIX, IP MASK, all; *t is the ADDRESS field's item. */
static int parse_address(struct hba_parser *p, struct hba_token *t, struct hba_rule *rule)
{
	char e[HBA_ECHO_MAX + 4], ip[HBA_IP_TEXT_MAX + 1];
	const char *slash;
	size_t iplen, i;
	unsigned max_bits, bits = 0;
	int rc;

	if (t->more)
		return hba_lex_fail(&p->lx, -EINVAL, "more than one IP address (write one line per address)");
	if (hba_lex_is_kw(t, "all")) {
		rule->addr_all = true;
		return 0;
	}
	if (hba_lex_is_kw(t, "samehost") || hba_lex_is_kw(t, "samenet"))
		return hba_lex_fail(&p->lx, -EINVAL, "address keyword \"%s\" is not supported (sluice does not enumerate its interfaces; write IP/prefix)",
			    t->text);

	slash = strchr(t->text, '/');
	iplen = slash ? (size_t)(slash - t->text) : t->len;
	if (iplen == 0 || iplen > HBA_IP_TEXT_MAX)
		return hba_lex_fail(&p->lx, -EINVAL, "invalid IP address \"%s\"", hba_lex_echo(t->text, e));
	memcpy(ip, t->text, iplen);
	ip[iplen] = '\0';
	if (inet_pton(AF_INET, ip, rule->addr) == 1) {
		rule->family = AF_INET;
		max_bits = 32;
	} else if (inet_pton(AF_INET6, ip, rule->addr) == 1) {
		rule->family = AF_INET6;
		max_bits = 128;
	} else {
		return hba_lex_fail(&p->lx, -EINVAL, "invalid IP address \"%s\" (host names are not supported)", hba_lex_echo(t->text, e));
	}

	if (slash) {
		const char *d = slash + 1;
		size_t nd = strlen(d);

		if (nd == 0 || nd > 3)
			return hba_lex_fail(&p->lx, -EINVAL, "invalid prefix length in \"%s\" (0..%u)", hba_lex_echo(t->text, e), max_bits);
		for (i = 0; i < nd; i++) {
			if (d[i] < '0' || d[i] > '9')
				return hba_lex_fail(&p->lx, -EINVAL, "invalid prefix length in \"%s\" (0..%u)", hba_lex_echo(t->text, e), max_bits);
			bits = bits * 10 + (unsigned)(d[i] - '0');
		}
		if (bits > max_bits)
			return hba_lex_fail(&p->lx, -EINVAL, "invalid prefix length in \"%s\" (0..%u)", hba_lex_echo(t->text, e), max_bits);
		prefix_mask(rule->mask, bits);
	} else {
		uint8_t other[16];

		rc = hba_lex_need(&p->lx, t, "the netmask (write IP/prefix, or IP and MASK)");
		if (rc < 0)
			return rc;
		if (t->more)
			return hba_lex_fail(&p->lx, -EINVAL, "more than one IP mask");
		memset(rule->mask, 0, sizeof(rule->mask));
		if (inet_pton(rule->family, t->text, rule->mask) != 1) {
			if (inet_pton(rule->family == AF_INET ? AF_INET6 : AF_INET, t->text, other) == 1)
				return hba_lex_fail(&p->lx, -EINVAL, "IP address and mask \"%s\" are not of the same family",
					    hba_lex_echo(t->text, e));
			return hba_lex_fail(&p->lx, -EINVAL, "invalid IP mask \"%s\" (an address without /prefix needs a mask field)",
				    hba_lex_echo(t->text, e));
		}
	}
	for (i = 0; i < sizeof(rule->addr); i++)
		rule->addr[i] &= rule->mask[i];
	ipv4_mapped_rule_to_ipv4(rule);
	return 0;
}

static int parse_method(struct hba_parser *p, const struct hba_token *t, struct hba_rule *rule)
{
	char e[HBA_ECHO_MAX + 4];
	size_t i;

	if (t->more)
		return hba_lex_fail(&p->lx, -EINVAL, "more than one authentication method");
	for (i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
		if (strcmp(t->text, method_names[i].name) == 0) {
			rule->method = method_names[i].method;
			goto found;
		}
	}
	for (i = 0; i < sizeof(unsupported_methods) / sizeof(unsupported_methods[0]); i++) {
		if (strcmp(t->text, unsupported_methods[i]) == 0)
			return hba_lex_fail(&p->lx, -EINVAL, "authentication method \"%s\" is not supported by sluice", t->text);
	}
	return hba_lex_fail(&p->lx, -EINVAL, "unknown authentication method \"%s\"", hba_lex_echo(t->text, e));
found:
	if (rule->method == HBA_PEER && rule->conn != HBA_LOCAL)
		return hba_lex_fail(&p->lx, -EINVAL, "peer authentication is only valid on local lines");
	if (rule->method == HBA_CERT && rule->conn != HBA_HOSTSSL)
		return hba_lex_fail(&p->lx, -EINVAL, "cert authentication is only valid on hostssl lines");
	return 0;
}

/* One name=value item after the method. */
static int parse_option(struct hba_parser *p, const struct hba_token *t, struct hba_rule *rule)
{
	char e[HBA_ECHO_MAX + 4];
	const char *eq = strchr(t->text, '=');
	size_t nlen;

	if (!eq || eq == t->text)
		return hba_lex_fail(&p->lx, -EINVAL, "authentication option \"%s\" is not in name=value form", hba_lex_echo(t->text, e));
	nlen = (size_t)(eq - t->text);
	if (nlen == 3 && memcmp(t->text, "map", 3) == 0) {
		int rc;

		if (rule->method != HBA_PEER && rule->method != HBA_CERT)
			return hba_lex_fail(&p->lx, -EINVAL, "option map= is only supported with the peer and cert methods, not %s",
					    hba_method_name(rule->method));
		if (rule->has_map)
			return hba_lex_fail(&p->lx, -EINVAL, "more than one map= option");
		if (eq[1] == '\0')
			return hba_lex_fail(&p->lx, -EINVAL, "option map= needs a map name");
		rule->map_name = p->r->n_names;
		rc = add_name(p->r, eq + 1, strlen(eq + 1));
		if (rc < 0)
			return hba_lex_fail(&p->lx, rc, "out of memory");
		rule->has_map = true;
		return 0;
	}
	if (nlen == 10 && memcmp(t->text, "clientcert", 10) == 0 && rule->method != HBA_CERT)
		return hba_lex_fail(&p->lx, -EINVAL, "option clientcert= is only supported with the cert method (sluice cannot require a certificate in addition to %s)",
			    hba_method_name(rule->method));
	if (nlen == 10 && memcmp(t->text, "clientname", 10) == 0 && strcmp(eq + 1, "CN") != 0)
		return hba_lex_fail(&p->lx, -EINVAL, "option \"%s\" is not supported (sluice matches the certificate's CN)",
			    hba_lex_echo(t->text, e));
	/* anything else (including clientcert on cert lines, where it is
	 * implied) is accepted and ignored */
	return 0;
}

/* The logical line in p->lx: nothing for a blank or comment line, else
 * one rule appended to p->r. */
static int parse_record(struct hba_parser *p)
{
	struct hba_token t;
	struct hba_rule rule;
	int rc;

	rc = hba_lex_next(&p->lx, &t);
	if (rc <= 0)
		return rc;
	memset(&rule, 0, sizeof(rule));
	rule.line_no = p->lx.line_no;

	rc = parse_conn_type(p, &t, &rule.conn);
	if (rc < 0)
		return rc;
	rc = hba_lex_need(&p->lx, &t, "the database name");
	if (rc < 0)
		return rc;
	rc = parse_names(p, &t, true, &rule.db_flags, &rule.db_first, &rule.db_count);
	if (rc < 0)
		return rc;
	rc = hba_lex_need(&p->lx, &t, "the user name");
	if (rc < 0)
		return rc;
	rc = parse_names(p, &t, false, &rule.user_flags, &rule.user_first, &rule.user_count);
	if (rc < 0)
		return rc;
	if (rule.conn != HBA_LOCAL) {
		rc = hba_lex_need(&p->lx, &t, "the IP address");
		if (rc < 0)
			return rc;
		rc = parse_address(p, &t, &rule);
		if (rc < 0)
			return rc;
	}
	rc = hba_lex_need(&p->lx, &t, "the authentication method");
	if (rc < 0)
		return rc;
	rc = parse_method(p, &t, &rule);
	if (rc < 0)
		return rc;
	while ((rc = hba_lex_next(&p->lx, &t)) > 0) {
		rc = parse_option(p, &t, &rule);
		if (rc < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	rc = add_rule(p->r, &rule);
	if (rc < 0)
		return hba_lex_fail(&p->lx, rc, "out of memory");
	return 0;
}

/* ---- entry points ------------------------------------------------------- */

int hba_parse(const char *text, size_t len, const char *file_name,
	      struct hba_rules **out, char *err, size_t errlen)
{
	struct hba_parser *p;
	int rc = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!text && len) {
		hba_lex_set_err(err, errlen, "%s: no text", file_name ? file_name : "hba");
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		hba_lex_set_err(err, errlen, "%s: out of memory", file_name ? file_name : "hba");
		return -ENOMEM;
	}
	hba_lex_init(&p->lx, text, len, file_name, err, errlen);
	p->r = calloc(1, sizeof(*p->r));
	if (!p->r) {
		rc = hba_lex_fail(&p->lx, -ENOMEM, "out of memory");
		goto out;
	}
	while ((rc = hba_lex_line(&p->lx)) > 0) {
		rc = parse_record(p);
		if (rc < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	if (p->r->n_rules == 0) {
		hba_lex_set_err(err, errlen, "%s: no rules (every connection would be rejected)", p->lx.file);
		rc = -EINVAL;
		goto out;
	}
	*out = p->r;
	p->r = NULL;
	rc = 0;
out:
	if (p->r)
		hba_free(p->r);
	free(p);
	return rc;
}

int hba_load(const char *path, struct hba_rules **out, char *err, size_t errlen)
{
	char *buf;
	size_t len;
	int rc = hba_lex_read_file(path, &buf, &len, err, errlen);

	if (rc < 0) {
		if (out)
			*out = NULL;
		return rc;
	}
	rc = hba_parse(buf, len, path, out, err, errlen);
	free(buf);
	return rc;
}

/* ---- matching ----------------------------------------------------------- */

/* A client address reduced to what rules compare: IPv4-mapped IPv6
 * becomes plain IPv4. */
struct hba_peer {
	int family;                  /* AF_INET, AF_INET6, or 0 when unusable */
	uint8_t bytes[16];           /* address (IPv4: first 4 bytes) */
};

static void peer_from_sockaddr(const struct sockaddr *sa, struct hba_peer *out)
{
	memset(out, 0, sizeof(*out));
	if (!sa)
		return;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, sa, sizeof(sin));
		out->family = AF_INET;
		memcpy(out->bytes, &sin.sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof(sin6));
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			out->family = AF_INET;
			memcpy(out->bytes, &sin6.sin6_addr.s6_addr[12], 4);
		} else {
			out->family = AF_INET6;
			memcpy(out->bytes, &sin6.sin6_addr, 16);
		}
	}
}

static bool conn_matches(const struct hba_rule *rule, const struct hba_request *req)
{
	switch (rule->conn) {
	case HBA_LOCAL:
		return req->is_unix;
	case HBA_HOST:
		return !req->is_unix;
	case HBA_HOSTSSL:
		return !req->is_unix && req->tls;
	case HBA_HOSTNOSSL:
		return !req->is_unix && !req->tls;
	}
	return false;
}

static bool addr_matches(const struct hba_rule *rule, const struct hba_peer *peer)
{
	size_t i, n;

	if (rule->addr_all)
		return true;
	if (peer->family == 0 || peer->family != rule->family)
		return false;
	n = rule->family == AF_INET ? 4 : 16;
	for (i = 0; i < n; i++)
		if ((peer->bytes[i] & rule->mask[i]) != rule->addr[i])
			return false;
	return true;
}

static bool name_listed(const struct hba_rules *r, size_t first, size_t count, const char *name)
{
	size_t i;

	for (i = 0; i < count; i++)
		if (strcmp(r->strings + r->names[first + i], name) == 0)
			return true;
	return false;
}

enum hba_method hba_match(const struct hba_rules *r, const struct hba_request *req, int *line_no)
{
	struct hba_peer peer;
	size_t i;

	if (line_no)
		*line_no = 0;
	if (!r || !req || !req->database || !req->user)
		return HBA_REJECT;
	peer_from_sockaddr(req->is_unix ? NULL : req->addr, &peer);
	for (i = 0; i < r->n_rules; i++) {
		const struct hba_rule *rule = &r->rules[i];

		if (!conn_matches(rule, req))
			continue;
		if (rule->conn != HBA_LOCAL && !addr_matches(rule, &peer))
			continue;
		if (req->physical_replication ? !(rule->db_flags & HBA_NAME_REPLICATION)
					      : !(rule->db_flags & HBA_NAME_ALL) &&
						!((rule->db_flags & HBA_NAME_SAMEUSER) && strcmp(req->database, req->user) == 0) &&
						!name_listed(r, rule->db_first, rule->db_count, req->database))
			continue;
		if (!(rule->user_flags & HBA_NAME_ALL) &&
		    !name_listed(r, rule->user_first, rule->user_count, req->user))
			continue;
		if (line_no)
			*line_no = rule->line_no;
		return rule->method;
	}
	return HBA_REJECT;
}

const char *hba_map_at(const struct hba_rules *r, int line_no)
{
	size_t lo = 0, hi = r ? r->n_rules : 0;

	/* rules are in file order: line numbers strictly increase */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct hba_rule *rule = &r->rules[mid];

		if (rule->line_no == line_no)
			return rule->has_map ? r->strings + r->names[rule->map_name] : NULL;
		if (rule->line_no < line_no)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *hba_unknown_map(const struct hba_rules *r, const struct ident_maps *maps, int *line_no)
{
	if (line_no)
		*line_no = 0;
	for (size_t i = 0; r && i < r->n_rules; i++) {
		const struct hba_rule *rule = &r->rules[i];
		const char *name = rule->has_map ? r->strings + r->names[rule->map_name] : NULL;

		if (name && !ident_has_map(maps, name)) {
			if (line_no)
				*line_no = rule->line_no;
			return name;
		}
	}
	return NULL;
}

const char *hba_method_name(enum hba_method m)
{
	size_t i;

	for (i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++)
		if (method_names[i].method == m)
			return method_names[i].name;
	return "unknown";
}
