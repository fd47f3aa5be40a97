/*
 * pg_ops.h - PostgreSQL's table of protocol operations (proto.h).
 */
#ifndef SLUICE_PG_OPS_H
#define SLUICE_PG_OPS_H

#include "proto.h"

extern const struct proto_ops pg_ops;

#endif
