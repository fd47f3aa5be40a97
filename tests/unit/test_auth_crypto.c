/*
 * test_auth_crypto.c - unit tests for src/pg/auth_crypto.c.
 *
 * Known answers come from outside this code: md5 values from md5sum and
 * from a real PostgreSQL 15 (pg_authid), the SCRAM exchange from RFC 7677
 * section 3, and a SCRAM verifier that PostgreSQL 15 itself stored for
 * password 'secret'. The rest are full client<->server exchanges and tables
 * of malformed network input, each of which must give a negative errno and
 * never crash (run under valgrind and -fsanitize=address,undefined).
 */
#include "auth_crypto.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* RFC 7677 section 3 example (user "user", password "pencil"). */
#define RFC_CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CLIENT_NONCE
#define RFC_SERVER_FIRST "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* StoredKey/ServerKey for "pencil" and the RFC salt, computed independently
 * with Python's hashlib/hmac (the RFC does not print them). */
#define RFC_VERIFIER "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

/* SELECT rolpassword FROM pg_authid on PostgreSQL 15 after
 * CREATE ROLE alice LOGIN PASSWORD 'secret' (scram-sha-256). */
#define PG_SCRAM_SECRET "SCRAM-SHA-256$4096:CuSSQQaaJngr6UcvZxRyqw==$" \
	"a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:" \
	"PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k="
/* Same server, password_encryption = md5, CREATE ROLE bob PASSWORD 'secret'. */
#define PG_MD5_SECRET "md521f3163f8f86fa10bdefbfbd502a8f06"

static int slen(const char *s)
{
	return (int)strlen(s);
}

/* ---- md5 ---- */

static void test_md5(void)
{
	static const uint8_t salt[4] = { 1, 2, 3, 4 };
	char out[36];

	/* printf '%s' passworduser | md5sum */
	pg_md5_password_hash("password", "user", out);
	CHECK_STR(out, "md54d45974e13472b5a0be3533de4666414");
	pg_md5_password_hash("secret", "bob", out);
	CHECK_STR(out, PG_MD5_SECRET);

	/* { printf '%s' 21f3...8f06; printf '\x01\x02\x03\x04'; } | md5sum */
	pg_md5_response("secret", "bob", salt, out);
	CHECK_STR(out, "md5f21dfe33ff3a9e03dbc3e008251fe5cc");
	/* an already hashed secret gives the same answer; user is not re-mixed */
	pg_md5_response(PG_MD5_SECRET, "bob", salt, out);
	CHECK_STR(out, "md5f21dfe33ff3a9e03dbc3e008251fe5cc");
	pg_md5_response("secret", "alice", salt, out);
	CHECK(strcmp(out, "md5f21dfe33ff3a9e03dbc3e008251fe5cc") != 0);

	CHECK(pg_secret_is_md5(PG_MD5_SECRET));
	CHECK(!pg_secret_is_md5("md521F3163F8F86FA10BDEFBFBD502A8F06"));
	CHECK(!pg_secret_is_md5("md521f3163f8f86fa10bdefbfbd502a8f0"));
	CHECK(!pg_secret_is_md5("md521f3163f8f86fa10bdefbfbd502a8f066"));
	CHECK(!pg_secret_is_md5("md521f3163f8f86fa10bdefbfbd502a8f0g"));
	CHECK(!pg_secret_is_md5("xyz21f3163f8f86fa10bdefbfbd502a8f06"));
	CHECK(!pg_secret_is_md5("md5"));
	CHECK(!pg_secret_is_md5(""));
	CHECK(!pg_secret_is_md5(NULL));
	CHECK(!pg_secret_is_md5(PG_SCRAM_SECRET));

	CHECK(pg_secret_is_scram(PG_SCRAM_SECRET));
	CHECK(pg_secret_is_scram(RFC_VERIFIER));
	CHECK(!pg_secret_is_scram(PG_MD5_SECRET));
	CHECK(!pg_secret_is_scram("secret"));
	CHECK(!pg_secret_is_scram(NULL));
}

static void test_str_equal_ct(void)
{
	CHECK(auth_str_equal_ct("", ""));
	CHECK(auth_str_equal_ct("secret", "secret"));
	CHECK(!auth_str_equal_ct("secret", "secreT"));
	CHECK(!auth_str_equal_ct("secret", "secret1"));
	CHECK(!auth_str_equal_ct("secret1", "secret"));
	CHECK(!auth_str_equal_ct("", "x"));
	CHECK(!auth_str_equal_ct("x", ""));
	CHECK(!auth_str_equal_ct(NULL, "x"));
	CHECK(!auth_str_equal_ct("x", NULL));
}

/* ---- base64 ---- */

