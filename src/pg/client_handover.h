/*
 * client_handover.h - a PostgreSQL client's state in an online restart
 * (takeover.h): what the old process writes for a client it hands over
 * and how the new process rebuilds the client from it.
 *
 * Must not: change the frame's layout without keeping old fields first
 * (a process reads what an older one wrote, and ignores what it does not
 * know at the end).
 */
#ifndef SLUICE_CLIENT_HANDOVER_H
#define SLUICE_CLIENT_HANDOVER_H

#include <stdbool.h>
#include <stdint.h>

struct pg_client;
struct worker;
struct takeover_enc;

/* PostgreSQL's part of "c may move now": no batch half answered, not in
 * the kernel's sockhash. */
bool client_handover_ok(const struct pg_client *c);
/* Write c's state; 0 or -ENOMEM. */
int client_encode(struct pg_client *c, struct takeover_enc *e);
/* New process: the client for socket fd, from what client_encode wrote
 * (closed when it cannot be read). */
void client_adopt_state(struct worker *w, int fd, const uint8_t *state, uint32_t len);

#endif
