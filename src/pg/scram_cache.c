/*
 * scram_cache.c - see scram_cache.h. Direct-mapped: a collision simply
 * replaces the older entry, so the table never grows.
 */
#include "scram_cache.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#define CACHE_SLOTS 1024

struct cache_entry {
	bool used;
	char user[64];
	uint8_t pw_hash[32];          /* SHA-256 of the password */
	struct scram_verifier v;      /* v.iterations: scram_iterations when it was made;
				       * a RELOAD that changes the key makes it stale */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry cache[CACHE_SLOTS];

int scram_cache_verifier(const char *user, const char *password, int iterations,
			 struct scram_verifier *out)
{
	uint8_t h[32];
	unsigned int hl = 0;
	if (strlen(user) >= sizeof(cache[0].user) ||
	    !EVP_Digest(password, strlen(password), h, &hl, EVP_sha256(), NULL))
		return scram_verifier_from_password_iter(password, iterations, out);
	unsigned slot = 0;
	for (const char *p = user; *p; p++)
		slot = slot * 31 + (unsigned char)*p;
	slot = (slot ^ h[0] ^ (unsigned)h[1] << 8) % CACHE_SLOTS;
	pthread_mutex_lock(&cache_lock);
	struct cache_entry *e = &cache[slot];
	if (e->used && strcmp(e->user, user) == 0 && memcmp(e->pw_hash, h, 32) == 0 &&
	    e->v.iterations == iterations) {
		*out = e->v;
		pthread_mutex_unlock(&cache_lock);
		return 0;
	}
	pthread_mutex_unlock(&cache_lock);
	int rc = scram_verifier_from_password_iter(password, iterations, out);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&cache_lock);
	e->used = true;
	strcpy(e->user, user);
	memcpy(e->pw_hash, h, 32);
	e->v = *out;
	pthread_mutex_unlock(&cache_lock);
	return 0;
}
