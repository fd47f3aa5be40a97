/*
 * cancel.h - the registry of cancel keys. Each client gets a key from
 * sluice (not the server's, which changes with every server it borrows);
 * a cancel request arriving on any worker finds the client here, and the
 * client's own worker cancels what its server runs (the protocol's
 * client_cancel, proto.h).
 *
 * Owns: a hash of live clients by (pid, key) under one mutex, taken at
 * client login/close and per cancel, never per message. The connections
 * that carry a CancelRequest to PostgreSQL are cancel_conn.h's.
 */
#ifndef SLUICE_CANCEL_H
#define SLUICE_CANCEL_H

#include <stdbool.h>
#include <stdint.h>

struct client;
struct worker;

/* Give c a unique random (cancel_pid, cancel_key), drawn by its protocol,
 * and register it; a client that has a key (online restart) keeps it
 * unless it collides. */
void cancel_register(struct client *c);
void cancel_unregister(struct client *c);
/* The client moves to worker w (balance.h): cancels go there from now on. */
void cancel_set_worker(struct client *c, struct worker *w);

/* A cancel request for (pid, key) arrived on worker w: pass it to the
 * client's worker. False when no client has the key. */
bool cancel_dispatch(struct worker *w, uint32_t pid, uint32_t key);
/* MAIL_CANCEL on the client's own worker. */
void cancel_deliver(struct worker *w, uint32_t pid, uint32_t key);
/* The client with (pid, key) when it lives on worker w (the caller's):
 * usable there as any of w's clients. NULL otherwise, with *elsewhere set
 * to its worker (run the lookup again there) or NULL (no such client).
 * For a protocol whose cancel needs more than client_cancel (MySQL's KILL,
 * which names a user and a kind, and answers the killer). */
struct client *cancel_find_here(struct worker *w, uint32_t pid, uint32_t key, struct worker **elsewhere);

#endif