static void test_base64(void)
{
	/* RFC 4648 section 10 */
	static const struct { const char *raw, *b64; } vec[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	static const char *bad[] = {
		"Zg=", "Zg", "Z", "Z===", "====", "=Zm9", "Zm=v", "Zm9v\n", " Zm9", "Zm9v====",
		"Zg==Zg==", "Zm9*", "Zm9-", "Zm9_", "Zm\x80v",
		"Zh==", "Zm9=", "Zm9vYh==",   /* non-canonical: unused bits set */
	};
	char enc[32];
	uint8_t dec[32];

	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		size_t n = strlen(vec[i].raw);

		CHECK(auth_base64_encode((const uint8_t *)vec[i].raw, n, enc, sizeof(enc)) ==
		      slen(vec[i].b64));
		CHECK_STR(enc, vec[i].b64);
		CHECK(auth_base64_decode(vec[i].b64, strlen(vec[i].b64), dec, sizeof(dec)) == (int)n);
		CHECK(memcmp(dec, vec[i].raw, n) == 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = auth_base64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec));

		CHECK(rc == -EINVAL);
		if (rc != -EINVAL)
			fprintf(stderr, "  base64 bad[%zu] gave %d\n", i, rc);
	}
	/* exact output sizes: "Zm9vYg==" is 4 bytes, padding is not counted */
	CHECK(auth_base64_decode("Zm9vYg==", 8, dec, 4) == 4);
	CHECK(auth_base64_decode("Zm9vYg==", 8, dec, 3) == -ENOSPC);
	CHECK(auth_base64_encode((const uint8_t *)"foo", 3, enc, 4) == -ENOSPC);
	CHECK(auth_base64_encode((const uint8_t *)"foo", 3, enc, 5) == 4);
	CHECK(auth_base64_decode(NULL, 4, dec, sizeof(dec)) == -EINVAL);

	/* round trip of every byte value */
	{
		uint8_t all[256], back[256];
		char b[400];

		for (int i = 0; i < 256; i++)
			all[i] = (uint8_t)i;
		CHECK(auth_base64_encode(all, sizeof(all), b, sizeof(b)) == 344);
		CHECK(auth_base64_decode(b, 344, back, sizeof(back)) == 256);
		CHECK(memcmp(all, back, 256) == 0);
	}
}

static void test_random(void)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 }, zero[32] = { 0 };

	CHECK(auth_random_bytes(a, sizeof(a)) == 0);
	CHECK(auth_random_bytes(b, sizeof(b)) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(memcmp(a, zero, sizeof(a)) != 0);
	CHECK(auth_random_bytes(a, 0) == 0);
}

/* ---- verifiers ---- */

static void test_verifier_parse(void)
{
	static const char *bad[] = {
		"",
		"secret",
		PG_MD5_SECRET,
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256",
		"SCRAM-SHA-1$4096:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"scram-sha-256$4096:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		/* iteration count: zero, negative, absurd, not a number, missing */
		"SCRAM-SHA-256$0:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"SCRAM-SHA-256$-1:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"SCRAM-SHA-256$10000001:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"SCRAM-SHA-256$99999999999999999999:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"SCRAM-SHA-256$40x6:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"SCRAM-SHA-256$:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		/* salt: empty, bad base64, longer than 64 bytes */
		"SCRAM-SHA-256$4096:$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"SCRAM-SHA-256$4096:CuSSQQaaJngr6UcvZxRyqw=$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"SCRAM-SHA-256$4096:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		/* keys: wrong length, missing, bad base64, extra field */
		"SCRAM-SHA-256$4096:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5Ij:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"SCRAM-SHA-256$4096:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:",
		"SCRAM-SHA-256$4096:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=",
		"SCRAM-SHA-256$4096:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUX!:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
		"SCRAM-SHA-256$4096:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=:x",
		"SCRAM-SHA-256$4096:CuSSQQaaJngr6UcvZxRyqw==$a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=:PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k= ",
		"SCRAM-SHA-256$4096:CuSSQQaaJngr6UcvZxRyqw==:a4uMTjERj3g0eNsqiJ+EcmCFB5IjhbPJ1w/Wed3nUXg=$PUeNP9KI3kC8YiJnWb0EiUtCn5F+8u3KZKGyUWgUe/k=",
	};
	struct scram_verifier v;
	char longer[2048];

	CHECK(scram_verifier_parse(PG_SCRAM_SECRET, &v) == 0);
	CHECK(v.iterations == 4096);
	CHECK(v.salt_len == 16);
	CHECK(v.stored_key[0] == 0x6b && v.server_key[0] == 0x3d);  /* 'a4uM...', 'PUeN...' */

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = scram_verifier_parse(bad[i], &v);

		CHECK(rc == -EINVAL);
		if (rc != -EINVAL)
			fprintf(stderr, "  verifier bad[%zu] gave %d\n", i, rc);
	}
	CHECK(scram_verifier_parse(NULL, &v) == -EINVAL);
	CHECK(scram_verifier_parse(PG_SCRAM_SECRET, NULL) == -EINVAL);
	memset(longer, 'A', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	memcpy(longer, "SCRAM-SHA-256$4096:", 19);
	CHECK(scram_verifier_parse(longer, &v) == -EINVAL);

	/* fresh verifiers: PostgreSQL's parameters, a new salt each time */
	{
		struct scram_verifier a, b;

		CHECK(scram_verifier_from_password("pw", &a) == 0);
		CHECK(scram_verifier_from_password("pw", &b) == 0);
		CHECK(a.iterations == 4096 && a.salt_len == 16);
		CHECK(memcmp(a.salt, b.salt, 16) != 0);
		CHECK(memcmp(a.stored_key, b.stored_key, SCRAM_KEY_LEN) != 0);
		CHECK(scram_verifier_from_password(NULL, &a) == -EINVAL);
	}
}

