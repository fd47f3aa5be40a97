/*
 * test_my_proto.c - the MySQL/MariaDB codec (my_proto): framing, field
 * readers and writers, the connection-phase packets, OK/ERR/EOF, the
 * password scrambles and the answer tracker. Pure functions, tested on
 * byte strings; the real packets below were captured from MariaDB
 * 10.11.19 (Debian 12), the mariadb CLI 3.3 and pymysql 1.0.2 through a
 * logging TCP relay, and the answers to each command from a raw-socket
 * client that logged in with mysql_native_password.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "my_proto.h"
#include "unit.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Hex text to bytes; returns the count. */
static size_t unhex(const char *h, uint8_t *out)
{
	size_t n = 0;
	for (; h[0] && h[1]; h += 2) {
		unsigned v;
		sscanf(h, "%2x", &v);
		out[n++] = (uint8_t)v;
	}
	return n;
}

/* The bytes an iobuf holds equal the hex text? */
static bool iobuf_is(const struct iobuf *b, const char *hex)
{
	uint8_t want[512];
	size_t n = unhex(hex, want);
	return iobuf_len(b) == n && memcmp(iobuf_head(b), want, n) == 0;
}

/* MariaDB 10.11.19 initial handshake (payload, sequence 0) to the mariadb CLI */
static const uint8_t real_handshake[] = {
	0x0a, 0x35, 0x2e, 0x35, 0x2e, 0x35, 0x2d, 0x31, 0x30, 0x2e, 0x31, 0x31,
	0x2e, 0x31, 0x39, 0x2d, 0x4d, 0x61, 0x72, 0x69, 0x61, 0x44, 0x42, 0x2d,
	0x30, 0x2b, 0x64, 0x65, 0x62, 0x31, 0x32, 0x75, 0x31, 0x00, 0x05, 0x00,
	0x00, 0x00, 0x40, 0x3c, 0x4b, 0x46, 0x5c, 0x7a, 0x74, 0x55, 0x00, 0xfe,
	0xf7, 0x08, 0x02, 0x00, 0xff, 0x81, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x1d, 0x00, 0x00, 0x00, 0x2c, 0x79, 0x43, 0x7c, 0x6a, 0x7c, 0x53,
	0x69, 0x38, 0x79, 0x7b, 0x7b, 0x00, 0x6d, 0x79, 0x73, 0x71, 0x6c, 0x5f,
	0x6e, 0x61, 0x74, 0x69, 0x76, 0x65, 0x5f, 0x70, 0x61, 0x73, 0x73, 0x77,
	0x6f, 0x72, 0x64, 0x00,
};

/* The mariadb CLI's HandshakeResponse41 to it (user tu, password test_pw, database td) */
static const uint8_t real_cli_response[] = {
	0x8c, 0xa2, 0xbf, 0x00, 0x00, 0x00, 0x10, 0x00, 0x21, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x74, 0x75, 0x00, 0x14,
	0x4f, 0xe5, 0x3e, 0x74, 0xd9, 0xe2, 0x5e, 0x41, 0x87, 0x00, 0x6f, 0x15,
	0xc0, 0x4b, 0x93, 0x31, 0x5f, 0xc5, 0x11, 0xe5, 0x74, 0x64, 0x00, 0x6d,
	0x79, 0x73, 0x71, 0x6c, 0x5f, 0x6e, 0x61, 0x74, 0x69, 0x76, 0x65, 0x5f,
	0x70, 0x61, 0x73, 0x73, 0x77, 0x6f, 0x72, 0x64, 0x00, 0x7f, 0x03, 0x5f,
	0x6f, 0x73, 0x05, 0x4c, 0x69, 0x6e, 0x75, 0x78, 0x0c, 0x5f, 0x63, 0x6c,
	0x69, 0x65, 0x6e, 0x74, 0x5f, 0x6e, 0x61, 0x6d, 0x65, 0x0a, 0x6c, 0x69,
	0x62, 0x6d, 0x61, 0x72, 0x69, 0x61, 0x64, 0x62, 0x04, 0x5f, 0x70, 0x69,
	0x64, 0x05, 0x31, 0x30, 0x39, 0x35, 0x38, 0x0f, 0x5f, 0x63, 0x6c, 0x69,
	0x65, 0x6e, 0x74, 0x5f, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x06,
	0x33, 0x2e, 0x33, 0x2e, 0x32, 0x30, 0x09, 0x5f, 0x70, 0x6c, 0x61, 0x74,
	0x66, 0x6f, 0x72, 0x6d, 0x06, 0x78, 0x38, 0x36, 0x5f, 0x36, 0x34, 0x0c,
	0x70, 0x72, 0x6f, 0x67, 0x72, 0x61, 0x6d, 0x5f, 0x6e, 0x61, 0x6d, 0x65,
	0x05, 0x6d, 0x79, 0x73, 0x71, 0x6c, 0x0c, 0x5f, 0x73, 0x65, 0x72, 0x76,
	0x65, 0x72, 0x5f, 0x68, 0x6f, 0x73, 0x74, 0x09, 0x31, 0x32, 0x37, 0x2e,
	0x30, 0x2e, 0x30, 0x2e, 0x31,
};

/* The same server greeting pymysql 1.0.2 */
static const uint8_t real_pym_handshake[] = {
	0x0a, 0x35, 0x2e, 0x35, 0x2e, 0x35, 0x2d, 0x31, 0x30, 0x2e, 0x31, 0x31,
	0x2e, 0x31, 0x39, 0x2d, 0x4d, 0x61, 0x72, 0x69, 0x61, 0x44, 0x42, 0x2d,
	0x30, 0x2b, 0x64, 0x65, 0x62, 0x31, 0x32, 0x75, 0x31, 0x00, 0x07, 0x00,
	0x00, 0x00, 0x5d, 0x6e, 0x33, 0x51, 0x7e, 0x49, 0x31, 0x57, 0x00, 0xfe,
	0xf7, 0x08, 0x02, 0x00, 0xff, 0x81, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x1d, 0x00, 0x00, 0x00, 0x43, 0x28, 0x3d, 0x3b, 0x50, 0x5e, 0x6b,
	0x7d, 0x55, 0x6e, 0x49, 0x61, 0x00, 0x6d, 0x79, 0x73, 0x71, 0x6c, 0x5f,
	0x6e, 0x61, 0x74, 0x69, 0x76, 0x65, 0x5f, 0x70, 0x61, 0x73, 0x73, 0x77,
	0x6f, 0x72, 0x64, 0x00,
};

/* pymysql's HandshakeResponse41 to it (tu / test_pw / td) */
static const uint8_t real_pym_response[] = {
	0x0d, 0xa2, 0x3a, 0x00, 0xff, 0xff, 0xff, 0x00, 0x2d, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x74, 0x75, 0x00, 0x14,
	0x0c, 0x44, 0x20, 0x1d, 0xd7, 0x8d, 0xed, 0x07, 0xc8, 0x9d, 0x30, 0xec,
	0x20, 0x4d, 0x3d, 0xda, 0xf7, 0xaf, 0x76, 0xc1, 0x74, 0x64, 0x00, 0x6d,
	0x79, 0x73, 0x71, 0x6c, 0x5f, 0x6e, 0x61, 0x74, 0x69, 0x76, 0x65, 0x5f,
	0x70, 0x61, 0x73, 0x73, 0x77, 0x6f, 0x72, 0x64, 0x00, 0x36, 0x0c, 0x5f,
	0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x5f, 0x6e, 0x61, 0x6d, 0x65, 0x07,
	0x70, 0x79, 0x6d, 0x79, 0x73, 0x71, 0x6c, 0x04, 0x5f, 0x70, 0x69, 0x64,
	0x05, 0x31, 0x30, 0x39, 0x38, 0x31, 0x0f, 0x5f, 0x63, 0x6c, 0x69, 0x65,
	0x6e, 0x74, 0x5f, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x05, 0x31,
	0x2e, 0x30, 0x2e, 0x32,
};

/* The ERR after a CLI login with password "wrong" (sequence 2) */
static const uint8_t real_err_bad_password[] = {
	0xff, 0x15, 0x04, 0x23, 0x32, 0x38, 0x30, 0x30, 0x30, 0x41, 0x63, 0x63,
	0x65, 0x73, 0x73, 0x20, 0x64, 0x65, 0x6e, 0x69, 0x65, 0x64, 0x20, 0x66,
	0x6f, 0x72, 0x20, 0x75, 0x73, 0x65, 0x72, 0x20, 0x27, 0x74, 0x75, 0x27,
	0x40, 0x27, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0x68, 0x6f, 0x73, 0x74, 0x27,
	0x20, 0x28, 0x75, 0x73, 0x69, 0x6e, 0x67, 0x20, 0x70, 0x61, 0x73, 0x73,
	0x77, 0x6f, 0x72, 0x64, 0x3a, 0x20, 0x59, 0x45, 0x53, 0x29,
};

