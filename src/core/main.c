/*
 * main.c - command line, start-up and signals.
 *
 *   sluice [-d] [-q] [-v] [-R] CONFIG.ini   (long names: sluice --help)
 *
 * Under systemd it reports readiness, reloads and shutdown (Type=notify)
 * and takes the listening sockets systemd passes (socket activation):
 * systemd.h.
 *
 * The main thread loads the configuration, opens the listening sockets
 * (or takes them over from a running sluice with -R), starts the workers
 * and then waits for signals, closing statistics periods and watching for
 * the end of a shutdown on the way.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "bypass.h"
#include "iobuf.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "my_ops.h"
#include "pg_ops.h"
#include "pool.h"
#include "route.h"
#include "runtime.h"
#include "systemd.h"
#include "takeover.h"
#include "tls.h"
#include "worker.h"

#include "version.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sluice [OPTION]... CONFIG.ini\n"
		"  -d, --daemon     run in the background; logs go to logfile\n"
		"  -R, --reboot     online restart (also --restart): take over from the\n"
		"                   sluice running with this unix_socket_dir and\n"
		"                   listen_port, without dropping its clients\n"
		"  -q, --quiet      nothing to stderr\n"
		"  -v, --verbose    more verbose (repeat for more)\n"
		"  -V, --version    print the version and exit\n"
		"  -h, --help       this help\n");
}

/* --version: the version, and whether this binary can run bpf_bypass
 * (the build defines SLUICE_BPF when clang, bpftool and libbpf were there). */
static void print_version(void)
{
	printf("sluice %s\n", SLUICE_VERSION);
#ifdef SLUICE_BPF
	printf("kernel fast path (bpf_bypass): built in\n");
#else
	printf("kernel fast path (bpf_bypass): not built in (built with BPF=0)\n");
#endif
}

static void print_warning(const char *msg)
{
	fprintf(stderr, "WARNING %s\n", msg);
}

/* Raise the soft file-descriptor limit to the hard one: each client and
 * server costs one descriptor. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warning("cannot raise the file descriptor limit: %s", strerror(errno));
	}
}

static int write_pidfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	ssize_t w = write(fd, buf, (size_t)n);
	close(fd);
	return w == n ? 0 : -EIO;
}

static int daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	log_open(NULL, log_get_level(), 1); /* the pid changed */
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

/* One line per database with last period's figures (log_stats). */
static void log_pool_stats(struct pool *p, void *arg)
{
	(void)arg;
	struct stats_totals d;
	int64_t period_us;
	pool_get_period(p, &d, &period_us);
	double secs = period_us > 0 ? (double)period_us / 1e6 : 1;
	if (p->stale && d.queries == 0)
		return;
	log_info("stats: %s/%s %.0f xacts/s, %.0f queries/s, in %.0f B/s, out %.0f B/s, "
		 "xact %llu us, query %llu us, wait %llu us",
		 p->db_name, p->user, (double)d.xacts / secs, (double)d.queries / secs,
		 (double)d.bytes_in / secs, (double)d.bytes_out / secs,
		 (unsigned long long)(d.xacts ? d.xact_us / d.xacts : 0),
		 (unsigned long long)(d.queries ? d.query_us / d.queries : 0),
		 (unsigned long long)(d.xacts ? d.wait_us / d.xacts : 0));
}

/* systemd's status line (STATUS=, systemctl status): clients logged in
 * and pools. */
struct status_counts {
	int clients; /* sum of the pools' n_clients */
	int pools;   /* pools not forgotten */
};

static void count_pool(struct pool *p, void *arg)
{
	struct status_counts *c = arg;
	c->clients += __atomic_load_n(&p->n_clients, __ATOMIC_RELAXED);
	c->pools++;
}

/* Looked at once a second under systemd, sent when it changed; `last`
 * is the last sent, `last_us` the last look. */
static void notify_status(int64_t now, int64_t *last_us, struct status_counts *last)
{
	if (now - *last_us < 1000000 || !systemd_notify_wanted())
		return;
	*last_us = now;
	struct status_counts c = { 0, 0 };
	pool_foreach(count_pool, &c);
	if (c.clients == last->clients && c.pools == last->pools)
		return;
	*last = c;
	systemd_notifyf("STATUS=%d client%s, %d pool%s", c.clients, c.clients == 1 ? "" : "s", c.pools,
			c.pools == 1 ? "" : "s");
}

/* SIGHUP under systemd (Type=notify): RELOADING=1 with the monotonic
 * clock's time, as sd_notify(3) asks, then READY=1 when it is done. */