/* ---- RFC 7677 known answers ---- */

/* Put a client in the state scram_client_first would leave it in, but with
 * the RFC's nonce and user name instead of random ones. */
static void rfc_client(struct scram_client *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->password, "pencil");
	strcpy(c->client_nonce, RFC_CLIENT_NONCE);
	strcpy(c->client_first_bare, "n=user,r=" RFC_CLIENT_NONCE);
	c->step = 1;
}

static void test_rfc7677(void)
{
	struct scram_client c;
	struct scram_verifier v;
	struct scram_server s;
	char out[SCRAM_MAX_MSG];
	int n;

	/* client side: the proof and the expected server signature */
	rfc_client(&c);
	n = scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out, sizeof(out));
	CHECK(n == slen(RFC_CLIENT_FINAL));
	CHECK_STR(out, RFC_CLIENT_FINAL);
	CHECK_STR(c.expected_server_sig, &RFC_SERVER_FINAL[2]);
	CHECK(c.password[0] == '\0');   /* wiped once SaltedPassword exists */
	CHECK(scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)) == 0);
	CHECK(c.step == 3);
	/* the exchange is over: a second answer is a protocol error */
	CHECK(scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)) == -EPROTO);

	/* client side: a forged server signature (last digit changed) */
	rfc_client(&c);
	CHECK(scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out,
				 sizeof(out)) > 0);
	CHECK(scram_client_verify(&c, "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
				  strlen(RFC_SERVER_FINAL)) == -EACCES);
	/* same 32 bytes, but the unused low bits of the last digit set: the
	 * strict decoder refuses the non-canonical form */
	rfc_client(&c);
	CHECK(scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out,
				 sizeof(out)) > 0);
	CHECK(scram_client_verify(&c, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=",
				  strlen(RFC_SERVER_FINAL)) == -EPROTO);

	/* client side: the output buffer is checked */
	rfc_client(&c);
	CHECK(scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), out,
				 strlen(RFC_CLIENT_FINAL)) == -ENOSPC);

	/* server side: the verifier (StoredKey, ServerKey) accepts the RFC proof
	 * and answers with the RFC signature */
	CHECK(scram_verifier_parse(RFC_VERIFIER, &v) == 0);
	scram_server_init(&s, &v);
	n = scram_server_first(&s, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST), out, sizeof(out));
	CHECK(n > 0);
	CHECK(strncmp(out, "r=" RFC_CLIENT_NONCE, strlen("r=" RFC_CLIENT_NONCE)) == 0);
	CHECK(strstr(out, ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") != NULL);
	CHECK(strlen(s.nonce) == strlen(RFC_CLIENT_NONCE) + 24);
	CHECK_STR(s.client_first_bare, "n=user,r=" RFC_CLIENT_NONCE);
	/* our server nonce is random; substitute the RFC's */
	strcpy(s.nonce, RFC_NONCE);
	strcpy(s.server_first, RFC_SERVER_FIRST);
	n = scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof(out));
	CHECK(n == slen(RFC_SERVER_FINAL));
	CHECK_STR(out, RFC_SERVER_FINAL);
	CHECK(s.step == 2);
	/* no second try on the same exchange */
	CHECK(scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
				 sizeof(out)) == -EPROTO);
}

/* ---- full exchanges ---- */

/* Run client(password) against server(v). Returns the first failure code
 * (from whichever side failed) or 0 when both sides are satisfied. */
static int exchange(const char *password, const struct scram_verifier *v)
{
	struct scram_client c;
	struct scram_server s;
	char m1[SCRAM_MAX_MSG], m2[SCRAM_MAX_MSG], m3[SCRAM_MAX_MSG], m4[SCRAM_MAX_MSG];
	int n1, n2, n3, n4;

	scram_server_init(&s, v);
	n1 = scram_client_first(&c, password, m1, sizeof(m1));
	if (n1 < 0)
		return n1;
	if (strncmp(m1, "n,,n=,r=", 8) != 0 || n1 != 8 + 24)
		return -1000;
	n2 = scram_server_first(&s, m1, (size_t)n1, m2, sizeof(m2));
	if (n2 < 0)
		return n2;
	n3 = scram_client_final(&c, m2, (size_t)n2, m3, sizeof(m3));
	if (n3 < 0)
		return n3;
	n4 = scram_server_final(&s, m3, (size_t)n3, m4, sizeof(m4));
	if (n4 < 0)
		return n4;
	return scram_client_verify(&c, m4, (size_t)n4);
}