static void test_framing(void)
{
	struct my_packet pk;
	/* COM_QUERY "select 1", sequence 0 */
	static const uint8_t q[] = { 9, 0, 0, 0, 3, 's', 'e', 'l', 'e', 'c', 't', ' ', '1' };
	CHECK(my_packet_peek(q, sizeof(q), &pk) == 1);
	CHECK(pk.len == 9 && pk.seq == 0 && pk.payload == q + 4);
	for (size_t i = 0; i < sizeof(q); i++)
		CHECK(my_packet_peek(q, i, &pk) == 0); /* partial: header or payload */

	/* zero-length payload (the end of a LOCAL INFILE upload), sequence 3 */
	static const uint8_t empty[] = { 0, 0, 0, 3 };
	CHECK(my_packet_peek(empty, 3, &pk) == 0);
	CHECK(my_packet_peek(empty, 4, &pk) == 1 && pk.len == 0 && pk.seq == 3);

	/* 0xffffff: the longest payload, continued in the next packet */
	size_t big = MY_HEADER_LEN + MY_MAX_PAYLOAD;
	uint8_t *b = calloc(1, big + 4);
	CHECK(b != NULL);
	if (b) {
		b[0] = b[1] = b[2] = 0xff;
		b[3] = 7;
		CHECK(my_packet_peek(b, big - 1, &pk) == 0);
		CHECK(my_packet_peek(b, big, &pk) == 1 && pk.len == MY_MAX_PAYLOAD && pk.seq == 7);
		/* the bytes after it begin the next packet (empty continuation) */
		b[big + 3] = 8;
		CHECK(my_packet_peek(b + big, 4, &pk) == 1 && pk.len == 0 && pk.seq == 8);
		free(b);
	}

	/* building: my_begin/my_end and my_packet_put give the same bytes */
	struct iobuf out = { 0 };
	int off = my_begin(&out, 5);
	CHECK(off == 0);
	CHECK(my_put_u8(&out, 3) == 0 && my_put_strnul(&out, "hi") == 0);
	CHECK(my_end(&out, off) == 0);
	CHECK(iobuf_is(&out, "0400000503686900"));
	off = my_begin(&out, 6); /* a second packet after the first */
	CHECK(off == 8);
	CHECK(my_end(&out, off) == 0);
	CHECK(iobuf_is(&out, "040000050368690000000006"));
	iobuf_release(&out);
	CHECK(my_packet_put(&out, 1, "\x0e", 1) == 0);
	CHECK(iobuf_is(&out, "010000010e"));
	CHECK(my_packet_put(&out, 1, "", MY_MAX_PAYLOAD) == -EMSGSIZE);
	CHECK(my_end(&out, -ENOMEM) == -ENOMEM);
	iobuf_release(&out);
}

static void test_lenenc(void)
{
	/* reading: every width, NULL, the 0xff error, and truncations */
	struct {
		const char *hex;
		uint64_t want;
		bool err, null;
		size_t used;
	} cases[] = {
		{ "00", 0, false, false, 1 },
		{ "fa", 250, false, false, 1 },
		{ "fcfb00", 251, false, false, 3 },
		{ "fcffff", 0xffff, false, false, 3 },
		{ "fd000001", 0x10000, false, false, 4 },
		{ "fdffffff", 0xffffff, false, false, 4 },
		{ "fe0000000100000000", 0x1000000, false, false, 9 },
		{ "feffffffffffffffff", UINT64_MAX, false, false, 9 },
		{ "fc0100", 1, false, false, 3 }, /* not minimal: accepted */
		{ "fb", 0, false, true, 1 },
		{ "ff", 0, true, false, 0 },
		{ "", 0, true, false, 0 },
		{ "fc", 0, true, false, 0 },
		{ "fcff", 0, true, false, 0 },
		{ "fdffff", 0, true, false, 0 },
		{ "feffffffffffffff", 0, true, false, 0 },
	};
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		uint8_t buf[16];
		size_t n = unhex(cases[i].hex, buf);
		struct my_reader r = my_reader_of(buf, (uint32_t)n);
		bool is_null = true;
		uint64_t v = my_get_lenenc(&r, &is_null);
		bool ok = v == cases[i].want && r.err == cases[i].err && is_null == cases[i].null &&
			  (cases[i].err || my_left(&r) == n - cases[i].used);
		if (!ok)
			fprintf(stderr, "lenenc case %s: got %llu err %d null %d\n", cases[i].hex,
				(unsigned long long)v, r.err, is_null);
		CHECK(ok);
	}
	/* is_null may be NULL: 0xfb then reads as 0 */
	{
		uint8_t fb = 0xfb;
		struct my_reader r = my_reader_of(&fb, 1);
		CHECK(my_get_lenenc(&r, NULL) == 0 && !r.err);
	}

	/* writing: the shortest form, read back */
	struct { uint64_t v; size_t len; } w[] = {
		{ 0, 1 }, { 250, 1 }, { 251, 3 }, { 0xffff, 3 }, { 0x10000, 4 },
		{ 0xffffff, 4 }, { 0x1000000, 9 }, { UINT64_MAX, 9 },
	};
	for (size_t i = 0; i < N_ELEM(w); i++) {
		struct iobuf out = { 0 };
		CHECK(my_put_lenenc(&out, w[i].v) == 0);
		CHECK(iobuf_len(&out) == w[i].len);
		struct my_reader r = my_reader_of(iobuf_head(&out), iobuf_len(&out));
		CHECK(my_get_lenenc(&r, NULL) == w[i].v && !r.err && my_left(&r) == 0);
		iobuf_release(&out);
	}

	/* fixed-width integers are little-endian; the error is sticky */
	static const uint8_t f[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18 };
	struct my_reader r = my_reader_of(f, sizeof(f));
	CHECK(my_get_u8(&r) == 1);
	CHECK(my_get_u16(&r) == 0x0302);
	CHECK(my_get_u24(&r) == 0x060504);
	CHECK(my_get_u32(&r) == 0x0a090807);
	CHECK(my_get_u64(&r) == 0x1211100f0e0d0c0bull);
	CHECK(!r.err && my_left(&r) == 0);
	CHECK(my_get_u8(&r) == 0 && r.err);
	r = my_reader_of(f, 3);
	CHECK(my_get_u32(&r) == 0 && r.err && my_left(&r) == 0);
	CHECK(my_get_u8(&r) == 0 && my_get_bytes(&r, 0) == NULL); /* sticky */
	struct iobuf out = { 0 };
	CHECK(my_put_u16(&out, 0x0201) == 0 && my_put_u32(&out, 0x06050403) == 0);
	CHECK(iobuf_is(&out, "010203040506"));
	iobuf_release(&out);
}

static void test_strings(void)
{
	static const uint8_t p[] = { 't', 'u', 0, 0, 3, 'a', 'b', 'c', 0xfb, 2, 'x' };
	struct my_reader r = my_reader_of(p, sizeof(p));
	size_t n;
	const char *s = my_get_strnul(&r, &n);
	CHECK(s == (const char *)p && n == 2);
	s = my_get_strnul(&r, &n); /* the empty string */
	CHECK(s == (const char *)p + 3 && n == 0);
	uint64_t len;
	const uint8_t *ls = my_get_lenenc_str(&r, &len);
	CHECK(ls == p + 5 && len == 3);
	ls = my_get_lenenc_str(&r, &len); /* 0xfb: a NULL column, not an error */
	CHECK(ls == NULL && len == 0 && !r.err);
	ls = my_get_lenenc_str(&r, &len); /* says 2 bytes, 1 present */
	CHECK(ls == NULL && r.err);

	r = my_reader_of(p, 2); /* no NUL before the end */
	CHECK(my_get_strnul(&r, &n) == NULL && r.err);
	r = my_reader_of(p, 0);
	CHECK(my_get_strnul(&r, &n) == NULL && r.err);
	r = my_reader_of(p + 4, 4); /* "abc" whole */
	CHECK(my_get_lenenc_str(&r, &len) == p + 5 && len == 3 && my_left(&r) == 0);
	r = my_reader_of(p + 4, 3);
	CHECK(my_get_lenenc_str(&r, &len) == NULL && r.err);
	r = my_reader_of(p, 3);
	CHECK(my_get_bytes(&r, 3) == p && my_left(&r) == 0 && !r.err);
	CHECK(my_get_bytes(&r, 1) == NULL && r.err);

	struct iobuf out = { 0 };
	CHECK(my_put_strnul(&out, "tu") == 0 && my_put_strnul(&out, "") == 0);
	CHECK(my_put_lenenc_str(&out, "abc", 3) == 0 && my_put_lenenc_str(&out, "", 0) == 0);
	CHECK(iobuf_is(&out, "7475000003616263" "00"));
	iobuf_release(&out);
	char long_s[300];
	memset(long_s, 'z', sizeof(long_s));
	CHECK(my_put_lenenc_str(&out, long_s, sizeof(long_s)) == 0);
	CHECK(iobuf_len(&out) == 3 + 300 && iobuf_head(&out)[0] == 0xfc && iobuf_head(&out)[1] == 0x2c &&
	      iobuf_head(&out)[2] == 0x01);
	iobuf_release(&out);
}

