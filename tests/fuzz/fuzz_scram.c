/*
 * fuzz_scram.c - libFuzzer harness for the SCRAM-SHA-256 exchange and the
 * strict base64 / verifier parsers (src/pg/auth_crypto.c).
 *
 * Input: byte 0 picks a mode and flags, the rest is split at '\n' into up
 * to three parts. Every message is handed over in an exact-size heap block
 * without a NUL after it (the API takes pointer + length), so a read past
 * the message is an ASan report.
 *
 * Modes:
 *  0 server: scram_server_first(part0), scram_server_final(part1) against a
 *    fixed verifier made once by scram_verifier_from_password("pw").
 *  1 client (pass-through keys): scram_client_first_keys, then
 *    scram_client_final(part0) and scram_client_verify(part1).
 *  2 client (password "pw"): as 1 after a real scram_client_first; skipped
 *    when part0 asks for more than FUZZ_MAX_ITER PBKDF2 iterations (the
 *    parser allows up to 10 million, which is slow by design, not a bug).
 *  3 round trip: a real client against the real server, with the bytes of
 *    each message in flight overwritten as parts 0..2 say.
 *  4 raw: auth_base64_decode / encode, scram_verifier_parse,
 *    pg_secret_is_md5/scram, auth_str_equal_ct, pg_md5_response.
 * Flag 0x10: "@@" in a message is replaced by the nonce the peer expects
 * (random per run, so the fuzzer could never guess it).
 * Flag 0x20: the output buffers are small (exercises -ENOSPC paths).
 *
 * Invariants beyond memory safety:
 * - no success for a server-final/client-final proof the fuzzer made up
 *   (that would be an authentication bypass);
 * - an unmodified round trip succeeds, and any success in round-trip mode
 *   means the messages in flight were not modified;
 * - every positive return is the strlen of a NUL-terminated output;
 * - base64: decode(encode(x)) == x, and a text that decodes re-encodes to
 *   itself (the decoder is canonical).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "auth_crypto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_MAX_ITER 64

static struct scram_verifier verifier;       /* from scram_verifier_from_password("pw") */
static uint8_t client_key[SCRAM_KEY_LEN];    /* derived from the same password + salt */

/* Exact-size heap copy of s[0..n) with every "@@" replaced by repl when
 * repl is set. Never NUL-terminated; *outn gets the length. */
static char *msg_copy(const uint8_t *s, size_t n, const char *repl, size_t *outn)
{
	size_t rl = repl ? strlen(repl) : 0, cnt = 0, o = 0;
	char *m;

	if (repl)
		for (size_t i = 0; i + 1 < n; i++)
			if (s[i] == '@' && s[i + 1] == '@') {
				cnt++;
				i++;
			}
	*outn = n + cnt * rl - cnt * 2;
	m = malloc(*outn ? *outn : 1);
	FUZZ_CHECK(m != NULL);
	for (size_t i = 0; i < n; i++) {
		if (repl && i + 1 < n && s[i] == '@' && s[i + 1] == '@') {
			memcpy(m + o, repl, rl);
			o += rl;
			i++;
		} else {
			m[o++] = (char)s[i];
		}
	}
	FUZZ_CHECK(o == *outn);
	return m;
}

/* A positive rc from a builder is the length of a NUL-terminated string. */
static void check_out(int rc, const char *out, size_t outlen)
{
	if (rc > 0) {
		FUZZ_CHECK((size_t)rc < outlen);
		FUZZ_CHECK(strlen(out) == (size_t)rc);
	}
}

/* Split rest into parts at '\n'. */
struct parts {
	const uint8_t *p[3];
	size_t n[3];
};
static void split(const uint8_t *d, size_t n, struct parts *ps)
{
	int k = 0;

	memset(ps, 0, sizeof(*ps));
	ps->p[0] = d;
	for (size_t i = 0; i < n; i++) {
		if (d[i] == '\n' && k < 2) {
			ps->n[k] = (size_t)(d + i - ps->p[k]);
			ps->p[++k] = d + i + 1;
		}
	}
	ps->n[k] = (size_t)(d + n - ps->p[k]);
}

