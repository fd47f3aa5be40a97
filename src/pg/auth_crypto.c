/*
 * auth_crypto.c - PostgreSQL password hashing (md5) and both halves of the
 * SCRAM-SHA-256 exchange (RFC 5802, RFC 7677; PostgreSQL protocol section
 * 55.3.1 "SCRAM-SHA-256 Authentication").
 *
 * Owns: pure functions over caller-supplied buffers and state structs. Every
 * digest, HMAC, PBKDF2 and random byte comes from OpenSSL; only base64
 * decoding and hex formatting are done here, because they must be strict and
 * bounded (EVP_DecodeBlock neither rejects misplaced padding nor reports the
 * real decoded length).
 * Must not: do I/O, log, keep globals, or put a secret (password, hash, key,
 * proof) anywhere but the caller's buffers. Secrets on our stack are wiped
 * with OPENSSL_cleanse before returning.
 *
 * Every SCRAM message handed to us came off the network, from a client we
 * do not trust yet or from a server we have not authenticated yet. Parsers
 * therefore take (pointer, length), refuse anything longer than
 * SCRAM_MAX_MSG - 1 bytes or holding a NUL, and walk the text with an
 * explicit end pointer: nothing is assumed to be NUL-terminated.
 */
#include "auth_crypto.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* Upper bound on an iteration count we are willing to run PBKDF2 for. A
 * hostile server could otherwise make every login burn seconds of CPU. */
#define SCRAM_MAX_ITERATIONS 10000000
/* What PostgreSQL uses for new verifiers (scram_iterations default, and
 * SCRAM_DEFAULT_SALT_LEN). */
#define SCRAM_DEFAULT_ITERATIONS 4096
#define SCRAM_DEFAULT_SALT_LEN 16
/* Longest verifier text we parse; a real one is about 130 characters. */
#define SCRAM_MAX_VERIFIER 1024
/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof,
 * each bounded by SCRAM_MAX_MSG. */
#define SCRAM_AUTH_MSG_MAX (3 * SCRAM_MAX_MSG)

/* ------------------------------------------------------------------ */
/* small helpers                                                      */
/* ------------------------------------------------------------------ */

static void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

/* SHA-256 of one buffer. Returns 0 or -EIO. */
static int sha256(const uint8_t *in, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	if (EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) != 1 || n != SCRAM_KEY_LEN)
		return -EIO;
	return 0;
}

/* HMAC-SHA-256. Returns 0 or -EIO. */
static int hmac_sha256(const uint8_t *key, size_t keylen, const void *data, size_t len,
		       uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	if (keylen > INT_MAX)
		return -EIO;
	if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n) || n != SCRAM_KEY_LEN)
		return -EIO;
	return 0;
}

/* SaltedPassword := Hi(password, salt, i), i.e. PBKDF2-HMAC-SHA-256.
 * The password is used as raw bytes: SASLprep maps printable ASCII to itself,
 * and PostgreSQL falls back to the raw bytes whenever SASLprep rejects the
 * input, so plain ASCII passwords agree with the server. Non-ASCII passwords
 * that SASLprep would normalise do not (known limitation, see header). */
static int scram_salted_password(const char *password, const uint8_t *salt, size_t salt_len,
				 int iterations, uint8_t out[SCRAM_KEY_LEN])
{
	size_t plen = strlen(password);

	if (plen > INT_MAX || salt_len > INT_MAX || iterations < 1)
		return -EINVAL;
	if (PKCS5_PBKDF2_HMAC(password, (int)plen, salt, (int)salt_len, iterations,
			      EVP_sha256(), SCRAM_KEY_LEN, out) != 1)
		return -EIO;
	return 0;
}

/* ClientKey, StoredKey and ServerKey from SaltedPassword (RFC 5802 section 3).
 * client_key may be NULL when the caller does not need it. */
static int scram_derive_keys(const uint8_t salted[SCRAM_KEY_LEN], uint8_t *client_key,
			     uint8_t stored_key[SCRAM_KEY_LEN], uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t ck[SCRAM_KEY_LEN];
	int rc;

	rc = hmac_sha256(salted, SCRAM_KEY_LEN, "Client Key", 10, ck);
	if (rc == 0)
		rc = sha256(ck, sizeof(ck), stored_key);
	if (rc == 0)
		rc = hmac_sha256(salted, SCRAM_KEY_LEN, "Server Key", 10, server_key);
	if (rc == 0 && client_key)
		memcpy(client_key, ck, sizeof(ck));
	OPENSSL_cleanse(ck, sizeof(ck));
	return rc;
}