static void test_handshake(void)
{
	struct my_handshake h;
	CHECK(my_handshake_parse(real_handshake, sizeof(real_handshake), &h) == 0);
	/* MariaDB puts "5.5.5-" in front for old clients' version checks */
	CHECK_STR(h.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
	CHECK(h.conn_id == 5);
	static const uint8_t nonce[20] = { 0x40, 0x3c, 0x4b, 0x46, 0x5c, 0x7a, 0x74, 0x55, 0x2c, 0x79,
					   0x43, 0x7c, 0x6a, 0x7c, 0x53, 0x69, 0x38, 0x79, 0x7b, 0x7b };
	CHECK(memcmp(h.scramble, nonce, 20) == 0);
	CHECK(h.caps == 0x81fff7feu);
	CHECK(!(h.caps & MY_CLIENT_LONG_PASSWORD)); /* MariaDB: not "CLIENT_MYSQL" */
	CHECK(h.caps & MY_CLIENT_DEPRECATE_EOF);
	CHECK(h.mariadb_caps == 0x1d);
	CHECK(h.charset == 8 && h.status == MY_STATUS_AUTOCOMMIT);
	CHECK_STR(h.auth_plugin, "mysql_native_password");

	/* built from what was parsed, it is the server's packet byte for byte */
	struct iobuf out = { 0 };
	CHECK(my_handshake_build(&out, &h) == 0);
	CHECK(iobuf_len(&out) == 4 + sizeof(real_handshake));
	CHECK(iobuf_head(&out)[0] == sizeof(real_handshake) && iobuf_head(&out)[3] == 0);
	CHECK(memcmp(iobuf_head(&out) + 4, real_handshake, sizeof(real_handshake)) == 0);
	iobuf_release(&out);

	/* a MySQL-style greeting (LONG_PASSWORD set): the reserved bytes are
	 * not capabilities; round trip through build and parse */
	struct my_handshake m = { 0 }, m2;
	strcpy(m.server_version, "8.0.36");
	m.conn_id = 0x01020304;
	for (int i = 0; i < 20; i++)
		m.scramble[i] = (uint8_t)(i + 1);
	m.caps = 0xdfffffffu;
	m.mariadb_caps = 0x1d; /* not written: LONG_PASSWORD is set */
	m.charset = 255;
	m.status = MY_STATUS_AUTOCOMMIT | MY_STATUS_IN_TRANS;
	strcpy(m.auth_plugin, "caching_sha2_password");
	CHECK(my_handshake_build(&out, &m) == 0);
	CHECK(my_handshake_parse(iobuf_head(&out) + 4, iobuf_len(&out) - 4, &m2) == 0);
	CHECK_STR(m2.server_version, "8.0.36");
	CHECK(m2.conn_id == m.conn_id && memcmp(m2.scramble, m.scramble, 20) == 0);
	CHECK(m2.caps == m.caps && m2.mariadb_caps == 0 && m2.charset == 255 && m2.status == m.status);
	CHECK_STR(m2.auth_plugin, "caching_sha2_password");
	iobuf_release(&out);

	/* every truncation up to the end of the nonce is refused; the plugin
	 * name may lack its NUL (MySQL bug #59453) */
	size_t nonce_end = sizeof(real_handshake) - 22;
	for (size_t i = 0; i < nonce_end; i++)
		CHECK(my_handshake_parse(real_handshake, (uint32_t)i, &h) == -EPROTO);
	CHECK(my_handshake_parse(real_handshake, (uint32_t)sizeof(real_handshake) - 1, &h) == 0);
	CHECK_STR(h.auth_plugin, "mysql_native_password");

	/* not a v10 handshake: an ERR (too many connections), protocol 9 */
	uint8_t bad[sizeof(real_handshake)];
	memcpy(bad, real_handshake, sizeof(bad));
	bad[0] = 9;
	CHECK(my_handshake_parse(bad, sizeof(bad), &h) == -EPROTO);
	bad[0] = 0xff;
	CHECK(my_handshake_parse(bad, sizeof(bad), &h) == -EPROTO);
	/* no SECURE_CONNECTION: no 20-byte nonce */
	memcpy(bad, real_handshake, sizeof(bad));
	bad[48] &= (uint8_t)~(MY_CLIENT_SECURE_CONNECTION >> 8); /* after 1 + 33 + 4 + 8 + 1 bytes */
	CHECK(my_handshake_parse(bad, sizeof(bad), &h) == -EPROTO);

	/* a server version longer than the field is truncated */
	memset(&m, 0, sizeof(m));
	m.caps = MY_CLIENT_PROTOCOL_41 | MY_CLIENT_SECURE_CONNECTION;
	uint8_t raw[200];
	size_t n = 0;
	raw[n++] = 10;
	memset(raw + n, 'v', 100);
	n += 100;
	raw[n++] = 0;
	memset(raw + n, 0, 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 + 13);
	raw[n + 4 + 8 + 1] = (uint8_t)m.caps;
	raw[n + 4 + 8 + 2] = (uint8_t)(m.caps >> 8);
	n += 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 + 13;
	CHECK(my_handshake_parse(raw, (uint32_t)n, &h) == 0);
	CHECK(strlen(h.server_version) == 63 && h.auth_plugin[0] == '\0');
}

static void test_response(void)
{
	struct my_response r;
	/* the mariadb CLI: LENENC auth, database, plugin, attributes */
	CHECK(my_response_parse(real_cli_response, sizeof(real_cli_response), &r) == 0);
	CHECK(r.caps == 0x00bfa28cu);
	CHECK(r.caps & MY_CLIENT_PLUGIN_AUTH_LENENC && r.caps & MY_CLIENT_CONNECT_ATTRS);
	CHECK(!(r.caps & MY_CLIENT_DEPRECATE_EOF));
	CHECK(r.max_packet == 0x100000u && r.charset == 33 && r.mariadb_caps == 0x1d);
	CHECK(!r.ssl_request);
	CHECK_STR(r.user, "tu");
	CHECK(r.auth_len == 20 && memcmp(r.auth, real_cli_response + 36, 20) == 0);
	CHECK(r.has_db);
	CHECK_STR(r.db, "td");
	CHECK_STR(r.auth_plugin, "mysql_native_password");
	CHECK(r.attrs == real_cli_response + 82 && r.attrs_len == 0x7f);
	CHECK(r.attrs && memcmp(r.attrs, "\x03_os\x05Linux", 10) == 0);

	/* the proof is the native scramble of test_pw with that greeting's nonce */
	struct my_handshake h;
	CHECK(my_handshake_parse(real_handshake, sizeof(real_handshake), &h) == 0);
	uint8_t ans[20];
	uint32_t alen;
	my_native_answer("test_pw", h.scramble, ans, &alen);
	CHECK(alen == 20 && memcmp(ans, r.auth, 20) == 0);
	uint8_t stage2[20];
	/* SELECT PASSWORD('test_pw') on that server */
	CHECK(my_native_stage2_from_hex("*6D5E9B25DB87EF0AED05A200EE16C94D19EED05C", stage2) == 0);
	CHECK(my_native_check(stage2, h.scramble, r.auth, r.auth_len));
	uint8_t other_nonce[MY_SCRAMBLE_LEN];
	memcpy(other_nonce, h.scramble, sizeof(other_nonce));
	other_nonce[19] ^= 1;
	CHECK(!my_native_check(stage2, other_nonce, r.auth, r.auth_len));

	/* rebuilt, it is the client's packet byte for byte */
	struct iobuf out = { 0 };
	CHECK(my_response_build(&out, 1, &r) == 0);
	CHECK(iobuf_len(&out) == 4 + sizeof(real_cli_response) && iobuf_head(&out)[3] == 1);
	CHECK(memcmp(iobuf_head(&out) + 4, real_cli_response, sizeof(real_cli_response)) == 0);
	iobuf_release(&out);

	/* truncations: refused, except where an optional field would begin
	 * (after the auth response, after the database, after the plugin) */
	for (size_t i = 0; i < sizeof(real_cli_response); i++) {
		int rc = my_response_parse(real_cli_response, (uint32_t)i, &r);
		bool boundary = i == 56 || i == 59 || i == 81;
		if (rc != (boundary ? 0 : -EPROTO))
			fprintf(stderr, "response prefix %zu gave %d\n", i, rc);
		CHECK(rc == (boundary ? 0 : -EPROTO));
	}
	CHECK(my_response_parse(real_cli_response, 59, &r) == 0 && r.has_db && r.auth_plugin[0] == 0 && !r.attrs);

	/* pymysql: other charset and max packet; its proof checks too */
	CHECK(my_response_parse(real_pym_response, sizeof(real_pym_response), &r) == 0);
	CHECK(r.caps == 0x003aa20du && r.max_packet == 0xffffff && r.charset == 45 && r.mariadb_caps == 0);
	CHECK_STR(r.user, "tu");
	CHECK_STR(r.db, "td");
	CHECK_STR(r.auth_plugin, "mysql_native_password");
	CHECK(r.attrs_len == 0x36);
	CHECK(my_handshake_parse(real_pym_handshake, sizeof(real_pym_handshake), &h) == 0);
	CHECK(my_native_check(stage2, h.scramble, r.auth, r.auth_len));

	/* build -> parse with each optional field on and off */
	static const uint8_t attrs[] = { 3, 'k', 'e', 'y', 1, 'v' };
	uint32_t base = MY_CLIENT_PROTOCOL_41 | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_TRANSACTIONS;
	uint32_t variants[] = {
		base,
		base | MY_CLIENT_CONNECT_WITH_DB,
		base | MY_CLIENT_PLUGIN_AUTH,
		base | MY_CLIENT_PLUGIN_AUTH | MY_CLIENT_PLUGIN_AUTH_LENENC,
		base | MY_CLIENT_CONNECT_ATTRS,
		base | MY_CLIENT_CONNECT_WITH_DB | MY_CLIENT_PLUGIN_AUTH | MY_CLIENT_PLUGIN_AUTH_LENENC |
			MY_CLIENT_CONNECT_ATTRS,
		(base | MY_CLIENT_PLUGIN_AUTH_LENENC) & ~MY_CLIENT_SECURE_CONNECTION,
	};
	for (size_t i = 0; i < N_ELEM(variants); i++) {
		struct my_response in = { 0 }, o;
		in.caps = variants[i];
		in.max_packet = 1u << 24;
		in.charset = 45;
		in.mariadb_caps = 0x1d;
		strcpy(in.user, "alice");
		in.auth_len = 20;
		memset(in.auth, 0xa5, 20);
		in.has_db = true;
		strcpy(in.db, "shop");
		strcpy(in.auth_plugin, "mysql_native_password");
		in.attrs = attrs;
		in.attrs_len = sizeof(attrs);
		CHECK(my_response_build(&out, 3, &in) == 0);
		CHECK(my_response_parse(iobuf_head(&out) + 4, iobuf_len(&out) - 4, &o) == 0);
		bool db = variants[i] & MY_CLIENT_CONNECT_WITH_DB, pl = variants[i] & MY_CLIENT_PLUGIN_AUTH,
		     at = variants[i] & MY_CLIENT_CONNECT_ATTRS;
		CHECK(o.caps == in.caps && o.max_packet == in.max_packet && o.charset == 45 && o.mariadb_caps == 0x1d);
		CHECK_STR(o.user, "alice");
		CHECK(o.auth_len == 20 && memcmp(o.auth, in.auth, 20) == 0);
		CHECK(o.has_db == db && strcmp(o.db, db ? "shop" : "") == 0);
		CHECK_STR(o.auth_plugin, pl ? "mysql_native_password" : "");
		CHECK(at ? o.attrs_len == sizeof(attrs) && memcmp(o.attrs, attrs, sizeof(attrs)) == 0 : !o.attrs);
		iobuf_release(&out);
	}

	/* SSLRequest: 32 bytes; the full response with CLIENT_SSL is not one */
	struct my_response s = { 0 }, o;
	s.caps = base | MY_CLIENT_SSL;
	s.max_packet = 1u << 24;
	s.charset = 33;
	s.ssl_request = true;
	CHECK(my_response_build(&out, 1, &s) == 0);
	CHECK(iobuf_len(&out) == 4 + 32);
	CHECK(my_response_parse(iobuf_head(&out) + 4, 32, &o) == 0 && o.ssl_request && o.caps == s.caps);
	iobuf_release(&out);
	s.caps = base; /* the builder adds CLIENT_SSL to an SSLRequest */
	CHECK(my_response_build(&out, 1, &s) == 0);
	CHECK(my_response_parse(iobuf_head(&out) + 4, 32, &o) == 0 && o.ssl_request && (o.caps & MY_CLIENT_SSL));
	iobuf_release(&out);
	uint8_t cp[sizeof(real_cli_response)];
	memcpy(cp, real_cli_response, sizeof(cp));
	cp[1] |= MY_CLIENT_SSL >> 8;
	CHECK(my_response_parse(cp, sizeof(cp), &o) == 0 && !o.ssl_request);
	CHECK(my_response_parse(cp, 32, &o) == 0 && o.ssl_request);
	CHECK(my_response_parse(real_cli_response, 32, &o) == -EPROTO); /* 32 bytes without SSL */
	/* no PROTOCOL_41 */
	memcpy(cp, real_cli_response, sizeof(cp));
	cp[1] &= (uint8_t)~(MY_CLIENT_PROTOCOL_41 >> 8);
	CHECK(my_response_parse(cp, sizeof(cp), &o) == -EPROTO);

	/* fields too long for the struct: refused, never truncated */
	struct my_response big = { 0 };
	big.caps = base | MY_CLIENT_PLUGIN_AUTH_LENENC | MY_CLIENT_CONNECT_WITH_DB;
	memset(big.user, 'u', sizeof(big.user) - 1); /* 127 characters: fits */
	CHECK(my_response_build(&out, 1, &big) == 0);
	CHECK(my_response_parse(iobuf_head(&out) + 4, iobuf_len(&out) - 4, &o) == 0 && strlen(o.user) == 127);
	/* 128 characters: made by hand, the struct cannot hold them */
	uint8_t longuser[32 + 129 + 1] = { 0 };
	memcpy(longuser, iobuf_head(&out) + 4, 32);
	memset(longuser + 32, 'u', 128);
	CHECK(my_response_parse(longuser, sizeof(longuser), &o) == -EPROTO);
	iobuf_release(&out);
	big.auth_len = 256;
	CHECK(my_response_build(&out, 1, &big) == 0);
	CHECK(my_response_parse(iobuf_head(&out) + 4, iobuf_len(&out) - 4, &o) == 0 && o.auth_len == 256);
	iobuf_release(&out);
	/* a lenenc auth of 257 bytes (hand-made: the struct cannot hold it) */
	uint8_t raw[400] = { 0 };
	raw[0] = (uint8_t)(big.caps);
	raw[1] = (uint8_t)(big.caps >> 8);
	raw[2] = (uint8_t)(big.caps >> 16);
	raw[32] = 'u';
	raw[34] = 0xfc;
	raw[35] = 0x01;
	raw[36] = 0x01;
	CHECK(my_response_parse(raw, 37 + 257, &o) == -EPROTO);
	/* a 1-byte-length auth cannot say more than 255 */
	big.caps = base;
	CHECK(my_response_build(&out, 1, &big) == -EINVAL);
	iobuf_release(&out);
}

static void test_auth_switch(void)
{
	static const uint8_t nonce[21] = "abcdefghijklmnopqrst";
	struct iobuf out = { 0 };
	CHECK(my_auth_switch_build(&out, 2, "mysql_native_password", nonce, 21) == 0);
	CHECK(iobuf_head(&out)[0] == 1 + 22 + 21 && iobuf_head(&out)[3] == 2 && iobuf_head(&out)[4] == 0xfe);
	char plugin[32];
	const uint8_t *data;
	uint32_t dlen;
	CHECK(my_auth_switch_parse(iobuf_head(&out) + 4, iobuf_len(&out) - 4, plugin, sizeof(plugin), &data,
				   &dlen) == 0);
	CHECK_STR(plugin, "mysql_native_password");
	CHECK(dlen == 21 && memcmp(data, nonce, 21) == 0);
	/* plugin name longer than the caller's buffer */
	CHECK(my_auth_switch_parse(iobuf_head(&out) + 4, iobuf_len(&out) - 4, plugin, 21, &data, &dlen) == -EPROTO);
	/* no NUL after the name; not 0xfe */
	CHECK(my_auth_switch_parse((const uint8_t *)"\xfe" "abc", 4, plugin, sizeof(plugin), &data, &dlen) ==
	      -EPROTO);
	CHECK(my_auth_switch_parse((const uint8_t *)"\x01" "abc", 4, plugin, sizeof(plugin), &data, &dlen) ==
	      -EPROTO);
	CHECK(my_auth_switch_parse(NULL, 0, plugin, sizeof(plugin), &data, &dlen) == -EPROTO);
	/* the old switch request: 0xfe alone */
	CHECK(my_auth_switch_parse((const uint8_t *)"\xfe", 1, plugin, sizeof(plugin), &data, &dlen) == 0);
	CHECK_STR(plugin, "mysql_old_password");
	CHECK(dlen == 0);
	/* empty data */
	CHECK(my_auth_switch_parse((const uint8_t *)"\xfe" "x\0", 3, plugin, sizeof(plugin), &data, &dlen) == 0);
	CHECK_STR(plugin, "x");
	CHECK(dlen == 0);
	iobuf_release(&out);

	/* AuthMoreData: caching_sha2's "fast auth ok" (3) */
	CHECK(my_auth_more_build(&out, 4, (const uint8_t *)"\x03", 1) == 0);
	CHECK(iobuf_is(&out, "020000040103"));
	iobuf_release(&out);
}

static void test_ok(void)
{
	struct my_ok ok;
	uint8_t p[128];
	size_t n;
	uint32_t c41 = MY_CLIENT_PROTOCOL_41 | MY_CLIENT_TRANSACTIONS;
	uint32_t ctr = c41 | MY_CLIENT_SESSION_TRACK;

	/* COM_PING's answer, captured: no info */
	n = unhex("00000002000000", p);
	CHECK(my_ok_parse(p, (uint32_t)n, c41, &ok) == 0);
	CHECK(ok.affected_rows == 0 && ok.status == MY_STATUS_AUTOCOMMIT && ok.warnings == 0 && ok.info_len == 0);
	CHECK(my_ok_parse(p, (uint32_t)n, ctr, &ok) == 0 && ok.info_len == 0 && !ok.session_state);

	/* COM_INIT_DB "td" with SESSION_TRACK: status 0x4002, empty info, then
	 * the state change: SESSION_TRACK_SCHEMA (1), length 3, "td" */
	n = unhex("0000000240000000050103027464", p);
	CHECK(my_ok_parse(p, (uint32_t)n, ctr, &ok) == 0);
	CHECK(ok.status == (MY_STATUS_AUTOCOMMIT | MY_STATUS_SESSION_STATE_CHANGED));
	CHECK(ok.info_len == 0 && ok.session_state == p + 9 && ok.session_state_len == 5);
	CHECK(memcmp(ok.session_state, "\x01\x03\x02td", 5) == 0);
	for (size_t i = 7; i < n; i++) /* the state is cut short */
		CHECK(my_ok_parse(p, (uint32_t)i, ctr, &ok) == (i <= 8 ? 0 : -EPROTO)); /* info and state may be left out */

	/* LOAD DATA LOCAL's OK with SESSION_TRACK: a lenenc info string */
	n = unhex("000100020000002f5265636f7264733a2031202044656c657465643a20302020536b6970706564"
		  "3a203020205761726e696e67733a2030", p);
	CHECK(my_ok_parse(p, (uint32_t)n, ctr, &ok) == 0);
	CHECK(ok.affected_rows == 1 && ok.info_len == 0x2f && memcmp(ok.info, "Records: 1", 10) == 0);
	/* without SESSION_TRACK the info is the rest of the packet */
	n = unhex("00010002000000" "5265636f726473", p);
	CHECK(my_ok_parse(p, (uint32_t)n, c41, &ok) == 0 && ok.info_len == 7 && memcmp(ok.info, "Records", 7) == 0);

	/* the end of a result under DEPRECATE_EOF: header 0xfe */
	n = unhex("fe000022000000", p);
	CHECK(my_ok_parse(p, (uint32_t)n, ctr | MY_CLIENT_DEPRECATE_EOF, &ok) == 0 && ok.status == 0x22);
	/* big lenenc values, and truncations */
	n = unhex("00fc0001fd00000103000100", p);
	CHECK(my_ok_parse(p, (uint32_t)n, c41, &ok) == 0);
	CHECK(ok.affected_rows == 256 && ok.last_insert_id == 0x10000 && ok.status == 3 && ok.warnings == 1);
	for (size_t i = 0; i < n; i++)
		CHECK(my_ok_parse(p, (uint32_t)i, c41, &ok) == -EPROTO);
	CHECK(my_ok_parse((const uint8_t *)"\xff\0\0\0\0\0\0", 7, c41, &ok) == -EPROTO);
	n = unhex("000000020000000a6869", p); /* info says 10 bytes, 2 present */
	CHECK(my_ok_parse(p, (uint32_t)n, ctr, &ok) == -EPROTO);

	struct iobuf out = { 0 };
	CHECK(my_ok_build(&out, 1, 0, 0, MY_STATUS_AUTOCOMMIT, 0) == 0);
	CHECK(iobuf_is(&out, "0700000100000002000000"));
	iobuf_release(&out);
	CHECK(my_ok_build(&out, 2, 300, 1ull << 40, MY_STATUS_IN_TRANS, 7) == 0);
	CHECK(my_ok_parse(iobuf_head(&out) + 4, iobuf_len(&out) - 4, ctr, &ok) == 0);
	CHECK(ok.affected_rows == 300 && ok.last_insert_id == 1ull << 40 && ok.status == MY_STATUS_IN_TRANS &&
	      ok.warnings == 7);
	iobuf_release(&out);
}

static void test_err(void)
{
	struct my_err e;
	CHECK(my_err_parse(real_err_bad_password, sizeof(real_err_bad_password), &e) == 0);
	CHECK(e.code == 1045);
	CHECK_STR(e.sqlstate, "28000");
	static const char want[] = "Access denied for user 'tu'@'localhost' (using password: YES)";
	CHECK(e.msg_len == sizeof(want) - 1 && memcmp(e.msg, want, e.msg_len) == 0);

	/* an error sent before the capabilities are agreed has no '#' */
	static const uint8_t nohash[] = "\xff\x10\x04Too many connections";
	CHECK(my_err_parse(nohash, sizeof(nohash) - 1, &e) == 0);
	CHECK(e.code == 1040 && e.msg_len == 20 && memcmp(e.msg, "Too many", 8) == 0);
	CHECK_STR(e.sqlstate, "HY000");
	/* '#' with less than 5 characters after it is message text */
	CHECK(my_err_parse((const uint8_t *)"\xff\x01\x00#abc", 7, &e) == 0 && e.msg_len == 4);
	CHECK_STR(e.sqlstate, "HY000");
	CHECK(my_err_parse((const uint8_t *)"\xff\x01\x00", 3, &e) == 0 && e.msg_len == 0);
	CHECK(my_err_parse((const uint8_t *)"\xff\x01", 2, &e) == -EPROTO);
	CHECK(my_err_parse((const uint8_t *)"\x00\x01\x00", 3, &e) == -EPROTO);

	struct iobuf out = { 0 };
	CHECK(my_err_build(&out, 2, 1045, "28000", "Access denied for user 'tu'@'localhost' (using password: YES)") ==
	      0);
	CHECK(iobuf_len(&out) == 4 + sizeof(real_err_bad_password) && iobuf_head(&out)[3] == 2);
	CHECK(memcmp(iobuf_head(&out) + 4, real_err_bad_password, sizeof(real_err_bad_password)) == 0);
	iobuf_release(&out);
	CHECK(my_err_build(&out, 1, 1105, "bad", "x") == 0); /* not 5 characters: HY000 */
	CHECK(iobuf_is(&out, "0a000001ff5104234859303030" "78"));
	iobuf_release(&out);
}

static void test_eof(void)
{
	struct { const char *hex; bool eof; uint16_t status; } cases[] = {
		{ "fe00002200", true, 0x22 },   /* captured: end of rows */
		{ "fe00000a00", true, 0x0a },   /* captured: MORE_RESULTS */
		{ "fe", true, 0 },              /* pre-4.1 */
		{ "fe000022000000", true, 0x22 }, /* 7 bytes: still < 9 */
		{ "fe0000000000000000", false, 0 }, /* 9 bytes: a row */
		{ "0000002200", false, 0 },
		{ "", false, 0 },
	};
	for (size_t i = 0; i < N_ELEM(cases); i++) {
		uint8_t p[16];
		size_t n = unhex(cases[i].hex, p);
		CHECK(my_is_eof(p, (uint32_t)n) == cases[i].eof);
		CHECK(my_eof_status(p, (uint32_t)n) == cases[i].status);
	}
	struct iobuf out = { 0 };
	CHECK(my_eof_build(&out, 4, 0x22, 1) == 0);
	CHECK(iobuf_is(&out, "05000004fe01002200")); /* warnings first, then status */
	iobuf_release(&out);
}

/* Known answers, from python3:
 *   import hashlib
 *   pw, nonce = b'test_pw', b'abcdefghijklmnopqrst'
 *   s1 = hashlib.sha1(pw).digest(); s2 = hashlib.sha1(s1).digest()
 *   s2.hex().upper()  -> 6D5E9B25DB87EF0AED05A200EE16C94D19EED05C
 *                        (= SELECT PASSWORD('test_pw') on MariaDB 10.11)
 *   bytes(a ^ b for a, b in zip(s1, hashlib.sha1(nonce + s2).digest())).hex()
 *                     -> c8a1e2bca5ae95305711713d8b3b89f4a929f790
 *   t1 = hashlib.sha256(pw).digest(); t2 = hashlib.sha256(t1).digest()
 *   t2.hex()          -> 693b3a77cd56c308aba5cf0df389f413d6a84f519ca6cbe9fbebe470a19e7a00
 *   bytes(a ^ b for a, b in zip(t1, hashlib.sha256(t2 + nonce).digest())).hex()
 *                     -> 90002065d32c25172bc221c716649eeee35d031396c15f4cd9d59629eb8745d0
 */
static const uint8_t test_nonce[MY_SCRAMBLE_LEN] = "abcdefghijklmnopqrst";

static void test_native(void)
{
	uint8_t want[32], ans[20], s2[20], hx[20];
	uint32_t n;
	unhex("c8a1e2bca5ae95305711713d8b3b89f4a929f790", want);
	my_native_answer("test_pw", test_nonce, ans, &n);
	CHECK(n == 20 && memcmp(ans, want, 20) == 0);
	my_native_stage2("test_pw", s2);
	CHECK(my_native_stage2_from_hex("*6D5E9B25DB87EF0AED05A200EE16C94D19EED05C", hx) == 0);
	CHECK(memcmp(s2, hx, 20) == 0);
	CHECK(my_native_stage2_from_hex("*6d5e9b25db87ef0aed05a200ee16c94d19eed05c", hx) == 0);
	CHECK(memcmp(s2, hx, 20) == 0);
	const char *bad_hex[] = {
		"6D5E9B25DB87EF0AED05A200EE16C94D19EED05C",   /* no star */
		"*6D5E9B25DB87EF0AED05A200EE16C94D19EED05",   /* short */
		"*6D5E9B25DB87EF0AED05A200EE16C94D19EED05C0", /* long */
		"*6D5E9B25DB87EF0AED05A200EE16C94D19EED0XC",  /* not hex */
		"",
	};
	for (size_t i = 0; i < N_ELEM(bad_hex); i++)
		CHECK(my_native_stage2_from_hex(bad_hex[i], hx) == -EINVAL);

	CHECK(my_native_check(s2, test_nonce, ans, 20));
	uint8_t other[20];
	my_native_answer("test_pX", test_nonce, other, &n);
	CHECK(!my_native_check(s2, test_nonce, other, 20));
	CHECK(!my_native_check(s2, test_nonce, ans, 19));
	CHECK(!my_native_check(s2, test_nonce, ans, 0));
	ans[19] ^= 1;
	CHECK(!my_native_check(s2, test_nonce, ans, 20));
	/* the empty password: an empty answer, which proves only "" */
	my_native_answer("", test_nonce, ans, &n);
	CHECK(n == 0);
	uint8_t s2e[20];
	my_native_stage2("", s2e);
	CHECK(my_native_check(s2e, test_nonce, ans, 0));
	CHECK(!my_native_check(s2, test_nonce, ans, 0));
}

static void test_sha2(void)
{
	uint8_t want[32], ans[32], s2[32];
	uint32_t n;
	unhex("693b3a77cd56c308aba5cf0df389f413d6a84f519ca6cbe9fbebe470a19e7a00", want);
	my_sha2_stage2("test_pw", s2);
	CHECK(memcmp(s2, want, 32) == 0);
	unhex("90002065d32c25172bc221c716649eeee35d031396c15f4cd9d59629eb8745d0", want);
	my_sha2_answer("test_pw", test_nonce, ans, &n);
	CHECK(n == 32 && memcmp(ans, want, 32) == 0);
	CHECK(my_sha2_check(s2, test_nonce, ans, n));
	uint8_t nonce2[MY_SCRAMBLE_LEN];
	memcpy(nonce2, test_nonce, sizeof(nonce2));
	nonce2[0] ^= 1;
	CHECK(!my_sha2_check(s2, nonce2, ans, n));
	CHECK(!my_sha2_check(s2, test_nonce, ans, 31));
	my_sha2_answer("test_pX", test_nonce, ans, &n);
	CHECK(!my_sha2_check(s2, test_nonce, ans, n));
	my_sha2_answer("", test_nonce, ans, &n);
	CHECK(n == 0);
	uint8_t s2e[32];
	my_sha2_stage2("", s2e);
	CHECK(my_sha2_check(s2e, test_nonce, ans, 0));
	CHECK(my_sha2_check(s2e, test_nonce, (const uint8_t *)"", 1)); /* a lone NUL */
	CHECK(!my_sha2_check(s2, test_nonce, ans, 0));
}

static void test_rsa(void)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	CHECK(key != NULL);
	if (!key)
		return;
	BIO *bio = BIO_new(BIO_s_mem());
	CHECK(bio && PEM_write_bio_PUBKEY(bio, key) == 1);
	char *pem = NULL;
	long pem_len = BIO_get_mem_data(bio, &pem);
	CHECK(pem_len > 0 && strncmp(pem, "-----BEGIN PUBLIC KEY-----", 26) == 0);

	uint8_t ct[512];
	char pw[64];
	int n = my_sha2_rsa_encrypt("test_pw", test_nonce, pem, (size_t)pem_len, ct, sizeof(ct));
	CHECK(n == 256);
	CHECK(my_sha2_rsa_decrypt(key, test_nonce, ct, (size_t)n, pw, sizeof(pw)) == 7);
	CHECK_STR(pw, "test_pw");
	/* OAEP is randomised: a second encryption differs, decrypts the same */
	uint8_t ct2[256];
	CHECK(my_sha2_rsa_encrypt("test_pw", test_nonce, pem, (size_t)pem_len, ct2, sizeof(ct2)) == 256);
	CHECK(memcmp(ct, ct2, 256) != 0);
	CHECK(my_sha2_rsa_decrypt(key, test_nonce, ct2, 256, pw, sizeof(pw)) == 7);
	/* a 30-character password: the nonce repeats */
	const char *longpw = "0123456789abcdefghijklmnopqrst";
	n = my_sha2_rsa_encrypt(longpw, test_nonce, pem, (size_t)pem_len, ct, sizeof(ct));
	CHECK(n == 256 && my_sha2_rsa_decrypt(key, test_nonce, ct, 256, pw, sizeof(pw)) == 30);
	CHECK_STR(pw, longpw);
	/* the empty password is a lone NUL */
	n = my_sha2_rsa_encrypt("", test_nonce, pem, (size_t)pem_len, ct, sizeof(ct));
	CHECK(n == 256 && my_sha2_rsa_decrypt(key, test_nonce, ct, 256, pw, sizeof(pw)) == 0 && pw[0] == 0);

	/* wrong nonce (the NUL does not come out), short buffers, bad input */
	n = my_sha2_rsa_encrypt("test_pw", test_nonce, pem, (size_t)pem_len, ct, sizeof(ct));
	uint8_t nonce2[MY_SCRAMBLE_LEN];
	memcpy(nonce2, test_nonce, sizeof(nonce2));
	nonce2[7] ^= 0x55;
	CHECK(my_sha2_rsa_decrypt(key, nonce2, ct, 256, pw, sizeof(pw)) == -EBADMSG);
	CHECK(my_sha2_rsa_decrypt(key, test_nonce, ct, 256, pw, 7) == -ENOSPC);
	CHECK(my_sha2_rsa_decrypt(key, test_nonce, ct, 255, pw, sizeof(pw)) == -EBADMSG);
	ct[100] ^= 1;
	CHECK(my_sha2_rsa_decrypt(key, test_nonce, ct, 256, pw, sizeof(pw)) == -EBADMSG);
	CHECK(my_sha2_rsa_encrypt("test_pw", test_nonce, pem, (size_t)pem_len, ct, 255) == -ENOSPC);
	CHECK(my_sha2_rsa_encrypt("test_pw", test_nonce, "junk", 4, ct, sizeof(ct)) == -EINVAL);
	char huge[300];
	memset(huge, 'p', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	CHECK(my_sha2_rsa_encrypt(huge, test_nonce, pem, (size_t)pem_len, ct, sizeof(ct)) == -EMSGSIZE);
	CHECK(my_sha2_rsa_decrypt(NULL, test_nonce, ct, 256, pw, sizeof(pw)) == -EINVAL);
	BIO_free(bio);
	EVP_PKEY_free(key);
}

/* ---- the answer tracker ---- */

/* Answers captured from MariaDB 10.11.19 (raw-socket client, both with and
 * without DEPRECATE_EOF), from table t(a int, b varchar(20)) holding
 * (1, 'x') and (2, NULL). Column definitions: */
#define DEF_A "0364656602746401740174016101610c3f000b000000030000000000" /* t.a */
#define DEF_B "0364656602746401740174016201620c21003c000000fd0000000000" /* t.b */
#define DEF_1 "036465660000000131000c3f0001000000038100000000"           /* select 1 */
#define DEF_2 "036465660000000132000c3f0001000000038100000000"           /* select 2 */
#define DEF_P "03646566000000013f000c3f0000000000068000000000"           /* a '?' parameter */
/* ERR 1054 "Unknown column 'nosuch' in 'SELECT'" */
#define ERR_1054 "ff1e04233432533232556e6b6e6f776e20636f6c756d6e20276e6f737563682720696e202753454c45435427"
/* COM_STMT_EXECUTE of statement 5, flags (00 = no cursor, 01 = read-only
 * cursor), iteration count 1 (the parameters are left out: the tracker
 * reads the flags only) */
#define EXEC "170500000000" "01000000"
#define EXEC_CURSOR "170500000001" "01000000"

#define C_41 (MY_CLIENT_PROTOCOL_41 | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_TRANSACTIONS | \
	      MY_CLIENT_MULTI_RESULTS | MY_CLIENT_MULTI_STATEMENTS | MY_CLIENT_SESSION_TRACK | \
	      MY_CLIENT_PLUGIN_AUTH | MY_CLIENT_LOCAL_FILES)