/* Value after the last "i=" (digits only), or 0. */
static long iterations_asked(const uint8_t *s, size_t n)
{
	long v = 0;
	size_t at = n;

	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == 'i' && s[i + 1] == '=')
			at = i + 2;
	for (size_t i = at; i < n && i < at + 12 && s[i] >= '0' && s[i] <= '9'; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

static void mode_server(const struct parts *ps, int flags, size_t outlen)
{
	struct scram_server st;
	char *out = malloc(outlen);
	size_t n0, n1;
	char *m0, *m1;
	int rc;

	FUZZ_CHECK(out != NULL);
	scram_server_init(&st, &verifier);
	m0 = msg_copy(ps->p[0], ps->n[0], NULL, &n0);
	rc = scram_server_first(&st, m0, n0, out, outlen);
	FUZZ_CHECK(rc > 0 || rc == -EPROTO || rc == -ENOTSUP || rc == -ENOSPC);
	check_out(rc, out, outlen);
	if (rc > 0) {
		FUZZ_CHECK(st.step == 1);
		FUZZ_CHECK(strncmp(out, "r=", 2) == 0);
		FUZZ_CHECK(strstr(out, ",s=") && strstr(out, ",i=4096"));
	} else {
		FUZZ_CHECK(st.step == 2);
	}
	/* a second client-first on the same exchange is always refused */
	FUZZ_CHECK(scram_server_first(&st, m0, n0, out, outlen) == -EPROTO);

	m1 = msg_copy(ps->p[1], ps->n[1], (flags & 0x10) ? st.nonce : NULL, &n1);
	rc = scram_server_final(&st, m1, n1, out, outlen);
	/* no made-up proof may pass */
	FUZZ_CHECK(rc == -EPROTO || rc == -EACCES);
	FUZZ_CHECK(!st.have_client_key);
	FUZZ_CHECK(scram_server_final(&st, m1, n1, out, outlen) == -EPROTO);
	free(m0);
	free(m1);
	free(out);
}

static void mode_client(const struct parts *ps, int flags, size_t outlen, bool password)
{
	struct scram_client st;
	char *out = malloc(outlen);
	size_t n0, n1;
	char *m0, *m1;
	int rc;

	FUZZ_CHECK(out != NULL);
	if (password) {
		if (iterations_asked(ps->p[0], ps->n[0]) > FUZZ_MAX_ITER)
			goto done;
		rc = scram_client_first(&st, "pw", out, outlen);
	} else {
		rc = scram_client_first_keys(&st, client_key, verifier.server_key, out, outlen);
	}
	FUZZ_CHECK(rc > 0 || rc == -ENOSPC);
	check_out(rc, out, outlen);
	if (rc < 0)
		goto done;
	FUZZ_CHECK(strncmp(out, "n,,n=,r=", 8) == 0);

	m0 = msg_copy(ps->p[0], ps->n[0], (flags & 0x10) ? st.client_nonce : NULL, &n0);
	rc = scram_client_final(&st, m0, n0, out, outlen);
	FUZZ_CHECK(rc > 0 || rc == -EPROTO || rc == -ENOSPC || rc == -EINVAL);
	check_out(rc, out, outlen);
	if (rc > 0)
		FUZZ_CHECK(strncmp(out, "c=biws,r=", 9) == 0 && strstr(out, ",p="));
	FUZZ_CHECK(st.step == (rc > 0 ? 2 : 3));

	m1 = msg_copy(ps->p[1], ps->n[1], NULL, &n1);
	rc = scram_client_verify(&st, m1, n1);
	/* the server signature depends on our random nonce: never guessable */
	FUZZ_CHECK(rc == -EPROTO || rc == -EACCES);
	FUZZ_CHECK(st.step == 3);
	FUZZ_CHECK(scram_client_verify(&st, m1, n1) == -EPROTO);
	free(m0);
	free(m1);
done:
	free(out);
}

/* Overwrite bytes of msg as part says: pairs (pos, val); pos 0xff
 * truncates to val % n. Returns true when the message changed. */
static bool mutate(char *msg, size_t *n, const uint8_t *part, size_t pn)
{
	char orig[SCRAM_MAX_MSG * 2];
	size_t on = *n;

	memcpy(orig, msg, on);
	for (size_t i = 0; i + 1 < pn && *n > 0; i += 2) {
		if (part[i] == 0xff)
			*n = part[i + 1] % *n;
		else
			msg[part[i] % *n] = (char)part[i + 1];
	}
	return *n != on || memcmp(orig, msg, *n) != 0;
}

static void mode_roundtrip(const struct parts *ps)
{
	struct scram_client cl;
	struct scram_server sv;
	char cf[SCRAM_MAX_MSG], sf[SCRAM_MAX_MSG], cfin[SCRAM_MAX_MSG], sfin[SCRAM_MAX_MSG];
	char *m;
	size_t n;
	bool changed = false;
	int rc;

	rc = scram_client_first_keys(&cl, client_key, verifier.server_key, cf, sizeof(cf));
	FUZZ_CHECK(rc > 0);
	scram_server_init(&sv, &verifier);
	rc = scram_server_first(&sv, cf, (size_t)rc, sf, sizeof(sf));
	FUZZ_CHECK(rc > 0);

	n = (size_t)rc;
	m = malloc(n);
	memcpy(m, sf, n);
	changed |= mutate(m, &n, ps->p[0], ps->n[0]);
	rc = scram_client_final(&cl, m, n, cfin, sizeof(cfin));
	free(m);
	if (!changed)
		FUZZ_CHECK(rc > 0);
	if (rc <= 0)
		return;

	n = (size_t)rc;
	m = malloc(n);
	memcpy(m, cfin, n);
	changed |= mutate(m, &n, ps->p[1], ps->n[1]);
	rc = scram_server_final(&sv, m, n, sfin, sizeof(sfin));
	free(m);
	if (!changed) {
		FUZZ_CHECK(rc > 0);
		FUZZ_CHECK(sv.have_client_key);
		FUZZ_CHECK(memcmp(sv.client_key, client_key, SCRAM_KEY_LEN) == 0);
	} else {
		/* any change to what was signed must make the proof fail */
		FUZZ_CHECK(rc < 0);
		FUZZ_CHECK(!sv.have_client_key);
		return;
	}

	n = (size_t)rc;
	m = malloc(n);
	memcpy(m, sfin, n);
	changed |= mutate(m, &n, ps->p[2], ps->n[2]);
	rc = scram_client_verify(&cl, m, n);
	free(m);
	FUZZ_CHECK(changed ? rc < 0 : rc == 0);
}

static void mode_raw(const uint8_t *d, size_t n, int flags)
{
	uint8_t dec[SCRAM_MAX_MSG];
	char enc[SCRAM_MAX_MSG * 2];
	size_t cap = (flags & 0x20) ? (size_t)(flags >> 6) * 3 : sizeof(dec);
	char *s;
	int rc;

	/* raw bytes, exact block */
	s = malloc(n ? n : 1);
	FUZZ_CHECK(s != NULL);
	memcpy(s, d, n);
	rc = auth_base64_decode(s, n, dec, cap);
	FUZZ_CHECK(rc >= 0 || rc == -EINVAL || rc == -ENOSPC);
	if (rc >= 0) {
		FUZZ_CHECK((size_t)rc <= cap && n % 4 == 0 && (size_t)rc == n / 4 * 3 - (n && s[n - 1] == '=') - (n > 1 && s[n - 2] == '='));
		/* canonical: the decoded bytes encode back to the same text */
		int e = auth_base64_encode(dec, (size_t)rc, enc, sizeof(enc));
		FUZZ_CHECK(e >= 0 && (size_t)e == n && memcmp(enc, s, n) == 0);
	}
	/* the other direction: any bytes encode and decode back */
	if (n <= sizeof(dec)) {
		int e = auth_base64_encode(d, n, enc, sizeof(enc));
		FUZZ_CHECK(e >= 0 && (size_t)e == (n + 2) / 3 * 4);
		rc = auth_base64_decode(enc, (size_t)e, dec, sizeof(dec));
		FUZZ_CHECK(rc >= 0 && (size_t)rc == n && memcmp(dec, d, n) == 0);
	}
	free(s);

	/* NUL-terminated string view for the secret parsers */
	s = malloc(n + 1);
	FUZZ_CHECK(s != NULL);
	memcpy(s, d, n);
	s[n] = '\0';
	struct scram_verifier v;
	rc = scram_verifier_parse(s, &v);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	FUZZ_CHECK(pg_secret_is_scram(s) == (rc == 0));
	if (rc == 0) {
		char salt[256], sk[64], svk[64], re[1200];

		FUZZ_CHECK(v.iterations >= 1 && v.salt_len >= 1 && v.salt_len <= sizeof(v.salt));
		FUZZ_CHECK(auth_base64_encode(v.salt, v.salt_len, salt, sizeof(salt)) > 0);
		FUZZ_CHECK(auth_base64_encode(v.stored_key, SCRAM_KEY_LEN, sk, sizeof(sk)) > 0);
		FUZZ_CHECK(auth_base64_encode(v.server_key, SCRAM_KEY_LEN, svk, sizeof(svk)) > 0);
		snprintf(re, sizeof(re), "SCRAM-SHA-256$%d:%s$%s:%s", v.iterations, salt, sk, svk);
		/* same text unless the iteration count had leading zeros */
		const char *it = s + 14;
		if (*it != '0')
			FUZZ_CHECK(strcmp(re, s) == 0);
	}
	bool md5 = pg_secret_is_md5(s);
	if (md5)
		FUZZ_CHECK(strlen(s) == 35);

	/* constant-time compare agrees with strcmp on the two halves */
	size_t half = strlen(s) / 2;
	char *a = strndup(s, half), *b = strdup(s + half);
	FUZZ_CHECK(a && b);
	FUZZ_CHECK(auth_str_equal_ct(a, b) == (strcmp(a, b) == 0));
	FUZZ_CHECK(auth_str_equal_ct(s, s));

	char resp[36];
	static const uint8_t salt4[4] = { 1, 2, 3, 4 };
	pg_md5_response(s, "user", salt4, resp);
	FUZZ_CHECK(strlen(resp) == 35 && strncmp(resp, "md5", 3) == 0);
	free(a);
	free(b);
	free(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t salted[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	unsigned int n = 0;

	FUZZ_CHECK(scram_verifier_from_password("pw", &verifier) == 0);
	/* ClientKey the way a client that knows "pw" computes it, so the
	 * pass-through client can run the real exchange without PBKDF2. */
	FUZZ_CHECK(PKCS5_PBKDF2_HMAC("pw", 2, verifier.salt, (int)verifier.salt_len,
				     verifier.iterations, EVP_sha256(), SCRAM_KEY_LEN, salted) == 1);
	FUZZ_CHECK(HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const uint8_t *)"Client Key", 10,
			client_key, &n) && n == SCRAM_KEY_LEN);
	SHA256(client_key, SCRAM_KEY_LEN, stored);
	FUZZ_CHECK(memcmp(stored, verifier.stored_key, SCRAM_KEY_LEN) == 0);

	/* once: the password client completes an exchange with the server */
	struct scram_client cl;
	struct scram_server sv;
	char a[SCRAM_MAX_MSG], b[SCRAM_MAX_MSG];
	int rc = scram_client_first(&cl, "pw", a, sizeof(a));
	FUZZ_CHECK(rc > 0);
	scram_server_init(&sv, &verifier);
	rc = scram_server_first(&sv, a, (size_t)rc, b, sizeof(b));
	FUZZ_CHECK(rc > 0);
	rc = scram_client_final(&cl, b, (size_t)rc, a, sizeof(a));
	FUZZ_CHECK(rc > 0);
	rc = scram_server_final(&sv, a, (size_t)rc, b, sizeof(b));
	FUZZ_CHECK(rc > 0);
	FUZZ_CHECK(scram_client_verify(&cl, b, (size_t)rc) == 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct parts ps;
	int flags;
	size_t outlen;

	if (size < 1)
		return 0;
	flags = data[0];
	outlen = (flags & 0x20) ? 8 + (size_t)(flags >> 6) * 40 : SCRAM_MAX_MSG;
	split(data + 1, size - 1, &ps);
	switch ((flags & 0x0f) % 5) {
	case 0: mode_server(&ps, flags, outlen); break;
	case 1: mode_client(&ps, flags, outlen, false); break;
	case 2: mode_client(&ps, flags, outlen, true); break;
	case 3: mode_roundtrip(&ps); break;
	case 4: mode_raw(data + 1, size - 1, flags); break;
	}
	return 0;
}