/* Append n bytes of s to buf (capacity cap, fill *pos), keeping it
 * NUL-terminated. Returns 0 or -ENOSPC. */
static int buf_append(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
	if (cap == 0 || *pos >= cap || n > cap - *pos - 1)
		return -ENOSPC;
	memcpy(buf + *pos, s, n);
	*pos += n;
	buf[*pos] = '\0';
	return 0;
}

static int buf_append_str(char *buf, size_t cap, size_t *pos, const char *s)
{
	return buf_append(buf, cap, pos, s, strlen(s));
}

/* AuthMessage := client-first-message-bare "," server-first-message ","
 *                client-final-message-without-proof   (RFC 5802 section 3) */
static int scram_auth_message(const char *client_first_bare, const char *server_first,
			      const char *final_wo_proof, size_t final_len,
			      char *out, size_t cap, size_t *out_len)
{
	size_t pos = 0;
	int rc;

	rc = buf_append_str(out, cap, &pos, client_first_bare);
	if (rc == 0)
		rc = buf_append(out, cap, &pos, ",", 1);
	if (rc == 0)
		rc = buf_append_str(out, cap, &pos, server_first);
	if (rc == 0)
		rc = buf_append(out, cap, &pos, ",", 1);
	if (rc == 0)
		rc = buf_append(out, cap, &pos, final_wo_proof, final_len);
	*out_len = pos;
	return rc;
}

/* A network message is acceptable to look at only if it fits our buffers
 * (with room for a NUL) and carries no NUL of its own, which would make the
 * copies we keep disagree with what was signed. */
static bool scram_msg_ok(const char *msg, size_t len)
{
	return msg && len > 0 && len < SCRAM_MAX_MSG && !memchr(msg, '\0', len);
}

/* Cursor over an attribute list "a=val,b=val,...". p never passes end. */
struct scram_cursor {
	const char *p;    /* next unread byte */
	const char *end;  /* one past the last byte of the message */
};

/* Read "<attr>=<value>" where value runs to the next ',' or the end; leaves
 * the cursor on that ',' (or end). Returns 0 or -EPROTO. */
static int scram_read_attr(struct scram_cursor *c, char attr, const char **val, size_t *vlen)
{
	const char *v, *comma;

	if (c->end - c->p < 2 || c->p[0] != attr || c->p[1] != '=')
		return -EPROTO;
	v = c->p + 2;
	comma = memchr(v, ',', (size_t)(c->end - v));
	c->p = comma ? comma : c->end;
	*val = v;
	*vlen = (size_t)(c->p - v);
	return 0;
}

/* Step over the ',' between two attributes. Returns 0 or -EPROTO. */
static int scram_skip_comma(struct scram_cursor *c)
{
	if (c->p >= c->end || *c->p != ',')
		return -EPROTO;
	c->p++;
	return 0;
}

/* RFC 5802: printable = %x21-2B / %x2D-7E (visible ASCII except ','). */
static bool scram_nonce_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x21 || ch > 0x7e || ch == ',')
			return false;
	}
	return true;
}

/* Decimal iteration count, digits only, 1..SCRAM_MAX_ITERATIONS. */
static int scram_parse_iterations(const char *s, size_t n, int *out)
{
	long v = 0;

	if (n == 0 || n > 10)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > SCRAM_MAX_ITERATIONS)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* base64, random                                                     */
/* ------------------------------------------------------------------ */

int auth_base64_encode(const uint8_t *in, size_t len, char *out, size_t outlen)
{
	size_t need;
	int n;

	if ((!in && len) || !out)
		return -EINVAL;
	/* EVP_EncodeBlock takes an int and returns one. */
	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		return -EINVAL;
	need = (len + 2) / 3 * 4;
	if (outlen < need + 1)
		return -ENOSPC;
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	if (n < 0 || (size_t)n != need)
		return -EINVAL;
	return n;
}

/* Standard alphabet value of c, or -1. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict decoder: length a multiple of 4, '=' only as the last one or two
 * characters, nothing outside the alphabet (no whitespace), canonical
 * trailing bits. */