#define C_DEP (C_41 | MY_CLIENT_DEPRECATE_EOF)
#define UNKNOWN (-1)

struct answer_case {
	const char *name;
	const char *cmd;       /* the command's payload, hex */
	uint32_t caps;
	const char *pkts[12];  /* the answer's payloads, hex */
	const char *want;      /* per packet: M(ore) D(one) I(nfile) B(ad) */
	int status;            /* at the end; UNKNOWN: status_known false */
};

static const struct answer_case answer_cases[] = {
	{ "OK (BEGIN)", "03", C_41, { "00000003000000" }, "D", 0x03 },
	{ "ERR", "03", C_41, { ERR_1054 }, "D", UNKNOWN },
	{ "text result", "03", C_41,
	  { "02", DEF_A, DEF_B, "fe00002200", "01310178", "0132fb", "fe00002200" }, "MMMMMMD", 0x22 },
	{ "text result, DEPRECATE_EOF", "03", C_DEP,
	  { "02", DEF_A, DEF_B, "01310178", "0132fb", "fe000022000000" }, "MMMMMD", 0x22 },
	{ "empty result", "03", C_41, { "01", DEF_A, "fe00002200", "fe00002200" }, "MMMD", 0x22 },
	{ "empty result, DEPRECATE_EOF", "03", C_DEP, { "01", DEF_A, "fe000022000000" }, "MMD", 0x22 },
	{ "in a transaction", "03", C_41, { "01", DEF_1, "fe00000300", "0131", "fe00000300" }, "MMMMD", 0x03 },
	{ "multi-results (select 1; select 2)", "03", C_41,
	  { "01", DEF_1, "fe00000a00", "0131", "fe00000a00", "01", DEF_2, "fe00000200", "0132", "fe00000200" },
	  "MMMMMMMMMD", 0x02 },
	{ "multi-results, DEPRECATE_EOF", "03", C_DEP,
	  { "01", DEF_1, "0131", "fe00000a000000", "01", DEF_2, "0132", "fe000002000000" }, "MMMMMMMD", 0x02 },
	{ "OK with MORE_RESULTS, then a result", "03", C_DEP,
	  { "0001000a000000", "01", DEF_1, "0131", "fe000002000000" }, "MMMMD", 0x02 },
	{ "second result fails", "03", C_DEP, { "01", DEF_1, "0131", "fe00000a000000", ERR_1054 }, "MMMMD", UNKNOWN },
	{ "ERR among the rows", "03", C_41, { "01", DEF_1, "fe00000200", "0131", ERR_1054 }, "MMMMD", UNKNOWN },
	{ "a NULL row (0xfb) is a row", "03", C_DEP, { "01", DEF_B, "fb", "fe000022000000" }, "MMMD", 0x22 },
	{ "LOCAL INFILE, then OK", "03", C_41,
	  { "fb662e747874",
	    "000100020000002f5265636f7264733a2031202044656c657465643a20302020536b69707065643a203020205761726e696e67733a2030" },
	  "ID", 0x02 },
	{ "LOCAL INFILE, then ERR", "03", C_41, { "fb662e747874", ERR_1054 }, "ID", UNKNOWN },
	{ "MariaDB progress report", "03", C_DEP, { "ffffff0101000000", "00000002000000" }, "MD", 0x02 },

	{ "prepare: 2 params, 2 columns", "16", C_41,
	  { "000500000002000200000000", DEF_P, DEF_P, "fe00000200", DEF_A, DEF_B, "fe00000200" }, "MMMMMMD", 0x02 },
	{ "prepare: 2 params, 2 columns, DEPRECATE_EOF", "16", C_DEP,
	  { "000500000002000200000000", DEF_P, DEF_P, DEF_A, DEF_B }, "MMMMD", UNKNOWN },
	{ "prepare: 0 params, 1 column", "16", C_41, { "000200000001000000000000", DEF_1, "fe00000200" }, "MMD", 0x02 },
	{ "prepare: 0 params, 1 column, DEPRECATE_EOF", "16", C_DEP, { "000200000001000000000000", DEF_1 }, "MD",
	  UNKNOWN },
	{ "prepare: 1 param, 0 columns", "16", C_41, { "000300000000000100000000", DEF_P, "fe00000200" }, "MMD", 0x02 },
	{ "prepare: 1 param, 0 columns, DEPRECATE_EOF", "16", C_DEP, { "000300000000000100000000", DEF_P }, "MD",
	  UNKNOWN },
	{ "prepare: nothing", "16", C_41, { "000400000000000000000000" }, "D", UNKNOWN },
	{ "prepare: nothing, DEPRECATE_EOF", "16", C_DEP, { "000400000000000000000000" }, "D", UNKNOWN },
	{ "prepare: ERR", "16", C_41, { ERR_1054 }, "D", UNKNOWN },

	{ "execute: binary rows", EXEC, C_41,
	  { "02", DEF_A, DEF_B, "fe00002200", "0000010000000178", "fe00002200" }, "MMMMMD", 0x22 },
	{ "execute: binary rows, DEPRECATE_EOF", EXEC, C_DEP,
	  { "02", DEF_A, DEF_B, "0000010000000178", "0000070000000171", "fe000022000000" }, "MMMMMD", 0x22 },
	{ "execute: OK", EXEC, C_41, { "00010000000000" }, "D", 0x00 },
	{ "execute with a cursor", EXEC_CURSOR, C_41, { "02", DEF_A, DEF_B, "fe00006200" }, "MMMD", 0x62 },
	{ "execute with a cursor, DEPRECATE_EOF", EXEC_CURSOR, C_DEP, { "02", DEF_A, DEF_B, "fe000062000000" },
	  "MMMD", 0x62 },
	{ "execute: cursor asked, none opened", EXEC_CURSOR, C_41,
	  { "01", DEF_A, "fe00002200", "0000010000000178", "fe00002200" }, "MMMMD", 0x22 },
	{ "fetch", "1c0500000001000000", C_41, { "0000010000000178", "fe00004200" }, "MD", 0x42 },
	{ "fetch: the last row, DEPRECATE_EOF", "1c0500000005000000", C_DEP,
	  { "0000070000000171", "fe000082000000" }, "MD", 0x82 },
	{ "fetch: no cursor", "1c0500000005000000", C_41,
	  { "ff8d052348593030305468652073746174656d656e742028312920686173206e6f206f70656e20637572736f72" }, "D",
	  UNKNOWN },

	{ "field list", "047400", C_41, { DEF_A "fb", DEF_B "fb", "fe00000200" }, "MMD", 0x02 },
	{ "field list, DEPRECATE_EOF", "047400", C_DEP, { DEF_A "fb", DEF_B "fb", "fe000002000000" }, "MMD", 0x02 },
	{ "statistics", "09", C_41,
	  { "557074696d653a203932382020546872656164733a203120205175657374696f6e733a203337" }, "D", UNKNOWN },
	{ "ping", "0e", C_41, { "00000002000000" }, "D", 0x02 },
	{ "init db (session state)", "027464", C_41, { "0000000240000000050103027464" }, "D", 0x4002 },
	{ "init db: ERR", "027878", C_41, { ERR_1054 }, "D", UNKNOWN },
	{ "reset connection", "1f", C_41, { "00000002000000" }, "D", 0x02 },
	{ "set option (EOF)", "1b0000", C_41, { "fe00000200" }, "D", 0x02 },
	{ "set option, DEPRECATE_EOF", "1b0000", C_DEP, { "fe000002000000" }, "D", 0x02 },

	/* not answers */
	{ "query: EOF first", "03", C_41, { "fe00000200" }, "B", UNKNOWN },
	{ "query: column count 0", "03", C_41, { "fc0000" }, "B", UNKNOWN },
	{ "query: column count and a metadata byte", "03", C_41, { "0201" }, "B", UNKNOWN },
	{ "query: EOF among the definitions", "03", C_41, { "02", DEF_A, "fe00002200" }, "MMB", UNKNOWN },
	{ "query: short OK", "03", C_41, { "0000" }, "B", UNKNOWN },
	{ "query: empty packet", "03", C_41, { "01", "" }, "MB", UNKNOWN },
	{ "after the end", "0e", C_41, { "00000002000000", "00000002000000" }, "DB", 0x02 },
	{ "execute: LOCAL INFILE", EXEC, C_41, { "fb662e747874" }, "B", UNKNOWN },
	{ "prepare: not an OK", "16", C_41, { "01" }, "B", UNKNOWN },
	{ "binlog dump: events", "12", C_41, { "00" "00000000" "04" "01000000" }, "B", UNKNOWN },
	{ "binlog dump: refused", "12", C_41, { ERR_1054 }, "D", UNKNOWN },
	{ "change user: auth switch", "11", C_41, { "fe6d7973716c5f6e61746976655f70617373776f726400" }, "B", UNKNOWN },
};

