/*
 * peer.c - cancel requests across a group of sluice processes; see peer.h.
 */
#include "peer.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cancel_conn.h"
#include "config.h"
#include "log.h"
#include "runtime.h"

#define PEER_SHIFT 16
#define PEER_MASK 0x3fffu      /* 14 bits: ids 1..16383 */
#define HOPS_SHIFT 30
#define HOPS_MASK (3u << HOPS_SHIFT)

/* Forwarded requests in flight, per peer id (atomic). */
static int inflight[CONFIG_MAX_PEER_ID + 1];

void peer_shape_key(uint32_t *pid, uint32_t *key)
{
	int id = runtime_config()->peer_id;
	if (!id)
		return;
	*pid = ((uint32_t)id << PEER_SHIFT) | (*pid & 0xffffu);
	*key |= HOPS_MASK;
}

uint32_t peer_issued_key(uint32_t key)
{
	return key | HOPS_MASK;
}

static const struct config_peer *find_peer(const struct config *cfg, int id)
{
	for (size_t i = 0; i < cfg->n_peers; i++)
		if (cfg->peers[i].id == id)
			return &cfg->peers[i];
	return NULL;
}

/* The peer's address: a unix socket directory (host starting with '/'),
 * as PgBouncer's .s.PGSQL.port socket there, or a host and port. */
static socklen_t peer_address(const struct config_peer *p, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (p->host[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		un->sun_family = AF_UNIX;
		int n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", p->host, p->port);
		return n > 0 && (size_t)n < sizeof(un->sun_path) ? (socklen_t)sizeof(*un) : 0;
	}
	char port[8];
	snprintf(port, sizeof(port), "%d", p->port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	if (getaddrinfo(p->host, port, &hints, &res) != 0 || !res)
		return 0;
	socklen_t len = res->ai_addrlen <= sizeof(*ss) ? res->ai_addrlen : 0;
	memcpy(ss, res->ai_addr, len);
	freeaddrinfo(res);
	return len;
}

bool peer_forward_cancel(struct worker *w, uint32_t pid, uint32_t key)
{
	const struct config *cfg = runtime_config();
	int id = (int)((pid >> PEER_SHIFT) & PEER_MASK);
	if (!cfg->peer_id || !id || id == cfg->peer_id || (pid >> PEER_SHIFT) > PEER_MASK)
		return false;
	const struct config_peer *p = find_peer(cfg, id);
	if (!p) {
		log_debug("cancel request for peer %d, which [peers] does not list, ignored", id);
		return true;
	}
	uint32_t hops = (key & HOPS_MASK) >> HOPS_SHIFT;
	if (hops == 0) {
		log_warning("cancel request for peer %d dropped: passed on too often (check [peers])", id);
		return true;
	}
	int limit = p->pool_size >= 0 ? p->pool_size : cfg->default_pool_size;
	if (__atomic_add_fetch(&inflight[id], 1, __ATOMIC_RELAXED) > limit) {
		__atomic_sub_fetch(&inflight[id], 1, __ATOMIC_RELAXED);
		log_warning("cancel request for peer %d dropped: %d already in flight (pool_size)", id, limit);
		return true;
	}
	struct sockaddr_storage ss;
	socklen_t len = peer_address(p, &ss);
	if (!len) {
		__atomic_sub_fetch(&inflight[id], 1, __ATOMIC_RELAXED);
		log_warning("cancel request for peer %d dropped: cannot resolve %s", id, p->host);
		return true;
	}
	uint32_t fwd_key = (key & ~HOPS_MASK) | ((hops - 1) << HOPS_SHIFT);
	cancel_forward(w, (struct sockaddr *)&ss, len, pid, fwd_key, &inflight[id]);
	return true;
}