int auth_base64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
	size_t pad = 0, outn, o = 0;

	if ((!in && len) || (!out && outlen))
		return -EINVAL;
	if (len % 4 != 0)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (in[len - 1] == '=')
		pad = (in[len - 2] == '=') ? 2 : 1;
	outn = len / 4 * 3 - pad;
	if (outn > INT_MAX)
		return -EINVAL;
	if (outn > outlen)
		return -ENOSPC;

	for (size_t i = 0; i < len; i += 4) {
		uint32_t acc = 0;

		for (size_t j = 0; j < 4; j++) {
			size_t at = i + j;
			int v;

			if (in[at] == '=') {
				/* only inside the trailing padding counted above */
				if (at < len - pad)
					goto bad;
				v = 0;
			} else {
				v = b64_value((unsigned char)in[at]);
				if (v < 0)
					goto bad;
			}
			acc = (acc << 6) | (uint32_t)v;
		}
		/* RFC 4648 3.5: the bits below the last whole byte must be zero.
		 * Refusing otherwise gives every byte string exactly one text. */
		if (i + 4 == len && (acc & ((pad == 2) ? 0xffffu : (pad == 1) ? 0xffu : 0u)))
			goto bad;
		for (int k = 2; k >= 0 && o < outn; k--)
			out[o++] = (uint8_t)(acc >> (8 * k));
	}
	return (int)outn;

bad:
	/* do not leave half a decoded secret behind */
	if (o)
		OPENSSL_cleanse(out, o);
	return -EINVAL;
}

int auth_random_bytes(uint8_t *buf, size_t len)
{
	/* RAND_bytes takes an int; feed large requests in chunks */
	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;

		if (RAND_bytes(buf, n) != 1)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* md5                                                                */
/* ------------------------------------------------------------------ */

/* out := "md5" + hex(md5(a || b)); out is "" if OpenSSL refuses md5 (for
 * instance under a FIPS-only provider), which never matches a real hash. */
static void md5_hex_concat(const void *a, size_t alen, const void *b, size_t blen, char out[36])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t md[16];
	unsigned int n = 0;
	bool ok;

	ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, a, alen) == 1 &&
	     EVP_DigestUpdate(ctx, b, blen) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &n) == 1 && n == sizeof(md);
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		out[0] = '\0';
		return;
	}
	memcpy(out, "md5", 3);
	hex_encode(md, sizeof(md), out + 3);
	OPENSSL_cleanse(md, sizeof(md));
}

void pg_md5_password_hash(const char *password, const char *user, char out[36])
{
	if (!password || !user) {
		out[0] = '\0';
		return;
	}
	md5_hex_concat(password, strlen(password), user, strlen(user), out);
}

void pg_md5_response(const char *secret, const char *user, const uint8_t salt[4], char out[36])
{
	char hashed[36];

	if (!secret || !user || !salt) {
		out[0] = '\0';
		return;
	}
	/* An auth_file or pg_authid entry may already hold md5(password||user);
	 * the response only ever needs that inner hash, never the password. */
	if (pg_secret_is_md5(secret))
		memcpy(hashed, secret, sizeof(hashed));
	else
		pg_md5_password_hash(secret, user, hashed);
	if (hashed[0] == '\0') {
		out[0] = '\0';
		return;
	}
	md5_hex_concat(hashed + 3, 32, salt, 4, out);
	OPENSSL_cleanse(hashed, sizeof(hashed));
}