static char answer_char(int rc)
{
	switch (rc) {
	case MY_ANSWER_MORE: return 'M';
	case MY_ANSWER_DONE: return 'D';
	case MY_ANSWER_INFILE: return 'I';
	case MY_ANSWER_BAD: return 'B';
	}
	return '?';
}

static void test_answer(void)
{
	for (size_t i = 0; i < N_ELEM(answer_cases); i++) {
		const struct answer_case *c = &answer_cases[i];
		uint8_t cmd[64], p[512];
		size_t n = unhex(c->cmd, cmd);
		struct my_answer a;
		my_answer_begin(&a, cmd, (uint32_t)n, c->caps);
		CHECK(a.command == cmd[0] && !a.status_known);
		char got[16] = "";
		for (size_t k = 0; k < strlen(c->want); k++) {
			size_t pl = unhex(c->pkts[k], p);
			got[k] = answer_char(my_answer_feed(&a, p, (uint32_t)pl));
		}
		bool ok = strcmp(got, c->want) == 0;
		if (c->status == UNKNOWN)
			ok = ok && !a.status_known;
		else
			ok = ok && a.status_known && a.status == c->status;
		if (!ok)
			fprintf(stderr, "answer case '%s': got %s, status %#x known %d\n", c->name, got, a.status,
				a.status_known);
		CHECK(ok);
	}

	/* COM_STMT_PREPARE's statement id and parameter count */
	static const char *const prep[] = { "000500000002000200000000", DEF_P, DEF_P, DEF_A, DEF_B };
	struct my_answer a;
	uint8_t p[512];
	my_answer_begin(&a, (const uint8_t *)"\x16select ?", 9, C_DEP);
	for (size_t k = 0; k < N_ELEM(prep); k++) {
		size_t n = unhex(prep[k], p);
		CHECK(my_answer_feed(&a, p, (uint32_t)n) == (k + 1 < N_ELEM(prep) ? MY_ANSWER_MORE : MY_ANSWER_DONE));
	}
	CHECK(a.prepared_id == 5 && a.prepared_params == 2);
	my_answer_begin(&a, (const uint8_t *)"\x16set @a = ?", 11, C_41);
	size_t n = unhex("000300000000000100000000", p);
	CHECK(my_answer_feed(&a, p, (uint32_t)n) == MY_ANSWER_MORE);
	CHECK(a.prepared_id == 3 && a.prepared_params == 1);
	/* a prepare OK cut short */
	my_answer_begin(&a, (const uint8_t *)"\x16x", 2, C_41);
	CHECK(my_answer_feed(&a, p, 8) == MY_ANSWER_BAD);
}