static void test_exchange(void)
{
	struct scram_verifier v, pg;

	CHECK(scram_verifier_from_password("hunter2", &v) == 0);
	CHECK(exchange("hunter2", &v) == 0);
	CHECK(exchange("hunter3", &v) == -EACCES);
	CHECK(exchange("", &v) == -EACCES);

	/* the verifier PostgreSQL 15 stored for 'secret' */
	CHECK(scram_verifier_parse(PG_SCRAM_SECRET, &pg) == 0);
	CHECK(exchange("secret", &pg) == 0);
	CHECK(exchange("wrong", &pg) == -EACCES);
	CHECK(exchange("Secret", &pg) == -EACCES);

	/* a server without a verifier refuses to start */
	{
		struct scram_server s;
		char out[SCRAM_MAX_MSG];

		scram_server_init(&s, NULL);
		CHECK(scram_server_first(&s, "n,,n=,r=abc", 11, out, sizeof(out)) == -EINVAL);
	}
	/* password longer than the client can hold */
	{
		struct scram_client c;
		char big[300], out[SCRAM_MAX_MSG];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		CHECK(scram_client_first(&c, big, out, sizeof(out)) == -EINVAL);
		CHECK(scram_client_first(&c, "pw", out, 10) == -ENOSPC);
	}
}

/* Client-first with gs2 header "y,,": the client supports channel binding
 * but thinks we do not. libpq then sends c=eSws (base64 "y,,"); we build
 * that proof here with OpenSSL, from the SaltedPassword our client derived. */
static int proof_for(const uint8_t salted[SCRAM_KEY_LEN], const char *auth_msg, char *b64,
		     size_t b64len)
{
	uint8_t ck[32], sk[32], sig[32], proof[32];
	unsigned int n;

	HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const uint8_t *)"Client Key", 10, ck, &n);
	EVP_Digest(ck, sizeof(ck), sk, &n, EVP_sha256(), NULL);
	HMAC(EVP_sha256(), sk, 32, (const uint8_t *)auth_msg, strlen(auth_msg), sig, &n);
	for (int i = 0; i < 32; i++)
		proof[i] = ck[i] ^ sig[i];
	return auth_base64_encode(proof, sizeof(proof), b64, b64len);
}

static void test_gs2_y(void)
{
	struct scram_verifier v;
	struct scram_server s;
	struct scram_client c;
	char m1[SCRAM_MAX_MSG], m2[SCRAM_MAX_MSG], m3[2 * SCRAM_MAX_MSG], m4[SCRAM_MAX_MSG];
	char wo[SCRAM_MAX_MSG], am[3 * SCRAM_MAX_MSG], p64[64];
	int n1, n2, n3;

	CHECK(scram_verifier_parse(PG_SCRAM_SECRET, &v) == 0);

	/* "y,," + c=biws (what our client computes) is accepted */
	scram_server_init(&s, &v);
	n1 = scram_client_first(&c, "secret", m1, sizeof(m1));
	m1[0] = 'y';
	n2 = scram_server_first(&s, m1, (size_t)n1, m2, sizeof(m2));
	CHECK(n2 > 0);
	n3 = scram_client_final(&c, m2, (size_t)n2, m3, sizeof(m3));
	CHECK(n3 > 0);
	CHECK(scram_server_final(&s, m3, (size_t)n3, m4, sizeof(m4)) > 0);

	/* "y,," + c=eSws, as libpq sends it over TLS without -PLUS */
	scram_server_init(&s, &v);
	n1 = scram_client_first(&c, "secret", m1, sizeof(m1));
	m1[0] = 'y';
	n2 = scram_server_first(&s, m1, (size_t)n1, m2, sizeof(m2));
	CHECK(n2 > 0);
	n3 = scram_client_final(&c, m2, (size_t)n2, m3, sizeof(m3));
	CHECK(n3 > 0);
	snprintf(wo, sizeof(wo), "c=eSws,r=%s", s.nonce);
	snprintf(am, sizeof(am), "%s,%s,%s", c.client_first_bare, m2, wo);
	CHECK(proof_for(c.salted_password, am, p64, sizeof(p64)) == 44);
	snprintf(m3, sizeof(m3), "%s,p=%s", wo, p64);
	CHECK(scram_server_final(&s, m3, strlen(m3), m4, sizeof(m4)) > 0);

	/* c= is signed: swapping biws for eSws without a new proof fails */
	scram_server_init(&s, &v);
	n1 = scram_client_first(&c, "secret", m1, sizeof(m1));
	m1[0] = 'y';
	n2 = scram_server_first(&s, m1, (size_t)n1, m2, sizeof(m2));
	n3 = scram_client_final(&c, m2, (size_t)n2, m3, sizeof(m3));
	CHECK(n2 > 0 && n3 > 0 && strncmp(m3, "c=biws,", 7) == 0);
	memcpy(m3, "c=eSws", 6);
	CHECK(scram_server_final(&s, m3, (size_t)n3, m4, sizeof(m4)) == -EACCES);
}

/* ---- malformed network input ---- */

/* server-first-message as seen by the client. %N is replaced by our client
 * nonce. */