bool pg_secret_is_md5(const char *secret)
{
	if (!secret || strncmp(secret, "md5", 3) != 0)
		return false;
	for (int i = 3; i < 35; i++) {
		char c = secret[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;   /* also stops at a NUL before 35 */
	}
	return secret[35] == '\0';
}

bool pg_secret_is_scram(const char *secret)
{
	struct scram_verifier v;
	bool ok = scram_verifier_parse(secret, &v) == 0;

	OPENSSL_cleanse(&v, sizeof(v));
	return ok;
}

/* Time depends on the lengths only, not on where the strings differ. The
 * length of a secret is not hidden: it is not with any other code path
 * either (strlen, network framing). */
bool auth_str_equal_ct(const char *a, const char *b)
{
	size_t la, lb;
	unsigned int diff;

	if (!a || !b)
		return false;
	la = strlen(a);
	lb = strlen(b);
	diff = (la != lb);
	for (size_t i = 0; i < la; i++) {
		unsigned char cb = (unsigned char)(i < lb ? b[i] : 0);

		diff |= (unsigned char)a[i] ^ cb;
	}
	return diff == 0;
}

/* ------------------------------------------------------------------ */
/* SCRAM client                                                       */
/* ------------------------------------------------------------------ */

static int scram_client_start(struct scram_client *st, char *out, size_t outlen);

int scram_client_first(struct scram_client *st, const char *password, char *out, size_t outlen)
{
	size_t plen;

	if (!st || !password || !out)
		return -EINVAL;
	OPENSSL_cleanse(st, sizeof(*st));
	plen = strlen(password);
	if (plen >= sizeof(st->password))
		return -EINVAL;
	memcpy(st->password, password, plen + 1);
	return scram_client_start(st, out, outlen);
}

int scram_client_first_keys(struct scram_client *st, const uint8_t client_key[SCRAM_KEY_LEN],
			    const uint8_t server_key[SCRAM_KEY_LEN], char *out, size_t outlen)
{
	if (!st || !client_key || !server_key || !out)
		return -EINVAL;
	OPENSSL_cleanse(st, sizeof(*st));
	st->use_keys = true;
	memcpy(st->client_key, client_key, SCRAM_KEY_LEN);
	memcpy(st->server_key, server_key, SCRAM_KEY_LEN);
	return scram_client_start(st, out, outlen);
}

/* Common part of client-first: nonce and message. */
static int scram_client_start(struct scram_client *st, char *out, size_t outlen)
{
	uint8_t raw[SCRAM_NONCE_RAW_LEN];
	size_t pos = 0;
	int rc;

	rc = auth_random_bytes(raw, sizeof(raw));
	if (rc < 0)
		goto fail;
	rc = auth_base64_encode(raw, sizeof(raw), st->client_nonce, sizeof(st->client_nonce));
	if (rc < 0)
		goto fail;

	/* PostgreSQL takes the user from the startup packet, so libpq sends an
	 * empty n= and so do we. No channel binding: gs2 header "n,,". */
	rc = buf_append_str(st->client_first_bare, sizeof(st->client_first_bare), &pos, "n=,r=");
	if (rc == 0)
		rc = buf_append_str(st->client_first_bare, sizeof(st->client_first_bare), &pos,
				    st->client_nonce);
	if (rc < 0)
		goto fail;

	pos = 0;
	rc = buf_append_str(out, outlen, &pos, "n,,");
	if (rc == 0)
		rc = buf_append_str(out, outlen, &pos, st->client_first_bare);
	if (rc < 0)
		goto fail;
	st->step = 1;
	return (int)pos;

fail:
	OPENSSL_cleanse(st, sizeof(*st));
	return rc;
}

int scram_client_final(struct scram_client *st, const char *server_first, size_t len,
		       char *out, size_t outlen)
{
	struct scram_cursor c;
	const char *nonce, *salt_b64, *iter_s;
	size_t nonce_len, salt_b64_len, iter_len, cn_len, pos = 0, am_len = 0;
	uint8_t salt[SCRAM_MAX_MSG];
	uint8_t client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN];
	uint8_t client_sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
	char final_msg[SCRAM_MAX_MSG];
	char auth_msg[SCRAM_AUTH_MSG_MAX];
	char proof_b64[64];
	int salt_len, iterations, rc;

	if (!st || !out)
		return -EINVAL;
	if (st->step != 1)
		return -EPROTO;
	/* From here on the exchange is spent whatever happens: a failed
	 * server-first is not retried. */
	st->step = 3;
	if (!scram_msg_ok(server_first, len))
		goto proto;

	/* server-first-message = [reserved-mext ","] nonce "," salt ","
	 *                        iteration-count ["," extensions]
	 * PostgreSQL sends exactly r=,s=,i=; like libpq we take nothing else,
	 * which also refuses a mandatory extension (m=) as RFC 5802 requires. */
	c.p = server_first;
	c.end = server_first + len;
	if (scram_read_attr(&c, 'r', &nonce, &nonce_len) < 0 || scram_skip_comma(&c) < 0 ||
	    scram_read_attr(&c, 's', &salt_b64, &salt_b64_len) < 0 || scram_skip_comma(&c) < 0 ||
	    scram_read_attr(&c, 'i', &iter_s, &iter_len) < 0 || c.p != c.end)
		goto proto;

	/* The server must extend our nonce, not replace or merely echo it. */
	cn_len = strlen(st->client_nonce);
	if (nonce_len <= cn_len || memcmp(nonce, st->client_nonce, cn_len) != 0 ||
	    !scram_nonce_ok(nonce, nonce_len))
		goto proto;
	salt_len = auth_base64_decode(salt_b64, salt_b64_len, salt, sizeof(salt));
	if (salt_len <= 0)
		goto proto;
	if (scram_parse_iterations(iter_s, iter_len, &iterations) < 0)
		goto proto;

	memcpy(st->server_first, server_first, len);
	st->server_first[len] = '\0';

	if (st->use_keys) {
		/* Pass-through: the keys are known; salt and iterations must be
		 * those of the verifier they came from, or the server refuses. */
		memcpy(client_key, st->client_key, SCRAM_KEY_LEN);
		memcpy(server_key, st->server_key, SCRAM_KEY_LEN);
		OPENSSL_cleanse(st->client_key, sizeof(st->client_key));
		rc = sha256(client_key, SCRAM_KEY_LEN, stored_key);
	} else {
		rc = scram_salted_password(st->password, salt, (size_t)salt_len, iterations,
					   st->salted_password);
		/* The plain password is not needed again: SaltedPassword is
		 * enough to check the server's signature. */
		OPENSSL_cleanse(st->password, sizeof(st->password));
		if (rc == 0)
			rc = scram_derive_keys(st->salted_password, client_key, stored_key, server_key);
	}
	if (rc < 0)
		goto out;

	/* client-final-message-without-proof = "c=biws,r=" nonce;
	 * "biws" is base64("n,,"), the gs2 header we sent. */
	rc = buf_append_str(final_msg, sizeof(final_msg), &pos, "c=biws,r=");
	if (rc == 0)
		rc = buf_append(final_msg, sizeof(final_msg), &pos, nonce, nonce_len);
	if (rc < 0)
		goto proto;   /* only an absurdly long server nonce gets here */
	rc = scram_auth_message(st->client_first_bare, st->server_first, final_msg, pos,
				auth_msg, sizeof(auth_msg), &am_len);
	if (rc < 0)
		goto proto;

	/* ClientProof := ClientKey XOR HMAC(StoredKey, AuthMessage);
	 * ServerSignature := HMAC(ServerKey, AuthMessage), kept for verify. */
	rc = hmac_sha256(stored_key, sizeof(stored_key), auth_msg, am_len, client_sig);
	if (rc == 0)
		rc = hmac_sha256(server_key, sizeof(server_key), auth_msg, am_len, server_sig);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = client_key[i] ^ client_sig[i];
	rc = auth_base64_encode(server_sig, sizeof(server_sig), st->expected_server_sig,
				sizeof(st->expected_server_sig));
	if (rc >= 0)
		rc = auth_base64_encode(proof, sizeof(proof), proof_b64, sizeof(proof_b64));
	if (rc >= 0)
		rc = buf_append_str(final_msg, sizeof(final_msg), &pos, ",p=");
	if (rc >= 0)
		rc = buf_append_str(final_msg, sizeof(final_msg), &pos, proof_b64);
	if (rc < 0) {
		rc = -EPROTO;
		goto out;
	}
	if (pos >= outlen) {
		rc = -ENOSPC;
		goto out;
	}
	memcpy(out, final_msg, pos + 1);
	st->step = 2;
	rc = (int)pos;
	goto out;

proto:
	rc = -EPROTO;
out:
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored_key, sizeof(stored_key));
	OPENSSL_cleanse(server_key, sizeof(server_key));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(proof_b64, sizeof(proof_b64));
	OPENSSL_cleanse(final_msg, sizeof(final_msg));
	OPENSSL_cleanse(server_sig, sizeof(server_sig));
	if (rc < 0) {
		OPENSSL_cleanse(st->password, sizeof(st->password));
		OPENSSL_cleanse(st->salted_password, sizeof(st->salted_password));
		OPENSSL_cleanse(st->expected_server_sig, sizeof(st->expected_server_sig));
	}
	return rc;
}

