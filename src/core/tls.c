/*
 * tls.c - see tls.h.
 */
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "log.h"

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *client_ctx;  /* towards clients; NULL = TLS off (ctx_lock) */
static SSL_CTX *server_ctx;  /* towards PostgreSQL (ctx_lock) */

static void openssl_error(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", buf[0] ? buf : "failed");
}

/* "secure" = TLS 1.2 and 1.3; "all" and "legacy" allow down to 1.0; or a
 * list of tlsv1.0 .. tlsv1.3 naming the lowest and highest wanted. */
static int set_protocols(SSL_CTX *ctx, const char *spec, char *err, size_t errlen)
{
	int lo = TLS1_2_VERSION, hi = TLS1_3_VERSION;
	if (spec && *spec && strcasecmp(spec, "secure") != 0 && strcasecmp(spec, "default") != 0) {
		if (strcasecmp(spec, "all") == 0 || strcasecmp(spec, "legacy") == 0) {
			lo = TLS1_VERSION;
		} else {
			static const struct { const char *name; int v; } names[] = {
				{ "tlsv1.0", TLS1_VERSION }, { "tlsv1.1", TLS1_1_VERSION },
				{ "tlsv1.2", TLS1_2_VERSION }, { "tlsv1.3", TLS1_3_VERSION },
			};
			char copy[128], *save = NULL;
			snprintf(copy, sizeof(copy), "%s", spec);
			lo = 0;
			hi = 0;
			for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
				int v = 0;
				for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
					if (strcasecmp(t, names[i].name) == 0)
						v = names[i].v;
				if (!v) {
					snprintf(err, errlen, "unknown TLS protocol '%.32s' (use secure, all, or tlsv1.0..tlsv1.3)", t);
					return -EINVAL;
				}
				if (!lo || v < lo)
					lo = v;
				if (v > hi)
					hi = v;
			}
		}
	}
	if (!SSL_CTX_set_min_proto_version(ctx, lo) || !SSL_CTX_set_max_proto_version(ctx, hi)) {
		openssl_error(err, errlen, "TLS protocol range", NULL);
		return -EINVAL;
	}
	return 0;
}

static int set_ciphers(SSL_CTX *ctx, const char *spec, char *err, size_t errlen)
{
	/* PgBouncer's names for cipher sets; anything else is an OpenSSL list. */
	const char *list = spec;
	if (!spec || !*spec || strcasecmp(spec, "fast") == 0 || strcasecmp(spec, "normal") == 0 ||
	    strcasecmp(spec, "default") == 0)
		list = "HIGH:!aNULL:!MD5:!3DES";
	else if (strcasecmp(spec, "secure") == 0)
		list = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL";
	else if (strcasecmp(spec, "all") == 0 || strcasecmp(spec, "legacy") == 0)
		list = "ALL:!aNULL";
	if (!SSL_CTX_set_cipher_list(ctx, list)) {
		openssl_error(err, errlen, "TLS ciphers", spec);
		return -EINVAL;
	}
	return 0;
}

/* client_tls13_ciphers / server_tls13_ciphers: OpenSSL's TLS 1.3 suite
 * names joined by ':'; empty keeps OpenSSL's default. An unknown name
 * fails (OpenSSL refuses a list with one). */
static int set_tls13_ciphers(SSL_CTX *ctx, const char *key, const char *spec, char *err, size_t errlen)
{
	if (!spec || !*spec)
		return 0;
	if (!SSL_CTX_set_ciphersuites(ctx, spec)) {
		openssl_error(err, errlen, key, spec);
		return -EINVAL;
	}
	return 0;
}

/* Key exchange towards clients. client_tls_ecdhcurve: "auto" keeps
 * OpenSSL's groups, "none" leaves only the finite-field (FFDHE) groups, so
 * no elliptic-curve key exchange is made, anything else is a curve name or
 * a ':' list for SSL_CTX_set1_groups_list. client_tls_dheparams (DHE
 * suites of TLS 1.2): "auto" lets OpenSSL pick parameters as strong as the
 * certificate's key, "none" offers no DHE suite; "legacy" (PgBouncer's
 * 1024-bit group) is taken as "auto": sluice does not make 1024-bit DH. */
