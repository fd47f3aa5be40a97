/* version.h - sluice's version string (SHOW VERSION, -V, the console's server_version). */
#ifndef SLUICE_VERSION_H
#define SLUICE_VERSION_H

#define SLUICE_VERSION "0.2.0"

#endif