/* Rows that begin with 0xfe. Without DEPRECATE_EOF an EOF is shorter than
 * 9 bytes: a 9-byte 0xfe packet is a row (here a text row whose one
 * column is the empty string, its length in the 8-byte lenenc form). With
 * DEPRECATE_EOF the end is an OK with header 0xfe, and only a packet of
 * MY_MAX_PAYLOAD bytes can be a row (a row beginning with an 8-byte
 * lenenc length holds 2^24 bytes or more); what continues a long payload
 * is never looked at, whatever its first byte. */
static void test_answer_long_rows(void)
{
	struct my_answer a;
	uint8_t p[64];
	uint8_t *big = malloc(MY_MAX_PAYLOAD);
	CHECK(big != NULL);
	if (!big)
		return;
	memset(big, 'a', MY_MAX_PAYLOAD);
	big[0] = 0xfe; /* lenenc 0xfe: 8 length bytes, 0x1000000 */
	memcpy(big + 1, "\x00\x00\x00\x01\x00\x00\x00\x00", 8);
	const uint8_t eof[] = { 0xfe, 0, 0, 2, 0 };
	const uint8_t okfe[] = { 0xfe, 0, 0, 2, 0, 0, 0 };

	for (int dep = 0; dep < 2; dep++) {
		uint32_t caps = dep ? C_DEP : C_41;
		my_answer_begin(&a, (const uint8_t *)"\x03", 1, caps);
		CHECK(my_answer_feed(&a, (const uint8_t *)"\x01", 1) == MY_ANSWER_MORE);
		size_t n = unhex(DEF_1, p);
		CHECK(my_answer_feed(&a, p, (uint32_t)n) == MY_ANSWER_MORE);
		if (!dep)
			CHECK(my_answer_feed(&a, eof, sizeof(eof)) == MY_ANSWER_MORE);
		/* the 9-byte 0xfe packet: a row without DEPRECATE_EOF only */
		n = unhex("fe0000000000000000", p);
		CHECK(my_answer_feed(&a, p, (uint32_t)n) == (dep ? MY_ANSWER_DONE : MY_ANSWER_MORE));
		if (dep) {
			CHECK(a.status_known && a.status == 0);
			/* again, with the long row this time */
			my_answer_begin(&a, (const uint8_t *)"\x03", 1, caps);
			CHECK(my_answer_feed(&a, (const uint8_t *)"\x01", 1) == MY_ANSWER_MORE);
			n = unhex(DEF_1, p);
			CHECK(my_answer_feed(&a, p, (uint32_t)n) == MY_ANSWER_MORE);
		}
		/* a row of 0x1000009 bytes: 0xffffff, then 10 bytes that look like an
		 * end of rows, then the real end */
		CHECK(my_answer_feed(&a, big, MY_MAX_PAYLOAD) == MY_ANSWER_MORE);
		CHECK(my_answer_feed(&a, dep ? okfe : eof, dep ? sizeof(okfe) : sizeof(eof)) == MY_ANSWER_MORE);
		CHECK(my_answer_feed(&a, dep ? okfe : eof, dep ? sizeof(okfe) : sizeof(eof)) == MY_ANSWER_DONE);
		CHECK(a.status_known && a.status == 2);
		/* a continuation of exactly 0xffffff, and the empty packet after it */
		my_answer_begin(&a, (const uint8_t *)"\x1c", 1, caps); /* fetch: rows at once */
		CHECK(my_answer_feed(&a, big, MY_MAX_PAYLOAD) == MY_ANSWER_MORE);
		CHECK(my_answer_feed(&a, big, MY_MAX_PAYLOAD) == MY_ANSWER_MORE);
		CHECK(my_answer_feed(&a, p, 0) == MY_ANSWER_MORE);
		CHECK(my_answer_feed(&a, dep ? okfe : eof, dep ? sizeof(okfe) : sizeof(eof)) == MY_ANSWER_DONE);
	}
	free(big);
}

