/*
 * scram_cache.h - SCRAM verifiers derived from plain auth_file passwords,
 * computed once per (user, password, iterations) instead of on every
 * login: PBKDF2 with scram_iterations (4096) rounds costs milliseconds,
 * which would cap connection rates.
 *
 * Owns: a small fixed-size table under one mutex (taken once per login).
 * Keys are the user name and a SHA-256 of the password, never the password.
 */
#ifndef SLUICE_SCRAM_CACHE_H
#define SLUICE_SCRAM_CACHE_H

#include "auth_crypto.h"

/* Fill *out with the verifier for (user, password) made with iterations
 * PBKDF2 rounds. Returns 0 or negative errno. */
int scram_cache_verifier(const char *user, const char *password, int iterations,
			 struct scram_verifier *out);

#endif
