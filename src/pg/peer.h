/*
 * peer.h - cancel requests across a group of sluice processes (PgBouncer
 * 1.19's peer_id and [peers]).
 *
 * Several processes behind one TCP load balancer, or sharing one port with
 * SO_REUSEPORT, cannot tell where a CancelRequest lands: it comes on a
 * connection of its own. With peer_id set, the BackendKeyData sluice gives
 * a client carries that id (bits 16..29 of the process id field), and two
 * bits of the secret key count how often the request may still be passed
 * on (3 when issued). A process that does not know the key and sees
 * another peer's id sends the request to that peer ([peers] host/port),
 * one hop less; at 0 hops, or for an id not listed, it is dropped. One
 * sluice process needs none of this: its worker threads share one key
 * table (cancel.c).
 *
 * Owns: the key layout and the number of forwarded requests in flight per
 * peer (bounded by the peer's pool_size).
 */
#ifndef SLUICE_PEER_H
#define SLUICE_PEER_H

#include <stdbool.h>
#include <stdint.h>

struct worker;

/* A fresh random key pair made fit for peering (unchanged without
 * peer_id). pid stays positive. */
void peer_shape_key(uint32_t *pid, uint32_t *key);
/* The key as issued, whatever hops a forwarded request used up. */
uint32_t peer_issued_key(uint32_t key);
/* An unknown key: pass the request on to the peer that issued it. Returns
 * true when sent (or dropped as a peer's), false when the key is no
 * peer's (the caller ignores it). */
bool peer_forward_cancel(struct worker *w, uint32_t pid, uint32_t key);

#endif