int scram_client_verify(struct scram_client *st, const char *server_final, size_t len)
{
	struct scram_cursor c;
	const char *v;
	size_t vlen;
	uint8_t got[SCRAM_KEY_LEN], want[SCRAM_KEY_LEN];
	int rc;

	if (!st)
		return -EINVAL;
	if (st->step != 2)
		return -EPROTO;
	st->step = 3;   /* one answer per exchange, right or wrong */
	rc = -EPROTO;
	if (!scram_msg_ok(server_final, len))
		goto out;
	c.p = server_final;
	c.end = server_final + len;
	/* server-error = "e=" value: the server refused our proof. PostgreSQL
	 * sends an ErrorResponse instead, but the RFC allows this form. */
	if (scram_read_attr(&c, 'e', &v, &vlen) == 0) {
		rc = -EACCES;
		goto out;
	}
	/* Like libpq, nothing may follow the verifier. */
	if (scram_read_attr(&c, 'v', &v, &vlen) < 0 || c.p != c.end)
		goto out;
	if (auth_base64_decode(v, vlen, got, sizeof(got)) != SCRAM_KEY_LEN)
		goto out;
	if (auth_base64_decode(st->expected_server_sig, strlen(st->expected_server_sig), want,
			       sizeof(want)) != SCRAM_KEY_LEN)
		goto out;
	rc = CRYPTO_memcmp(got, want, SCRAM_KEY_LEN) == 0 ? 0 : -EACCES;
out:
	OPENSSL_cleanse(got, sizeof(got));
	OPENSSL_cleanse(want, sizeof(want));
	OPENSSL_cleanse(st->salted_password, sizeof(st->salted_password));
	OPENSSL_cleanse(st->expected_server_sig, sizeof(st->expected_server_sig));
	return rc;
}