static void test_command_answered(void)
{
	struct { uint8_t cmd; bool answered; } cases[] = {
		{ MY_COM_QUIT, false }, { MY_COM_STMT_CLOSE, false }, { MY_COM_STMT_SEND_LONG_DATA, false },
		{ MY_COM_QUERY, true }, { MY_COM_PING, true }, { MY_COM_INIT_DB, true },
		{ MY_COM_RESET_CONNECTION, true }, { MY_COM_STMT_PREPARE, true }, { MY_COM_STMT_EXECUTE, true },
		{ MY_COM_STMT_RESET, true }, { MY_COM_STMT_FETCH, true }, { MY_COM_FIELD_LIST, true },
		{ MY_COM_STATISTICS, true }, { MY_COM_SET_OPTION, true }, { MY_COM_CHANGE_USER, true },
	};
	for (size_t i = 0; i < N_ELEM(cases); i++)
		CHECK(my_command_answered(cases[i].cmd) == cases[i].answered);
}

/* COM_CHANGE_USER as libmariadb sends it, and cut at every byte. */
static void test_change_user(void)
{
	static const uint8_t pkt[] = {
		0x11, 'b', 'o', 'b', 0,              /* user */
		3, 0xaa, 0xbb, 0xcc,                 /* auth, 1-byte length */
		'd', 'b', 0,                         /* database */
		45, 0,                               /* collation */
		'm', 'y', 's', 'q', 'l', '_', 'n', 'a', 't', 'i', 'v', 'e', '_', 'p', 'a', 's', 's', 'w', 'o', 'r', 'd', 0,
		3, 1, 'k', 0,                        /* attributes: key "k", empty value */
	};
	uint32_t caps = MY_CLIENT_PROTOCOL_41 | MY_CLIENT_SECURE_CONNECTION | MY_CLIENT_PLUGIN_AUTH |
			MY_CLIENT_CONNECT_ATTRS;
	struct my_response r;
	CHECK(my_change_user_parse(pkt, sizeof(pkt), caps, &r) == 0);
	CHECK(strcmp(r.user, "bob") == 0 && strcmp(r.db, "db") == 0 && r.has_db);
	CHECK(r.auth_len == 3 && r.auth[0] == 0xaa && r.auth[2] == 0xcc);
	CHECK(r.charset == 45 && strcmp(r.auth_plugin, "mysql_native_password") == 0);
	CHECK(r.attrs && r.attrs_len == 3);
	/* Without the optional tail (old clients): user, auth, database. */
	CHECK(my_change_user_parse(pkt, 12, caps, &r) == 0);
	CHECK(r.charset == 0 && r.auth_plugin[0] == 0 && !r.attrs);
	/* Cut inside the required part, or a length past the end: refused. */
	for (uint32_t n = 0; n < 12; n++)
		CHECK(my_change_user_parse(pkt, n, caps, &r) < 0);
	static const uint8_t long_auth[] = { 0x11, 'x', 0, 200, 1, 2 };
	CHECK(my_change_user_parse(long_auth, sizeof(long_auth), caps, &r) < 0);
	static const uint8_t not_it[] = { 0x03, 'x', 0, 0, 0 };
	CHECK(my_change_user_parse(not_it, sizeof(not_it), caps, &r) < 0);
	/* Every cut of the tail parses or is refused; none reads past it. */
	for (uint32_t n = 12; n <= sizeof(pkt); n++)
		(void)my_change_user_parse(pkt, n, caps, &r);
}

UNIT_MAIN({
	test_framing();
	test_lenenc();
	test_strings();
	test_handshake();
	test_response();
	test_auth_switch();
	test_ok();
	test_err();
	test_eof();
	test_native();
	test_sha2();
	test_rsa();
	test_answer();
	test_answer_long_rows();
	test_command_answered();
	test_change_user();
})
