/*
 * tls.h - TLS with OpenSSL, on both legs: towards clients (sluice is the
 * TLS server) and towards PostgreSQL (sluice is the TLS client).
 *
 * Owns: the two SSL_CTX built from the configuration. A reload builds new
 * ones and swaps them; connections keep the context they started with
 * (OpenSSL counts references), so established sessions are untouched.
 * Must not: do any protocol work; pgsock.c reads and writes through the
 * SSL object, client.c and server.c drive the handshakes.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct config;

/* Build both contexts from cfg (certificate, key and CA files are read
 * here). Returns 0, or a negative errno with err saying which file or
 * setting is wrong; the running contexts stay then. */
int tls_configure(const struct config *cfg, char *err, size_t errlen);
void tls_cleanup(void);

/* A new SSL for an accepted client socket, or NULL (logged). */
SSL *tls_new_for_client(int fd);
/* A new SSL towards PostgreSQL at host (for SNI and verify-full), or NULL. */
SSL *tls_new_for_server(int fd, const char *host, int sslmode);

/* Advance a handshake. Returns 0 when done, -EAGAIN when it waits for the
 * socket (*want_write says which way), or -EPROTO with why filled in. */
int tls_handshake(SSL *ssl, bool *want_write, char *why, size_t whylen);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384" for SHOW CLIENTS / SERVERS. */
void tls_describe(SSL *ssl, char *out, size_t len);
/* Common name of the verified peer certificate; false when there is none. */
bool tls_peer_cn(SSL *ssl, char *out, size_t len);

#endif