/* ------------------------------------------------------------------ */
/* SCRAM server                                                       */
/* ------------------------------------------------------------------ */

/* Decode one base64 field of a verifier into exactly want bytes (want 0:
 * anything from 1 to cap). Returns the length or -EINVAL. */
static int verifier_field(const char *s, size_t n, uint8_t *out, size_t cap, size_t want)
{
	int got = auth_base64_decode(s, n, out, cap);

	if (got <= 0 || (want && (size_t)got != want))
		return -EINVAL;
	return got;
}

int scram_verifier_parse(const char *secret, struct scram_verifier *out)
{
	static const char prefix[] = "SCRAM-SHA-256$";
	const char *p, *end, *colon1, *dollar, *colon2;
	size_t len;
	int n;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!secret)
		return -EINVAL;
	len = strnlen(secret, SCRAM_MAX_VERIFIER);
	if (len == SCRAM_MAX_VERIFIER || len < sizeof(prefix) - 1 ||
	    memcmp(secret, prefix, sizeof(prefix) - 1) != 0)
		return -EINVAL;
	/* <iterations>:<salt>$<StoredKey>:<ServerKey>; base64 has no ':' or '$' */
	p = secret + sizeof(prefix) - 1;
	end = secret + len;
	colon1 = memchr(p, ':', (size_t)(end - p));
	if (!colon1)
		goto bad;
	dollar = memchr(colon1, '$', (size_t)(end - colon1));
	if (!dollar)
		goto bad;
	colon2 = memchr(dollar, ':', (size_t)(end - dollar));
	if (!colon2)
		goto bad;
	if (scram_parse_iterations(p, (size_t)(colon1 - p), &out->iterations) < 0)
		goto bad;
	n = verifier_field(colon1 + 1, (size_t)(dollar - colon1 - 1), out->salt,
			   sizeof(out->salt), 0);
	if (n < 0)
		goto bad;
	out->salt_len = (size_t)n;
	if (verifier_field(dollar + 1, (size_t)(colon2 - dollar - 1), out->stored_key,
			   SCRAM_KEY_LEN, SCRAM_KEY_LEN) < 0 ||
	    verifier_field(colon2 + 1, (size_t)(end - colon2 - 1), out->server_key,
			   SCRAM_KEY_LEN, SCRAM_KEY_LEN) < 0)
		goto bad;
	return 0;
bad:
	OPENSSL_cleanse(out, sizeof(*out));
	return -EINVAL;
}

int scram_verifier_from_password(const char *password, struct scram_verifier *out)
{
	return scram_verifier_from_password_iter(password, SCRAM_DEFAULT_ITERATIONS, out);
}

int scram_verifier_from_password_iter(const char *password, int iterations,
				      struct scram_verifier *out)
{
	uint8_t salted[SCRAM_KEY_LEN];
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!password || iterations < 1 || iterations > SCRAM_MAX_ITERATIONS)
		return -EINVAL;
	out->iterations = iterations;
	out->salt_len = SCRAM_DEFAULT_SALT_LEN;
	rc = auth_random_bytes(out->salt, out->salt_len);
	if (rc == 0)
		rc = scram_salted_password(password, out->salt, out->salt_len, out->iterations, salted);
	if (rc == 0)
		rc = scram_derive_keys(salted, NULL, out->stored_key, out->server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	if (rc < 0)
		OPENSSL_cleanse(out, sizeof(*out));
	return rc;
}

void scram_server_init(struct scram_server *st, const struct scram_verifier *v)
{
	memset(st, 0, sizeof(*st));
	if (v)
		st->v = *v;
	/* without a verifier step stays 0 and iterations 0: first() refuses */
}