static int set_key_exchange(SSL_CTX *ctx, const char *ecdhcurve, const char *dheparams,
			    char *err, size_t errlen)
{
	if (ecdhcurve && *ecdhcurve && strcasecmp(ecdhcurve, "auto") != 0) {
		const char *groups = ecdhcurve;
		if (strcasecmp(ecdhcurve, "none") == 0)
			groups = "ffdhe2048:ffdhe3072:ffdhe4096:ffdhe6144:ffdhe8192";
		if (!SSL_CTX_set1_groups_list(ctx, groups)) {
			openssl_error(err, errlen, "client_tls_ecdhcurve", ecdhcurve);
			return -EINVAL;
		}
	}
	if (!dheparams || !*dheparams || strcasecmp(dheparams, "auto") == 0 ||
	    strcasecmp(dheparams, "legacy") == 0) {
		SSL_CTX_set_dh_auto(ctx, 1);
	} else if (strcasecmp(dheparams, "none") != 0) {
		snprintf(err, errlen, "client_tls_dheparams '%.32s' is not one of auto, legacy, none", dheparams);
		return -EINVAL;
	}
	return 0;
}

static SSL_CTX *build_ctx(bool accept_side, const char *cert, const char *key, const char *ca,
			  const char *protocols, const char *ciphers, const char *ciphers13,
			  int verify_mode, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(accept_side ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		openssl_error(err, errlen, "TLS context", NULL);
		return NULL;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	if (set_protocols(ctx, protocols, err, errlen) < 0 || set_ciphers(ctx, ciphers, err, errlen) < 0 ||
	    set_tls13_ciphers(ctx, accept_side ? "client_tls13_ciphers" : "server_tls13_ciphers",
			      ciphers13, err, errlen) < 0)
		goto fail;
	if (cert && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		openssl_error(err, errlen, "cannot load certificate", cert);
		goto fail;
	}
	if (key && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		openssl_error(err, errlen, "cannot load private key", key);
		goto fail;
	}
	if (cert && key && SSL_CTX_check_private_key(ctx) != 1) {
		openssl_error(err, errlen, "private key does not match certificate", cert);
		goto fail;
	}
	if (ca) {
		if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
			openssl_error(err, errlen, "cannot load CA file", ca);
			goto fail;
		}
		if (accept_side) {
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
			if (names)
				SSL_CTX_set_client_CA_list(ctx, names);
		}
	}
	SSL_CTX_set_verify(ctx, verify_mode, NULL);
	if (accept_side) {
		/* Session resumption across worker threads is not worth its
		 * cache: PostgreSQL clients keep their connections. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_configure(const struct config *cfg, char *err, size_t errlen)
{
	SSL_CTX *cctx = NULL, *sctx = NULL;
	if (cfg->client_tls_sslmode != TLS_MODE_DISABLE) {
		int verify = SSL_VERIFY_NONE;
		if (cfg->client_tls_sslmode >= TLS_MODE_VERIFY_CA)
			verify = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		else if (cfg->client_tls_ca_file)
			verify = SSL_VERIFY_PEER; /* cert / hba cert: ask, check at login */
		cctx = build_ctx(true, cfg->client_tls_cert_file, cfg->client_tls_key_file,
				 cfg->client_tls_ca_file, cfg->client_tls_protocols, cfg->client_tls_ciphers,
				 cfg->client_tls13_ciphers, verify, err, errlen);
		if (!cctx)
			return -EINVAL;
		if (set_key_exchange(cctx, cfg->client_tls_ecdhcurve, cfg->client_tls_dheparams, err, errlen) < 0) {
			SSL_CTX_free(cctx);
			return -EINVAL;
		}
	}
	if (cfg->server_tls_sslmode != TLS_MODE_DISABLE) {
		int verify = cfg->server_tls_sslmode >= TLS_MODE_VERIFY_CA ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
		if (cfg->server_tls_sslmode >= TLS_MODE_VERIFY_CA && !cfg->server_tls_ca_file) {
			snprintf(err, errlen, "server_tls_sslmode %s needs server_tls_ca_file",
				 cfg->server_tls_sslmode == TLS_MODE_VERIFY_CA ? "verify-ca" : "verify-full");
			SSL_CTX_free(cctx);
			return -EINVAL;
		}
		sctx = build_ctx(false, cfg->server_tls_cert_file, cfg->server_tls_key_file,
				 cfg->server_tls_ca_file, cfg->server_tls_protocols, cfg->server_tls_ciphers,
				 cfg->server_tls13_ciphers, verify, err, errlen);
		if (!sctx) {
			SSL_CTX_free(cctx);
			return -EINVAL;
		}
	}
	pthread_mutex_lock(&ctx_lock);
	SSL_CTX *old_c = client_ctx, *old_s = server_ctx;
	client_ctx = cctx;
	server_ctx = sctx;
	pthread_mutex_unlock(&ctx_lock);
	/* Connections made with the old ones hold their own reference. */
	SSL_CTX_free(old_c);
	SSL_CTX_free(old_s);
	return 0;
}

