/*
 * fuzz_hba.c - libFuzzer harness for hba_parse / hba_match / hba_free
 * (src/core/hba.c): the pg_hba.conf tokenizer (quotes, comments, commas,
 * backslash continuations), the field parsers and the matcher.
 *
 * Input: the whole file. It is handed over in an exact-size heap block with
 * no NUL after it (hba_parse takes pointer + length), so a read past the
 * text is an ASan report. The error buffer size varies with the input, so
 * truncation of long messages is exercised too.
 *
 * When the text parses, a fixed set of requests (unix and TCP, TLS on and
 * off, IPv4, IPv6, IPv4-mapped IPv6, no address; a few database and user
 * names, some taken from the input) runs through hba_match.
 *
 * Invariants beyond memory safety:
 * - failure: rc is -EINVAL or -ENOMEM, *out is NULL, err is NUL-terminated
 *   and (unless it has room for nothing) not empty;
 * - success: at least one rule; every answer is a valid method; line 0
 *   comes only with HBA_REJECT and a line is never past the input's last;
 * - an IPv4-mapped IPv6 client gets exactly the IPv4 client's answer;
 * - a unix client's answer does not depend on the TLS flag;
 * - the text with one '\n' appended parses the same way (same rc, same rule
 *   count, same answers): the last line needs no newline.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hba.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longest name taken from the input for a request. */
#define FUZZ_NAME_MAX 32
/* Answers recorded per parse: requests x names. */
#define FUZZ_MAX_ANSWERS 1024

static const char *const v4_addrs[] = {
	"127.0.0.1", "10.1.2.3", "192.168.1.77", "0.0.0.0", "255.255.255.255", "172.20.0.1",
};
static const char *const v6_addrs[] = {
	"::1", "::", "2001:db8::5", "fe80::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
};

/* One recorded answer. */
struct answer {
	enum hba_method method;      /* hba_match's return */
	int line;                    /* its *line_no */
};

/* Count physical lines the way hba.c numbers them: 1 + number of '\n'. */
static int count_lines(const uint8_t *data, size_t size)
{
	int n = 1;

	for (size_t i = 0; i < size; i++)
		if (data[i] == '\n')
			n++;
	return n;
}

/* A printable word of the input (between blanks, commas, quotes) to use as
 * a database or user name, so listed names get matched sometimes. */
static void pick_name(const uint8_t *data, size_t size, size_t skip, char out[FUZZ_NAME_MAX + 1])
{
	size_t i = 0, n = 0, words = 0;

	strcpy(out, "postgres");
	while (i < size) {
		while (i < size && (data[i] <= ' ' || data[i] == ',' || data[i] == '"' || data[i] >= 0x7f))
			i++;
		n = 0;
		while (i < size && n < FUZZ_NAME_MAX && data[i] > ' ' && data[i] != ',' && data[i] != '"' &&
		       data[i] < 0x7f)
			out[n++] = (char)data[i++];
		while (i < size && data[i] > ' ' && data[i] != ',' && data[i] != '"' && data[i] < 0x7f)
			i++;
		if (n && words++ == skip) {
			out[n] = '\0';
			return;
		}
	}
	strcpy(out, "postgres");
}

static struct answer ask(const struct hba_rules *r, bool is_unix, bool tls, const struct sockaddr *sa,
			 const char *db, const char *user, int max_line)
{
	struct hba_request req = { .is_unix = is_unix, .tls = tls, .addr = sa, .database = db, .user = user };
	struct answer a;

	a.line = -1;
	a.method = hba_match(r, &req, &a.line);
	FUZZ_CHECK(a.method >= HBA_REJECT && a.method <= HBA_PEER);
	FUZZ_CHECK(a.line >= 0 && a.line <= max_line);
	FUZZ_CHECK(a.line != 0 || a.method == HBA_REJECT);
	FUZZ_CHECK(strcmp(hba_method_name(a.method), "unknown") != 0);
	return a;
}

/* Run every request against r; fills ans[] and returns how many. */
static size_t run_requests(const struct hba_rules *r, const uint8_t *data, size_t size, int max_line,
			   struct answer *ans)
{
	char w1[FUZZ_NAME_MAX + 1], w2[FUZZ_NAME_MAX + 1], w3[FUZZ_NAME_MAX + 1];
	const char *names[5];
	size_t k = 0;

	pick_name(data, size, 1, w1);
	pick_name(data, size, 2, w2);
	pick_name(data, size, 3 + size % 5, w3);
	names[0] = "postgres";
	names[1] = "all";
	names[2] = w1;
	names[3] = w2;
	names[4] = w3;

