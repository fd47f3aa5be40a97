/*
 * my_ops.h - MySQL's table of protocol operations (proto.h).
 */
#ifndef SLUICE_MY_OPS_H
#define SLUICE_MY_OPS_H

#include "proto.h"

extern const struct proto_ops my_ops;

#endif
