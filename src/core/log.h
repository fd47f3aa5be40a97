/*
 * log.h - leveled logging to stderr and optionally a log file.
 *
 * Owns: the process-wide log destination and level. Thread-safe: each line
 * is formatted into a local buffer and written with one write(2).
 * Must not: log secrets. Callers pass connection identity in the format.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG, LOG_LEVEL_NOISE };

/* Open the log file (NULL = stderr only). Returns 0 or negative errno. */
int log_open(const char *path, int level, int quiet);
int log_get_level(void);
/* The config's verbose setting changed (RELOAD); -v on the command line
 * still counts. */
void log_set_verbose(int verbose);
/* Also send every line to syslog. facility: "daemon", "user", "local0".."local7".
 * Returns 0 or -EINVAL for an unknown facility. */
int log_open_syslog(const char *ident, const char *facility);
void log_close(void);

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)   log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_write(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...)    log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)   do { if (log_get_level() >= LOG_LEVEL_DEBUG) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)
#define log_noise(...)   do { if (log_get_level() >= LOG_LEVEL_NOISE) log_write(LOG_LEVEL_NOISE, __VA_ARGS__); } while (0)

#endif