int scram_server_first(struct scram_server *st, const char *client_first, size_t len,
		       char *out, size_t outlen)
{
	struct scram_cursor c;
	const char *bare, *user, *cnonce, *val;
	size_t user_len, cnonce_len, vlen, pos = 0;
	uint8_t raw[SCRAM_NONCE_RAW_LEN];
	char snonce[64], salt_b64[128], iter_s[16];
	int rc;

	if (!st || !out)
		return -EINVAL;
	if (st->v.iterations < 1)
		return -EINVAL;   /* scram_server_init got no usable verifier */
	if (st->step != 0)
		return -EPROTO;
	st->step = 2;   /* spent unless we get to the end */
	if (!scram_msg_ok(client_first, len))
		return -EPROTO;
	c.p = client_first;
	c.end = client_first + len;

	/* gs2-header = gs2-cbind-flag "," [authzid] ","
	 * "n": no channel binding. "y": the client could bind but believes we
	 * cannot; since sluice never offers SCRAM-SHA-256-PLUS that belief is
	 * right and we go on, as PostgreSQL does. "p=": the client insists on
	 * binding, which we do not support. */
	if (len >= 2 && client_first[0] == 'p' && client_first[1] == '=')
		return -ENOTSUP;
	if (len < 3 || (client_first[0] != 'n' && client_first[0] != 'y') || client_first[1] != ',')
		return -EPROTO;
	c.p += 2;
	/* authzid "a=...": PostgreSQL refuses it too; the user comes from the
	 * startup packet. */
	if (scram_skip_comma(&c) < 0)
		return -EPROTO;

	/* client-first-message-bare = [reserved-mext ","] username "," nonce
	 *                             ["," extensions]
	 * m= is a mandatory extension we do not know, so it fails (no rule
	 * below accepts it). The user name is ignored: PostgreSQL uses the one
	 * from the startup packet and libpq sends "n=". */
	bare = c.p;
	if (scram_read_attr(&c, 'n', &user, &user_len) < 0 || scram_skip_comma(&c) < 0 ||
	    scram_read_attr(&c, 'r', &cnonce, &cnonce_len) < 0)
		return -EPROTO;
	(void)user;
	(void)user_len;
	if (!scram_nonce_ok(cnonce, cnonce_len))
		return -EPROTO;
	/* Optional extensions "x=value": allowed by RFC 5802 and ignored. */
	while (c.p != c.end) {
		if (scram_skip_comma(&c) < 0 || c.p == c.end)
			return -EPROTO;
		if (!((*c.p >= 'a' && *c.p <= 'z') || (*c.p >= 'A' && *c.p <= 'Z')))
			return -EPROTO;
		if (scram_read_attr(&c, *c.p, &val, &vlen) < 0)
			return -EPROTO;
	}

	rc = auth_random_bytes(raw, sizeof(raw));
	if (rc < 0)
		return rc;
	rc = auth_base64_encode(raw, sizeof(raw), snonce, sizeof(snonce));
	if (rc < 0)
		return rc;
	/* nonce := client nonce + our nonce; both bounded so st->nonce fits */
	if (buf_append(st->nonce, sizeof(st->nonce), &pos, cnonce, cnonce_len) < 0 ||
	    buf_append_str(st->nonce, sizeof(st->nonce), &pos, snonce) < 0)
		return -EPROTO;

	rc = auth_base64_encode(st->v.salt, st->v.salt_len, salt_b64, sizeof(salt_b64));
	if (rc <= 0)
		return -EINVAL;
	snprintf(iter_s, sizeof(iter_s), "%d", st->v.iterations);

	/* server-first-message = "r=" nonce ",s=" salt ",i=" iterations */
	pos = 0;
	if (buf_append_str(st->server_first, sizeof(st->server_first), &pos, "r=") < 0 ||
	    buf_append_str(st->server_first, sizeof(st->server_first), &pos, st->nonce) < 0 ||
	    buf_append_str(st->server_first, sizeof(st->server_first), &pos, ",s=") < 0 ||
	    buf_append_str(st->server_first, sizeof(st->server_first), &pos, salt_b64) < 0 ||
	    buf_append_str(st->server_first, sizeof(st->server_first), &pos, ",i=") < 0 ||
	    buf_append_str(st->server_first, sizeof(st->server_first), &pos, iter_s) < 0)
		return -EPROTO;
	if (pos >= outlen)
		return -ENOSPC;

	/* keep the bare part exactly as sent: it is signed in AuthMessage */
	memcpy(st->client_first_bare, bare, (size_t)(c.end - bare));
	st->client_first_bare[c.end - bare] = '\0';
	memcpy(out, st->server_first, pos + 1);
	st->step = 1;
	return (int)pos;
}

