/*
 * test_metrics.c - the Prometheus endpoint without workers or pools: the
 * process families render, and the HTTP side answers each kind of request
 * with the right status (table-driven, over loopback).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bypass.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "runtime.h"
#include "unit.h"

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void test_render_without_pools(void)
{
	char *body = metrics_render();
	CHECK(body != NULL);
	if (!body)
		return;
	CHECK(strncmp(body, "# HELP sluice_up ", 17) == 0);
	CHECK(strstr(body, "\nsluice_up 1\n") != NULL);
	CHECK(strstr(body, "\nsluice_config_reloads_total 0\n") != NULL);
	CHECK(strstr(body, "\nsluice_max_fds ") != NULL);
	static const char *families[] = {
		"sluice_up gauge", "sluice_uptime_seconds gauge", "sluice_config_reloads_total counter",
		"sluice_config_reload_failures_total counter", "sluice_workers_active gauge",
		"sluice_worker_clients gauge", "sluice_worker_changes_total counter",
		"sluice_client_moves_total counter", "sluice_server_handoffs_total counter",
		"sluice_accept_failures_total counter",
		"sluice_open_fds gauge",
		"sluice_max_fds gauge", "sluice_clients gauge", "sluice_pool_clients gauge",
		"sluice_pool_servers gauge", "sluice_pool_max_wait_seconds gauge",
		"sluice_pool_client_prepared_statements gauge", "sluice_pool_client_prepared_bytes gauge",
		"sluice_pool_transactions_total counter", "sluice_pool_queries_total counter",
		"sluice_pool_server_assignments_total counter",
		"sluice_pool_received_bytes_total counter", "sluice_pool_sent_bytes_total counter",
		"sluice_pool_wait_seconds_total counter",
		"sluice_pool_query_duration_seconds histogram",
		"sluice_pool_transaction_duration_seconds histogram",
		"sluice_pool_errors_total counter",
		"sluice_bypass_enabled gauge", "sluice_bypass_kernel_transactions_total counter",
		"sluice_bypass_user_transactions_total counter", "sluice_bypass_kernel_bytes_total counter",
		"sluice_bypass_fallbacks_total counter", "sluice_bypass_resent_bytes_total counter",
		"sluice_bypass_kernel_clients gauge",
		"sluice_bypass_lent_servers gauge",
		"sluice_host_role gauge", "sluice_host_lag_bytes gauge", "sluice_host_reads_total counter",
	};
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char line[128];
		snprintf(line, sizeof(line), "# TYPE %s\n", families[i]);
		CHECK(count(body, line) == 1);
	}
	CHECK(count(body, "# TYPE ") == (int)(sizeof(families) / sizeof(families[0])));
	CHECK(count(body, "# HELP ") == count(body, "# TYPE "));
	/* No pools: no per-pool sample (the only labels are the bypass
	 * fallback reasons and the accept() errnos). */
	CHECK(strstr(body, "sluice_pool_clients{") == NULL && strstr(body, "sluice_pool_transactions_total{") == NULL);
	CHECK(strstr(body, "\nsluice_bypass_enabled 0\n") != NULL);
	CHECK(count(body, "sluice_bypass_fallbacks_total{reason=") == BYPASS_REASONS);
	CHECK(strstr(body, "\nsluice_accept_failures_total{errno=\"EMFILE\"} 0\n") != NULL);
	CHECK(count(body, "sluice_accept_failures_total{errno=") == RUNTIME_ACCEPT_ERRNOS);
	CHECK(body[strlen(body) - 1] == '\n');
	free(body);
}

/* A loopback port nobody listens on right now. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

/* Send req (len bytes) and return the status of the answer, 0 when there
 * is none; *answer (may be NULL) gets the whole answer (heap). */