static void reload_on_sighup(void)
{
	char err[512];
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	systemd_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
			(unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	log_info("got SIGHUP: reloading the configuration");
	if (control_reload(false, err, sizeof(err)) < 0)
		systemd_notifyf("READY=1\nSTATUS=reload failed (the old configuration stays): %.400s", err);
	else
		systemd_notify("READY=1");
}

static void main_loop(const sigset_t *set)
{
	int64_t period_start = loop_now_us();
	int64_t status_us = 0;
	struct status_counts status = { -1, -1 };
	bool stopping = false;
	for (;;) {
		struct timespec wait = { 0, 100 * 1000 * 1000 };
		int sig = sigtimedwait(set, NULL, &wait);
		switch (sig) {
		case SIGHUP:
			reload_on_sighup();
			break;
		case SIGUSR1:
			log_info("got SIGUSR1: PAUSE");
			pool_set_paused(NULL, true);
			break;
		case SIGUSR2:
			log_info("got SIGUSR2: RESUME");
			if (control_suspended())
				control_suspend(false);
			pool_set_paused(NULL, false);
			break;
		case SIGINT:
		case SIGTERM:
			if (control_phase() == PHASE_RUNNING) {
				log_info("got signal %d: shutting down once transactions in flight have finished", sig);
				control_begin(PHASE_DRAIN_SERVERS);
			} else {
				log_info("got signal %d again: shutting down now", sig);
				control_begin(PHASE_EXIT);
			}
			break;
		default:
			break;
		}
		int64_t now = loop_now_us();
		/* Shutting down, whoever asked (signal or SHUTDOWN): tell systemd.
		 * An online restart is not a stop: the service goes on in the
		 * new process. */
		int phase = control_phase();
		if (!stopping && phase != PHASE_RUNNING && phase != PHASE_HANDOVER) {
			stopping = true;
			systemd_notify("STOPPING=1\nSTATUS=shutting down");
		}
		if (control_exit_due(now))
			return;
		if (!stopping)
			notify_status(now, &status_us, &status);
		int64_t period_us;
		bool log_stats;
		control_read_config(&period_us, &log_stats);
		if (now - period_start >= period_us) {
			pool_roll_period(now - period_start);
			period_start = now;
			if (log_stats)
				pool_foreach(log_pool_stats, NULL);
		}
	}
}

/* Each protocol's table of operations (proto.h), by enum config_protocol. */
static const struct proto_ops *const protocols[CONFIG_PROTOCOLS] = {
	[CONFIG_PROTO_PG] = &pg_ops,
	[CONFIG_PROTO_MYSQL] = &my_ops,
};

/* Socket activation: systemd passes one socket per address, and each
 * worker polls listeners of its own. Every worker gets a copy (dup) of each
 * socket: the copies of one address are its ranks 0..n-1 for
 * worker_start_all, one per worker. The kernel wakes every worker polling
 * the socket; those that find nothing to accept wait again. Returns how
 * many fds it wrote. */
static int spread_systemd_tcp(const struct systemd_listeners *sd, int copies, int *fds, int max)
{
	int n = 0;
	for (int i = 0; i < sd->n_pg_tcp; i++) {
		for (int w = 0; w < copies && n < max; w++) {
			int fd = w == 0 ? sd->pg_tcp[i] : fcntl(sd->pg_tcp[i], F_DUPFD_CLOEXEC, 3);
			if (fd < 0) {
				log_warning("socket activation: cannot copy a socket for worker %d: %s", w, strerror(errno));
				break;
			}
			fds[n++] = fd;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	/* PgBouncer's long names; --restart is a second name for --reboot. */
	static const struct option longopts[] = {
		{ "daemon", no_argument, NULL, 'd' },
		{ "reboot", no_argument, NULL, 'R' },
		{ "restart", no_argument, NULL, 'R' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int daemon = 0, quiet = 0, verbose = 0, takeover = 0, opt;
	while ((opt = getopt_long(argc, argv, "dqvVhR", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': daemon = 1; break;
		case 'R': takeover = 1; break;
		case 'q': quiet = 1; break;
		case 'v': verbose++; break;
		case 'V': print_version(); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2; /* getopt_long named the option */
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	const char *path = argv[optind];
	char err[512] = "";
	struct config *cfg = NULL;
	if (config_load(path, &cfg, err, sizeof(err), print_warning) < 0) {
		fprintf(stderr, "FATAL %s\n", err[0] ? err : "cannot load configuration");
		return 1;
	}
	if (daemon && !cfg->logfile) {
		fprintf(stderr, "FATAL -d needs logfile set in %s (stderr is closed in the background)\n", path);
		config_free(cfg);
		return 1;
	}
	int level = LOG_LEVEL_INFO + (cfg->verbose > verbose ? cfg->verbose : verbose);
	if (level > LOG_LEVEL_NOISE)
		level = LOG_LEVEL_NOISE;
	int rc = log_open(cfg->logfile, level, quiet || daemon);
	if (rc < 0) {
		fprintf(stderr, "FATAL cannot open logfile %s: %s\n", cfg->logfile, strerror(-rc));
		config_free(cfg);
		return 1;
	}
	runtime_set_config(cfg);
	iobuf_set_block_size((uint32_t)(cfg->pkt_buf > 16384 ? cfg->pkt_buf : 16384));
	raise_fd_limit();

	/* Signals are taken synchronously by this thread only. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (daemon && (rc = daemonize()) < 0) {
		log_error("cannot daemonize: %s", strerror(-rc));
		return 1;
	}
	if (cfg->pidfile && (rc = write_pidfile(cfg->pidfile)) < 0) {
		log_error("cannot write pidfile %s: %s", cfg->pidfile, strerror(-rc));
		return 1;
	}
	control_init();
	if ((rc = tls_configure(cfg, err, sizeof(err))) < 0) {
		log_error("TLS: %s", err);
		if (cfg->pidfile)
			unlink(cfg->pidfile);
		return 1;
	}
	if (cfg->syslog && log_open_syslog(cfg->syslog_ident, cfg->syslog_facility) < 0)
		log_warning("syslog_facility '%s' is unknown; not logging to syslog", cfg->syslog_facility);
	int *inherited = NULL, n_inherited = 0, inherited_unix = -1;
	struct systemd_listeners sd;
	static int sd_tcp[SYSTEMD_MAX_TCP * 256]; /* each of sd's TCP sockets once per worker */
	int n_sd = systemd_take_listeners(cfg, &sd, err, sizeof(err));
	if (n_sd < 0) {
		log_error("%s", err);
		if (cfg->pidfile)
			unlink(cfg->pidfile);
		return 1;
	}
	if (takeover && n_sd > 0) {
		log_warning("online restart: the sockets systemd passed are not used; the running sluice's are");
		systemd_close_listeners(&sd);
	}
	if (takeover) {
		if (takeover_fetch_listeners(cfg, err, sizeof(err)) < 0) {
			log_error("online restart failed: %s", err);
			if (cfg->pidfile)
				unlink(cfg->pidfile);
			return 1;
		}
		n_inherited = takeover_listener_fds(&inherited, &inherited_unix);
	} else if (n_sd > 0) {
		n_inherited = spread_systemd_tcp(&sd, cfg->workers > 0 ? cfg->workers : 1, sd_tcp,
						 (int)(sizeof(sd_tcp) / sizeof(sd_tcp[0])));
		inherited = sd_tcp;
		inherited_unix = sd.pg_unix;
	}
	bypass_apply(cfg); /* bpf_bypass: load and probe; falls back to user space */
	control_startup_hold(); /* cfg stays this snapshot until the metrics start */
	if (worker_start_all(cfg, protocols, inherited, n_inherited, inherited_unix) < 0) {
		log_error("start-up failed");
		if (cfg->pidfile)
			unlink(cfg->pidfile);
		return 1;
	}
	if (!takeover && sd.pg_unix >= 0)
		worker_forget_listeners(); /* the unix socket's file is systemd's: not unlinked at exit */
	if (takeover)
		takeover_receive_start(protocols, CONFIG_PROTOCOLS);
	takeover_listen(cfg);
	if (metrics_start(cfg) < 0)
		log_error("metrics endpoint not started; going on without it");
	control_startup_done();
	log_info("sluice %s started (config %s)%s", SLUICE_VERSION, path,
		 takeover ? ", taking over from the running process" : "");
	/* Every listener is open (Type=notify waits for this). */
	if ((rc = systemd_notify("READY=1\nSTATUS=accepting connections")) < 0)
		log_warning("cannot notify systemd (NOTIFY_SOCKET): %s", strerror(-rc));

	main_loop(&set);

	takeover_stop();
	metrics_stop();
	takeover_receive_stop(); /* before the workers it posts to go away */
	worker_stop_all();
	bypass_shutdown();
	pool_free_all();
	route_free_all();
	tls_cleanup();
	cfg = (struct config *)runtime_config();
	if (cfg->pidfile)
		unlink(cfg->pidfile);
	log_info("sluice stopped");
	log_close();
	config_free(cfg);
	return 0;
}
