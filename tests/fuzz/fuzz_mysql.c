/*
 * fuzz_mysql.c - libFuzzer harness for the MySQL codec (src/mysql/my_proto.c):
 * everything sluice parses from a MySQL client or server before it trusts
 * either: packet framing, the greeting, HandshakeResponse41, OK, ERR, EOF,
 * AuthSwitchRequest, COM_CHANGE_USER, and the answer tracker over a stream
 * of packets.
 *
 * The first input byte picks the negotiated capabilities and the command
 * the tracker follows; the rest is a byte stream cut into packets the way
 * the state machines cut it. Each payload is copied into an exact-size heap
 * block, so a read past it is an ASan report.
 *
 * Invariants beyond memory safety:
 * - my_packet_peek never claims more bytes than are present;
 * - a parsed handshake or response rebuilds, and the rebuilt packet parses
 *   to the same fields (builder and parser agree);
 * - the tracker answers one of its four results, and after DONE or BAD it
 *   stays there.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "iobuf.h"
#include "my_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_handshake(const uint8_t *p, uint32_t len)
{
	struct my_handshake h, h2;
	if (my_handshake_parse(p, len, &h) < 0)
		return;
	struct iobuf out = { 0 };
	if (my_handshake_build(&out, &h) == 0) {
		struct my_packet pk;
		FUZZ_CHECK(my_packet_peek(iobuf_head(&out), iobuf_len(&out), &pk) == 1);
		FUZZ_CHECK(my_handshake_parse(pk.payload, pk.len, &h2) == 0);
		FUZZ_CHECK(h2.conn_id == h.conn_id && h2.caps == h.caps && h2.status == h.status);
		FUZZ_CHECK(memcmp(h2.scramble, h.scramble, MY_SCRAMBLE_LEN) == 0);
		FUZZ_CHECK(strcmp(h2.auth_plugin, h.auth_plugin) == 0);
	}
	iobuf_release(&out);
}

static void check_response(const uint8_t *p, uint32_t len)
{
	struct my_response r, r2;
	if (my_response_parse(p, len, &r) < 0)
		return;
	struct iobuf out = { 0 };
	if (my_response_build(&out, 1, &r) == 0) {
		struct my_packet pk;
		FUZZ_CHECK(my_packet_peek(iobuf_head(&out), iobuf_len(&out), &pk) == 1);
		FUZZ_CHECK(my_response_parse(pk.payload, pk.len, &r2) == 0);
		FUZZ_CHECK(r2.ssl_request == r.ssl_request);
		if (!r.ssl_request) {
			FUZZ_CHECK(strcmp(r2.user, r.user) == 0);
			FUZZ_CHECK(r2.auth_len == r.auth_len && memcmp(r2.auth, r.auth, r.auth_len) == 0);
		}
	}
	iobuf_release(&out);
}

static void check_small(const uint8_t *p, uint32_t len, uint32_t caps)
{
	struct my_ok ok;
	struct my_err e;
	char plugin[64];
	const uint8_t *d;
	uint32_t dl;
	if (my_ok_parse(p, len, caps, &ok) == 0) {
		FUZZ_CHECK(!ok.info || (ok.info >= p && ok.info + ok.info_len <= p + len));
		FUZZ_CHECK(!ok.session_state ||
			   (ok.session_state >= p && ok.session_state + ok.session_state_len <= p + len));
	}
	if (my_err_parse(p, len, &e) == 0)
		FUZZ_CHECK(e.msg >= (const char *)p && e.msg + e.msg_len <= (const char *)p + len);
	if (my_auth_switch_parse(p, len, plugin, sizeof(plugin), &d, &dl) == 0)
		FUZZ_CHECK(d >= p && d + dl <= p + len);
	(void)my_is_eof(p, len);
	(void)my_eof_status(p, len);
	struct my_response r;
	uint32_t cu_caps = caps | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_PLUGIN_AUTH | MY_CLIENT_CONNECT_ATTRS;
	if (my_change_user_parse(p, len, cu_caps, &r) == 0) {
		FUZZ_CHECK(r.auth_len <= sizeof(r.auth));
		FUZZ_CHECK(!r.attrs || (r.attrs >= p && r.attrs + r.attrs_len <= p + len));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static const uint8_t commands[] = { MY_COM_QUERY, MY_COM_STMT_PREPARE, MY_COM_STMT_EXECUTE, MY_COM_FIELD_LIST,
					    MY_COM_STATISTICS, MY_COM_PING, MY_COM_INIT_DB, MY_COM_STMT_FETCH };
	uint32_t caps = MY_CLIENT_PROTOCOL_41 | MY_CLIENT_MULTI_RESULTS | MY_CLIENT_PS_MULTI_RESULTS |
			((data[0] & 1) ? MY_CLIENT_DEPRECATE_EOF : 0) | ((data[0] & 2) ? MY_CLIENT_SESSION_TRACK : 0);
	uint8_t cmd[10] = { commands[(data[0] >> 2) % sizeof(commands)], 1, 0, 0, 0, (uint8_t)(data[0] >> 5) };
	struct my_answer a;
	my_answer_begin(&a, cmd, sizeof(cmd), caps);
	int last = MY_ANSWER_MORE;
	const uint8_t *p = data + 1;
	size_t left = size - 1;
	for (int n = 0; n < 256; n++) {
		struct my_packet pk;
		if (my_packet_peek(p, left, &pk) != 1)
			break;
		FUZZ_CHECK(MY_HEADER_LEN + (size_t)pk.len <= left && pk.payload == p + MY_HEADER_LEN);
		uint8_t *copy = malloc(pk.len ? pk.len : 1);
		if (!copy)
			return 0;
		memcpy(copy, pk.payload, pk.len);
		if (n == 0) {
			check_handshake(copy, pk.len);
			check_response(copy, pk.len);
		}
		check_small(copy, pk.len, caps);
		if (last == MY_ANSWER_MORE || last == MY_ANSWER_INFILE) {
			last = my_answer_feed(&a, copy, pk.len);
			FUZZ_CHECK(last == MY_ANSWER_MORE || last == MY_ANSWER_DONE || last == MY_ANSWER_INFILE ||
				   last == MY_ANSWER_BAD);
		}
		free(copy);
		p += MY_HEADER_LEN + pk.len;
		left -= MY_HEADER_LEN + pk.len;
	}
	iobuf_thread_cleanup();
	return 0;
}