void tls_cleanup(void)
{
	pthread_mutex_lock(&ctx_lock);
	SSL_CTX_free(client_ctx);
	SSL_CTX_free(server_ctx);
	client_ctx = server_ctx = NULL;
	pthread_mutex_unlock(&ctx_lock);
}

static SSL *new_ssl(SSL_CTX **ctxp, int fd)
{
	pthread_mutex_lock(&ctx_lock);
	SSL *ssl = *ctxp ? SSL_new(*ctxp) : NULL;
	pthread_mutex_unlock(&ctx_lock);
	if (ssl && SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		ssl = NULL;
	}
	return ssl;
}

SSL *tls_new_for_client(int fd)
{
	SSL *ssl = new_ssl(&client_ctx, fd);
	if (ssl)
		SSL_set_accept_state(ssl);
	return ssl;
}

SSL *tls_new_for_server(int fd, const char *host, int sslmode)
{
	SSL *ssl = new_ssl(&server_ctx, fd);
	if (!ssl)
		return NULL;
	SSL_set_connect_state(ssl);
	if (host && *host && host[0] != '/') {
		bool is_ip = strspn(host, "0123456789.") == strlen(host) || strchr(host, ':');
		if (!is_ip)
			SSL_set_tlsext_host_name(ssl, host);
		if (sslmode == TLS_MODE_VERIFY_FULL) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
			int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) : SSL_set1_host(ssl, host);
			if (!ok) {
				SSL_free(ssl);
				return NULL;
			}
		}
	}
	return ssl;
}

int tls_handshake(SSL *ssl, bool *want_write, char *why, size_t whylen)
{
	ERR_clear_error();
	int rc = SSL_do_handshake(ssl);
	if (rc == 1)
		return 0;
	int e = SSL_get_error(ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*want_write = e == SSL_ERROR_WANT_WRITE;
		return -EAGAIN;
	}
	long v = SSL_get_verify_result(ssl);
	if (v != X509_V_OK) {
		snprintf(why, whylen, "certificate verification failed: %s", X509_verify_cert_error_string(v));
	} else {
		unsigned long ee = ERR_get_error();
		if (ee) {
			char buf[200];
			ERR_error_string_n(ee, buf, sizeof(buf));
			snprintf(why, whylen, "TLS handshake failed: %s", buf);
		} else {
			snprintf(why, whylen, "TLS handshake failed: connection closed");
		}
	}
	ERR_clear_error();
	return -EPROTO;
}

void tls_describe(SSL *ssl, char *out, size_t len)
{
	if (!ssl) {
		snprintf(out, len, "%s", "");
		return;
	}
	snprintf(out, len, "%s/%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

bool tls_peer_cn(SSL *ssl, char *out, size_t len)
{
	if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	X509 *cert = SSL_get1_peer_certificate(ssl);
	if (!cert)
		return false;
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)len);
	X509_free(cert);
	/* An embedded NUL would let "admin\0.evil" pass as "admin". */
	return n > 0 && (size_t)n < len && strlen(out) == (size_t)n;
}