static void test_bad_server_first(void)
{
	static const struct { const char *msg; int want; } tab[] = {
		{ "", -EPROTO },
		{ "r=%N", -EPROTO },
		{ "r=%Nxyz", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92,i=", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92,i=0", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92,i=-1", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92,i=+5", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92,i=10000001", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92,i=99999999999999999999999", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92,i=4096x", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92,i=4096,", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf92,i=4096,x=ext", -EPROTO },
		{ "m=ext,r=%Nxyz,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
		{ "s=QSXCR+Q6sek8bf92,r=%Nxyz,i=4096", -EPROTO },
		{ "r=%Nxyz,i=4096,s=QSXCR+Q6sek8bf92", -EPROTO },
		/* salt: empty, bad base64, wrong padding */
		{ "r=%Nxyz,s=,i=4096", -EPROTO },
		{ "r=%Nxyz,s=QSXCR+Q6sek8bf9,i=4096", -EPROTO },
		{ "r=%Nxyz,s=QSXC!+Q6sek8bf92,i=4096", -EPROTO },
		{ "r=%Nxyz,s====,i=4096", -EPROTO },
		/* nonce: not ours, only ours (no server part), truncated, unprintable */
		{ "r=AAAAAAAAAAAAAAAAAAAAAAAAxyz,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
		{ "r=%N,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
		{ "r=xyz,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
		{ "r=%Nx z,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
		{ "r=%Nx\x7fz,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
		{ "r=,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
		{ "R=%Nxyz,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
		{ "r%Nxyz,s=QSXCR+Q6sek8bf92,i=4096", -EPROTO },
		{ "e=other-error", -EPROTO },
	};
	struct scram_client c;
	char first[SCRAM_MAX_MSG], msg[2 * SCRAM_MAX_MSG], out[SCRAM_MAX_MSG];

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		const char *t = tab[i].msg, *mark = strstr(t, "%N");
		int rc;

		CHECK(scram_client_first(&c, "pw", first, sizeof(first)) > 0);
		if (mark)
			snprintf(msg, sizeof(msg), "%.*s%s%s", (int)(mark - t), t, c.client_nonce,
				 mark + 2);
		else
			snprintf(msg, sizeof(msg), "%s", t);
		rc = scram_client_final(&c, msg, strlen(msg), out, sizeof(out));
		CHECK(rc == tab[i].want);
		if (rc != tab[i].want)
			fprintf(stderr, "  server-first[%zu] '%s' gave %d\n", i, msg, rc);
		CHECK(c.password[0] == '\0');    /* a dead exchange keeps no password */
		/* and the dead exchange cannot be continued */
		CHECK(scram_client_verify(&c, "v=AAAA", 6) == -EPROTO);
	}

	/* too long, embedded NUL, valid one with a small iteration count */
	{
		char big[SCRAM_MAX_MSG + 64];
		int n;

		CHECK(scram_client_first(&c, "pw", first, sizeof(first)) > 0);
		n = snprintf(big, sizeof(big), "r=%s", c.client_nonce);
		memset(big + n, 'x', sizeof(big) - (size_t)n - 1);
		big[sizeof(big) - 1] = '\0';
		memcpy(big + SCRAM_MAX_MSG - 30, ",s=QSXCR+Q6sek8bf92,i=1", 23);
		CHECK(scram_client_final(&c, big, SCRAM_MAX_MSG, out, sizeof(out)) == -EPROTO);

		CHECK(scram_client_first(&c, "pw", first, sizeof(first)) > 0);
		n = snprintf(msg, sizeof(msg), "r=%sxyz,s=QSXCR+Q6sek8bf92,i=1", c.client_nonce);
		msg[n - 1] = '\0';   /* "i=\0" */
		CHECK(scram_client_final(&c, msg, (size_t)n, out, sizeof(out)) == -EPROTO);

		CHECK(scram_client_first(&c, "pw", first, sizeof(first)) > 0);
		n = snprintf(msg, sizeof(msg), "r=%sxyz,s=QSXCR+Q6sek8bf92,i=1", c.client_nonce);
		CHECK(scram_client_final(&c, msg, (size_t)n, out, sizeof(out)) > 0);

		/* a server nonce so long the client-final would not fit */
		CHECK(scram_client_first(&c, "pw", first, sizeof(first)) > 0);
		n = snprintf(msg, sizeof(msg), "r=%s", c.client_nonce);
		memset(msg + n, 'x', 440);
		snprintf(msg + n + 440, sizeof(msg) - (size_t)n - 440, ",s=QSXCR+Q6sek8bf92,i=1");
		CHECK(strlen(msg) < SCRAM_MAX_MSG);
		CHECK(scram_client_final(&c, msg, strlen(msg), out, sizeof(out)) == -EPROTO);
	}
	/* out of order: final before first */
	memset(&c, 0, sizeof(c));
	CHECK(scram_client_final(&c, "r=x,s=QSXCR+Q6sek8bf92,i=1", 26, out, sizeof(out)) == -EPROTO);
}

/* server-final-message as seen by the client, after a real exchange. */
static void test_bad_server_final(void)
{
	struct scram_verifier v;
	struct scram_server s;
	struct scram_client c;
	char m1[SCRAM_MAX_MSG], m2[SCRAM_MAX_MSG], m3[SCRAM_MAX_MSG], good[SCRAM_MAX_MSG];
	char msg[2 * SCRAM_MAX_MSG];
	/* %V is replaced by the right signature */
	static const struct { const char *msg; int want; } tab[] = {
		{ "", -EPROTO },
		{ "v=", -EPROTO },
		{ "v", -EPROTO },
		{ "x=%V", -EPROTO },
		{ "V=%V", -EPROTO },
		{ "v=!!!!", -EPROTO },
		{ "v=AAAA", -EPROTO },                 /* 3 bytes, not 32 */
		{ "v=%VAAAA", -EPROTO },               /* 35 bytes */
		{ "v=%V,x=ext", -EPROTO },
		{ "v=%V,", -EPROTO },
		{ " v=%V", -EPROTO },
		{ "e=invalid-proof", -EACCES },
		{ "e=", -EACCES },
		{ "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", -EACCES },
		{ "v=%V", 0 },
	};

	CHECK(scram_verifier_from_password("pw", &v) == 0);
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		const char *t = tab[i].msg, *mark = strstr(t, "%V");
		int n1, n2, n3, rc;

		scram_server_init(&s, &v);
		n1 = scram_client_first(&c, "pw", m1, sizeof(m1));
		n2 = scram_server_first(&s, m1, (size_t)n1, m2, sizeof(m2));
		n3 = scram_client_final(&c, m2, (size_t)n2, m3, sizeof(m3));
		CHECK(scram_server_final(&s, m3, (size_t)n3, good, sizeof(good)) > 0);
		if (mark)
			snprintf(msg, sizeof(msg), "%.*s%s%s", (int)(mark - t), t, good + 2, mark + 2);
		else
			snprintf(msg, sizeof(msg), "%s", t);
		rc = scram_client_verify(&c, msg, strlen(msg));
		CHECK(rc == tab[i].want);
		if (rc != tab[i].want)
			fprintf(stderr, "  server-final[%zu] '%s' gave %d\n", i, msg, rc);
		/* secrets are gone after the verdict */
		CHECK(c.expected_server_sig[0] == '\0');
	}
}

/* client-first-message as seen by the server. */
static void test_bad_client_first(void)
{
	static const struct { const char *msg; int want; } tab[] = {
		{ "n,,n=,r=abc", 1 },
		{ "y,,n=,r=abc", 1 },
		{ "n,,n=someone,r=abc", 1 },            /* user name is ignored */
		{ "n,,n=,r=abc,x=ext", 1 },             /* extensions are ignored */
		{ "p=tls-server-end-point,,n=,r=abc", -ENOTSUP },
		{ "p=tls-unique,,n=,r=abc", -ENOTSUP },
		{ "", -EPROTO },
		{ "n", -EPROTO },
		{ "n,", -EPROTO },
		{ "n,,", -EPROTO },
		{ "x,,n=,r=abc", -EPROTO },
		{ "N,,n=,r=abc", -EPROTO },
		{ "n,n=,r=abc", -EPROTO },
		{ ",,n=,r=abc", -EPROTO },
		{ "p,,n=,r=abc", -EPROTO },
		{ "n,a=bob,n=,r=abc", -EPROTO },
		{ "n,,r=abc", -EPROTO },
		{ "n,,n=", -EPROTO },
		{ "n,,n=,", -EPROTO },
		{ "n,,n=,r=", -EPROTO },
		{ "n,,n=,r", -EPROTO },
		{ "n,,n=,r=ab c", -EPROTO },
		{ "n,,n=,r=ab\tc", -EPROTO },
		{ "n,,n=,r=ab\xff", -EPROTO },
		{ "n,,n=,r=abc,", -EPROTO },
		{ "n,,n=,r=abc,,x=1", -EPROTO },
		{ "n,,n=,r=abc,1=x", -EPROTO },
		{ "n,,n=,r=abc,xx", -EPROTO },
		{ "n,,m=ext,n=,r=abc", -EPROTO },
		{ "n,,n=,x=ext,r=abc", -EPROTO },
		{ "n,,r=abc,n=", -EPROTO },
	};
	struct scram_verifier v;
	struct scram_server s;
	char out[SCRAM_MAX_MSG];

	CHECK(scram_verifier_parse(PG_SCRAM_SECRET, &v) == 0);
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		int rc;

		scram_server_init(&s, &v);
		rc = scram_server_first(&s, tab[i].msg, strlen(tab[i].msg), out, sizeof(out));
		if (tab[i].want > 0) {
			CHECK(rc > 0);
			CHECK(s.step == 1);
		} else {
			CHECK(rc == tab[i].want);
			CHECK(s.step == 2);   /* the exchange is spent */
		}
		if ((tab[i].want > 0) != (rc > 0) || (tab[i].want <= 0 && rc != tab[i].want))
			fprintf(stderr, "  client-first[%zu] '%s' gave %d\n", i, tab[i].msg, rc);
	}

	/* too long, embedded NUL, nonce too long for our buffer, twice */
	{
		char big[SCRAM_MAX_MSG + 16];

		memset(big, 'a', sizeof(big));
		memcpy(big, "n,,n=,r=", 8);
		scram_server_init(&s, &v);
		CHECK(scram_server_first(&s, big, SCRAM_MAX_MSG, out, sizeof(out)) == -EPROTO);
		scram_server_init(&s, &v);
		CHECK(scram_server_first(&s, big, 200, out, sizeof(out)) == -EPROTO);
		scram_server_init(&s, &v);
		CHECK(scram_server_first(&s, big, 100, out, sizeof(out)) > 0);
		scram_server_init(&s, &v);
		CHECK(scram_server_first(&s, "n,,n=,r=abc\0", 12, out, sizeof(out)) == -EPROTO);
		scram_server_init(&s, &v);
		CHECK(scram_server_first(&s, "n,,n=\0,r=abc", 12, out, sizeof(out)) == -EPROTO);
		scram_server_init(&s, &v);
		CHECK(scram_server_first(&s, "n,,n=,r=abc", 11, out, 10) == -ENOSPC);
		scram_server_init(&s, &v);
		CHECK(scram_server_first(&s, "n,,n=,r=abc", 11, out, sizeof(out)) > 0);
		CHECK(scram_server_first(&s, "n,,n=,r=abc", 11, out, sizeof(out)) == -EPROTO);
	}
}

/* client-final-message as seen by the server. %N is the nonce the server
 * issued, %P the right proof for it. */
static void test_bad_client_final(void)
{
	static const struct { const char *msg; int want; } tab[] = {
		{ "c=biws,r=%N,p=%P", 1 },
		{ "c=biws,r=%N,x=ext,p=%P", -EACCES },  /* extension is signed: old proof wrong */
		{ "", -EPROTO },
		{ "c=biws", -EPROTO },
		{ "c=biws,r=%N", -EPROTO },
		{ "c=biws,r=%N,", -EPROTO },
		{ "c=biws,r=%N,p=", -EPROTO },
		{ "c=biws,r=%N,p=%P,", -EPROTO },
		{ "c=biws,r=%N,p=%P,x=1", -EPROTO },
		{ "c=biws,r=%N,p=!!!!", -EPROTO },
		{ "c=biws,r=%N,p=AAAA", -EPROTO },
		{ "c=biws,r=%N,p=%PAAAA", -EPROTO },
		{ "c=biws,r=%N,1=x,p=%P", -EPROTO },
		{ "c=biws,p=%P,r=%N", -EPROTO },
		{ "r=%N,c=biws,p=%P", -EPROTO },
		{ "r=%N,p=%P", -EPROTO },
		{ "c=,r=%N,p=%P", -EPROTO },
		{ "c=bi,r=%N,p=%P", -EPROTO },
		{ "c=biwsbiws,r=%N,p=%P", -EPROTO },
		{ "c=cCwsAAAA,r=%N,p=%P", -EPROTO },  /* "p,," + binding data */
		{ "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=%N,p=%P", -EPROTO },
		{ "c=BIWS,r=%N,p=%P", -EPROTO },
		{ "c=biws,r=%Nx,p=%P", -EPROTO },       /* nonce not the one issued */
		{ "c=biws,r=x%N,p=%P", -EPROTO },
		{ "c=biws,r=abc,p=%P", -EPROTO },       /* client part only */
		{ "c=biws,r=,p=%P", -EPROTO },
		{ "c=biws,r=%N,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", -EACCES },
	};
	struct scram_verifier v;
	struct scram_server s;
	struct scram_client c;
	char m1[SCRAM_MAX_MSG], m2[SCRAM_MAX_MSG], m3[SCRAM_MAX_MSG], out[SCRAM_MAX_MSG];
	char msg[3 * SCRAM_MAX_MSG];

	CHECK(scram_verifier_parse(PG_SCRAM_SECRET, &v) == 0);
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		const char *t = tab[i].msg, *proof;
		size_t o = 0;
		int n2, n3, rc;

		/* the client sends r=abc so that "client part only" is testable */
		scram_server_init(&s, &v);
		n2 = scram_server_first(&s, "n,,n=,r=abc", 11, m2, sizeof(m2));
		CHECK(n2 > 0);
		/* get the right proof from our client, primed with the same nonce */
		memset(&c, 0, sizeof(c));
		strcpy(c.password, "secret");
		strcpy(c.client_nonce, "abc");
		strcpy(c.client_first_bare, "n=,r=abc");
		c.step = 1;
		n3 = scram_client_final(&c, m2, (size_t)n2, m3, sizeof(m3));
		CHECK(n3 > 0);
		proof = strstr(m3, ",p=") + 3;

		for (const char *p = t; *p && o + 100 < sizeof(msg); p++) {
			if (p[0] == '%' && p[1] == 'N') {
				o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s", s.nonce);
				p++;
			} else if (p[0] == '%' && p[1] == 'P') {
				o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s", proof);
				p++;
			} else {
				msg[o++] = *p;
			}
		}
		msg[o] = '\0';
		rc = scram_server_final(&s, msg, o, out, sizeof(out));
		if (tab[i].want > 0)
			CHECK(rc > 0 && scram_client_verify(&c, out, (size_t)rc) == 0);
		else
			CHECK(rc == tab[i].want);
		if ((tab[i].want > 0) != (rc > 0) || (tab[i].want <= 0 && rc != tab[i].want))
			fprintf(stderr, "  client-final[%zu] '%s' gave %d\n", i, msg, rc);
		CHECK(s.step == 2);
	}

	/* out of order, too long, NUL */
	{
		char big[SCRAM_MAX_MSG + 16];

		scram_server_init(&s, &v);
		CHECK(scram_server_final(&s, "c=biws,r=abc,p=AAAA", 19, out, sizeof(out)) == -EPROTO);
		memset(big, 'a', sizeof(big));
		memcpy(big, "c=biws,r=", 9);
		scram_server_init(&s, &v);
		CHECK(scram_server_first(&s, "n,,n=,r=abc", 11, m1, sizeof(m1)) > 0);
		CHECK(scram_server_final(&s, big, sizeof(big), out, sizeof(out)) == -EPROTO);
		scram_server_init(&s, &v);
		CHECK(scram_server_first(&s, "n,,n=,r=abc", 11, m1, sizeof(m1)) > 0);
		CHECK(scram_server_final(&s, "c=biws\0,r=", 10, out, sizeof(out)) == -EPROTO);
	}
}

/* Byte-flip every position of valid messages: nothing may crash, and a
 * changed message must never be accepted. */
static void test_mutations(void)
{
	struct scram_verifier v;
	struct scram_server s;
	struct scram_client c;
	char m1[SCRAM_MAX_MSG], m2[SCRAM_MAX_MSG], m3[SCRAM_MAX_MSG], m4[SCRAM_MAX_MSG];
	char mut[SCRAM_MAX_MSG], out[SCRAM_MAX_MSG];
	static const char flips[] = { ',', '=', '\0', 'A', '/', 'r', ' ' };
	int n1, n2, n3, n4, accepted = 0;

	/* password "pw", salt "salt", one iteration (Python hashlib), which
	 * keeps this loop fast under valgrind */
	CHECK(scram_verifier_parse("SCRAM-SHA-256$1:c2FsdA==$"
				   "+EaynuuIE+kNZZ7GoE+pnzQv/5kf+e05InypZOPMcIE=:"
				   "9LdCgiZ+Gt0s2YxnZ2fWVfxA3EC8ywjX8pP+wYqiW8c=", &v) == 0);
	scram_server_init(&s, &v);
	n1 = scram_client_first(&c, "pw", m1, sizeof(m1));
	n2 = scram_server_first(&s, m1, (size_t)n1, m2, sizeof(m2));
	CHECK(n1 > 0 && n2 > 0);
	n3 = scram_client_final(&c, m2, (size_t)n2, m3, sizeof(m3));
	CHECK(n3 > 0);
	/* the unmodified messages are accepted (copies: each side is one-shot) */
	{
		struct scram_server ss = s;
		struct scram_client cc = c;

		n4 = scram_server_final(&ss, m3, (size_t)n3, m4, sizeof(m4));
		CHECK(n4 > 0);
		CHECK(scram_client_verify(&cc, m4, (size_t)n4) == 0);
	}

	for (int i = 0; i < n2; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			struct scram_client cc;
			char first[SCRAM_MAX_MSG];
			int rc;

			if (m2[i] == flips[f])
				continue;
			/* a fresh client, then graft the original nonce back in */
			scram_client_first(&cc, "pw", first, sizeof(first));
			strcpy(cc.client_nonce, c.client_nonce);
			snprintf(cc.client_first_bare, sizeof(cc.client_first_bare), "n=,r=%s",
				 c.client_nonce);
			memcpy(mut, m2, (size_t)n2);
			mut[i] = flips[f];
			rc = scram_client_final(&cc, mut, (size_t)n2, out, sizeof(out));
			/* flips inside the server's nonce part or the salt may stay valid */
			CHECK(rc < 0 || rc > 0);
		}
	}
	for (int i = 0; i < n3; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			struct scram_server ss = s;
			int rc;

			if (m3[i] == flips[f])
				continue;
			memcpy(mut, m3, (size_t)n3);
			mut[i] = flips[f];
			rc = scram_server_final(&ss, mut, (size_t)n3, out, sizeof(out));
			if (rc >= 0)
				accepted++;
		}
	}
	CHECK(accepted == 0);
	for (int i = 0; i < n1; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			struct scram_server ss;

			scram_server_init(&ss, &v);
			memcpy(mut, m1, (size_t)n1);
			mut[i] = flips[f];
			(void)scram_server_first(&ss, mut, (size_t)n1, out, sizeof(out));
		}
	}
	accepted = 0;
	for (int i = 0; i < n4; i++) {
		for (size_t f = 0; f < sizeof(flips); f++) {
			struct scram_client cc = c;

			if (m4[i] == flips[f])
				continue;
			memcpy(mut, m4, (size_t)n4);
			mut[i] = flips[f];
			if (scram_client_verify(&cc, mut, (size_t)n4) == 0)
				accepted++;
		}
	}
	CHECK(accepted == 0);
}

UNIT_MAIN(
	test_md5();
	test_str_equal_ct();
	test_base64();
	test_random();
	test_verifier_parse();
	test_rfc7677();
	test_exchange();
	test_gs2_y();
	test_bad_server_first();
	test_bad_server_final();
	test_bad_client_first();
	test_bad_client_final();
	test_mutations()
)