	for (size_t di = 0; di < 5; di++) {
		for (size_t ui = 0; ui < 5; ui++) {
			const char *db = names[di], *user = names[ui];
			struct answer a, b;

			/* unix: TLS must not matter */
			a = ask(r, true, false, NULL, db, user, max_line);
			b = ask(r, true, true, NULL, db, user, max_line);
			FUZZ_CHECK(a.method == b.method && a.line == b.line);
			ans[k++] = a;

			for (int tls = 0; tls < 2; tls++) {
				ans[k++] = ask(r, false, tls, NULL, db, user, max_line);
				for (size_t i = 0; i < sizeof(v4_addrs) / sizeof(v4_addrs[0]); i++) {
					struct sockaddr_in sin;
					struct sockaddr_in6 sin6;

					memset(&sin, 0, sizeof(sin));
					sin.sin_family = AF_INET;
					FUZZ_CHECK(inet_pton(AF_INET, v4_addrs[i], &sin.sin_addr) == 1);
					a = ask(r, false, tls, (const struct sockaddr *)&sin, db, user, max_line);
					/* the same client, IPv4-mapped on a dual-stack socket */
					memset(&sin6, 0, sizeof(sin6));
					sin6.sin6_family = AF_INET6;
					sin6.sin6_addr.s6_addr[10] = 0xff;
					sin6.sin6_addr.s6_addr[11] = 0xff;
					memcpy(&sin6.sin6_addr.s6_addr[12], &sin.sin_addr, 4);
					b = ask(r, false, tls, (const struct sockaddr *)&sin6, db, user, max_line);
					FUZZ_CHECK(a.method == b.method && a.line == b.line);
					ans[k++] = a;
				}
				for (size_t i = 0; i < sizeof(v6_addrs) / sizeof(v6_addrs[0]); i++) {
					struct sockaddr_in6 sin6;

					memset(&sin6, 0, sizeof(sin6));
					sin6.sin6_family = AF_INET6;
					FUZZ_CHECK(inet_pton(AF_INET6, v6_addrs[i], &sin6.sin6_addr) == 1);
					ans[k++] = ask(r, false, tls, (const struct sockaddr *)&sin6, db, user, max_line);
				}
			}
			FUZZ_CHECK(k <= FUZZ_MAX_ANSWERS);
		}
	}
	/* NULL names match nothing */
	{
		struct answer a = ask(r, true, false, NULL, NULL, "postgres", max_line);

		FUZZ_CHECK(a.method == HBA_REJECT && a.line == 0);
	}
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct answer ans1[FUZZ_MAX_ANSWERS], ans2[FUZZ_MAX_ANSWERS];
	size_t errlen = 1 + size % 301;   /* small buffers too: must truncate, not overflow */
	struct hba_rules *r = (struct hba_rules *)1, *r2 = (struct hba_rules *)1;
	char *text, *text2, *err;
	int max_line = count_lines(data, size);
	int rc, rc2;
	size_t n1 = 0, n2 = 0;

	if (size > 4 * HBA_MAX_LINE)   /* long inputs only slow the search down */
		return 0;
	text = malloc(size ? size : 1);
	text2 = malloc(size + 1);
	err = malloc(errlen);
	FUZZ_CHECK(text && text2 && err);
	if (size)
		memcpy(text, data, size);
	if (size)
		memcpy(text2, data, size);
	text2[size] = '\n';

	memset(err, 'x', errlen);
	rc = hba_parse(text, size, "fuzz.conf", &r, err, errlen);
	FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
	if (rc == 0) {
		FUZZ_CHECK(r != NULL && hba_rule_count(r) >= 1);
		n1 = run_requests(r, data, size, max_line, ans1);
	} else {
		FUZZ_CHECK((rc == -EINVAL || rc == -ENOMEM) && r == NULL);
		FUZZ_CHECK(err[0] != '\0' || errlen == 1);
	}

	memset(err, 'x', errlen);
	rc2 = hba_parse(text2, size + 1, NULL, &r2, err, errlen);
	FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
	FUZZ_CHECK(rc2 == rc);
	if (rc2 == 0) {
		FUZZ_CHECK(r2 != NULL && hba_rule_count(r2) == hba_rule_count(r));
		n2 = run_requests(r2, data, size, max_line, ans2);
		FUZZ_CHECK(n1 == n2);
		for (size_t i = 0; i < n1; i++)
			FUZZ_CHECK(ans1[i].method == ans2[i].method && ans1[i].line == ans2[i].line);
	} else {
		FUZZ_CHECK(r2 == NULL);
	}

	hba_free(r);
	hba_free(r2);
	free(text);
	free(text2);
	free(err);
	return 0;
}