int scram_server_final(struct scram_server *st, const char *client_final, size_t len,
		       char *out, size_t outlen)
{
	struct scram_cursor c;
	const char *cbind, *nonce, *proof_b64, *val, *wo_proof_end;
	size_t cbind_len, nonce_len, proof_len, vlen, am_len = 0, pos = 0;
	uint8_t proof[SCRAM_KEY_LEN], client_sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	uint8_t stored[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
	char auth_msg[SCRAM_AUTH_MSG_MAX];
	char sig_b64[64];
	int rc = -EPROTO;

	if (!st || !out)
		return -EINVAL;
	if (st->step != 1)
		return -EPROTO;
	st->step = 2;   /* one proof per exchange: no guessing in a loop */
	if (!scram_msg_ok(client_final, len))
		goto out;
	c.p = client_final;
	c.end = client_final + len;

	/* client-final-message = channel-binding "," nonce ["," extensions]
	 *                        "," proof
	 * c= must be the base64 gs2 header without binding data: "biws" for
	 * "n,," or "eSws" for "y,,". PostgreSQL also checks it matches the
	 * flag of the client-first-message; struct scram_server has no room to
	 * remember that flag, and since we never support binding the two
	 * flags mean the same to us, so either is accepted. */
	if (scram_read_attr(&c, 'c', &cbind, &cbind_len) < 0 || cbind_len != 4 ||
	    (memcmp(cbind, "biws", 4) != 0 && memcmp(cbind, "eSws", 4) != 0))
		goto out;
	if (scram_skip_comma(&c) < 0 || scram_read_attr(&c, 'r', &nonce, &nonce_len) < 0)
		goto out;
	/* the nonce is public, so a plain comparison is fine */
	if (nonce_len != strlen(st->nonce) || memcmp(nonce, st->nonce, nonce_len) != 0)
		goto out;
	/* skip extensions up to the proof, which must come last */
	for (;;) {
		wo_proof_end = c.p;
		if (scram_skip_comma(&c) < 0 || c.p == c.end)
			goto out;
		if (*c.p == 'p')
			break;
		if (!((*c.p >= 'a' && *c.p <= 'z') || (*c.p >= 'A' && *c.p <= 'Z')))
			goto out;
		if (scram_read_attr(&c, *c.p, &val, &vlen) < 0)
			goto out;
	}
	if (scram_read_attr(&c, 'p', &proof_b64, &proof_len) < 0 || c.p != c.end)
		goto out;
	if (auth_base64_decode(proof_b64, proof_len, proof, sizeof(proof)) != SCRAM_KEY_LEN)
		goto out;

	rc = scram_auth_message(st->client_first_bare, st->server_first, client_final,
				(size_t)(wo_proof_end - client_final), auth_msg, sizeof(auth_msg),
				&am_len);
	if (rc < 0) {
		rc = -EPROTO;
		goto out;
	}
	/* ClientKey := ClientProof XOR HMAC(StoredKey, AuthMessage); the client
	 * knew the password iff SHA-256(ClientKey) == StoredKey. */
	rc = hmac_sha256(st->v.stored_key, SCRAM_KEY_LEN, auth_msg, am_len, client_sig);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		client_key[i] = proof[i] ^ client_sig[i];
	rc = sha256(client_key, sizeof(client_key), stored);
	if (rc < 0)
		goto out;
	if (CRYPTO_memcmp(stored, st->v.stored_key, SCRAM_KEY_LEN) != 0) {
		rc = -EACCES;
		goto out;
	}
	memcpy(st->client_key, client_key, SCRAM_KEY_LEN);
	st->have_client_key = true;

	/* server-final-message = "v=" base64(HMAC(ServerKey, AuthMessage)) */
	rc = hmac_sha256(st->v.server_key, SCRAM_KEY_LEN, auth_msg, am_len, server_sig);
	if (rc < 0)
		goto out;
	rc = auth_base64_encode(server_sig, sizeof(server_sig), sig_b64, sizeof(sig_b64));
	if (rc < 0)
		goto out;
	if (buf_append_str(out, outlen, &pos, "v=") < 0 ||
	    buf_append_str(out, outlen, &pos, sig_b64) < 0) {
		rc = -ENOSPC;
		goto out;
	}
	rc = (int)pos;
out:
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(client_sig, sizeof(client_sig));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(server_sig, sizeof(server_sig));
	OPENSSL_cleanse(sig_b64, sizeof(sig_b64));
	return rc;
}
