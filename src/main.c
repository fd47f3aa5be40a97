/*
 * main.c - command line, start-up and signals.
 *
 *   sluice [-d] [-q] [-v] CONFIG.ini
 *
 * The main thread loads the configuration, opens the listening sockets,
 * starts the workers and then only waits for signals.
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
#include <unistd.h>

#include "config.h"
#include "iobuf.h"
#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "worker.h"

#define SLUICE_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sluice [-d] [-q] [-v] [-V] [-h] CONFIG.ini\n"
		"  -d  run in the background (daemon); logs go to logfile\n"
		"  -q  quiet: nothing to stderr\n"
		"  -v  more verbose (repeat for more)\n"
		"  -V  print version and exit\n"
		"  -h  this help\n");
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

int main(int argc, char **argv)
{
	int daemon = 0, quiet = 0, verbose = 0, opt;
	while ((opt = getopt(argc, argv, "dqvVh")) != -1) {
		switch (opt) {
		case 'd': daemon = 1; break;
		case 'q': quiet = 1; break;
		case 'v': verbose++; break;
		case 'V': printf("sluice %s\n", SLUICE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
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
	if (worker_start_all(cfg) < 0) {
		log_error("start-up failed");
		if (cfg->pidfile)
			unlink(cfg->pidfile);
		return 1;
	}
	log_info("sluice %s started (config %s)", SLUICE_VERSION, path);

	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGINT || sig == SIGTERM) {
			log_info("got signal %d, shutting down", sig);
			break;
		}
		/* Reload, PAUSE and RESUME arrive with the admin console work
		 * (issue "Operating it"); say so instead of pretending. */
		log_warning("signal %d: configuration reload and pause are not available in this version; ignored", sig);
	}
	worker_stop_all();
	pool_free_all();
	if (cfg->pidfile)
		unlink(cfg->pidfile);
	log_info("sluice stopped");
	log_close();
	config_free(cfg);
	return 0;
}