static int request(int port, const char *req, size_t len, char **answer)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	send(fd, req, len, MSG_NOSIGNAL);
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1);
	ssize_t r;
	while (n < cap && (r = recv(fd, buf + n, cap - n, 0)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(fd);
	int status = 0;
	if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
		status = atoi(buf + 9);
	if (answer)
		*answer = buf;
	else
		free(buf);
	return status;
}

static void test_http(void)
{
	int port = free_port();
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.metrics_port = port;
	cfg.metrics_addr = "127.0.0.1";
	CHECK(metrics_start(&cfg) == 0);

	static char big[10000];
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	memset(big + 26, 'a', sizeof(big) - 26 - 4);
	memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);

	static const struct {
		const char *req;    /* request bytes (NUL-terminated unless len) */
		size_t len;         /* 0 = strlen(req) */
		int status;         /* expected answer, 0 = none */
	} cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0, 200 },
		{ "GET /metrics HTTP/1.0\r\n\r\n", 0, 200 },
		{ "GET /metrics?name[]=up&x=1 HTTP/1.1\r\n\r\n", 0, 200 },
		{ "GET http://localhost:9127/metrics HTTP/1.1\r\n\r\n", 0, 200 },
		{ "GET / HTTP/1.1\r\n\r\n", 0, 404 },
		{ "GET /metrics/ HTTP/1.1\r\n\r\n", 0, 404 },
		{ "GET /nope?/metrics HTTP/1.1\r\n\r\n", 0, 404 },
		{ "GET http://localhost HTTP/1.1\r\n\r\n", 0, 404 },
		{ "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, 405 },
		{ "HEAD /metrics HTTP/1.1\r\n\r\n", 0, 405 },
		{ "DELETE / HTTP/1.1\r\n\r\n", 0, 405 },
		{ "hello\r\n\r\n", 0, 400 },
		{ "GET /metrics\r\n\r\n", 0, 400 },
		{ "GET  /metrics HTTP/1.1\r\n\r\n", 0, 400 },
		{ "GET /metrics HTTP/2.0\r\n\r\n", 0, 400 },
		{ "GET /metrics HTTP/1.1 \r\n\r\n", 0, 400 },
		{ "GET metrics HTTP/1.1\r\n\r\n", 0, 400 },
		{ "G(T /metrics HTTP/1.1\r\n\r\n", 0, 400 },
		{ "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", 0, 400 },
		{ "GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n", 0, 400 },
		{ "GET /metrics HTTP/1.1\r\nX: a\nb\r\n\r\n", 0, 400 },
		{ "GET /\0metrics HTTP/1.1\r\n\r\n", 26, 400 },
		{ big, sizeof(big), 400 },
		{ "GET /metrics HTTP/1.1\r\n", 0, 0 },      /* closes before the head ends */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *req = cases[i].req;
		size_t len = cases[i].len ? cases[i].len : strlen(req);
		int want = cases[i].status;
		int fd_status;
		if (want == 0) {
			/* Half-close so the endpoint sees EOF, not a silent client. */
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			struct timeval tv = { .tv_sec = 5 };
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			connect(fd, (struct sockaddr *)&a, sizeof(a));
			send(fd, req, len, MSG_NOSIGNAL);
			shutdown(fd, SHUT_WR);
			char c;
			fd_status = recv(fd, &c, 1, 0) == 0 ? 0 : -1;
			close(fd);
		} else {
			fd_status = request(port, req, len, NULL);
		}
		if (fd_status != want)
			fprintf(stderr, "case %zu: got %d, want %d\n", i, fd_status, want);
		CHECK(fd_status == want);
	}

	/* The 200 answer: headers, and a body of exactly Content-Length. */
	char *answer = NULL;
	CHECK(request(port, "GET /metrics HTTP/1.1\r\n\r\n", 25, &answer) == 200);
	if (answer) {
		CHECK(strstr(answer, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != NULL);
		CHECK(strstr(answer, "\r\nConnection: close\r\n") != NULL);
		const char *cl = strstr(answer, "\r\nContent-Length: ");
		const char *body = strstr(answer, "\r\n\r\n");
		CHECK(cl && body);
		if (cl && body)
			CHECK((size_t)atol(cl + 18) == strlen(body + 4));
		free(answer);
	}
	CHECK(request(port, "POST / HTTP/1.1\r\n\r\n", 19, &answer) == 405);
	if (answer) {
		CHECK(strstr(answer, "\r\nAllow: GET\r\n") != NULL);
		free(answer);
	}

	/* Second start while running: refused. */
	CHECK(metrics_start(&cfg) == -EALREADY);

	/* Stop does not wait out a silent client's 2 s. */
	int silent = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK(connect(silent, (struct sockaddr *)&a, sizeof(a)) == 0);
	usleep(100 * 1000);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	metrics_stop();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(took < 0.5);
	close(silent);
	CHECK(request(port, "GET /metrics HTTP/1.1\r\n\r\n", 25, NULL) == -1);
}

static void test_start_stop_edges(void)
{
	struct config cfg;
	memset(&cfg, 0, sizeof(cfg));
	/* Never started: stop is harmless, twice. */
	metrics_stop();
	metrics_stop();
	/* Port 0: disabled. */
	CHECK(metrics_start(&cfg) == 0);
	metrics_stop();

	/* Busy port: a negative errno (and a log line). */
	int busy = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	bind(busy, (struct sockaddr *)&a, sizeof(a));
	listen(busy, 1);
	getsockname(busy, (struct sockaddr *)&a, &len);
	cfg.metrics_port = ntohs(a.sin_port);
	cfg.metrics_addr = "127.0.0.1";
	CHECK(metrics_start(&cfg) == -EADDRINUSE);
	metrics_stop();
	close(busy);

	/* IPv6 loopback, when the host has it. */
	cfg.metrics_addr = "::1";
	cfg.metrics_port = free_port();
	int rc = metrics_start(&cfg);
	CHECK(rc == 0 || rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT);
	metrics_stop();
}

UNIT_MAIN({
	log_open(NULL, LOG_LEVEL_ERROR, 1);
	test_render_without_pools();
	test_start_stop_edges();
	test_http();
})
