/*
 * auth_crypto.h - password hashing and the SCRAM-SHA-256 exchange
 * (RFC 5802 / RFC 7677, as PostgreSQL uses them: protocol section 55.3.1).
 *
 * Owns: pure functions over byte strings. No I/O, no logging, no globals.
 * All hashing, HMAC, PBKDF2 and randomness come from OpenSSL.
 * Must not: put a password, hash, key or proof into an error message.
 *
 * The PostgreSQL flavour of SCRAM: the client sends an empty user name
 * ("n=,") because the user comes from the startup packet; channel binding
 * is not offered here ("n,," / "biws").
 */
#ifndef SLUICE_AUTH_CRYPTO_H
#define SLUICE_AUTH_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN 32        /* SHA-256 output */
#define SCRAM_NONCE_RAW_LEN 18  /* random bytes, base64 -> 24 chars */
#define SCRAM_MAX_MSG 512       /* bound for any SCRAM message we build or accept */

/* "md5" + hex(md5(password || user)): the form stored in pg_authid and auth_file. */
void pg_md5_password_hash(const char *password, const char *user, char out[36]);

/* The answer to AuthenticationMD5Password:
 * "md5" + hex(md5(hex(md5(password||user)) || salt)).
 * secret may be a plain password or an already hashed "md5..." string. */
void pg_md5_response(const char *secret, const char *user, const uint8_t salt[4], char out[36]);

/* True when secret looks like "md5" + 32 lowercase hex digits. */
bool pg_secret_is_md5(const char *secret);
/* True when secret looks like a SCRAM-SHA-256 verifier. */
bool pg_secret_is_scram(const char *secret);

/* Constant-time comparison of two NUL-terminated strings. */
bool auth_str_equal_ct(const char *a, const char *b);

/* ---- client side: sluice logging in to PostgreSQL ---- */
struct scram_client {
	char password[256];            /* normalised plain password (SASLprep not applied: ASCII assumed) */
	char client_nonce[64];         /* base64 of random bytes */
	char client_first_bare[128];   /* "n=,r=<nonce>" */
	char server_first[SCRAM_MAX_MSG]; /* copy of server-first-message */
	uint8_t salted_password[SCRAM_KEY_LEN];
	char expected_server_sig[64];  /* base64 ServerSignature to match in server-final */
	int step;                      /* 0 = init, 1 = first sent, 2 = final sent, 3 = done */
	bool use_keys;                 /* pass-through: keys below instead of a password */
	uint8_t client_key[SCRAM_KEY_LEN]; /* ClientKey learned from a client's proof */
	uint8_t server_key[SCRAM_KEY_LEN]; /* ServerKey from the auth_file verifier */
};

/* Fill *st and write client-first-message ("n,,n=,r=...") into out.
 * Returns its length, or a negative errno. */
int scram_client_first(struct scram_client *st, const char *password, char *out, size_t outlen);
/* Like scram_client_first, but prove knowledge of ClientKey/ServerKey
 * instead of a password ("SCRAM pass-through": the keys come from a client
 * that authenticated to sluice against the same verifier PostgreSQL has). */
int scram_client_first_keys(struct scram_client *st, const uint8_t client_key[SCRAM_KEY_LEN],
			    const uint8_t server_key[SCRAM_KEY_LEN], char *out, size_t outlen);
/* Consume server-first-message (r=,s=,i=) and write client-final-message
 * ("c=biws,r=...,p=...") into out. Returns its length or negative errno
 * (-EPROTO for malformed input or a nonce that does not extend ours). */
int scram_client_final(struct scram_client *st, const char *server_first, size_t len,
		       char *out, size_t outlen);
/* Check server-final-message ("v=..."). Returns 0 when the server proved it
 * knows the password, -EPROTO/-EACCES otherwise. */
int scram_client_verify(struct scram_client *st, const char *server_final, size_t len);

/* ---- server side: a client logging in to sluice ---- */
struct scram_verifier {
	int iterations;
	uint8_t salt[64];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Parse "SCRAM-SHA-256$<iter>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>".
 * Returns 0 or -EINVAL. */
int scram_verifier_parse(const char *secret, struct scram_verifier *out);
/* Build a verifier from a plain password with a fresh random salt and
 * 4096 iterations (what PostgreSQL does). Returns 0 or negative errno. */
int scram_verifier_from_password(const char *password, struct scram_verifier *out);
/* The same with the given iteration count (scram_iterations), 1..10000000. */
int scram_verifier_from_password_iter(const char *password, int iterations,
				      struct scram_verifier *out);

struct scram_server {
	struct scram_verifier v;
	char client_first_bare[SCRAM_MAX_MSG]; /* "n=...,r=..." as the client sent it */
	char server_first[SCRAM_MAX_MSG];      /* what we answered */
	char nonce[128];                       /* client nonce + server nonce */
	int step;                              /* 0 = waiting client-first, 1 = waiting client-final, 2 = done */
	bool have_client_key;                  /* proof verified: client_key is valid */
	uint8_t client_key[SCRAM_KEY_LEN];     /* ClientKey recovered from the proof */
};

/* Start an exchange against verifier v. */
void scram_server_init(struct scram_server *st, const struct scram_verifier *v);
/* Consume client-first-message (the SASLInitialResponse data), write
 * server-first-message into out. Returns its length or negative errno
 * (-EPROTO on malformed input, -ENOTSUP when the client demands channel
 * binding ("p=...")). */
int scram_server_first(struct scram_server *st, const char *client_first, size_t len,
		       char *out, size_t outlen);
/* Consume client-final-message and verify the proof. On success writes
 * server-final-message ("v=...") into out and returns its length; returns
 * -EACCES for a wrong password, -EPROTO for malformed input. */
int scram_server_final(struct scram_server *st, const char *client_final, size_t len,
		       char *out, size_t outlen);

/* Base64 helpers (standard alphabet, with padding). Return output length or
 * -EINVAL / -ENOSPC. */
int auth_base64_encode(const uint8_t *in, size_t len, char *out, size_t outlen);
int auth_base64_decode(const char *in, size_t len, uint8_t *out, size_t outlen);

/* Fill buf with cryptographically strong random bytes. Returns 0 or -EIO. */
int auth_random_bytes(uint8_t *buf, size_t len);

#endif
