/*
 * log.c - see log.h. One write(2) per line so lines from different worker
 * threads never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;        /* log file, -1 = none (atomic: log_close at exit
				* may run while another thread still logs) */
static int log_level = LOG_LEVEL_INFO;
static int log_quiet;          /* -q: nothing to stderr */
static int log_pid;            /* cached: getpid() per line is a syscall */
static int log_base_level;     /* level from -v at start-up */
static bool log_syslog;        /* also to syslog (atomic, as log_fd) */
static char syslog_ident[64];  /* openlog keeps the pointer: static storage */

int log_open(const char *path, int level, int quiet)
{
	log_level = level;
	log_base_level = level;
	log_quiet = quiet;
	log_pid = (int)getpid();
	if (path && *path) {
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0)
			return -errno;
		int old = __atomic_exchange_n(&log_fd, fd, __ATOMIC_ACQ_REL);
		if (old >= 0)
			close(old);
	}
	return 0;
}

int log_get_level(void) { return __atomic_load_n(&log_level, __ATOMIC_RELAXED); }

void log_set_verbose(int verbose)
{
	int level = LOG_LEVEL_INFO + verbose;
	if (level < log_base_level)
		level = log_base_level;
	if (level > LOG_LEVEL_NOISE)
		level = LOG_LEVEL_NOISE;
	/* Worker threads read it on every line; RELOAD changes it. */
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

int log_open_syslog(const char *ident, const char *facility)
{
	static const struct { const char *name; int value; } facilities[] = {
		{ "daemon", LOG_DAEMON }, { "user", LOG_USER }, { "local0", LOG_LOCAL0 },
		{ "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
		{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 },
		{ "local7", LOG_LOCAL7 },
	};
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++) {
		if (strcasecmp(facility ? facility : "daemon", facilities[i].name) == 0) {
			snprintf(syslog_ident, sizeof(syslog_ident), "%s", ident ? ident : "sluice");
			openlog(syslog_ident, LOG_PID | LOG_NDELAY, facilities[i].value);
			__atomic_store_n(&log_syslog, true, __ATOMIC_RELEASE);
			return 0;
		}
	}
	return -EINVAL;
}

/* At exit. A thread that still logs meanwhile (the metrics or takeover
 * thread) loses its line rather than racing on the descriptor. */
void log_close(void)
{
	if (__atomic_exchange_n(&log_syslog, false, __ATOMIC_ACQ_REL))
		closelog();
	int fd = __atomic_exchange_n(&log_fd, -1, __ATOMIC_ACQ_REL);
	if (fd >= 0)
		close(fd);
}

static const char *const level_names[] = { "ERROR", "WARNING", "LOG", "DEBUG", "NOISE" };

void log_write(int level, const char *fmt, ...)
{
	if (level > log_get_level())
		return;
	char line[2048];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n, ".%03d %d %s ", (int)(tv.tv_usec / 1000),
		      log_pid ? log_pid : (int)getpid(), level_names[level]);
	size_t prefix = n;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (!log_quiet && write(STDERR_FILENO, line, n) < 0)
		(void)0;
	int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
	if (fd >= 0 && write(fd, line, n) < 0)
		(void)0;
	if (__atomic_load_n(&log_syslog, __ATOMIC_ACQUIRE)) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG };
		/* syslog adds its own time stamp and pid: send the message only. */
		syslog(prio[level], "%.*s", (int)(n - 1 - prefix), line + prefix);
	}
}
