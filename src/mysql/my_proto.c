/*
 * my_proto.c - see my_proto.h. Pure functions over byte ranges; every
 * length read from the wire is checked against the bytes present before it
 * is used. Digests and RSA come from OpenSSL; secrets on our stack are
 * wiped with OPENSSL_cleanse before returning.
 *
 * References: MySQL's "Client/Server Protocol" (sections "MySQL Packets",
 * "Basic Data Types", "Connection Phase", "Generic Response Packets",
 * "Text Protocol", "Prepared Statements") and MariaDB's "Client/Server
 * Protocol" pages for the MariaDB-only fields (extended capabilities in
 * the handshake's reserved bytes, progress reports).
 */
#include "my_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

/* ---- framing ("MySQL Packets") ---- */

static inline uint32_t get_u24(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16; }

int my_packet_peek(const uint8_t *p, size_t avail, struct my_packet *pk)
{
	/* Any 24-bit length is valid, so a header is never an error: 0 is an
	 * empty payload (the end of a LOCAL INFILE upload, or the empty packet
	 * after a payload of exactly MY_MAX_PAYLOAD bytes). */
	if (avail < MY_HEADER_LEN)
		return 0;
	uint32_t len = get_u24(p);
	if (avail - MY_HEADER_LEN < len)
		return 0;
	pk->len = len;
	pk->seq = p[3];
	pk->payload = p + MY_HEADER_LEN;
	return 1;
}

/* Every builder failure is reported as -ENOMEM, as the header promises
 * (iobuf_append may also say -EMSGSIZE: the buffer is at IOBUF_MAX). */
static int put(struct iobuf *out, const void *p, size_t n)
{
	if (n > IOBUF_MAX)
		return -ENOMEM;
	if (n == 0)
		return 0;
	return iobuf_append(out, p, (uint32_t)n) < 0 ? -ENOMEM : 0;
}

int my_begin(struct iobuf *out, uint8_t seq)
{
	/* The offset is relative to the buffer's head (iobuf_head), which stays
	 * valid when a later append compacts or grows the block. */
	uint8_t hdr[MY_HEADER_LEN] = { 0, 0, 0, seq };
	int off = (int)iobuf_len(out);
	if (put(out, hdr, sizeof(hdr)) < 0)
		return -ENOMEM;
	return off;
}

int my_end(struct iobuf *out, int begin_offset)
{
	if (begin_offset < 0)
		return begin_offset;
	if ((uint32_t)begin_offset + MY_HEADER_LEN > iobuf_len(out))
		return -EINVAL;
	uint32_t len = iobuf_len(out) - (uint32_t)begin_offset - MY_HEADER_LEN;
	if (len >= MY_MAX_PAYLOAD)
		return -EMSGSIZE; /* would need splitting; IOBUF_MAX keeps us far below */
	uint8_t *h = iobuf_head(out) + begin_offset;
	h[0] = (uint8_t)len;
	h[1] = (uint8_t)(len >> 8);
	h[2] = (uint8_t)(len >> 16);
	return 0;
}

int my_packet_put(struct iobuf *out, uint8_t seq, const void *payload, uint32_t len)
{
	if (len >= MY_MAX_PAYLOAD)
		return -EMSGSIZE;
	int off = my_begin(out, seq);
	if (off < 0)
		return off;
	if (put(out, payload, len) < 0)
		return -ENOMEM;
	return my_end(out, off);
}

/* ---- reading fields ("Basic Data Types") ---- */

/* n bytes from the cursor, or NULL (and the sticky error) when fewer remain. */
static const uint8_t *take(struct my_reader *r, size_t n)
{
	if (r->err || (size_t)(r->end - r->p) < n) {
		r->err = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

uint8_t my_get_u8(struct my_reader *r)
{
	const uint8_t *p = take(r, 1);
	return p ? p[0] : 0;
}

uint16_t my_get_u16(struct my_reader *r)
{
	const uint8_t *p = take(r, 2);
	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t my_get_u24(struct my_reader *r)
{
	const uint8_t *p = take(r, 3);
	return p ? get_u24(p) : 0;
}

uint32_t my_get_u32(struct my_reader *r)
{
	const uint8_t *p = take(r, 4);
	return p ? get_u24(p) | (uint32_t)p[3] << 24 : 0;
}

uint64_t my_get_u64(struct my_reader *r)
{
	const uint8_t *p = take(r, 8);
	if (!p)
		return 0;
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* "Length-Encoded Integer": < 0xfb is the value itself; 0xfc, 0xfd, 0xfe
 * introduce 2, 3 and 8 bytes; 0xfb is NULL in a text row; 0xff is not an
 * integer (it begins an ERR packet). Non-minimal encodings are accepted,
 * as the server accepts them. When the caller passes is_null == NULL, 0xfb
 * reads as 0 without an error (the header's wording): callers for whom
 * NULL is impossible check the first byte themselves where it matters. */
uint64_t my_get_lenenc(struct my_reader *r, bool *is_null)
{
	if (is_null)
		*is_null = false;
	uint8_t b = my_get_u8(r);
	if (r->err)
		return 0;
	switch (b) {
	case 0xfb:
		if (is_null)
			*is_null = true;
		return 0;
	case 0xfc:
		return my_get_u16(r);
	case 0xfd:
		return my_get_u24(r);
	case 0xfe:
		return my_get_u64(r);
	case 0xff:
		r->err = true;
		return 0;
	default:
		return b;
	}
}

const uint8_t *my_get_bytes(struct my_reader *r, size_t n) { return take(r, n); }

const char *my_get_strnul(struct my_reader *r, size_t *len)
{
	const uint8_t *nul = r->err || r->p >= r->end ? NULL : memchr(r->p, '\0', (size_t)(r->end - r->p));
	if (!nul) {
		r->err = true;
		if (len)
			*len = 0;
		return NULL;
	}
	const char *s = (const char *)r->p;
	if (len)
		*len = (size_t)(nul - r->p);
	r->p = nul + 1;
	return s;
}

/* A NULL column (0xfb) gives NULL with *len 0 and no error: the caller
 * tells it from a short packet by r->err. */
const uint8_t *my_get_lenenc_str(struct my_reader *r, uint64_t *len)
{
	bool is_null;
	uint64_t n = my_get_lenenc(r, &is_null);
	*len = 0;
	if (r->err || is_null)
		return NULL;
	if (n > my_left(r)) {
		r->err = true;
		return NULL;
	}
	*len = n;
	return take(r, (size_t)n);
}

int my_put_u8(struct iobuf *out, uint8_t v) { return put(out, &v, 1); }

int my_put_u16(struct iobuf *out, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	return put(out, p, 2);
}

int my_put_u32(struct iobuf *out, uint32_t v)
{
	uint8_t p[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	return put(out, p, 4);
}

int my_put_lenenc(struct iobuf *out, uint64_t v)
{
	uint8_t p[9];
	size_t n;
	if (v < 0xfb) {
		p[0] = (uint8_t)v;
		n = 1;
	} else if (v <= 0xffff) {
		p[0] = 0xfc;
		n = 3;
	} else if (v <= 0xffffff) {
		p[0] = 0xfd;
		n = 4;
	} else {
		p[0] = 0xfe;
		n = 9;
	}
	for (size_t i = 1; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (i - 1)));
	return put(out, p, n);
}

int my_put_strnul(struct iobuf *out, const char *s) { return put(out, s, strlen(s) + 1); }

int my_put_lenenc_str(struct iobuf *out, const void *s, size_t len)
{
	if (len > IOBUF_MAX)
		return -ENOMEM;
	if (my_put_lenenc(out, len) < 0)
		return -ENOMEM;
	return put(out, s, len);
}

/* Copy a counted string into a fixed buffer; false when it does not fit. */
static bool copy_str(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

/* ---- connection phase ("Connection Phase Packets") ---- */

/*
 * Protocol::HandshakeV10:
 *   1 protocol version (10), NUL-terminated server version, 4 thread id,
 *   8 auth-plugin-data part 1, 1 filler, 2 capabilities (low half),
 *   1 charset, 2 status, 2 capabilities (high half),
 *   1 length of auth-plugin-data (0 without PLUGIN_AUTH),
 *   10 reserved: MariaDB puts its extended capabilities in the last 4
 *     when it clears CLIENT_LONG_PASSWORD ("CLIENT_MYSQL"),
 *   SECURE_CONNECTION: part 2, max(13, length - 8) bytes: 12 more nonce
 *     bytes and a NUL,
 *   PLUGIN_AUTH: the plugin name, NUL-terminated (MySQL before 5.5.10 and
 *     5.6.2 left the NUL out, bug #59453: we take the rest of the packet).
 * A handshake without the second half (pre-4.1 servers) or without
 * SECURE_CONNECTION has no 20-byte nonce; we refuse it (-EPROTO).
 */
int my_handshake_parse(const uint8_t *payload, uint32_t len, struct my_handshake *h)
{
	struct my_reader r = my_reader_of(payload, len);
	memset(h, 0, sizeof(*h));
	if (my_get_u8(&r) != 10)
		return -EPROTO;
	size_t vlen;
	const char *ver = my_get_strnul(&r, &vlen);
	if (!ver)
		return -EPROTO;
	if (vlen >= sizeof(h->server_version))
		vlen = sizeof(h->server_version) - 1; /* truncated to fit, as documented */
	memcpy(h->server_version, ver, vlen);
	h->conn_id = my_get_u32(&r);
	const uint8_t *s1 = my_get_bytes(&r, 8);
	my_get_u8(&r); /* filler */
	uint32_t caps = my_get_u16(&r);
	h->charset = my_get_u8(&r);
	h->status = my_get_u16(&r);
	caps |= (uint32_t)my_get_u16(&r) << 16;
	uint8_t auth_len = my_get_u8(&r);
	const uint8_t *reserved = my_get_bytes(&r, 10);
	if (r.err || !(caps & MY_CLIENT_SECURE_CONNECTION))
		return -EPROTO;
	h->caps = caps;
	if (!(caps & MY_CLIENT_LONG_PASSWORD))
		h->mariadb_caps = reserved[6] | (uint32_t)reserved[7] << 8 | (uint32_t)reserved[8] << 16 |
				  (uint32_t)reserved[9] << 24;
	size_t part2 = auth_len > 8 + 13 ? (size_t)auth_len - 8 : 13;
	const uint8_t *s2 = my_get_bytes(&r, part2);
	if (r.err)
		return -EPROTO;
	memcpy(h->scramble, s1, 8);
	memcpy(h->scramble + 8, s2, MY_SCRAMBLE_LEN - 8);
	if (caps & MY_CLIENT_PLUGIN_AUTH) {
		size_t left = my_left(&r);
		const uint8_t *nul = memchr(r.p, '\0', left);
		size_t n = nul ? (size_t)(nul - r.p) : left;
		/* A longer name cannot be one we know; truncation keeps it unknown. */
		if (n >= sizeof(h->auth_plugin))
			n = sizeof(h->auth_plugin) - 1;
		memcpy(h->auth_plugin, r.p, n);
	}
	return 0;
}

int my_handshake_build(struct iobuf *out, const struct my_handshake *h)
{
	int off = my_begin(out, 0);
	if (off < 0)
		return off;
	int rc = 0;
	size_t vlen = strnlen(h->server_version, sizeof(h->server_version) - 1);
	uint8_t reserved[10] = { 0 };
	if (!(h->caps & MY_CLIENT_LONG_PASSWORD)) {
		reserved[6] = (uint8_t)h->mariadb_caps;
		reserved[7] = (uint8_t)(h->mariadb_caps >> 8);
		reserved[8] = (uint8_t)(h->mariadb_caps >> 16);
		reserved[9] = (uint8_t)(h->mariadb_caps >> 24);
	}
	rc |= my_put_u8(out, 10);
	rc |= put(out, h->server_version, vlen);
	rc |= my_put_u8(out, 0);
	rc |= my_put_u32(out, h->conn_id);
	rc |= put(out, h->scramble, 8);
	rc |= my_put_u8(out, 0);
	rc |= my_put_u16(out, (uint16_t)h->caps);
	rc |= my_put_u8(out, h->charset);
	rc |= my_put_u16(out, h->status);
	rc |= my_put_u16(out, (uint16_t)(h->caps >> 16));
	rc |= my_put_u8(out, h->caps & MY_CLIENT_PLUGIN_AUTH ? MY_SCRAMBLE_LEN + 1 : 0);
	rc |= put(out, reserved, sizeof(reserved));
	if (h->caps & MY_CLIENT_SECURE_CONNECTION) {
		rc |= put(out, h->scramble + 8, MY_SCRAMBLE_LEN - 8);
		rc |= my_put_u8(out, 0);
	}
	if (h->caps & MY_CLIENT_PLUGIN_AUTH) {
		rc |= put(out, h->auth_plugin, strnlen(h->auth_plugin, sizeof(h->auth_plugin) - 1));
		rc |= my_put_u8(out, 0);
	}
	if (rc)
		return -ENOMEM;
	return my_end(out, off);
}

/* The end of a HandshakeResponse41 or a COM_CHANGE_USER: the plugin's
 * name (PLUGIN_AUTH) and the connect attributes (CONNECT_ATTRS), each only
 * when bytes are left. */
static int parse_plugin_and_attrs(struct my_reader *rd, struct my_response *r)
{
	size_t n;
	if ((r->caps & MY_CLIENT_PLUGIN_AUTH) && my_left(rd)) {
		const char *pl = my_get_strnul(rd, &n);
		if (!pl || !copy_str(r->auth_plugin, sizeof(r->auth_plugin), pl, n))
			return -EPROTO;
	}
	if ((r->caps & MY_CLIENT_CONNECT_ATTRS) && my_left(rd)) {
		uint64_t total = my_get_lenenc(rd, NULL);
		if (rd->err || total > my_left(rd))
			return -EPROTO;
		if (total) {
			r->attrs = rd->p;
			r->attrs_len = (uint32_t)total;
		}
	}
	return 0;
}

/*
 * Protocol::HandshakeResponse41:
 *   4 capabilities, 4 max packet size, 1 charset, 23 filler (MariaDB: 19
 *   filler and 4 extended capabilities) -- an SSLRequest stops here --,
 *   NUL-terminated user,
 *   auth response: lenenc with PLUGIN_AUTH_LENENC, else a 1-byte length
 *     with SECURE_CONNECTION, else NUL-terminated (pre-4.1 scramble),
 *   CONNECT_WITH_DB: NUL-terminated database,
 *   PLUGIN_AUTH: NUL-terminated plugin name,
 *   CONNECT_ATTRS: lenenc total length, then lenenc key/value strings.
 * Anything after that (MySQL 8's zstd level) is ignored. The optional
 * fields at the end may be missing altogether although their flag is set
 * (the server then takes them as absent, and so do we); a field that is
 * begun must be whole.
 */
int my_response_parse(const uint8_t *payload, uint32_t len, struct my_response *r)
{
	struct my_reader rd = my_reader_of(payload, len);
	memset(r, 0, sizeof(*r));
	r->caps = my_get_u32(&rd);
	r->max_packet = my_get_u32(&rd);
	r->charset = my_get_u8(&rd);
	const uint8_t *filler = my_get_bytes(&rd, 23);
	if (rd.err || !(r->caps & MY_CLIENT_PROTOCOL_41))
		return -EPROTO;
	r->mariadb_caps = filler[19] | (uint32_t)filler[20] << 8 | (uint32_t)filler[21] << 16 |
			  (uint32_t)filler[22] << 24;
	if (my_left(&rd) == 0) {
		/* An SSLRequest is these 32 bytes with CLIENT_SSL; the full response
		 * then follows inside TLS (with CLIENT_SSL set again). */
		if (!(r->caps & MY_CLIENT_SSL))
			return -EPROTO;
		r->ssl_request = true;
		return 0;
	}
	size_t n;
	const char *user = my_get_strnul(&rd, &n);
	if (!user || !copy_str(r->user, sizeof(r->user), user, n))
		return -EPROTO;
	const uint8_t *auth;
	uint64_t alen;
	if (r->caps & MY_CLIENT_PLUGIN_AUTH_LENENC) {
		if (my_left(&rd) && *rd.p == 0xfb)
			return -EPROTO; /* not a length */
		auth = my_get_lenenc_str(&rd, &alen);
	} else if (r->caps & MY_CLIENT_SECURE_CONNECTION) {
		alen = my_get_u8(&rd);
		auth = my_get_bytes(&rd, (size_t)alen);
	} else {
		auth = (const uint8_t *)my_get_strnul(&rd, &n);
		alen = n;
	}
	if (rd.err || alen > sizeof(r->auth))
		return -EPROTO;
	if (alen)
		memcpy(r->auth, auth, (size_t)alen);
	r->auth_len = (uint32_t)alen;
	if ((r->caps & MY_CLIENT_CONNECT_WITH_DB) && my_left(&rd)) {
		const char *db = my_get_strnul(&rd, &n);
		if (!db || !copy_str(r->db, sizeof(r->db), db, n))
			return -EPROTO;
		r->has_db = n > 0; /* the server ignores an empty name */
	}
	return parse_plugin_and_attrs(&rd, r);
}

int my_response_build(struct iobuf *out, uint8_t seq, const struct my_response *r)
{
	uint32_t caps = r->caps;
	if (r->ssl_request)
		caps |= MY_CLIENT_SSL; /* without it the 32 bytes are no SSLRequest */
	if (!r->ssl_request && !(caps & (MY_CLIENT_PLUGIN_AUTH_LENENC | MY_CLIENT_SECURE_CONNECTION)) &&
	    memchr(r->auth, '\0', r->auth_len))
		return -EINVAL; /* a NUL-terminated auth response cannot hold a NUL */
	if (!r->ssl_request && !(caps & MY_CLIENT_PLUGIN_AUTH_LENENC) && r->auth_len > 255)
		return -EINVAL;
	if (r->auth_len > sizeof(r->auth))
		return -EINVAL;
	int off = my_begin(out, seq);
	if (off < 0)
		return off;
	int rc = 0;
	uint8_t filler[23] = { 0 };
	filler[19] = (uint8_t)r->mariadb_caps;
	filler[20] = (uint8_t)(r->mariadb_caps >> 8);
	filler[21] = (uint8_t)(r->mariadb_caps >> 16);
	filler[22] = (uint8_t)(r->mariadb_caps >> 24);
	rc |= my_put_u32(out, caps);
	rc |= my_put_u32(out, r->max_packet);
	rc |= my_put_u8(out, r->charset);
	rc |= put(out, filler, sizeof(filler));
	if (!r->ssl_request) {
		rc |= put(out, r->user, strnlen(r->user, sizeof(r->user) - 1));
		rc |= my_put_u8(out, 0);
		if (caps & MY_CLIENT_PLUGIN_AUTH_LENENC) {
			rc |= my_put_lenenc_str(out, r->auth, r->auth_len);
		} else if (caps & MY_CLIENT_SECURE_CONNECTION) {
			rc |= my_put_u8(out, (uint8_t)r->auth_len);
			rc |= put(out, r->auth, r->auth_len);
		} else {
			rc |= put(out, r->auth, r->auth_len);
			rc |= my_put_u8(out, 0);
		}
		if (caps & MY_CLIENT_CONNECT_WITH_DB) {
			if (r->has_db)
				rc |= put(out, r->db, strnlen(r->db, sizeof(r->db) - 1));
			rc |= my_put_u8(out, 0);
		}
		if (caps & MY_CLIENT_PLUGIN_AUTH) {
			rc |= put(out, r->auth_plugin, strnlen(r->auth_plugin, sizeof(r->auth_plugin) - 1));
			rc |= my_put_u8(out, 0);
		}
		if (caps & MY_CLIENT_CONNECT_ATTRS)
			rc |= my_put_lenenc_str(out, r->attrs, r->attrs ? r->attrs_len : 0);
	}
	if (rc)
		return -ENOMEM;
	return my_end(out, off);
}

/*
 * Protocol::AuthSwitchRequest: 0xfe, NUL-terminated plugin name, plugin
 * data to the end. mysql_native_password's data is the 20-byte nonce and a
 * NUL (21 bytes): data and data_len are as sent, the caller takes the
 * first MY_SCRAMBLE_LEN bytes. A lone 0xfe is the old
 * "Protocol::OldAuthSwitchRequest" (switch to mysql_old_password, no data);
 * we report it under that plugin name.
 */
int my_auth_switch_parse(const uint8_t *payload, uint32_t len, char *plugin, size_t plugin_cap,
			 const uint8_t **data, uint32_t *data_len)
{
	struct my_reader r = my_reader_of(payload, len);
	if (my_get_u8(&r) != 0xfe || r.err)
		return -EPROTO;
	if (len == 1) {
		static const char old[] = "mysql_old_password";
		if (!copy_str(plugin, plugin_cap, old, sizeof(old) - 1))
			return -EPROTO;
		*data = payload + 1;
		*data_len = 0;
		return 0;
	}
	size_t n;
	const char *name = my_get_strnul(&r, &n);
	if (!name || !copy_str(plugin, plugin_cap, name, n))
		return -EPROTO;
	*data = r.p;
	*data_len = (uint32_t)my_left(&r);
	return 0;
}

int my_auth_switch_build(struct iobuf *out, uint8_t seq, const char *plugin, const uint8_t *data,
			 uint32_t data_len)
{
	int off = my_begin(out, seq);
	if (off < 0)
		return off;
	int rc = my_put_u8(out, 0xfe) | my_put_strnul(out, plugin) | put(out, data, data_len);
	if (rc)
		return -ENOMEM;
	return my_end(out, off);
}

int my_auth_more_build(struct iobuf *out, uint8_t seq, const uint8_t *data, uint32_t data_len)
{
	int off = my_begin(out, seq);
	if (off < 0)
		return off;
	if (my_put_u8(out, 0x01) | put(out, data, data_len))
		return -ENOMEM;
	return my_end(out, off);
}

/* ---- generic responses ("Generic Response Packets") ---- */

/*
 * OK_Packet: 0x00 (0xfe when it ends a result set under DEPRECATE_EOF),
 * lenenc affected rows, lenenc last insert id, then with PROTOCOL_41
 * status and warnings (with only TRANSACTIONS, status alone). Then:
 * with SESSION_TRACK, a lenenc info string (servers leave it out when
 * it is empty and nothing else follows) and, when the status has
 * SESSION_STATE_CHANGED, the lenenc session state changes; without
 * SESSION_TRACK, the info string takes the rest of the packet.
 */
int my_ok_parse(const uint8_t *payload, uint32_t len, uint32_t caps, struct my_ok *ok)
{
	struct my_reader r = my_reader_of(payload, len);
	memset(ok, 0, sizeof(*ok));
	uint8_t h = my_get_u8(&r);
	if (r.err || (h != 0x00 && h != 0xfe))
		return -EPROTO;
	ok->affected_rows = my_get_lenenc(&r, NULL);
	ok->last_insert_id = my_get_lenenc(&r, NULL);
	if (caps & MY_CLIENT_PROTOCOL_41) {
		ok->status = my_get_u16(&r);
		ok->warnings = my_get_u16(&r);
	} else if (caps & MY_CLIENT_TRANSACTIONS) {
		ok->status = my_get_u16(&r);
	}
	if (r.err)
		return -EPROTO;
	if (caps & MY_CLIENT_SESSION_TRACK) {
		if (my_left(&r)) {
			uint64_t n;
			const uint8_t *info = my_get_lenenc_str(&r, &n);
			if (r.err)
				return -EPROTO;
			ok->info = info;
			ok->info_len = (uint32_t)n;
		}
		if ((ok->status & MY_STATUS_SESSION_STATE_CHANGED) && my_left(&r)) {
			uint64_t n;
			const uint8_t *st = my_get_lenenc_str(&r, &n);
			if (r.err)
				return -EPROTO;
			ok->session_state = st;
			ok->session_state_len = (uint32_t)n;
		}
	} else {
		ok->info = r.p;
		ok->info_len = (uint32_t)my_left(&r);
	}
	return 0;
}

int my_ok_build(struct iobuf *out, uint8_t seq, uint64_t affected_rows, uint64_t last_insert_id,
		uint16_t status, uint16_t warnings)
{
	int off = my_begin(out, seq);
	if (off < 0)
		return off;
	int rc = my_put_u8(out, 0x00) | my_put_lenenc(out, affected_rows) | my_put_lenenc(out, last_insert_id) |
		 my_put_u16(out, status) | my_put_u16(out, warnings);
	if (rc)
		return -ENOMEM;
	return my_end(out, off);
}

/*
 * ERR_Packet: 0xff, 2 error code, with PROTOCOL_41 '#' and a 5-character
 * SQLSTATE, then the message to the end. Errors sent before the
 * capabilities are agreed (too many connections, host blocked) have no
 * '#': we look for it rather than at caps. MariaDB's progress reports
 * (code 0xffff) are parsed like any ERR; the answer tracker skips them.
 */
int my_err_parse(const uint8_t *payload, uint32_t len, struct my_err *e)
{
	struct my_reader r = my_reader_of(payload, len);
	memset(e, 0, sizeof(*e));
	if (my_get_u8(&r) != 0xff)
		return -EPROTO;
	e->code = my_get_u16(&r);
	if (r.err)
		return -EPROTO;
	memcpy(e->sqlstate, "HY000", 6);
	if (my_left(&r) >= 6 && r.p[0] == '#') {
		memcpy(e->sqlstate, r.p + 1, 5);
		e->sqlstate[5] = '\0';
		r.p += 6;
	}
	e->msg = (const char *)r.p;
	e->msg_len = (uint32_t)my_left(&r);
	return 0;
}

void my_err_text(const uint8_t *payload, uint32_t len, const char *what, char *out, size_t outlen)
{
	struct my_err e;
	if (my_err_parse(payload, len, &e) < 0)
		snprintf(out, outlen, "%s", what);
	else
		snprintf(out, outlen, "%s%s%.*s", what, *what ? ": " : "", (int)e.msg_len, e.msg);
}

int my_err_build(struct iobuf *out, uint8_t seq, uint16_t code, const char *sqlstate, const char *msg)
{
	if (!sqlstate || strlen(sqlstate) != 5)
		sqlstate = "HY000";
	int off = my_begin(out, seq);
	if (off < 0)
		return off;
	int rc = my_put_u8(out, 0xff) | my_put_u16(out, code) | my_put_u8(out, '#') | put(out, sqlstate, 5) |
		 put(out, msg, strlen(msg));
	if (rc)
		return -ENOMEM;
	return my_end(out, off);
}

/* EOF_Packet: 0xfe, then with PROTOCOL_41 2 warnings and 2 status (in that
 * order, the reverse of the OK packet). Shorter than 9 bytes: a row or a
 * lenenc integer that begins with 0xfe is at least 9 bytes long. */
bool my_is_eof(const uint8_t *payload, uint32_t len) { return len >= 1 && len < 9 && payload[0] == 0xfe; }

uint16_t my_eof_status(const uint8_t *payload, uint32_t len)
{
	if (!my_is_eof(payload, len) || len < 5)
		return 0;
	return (uint16_t)(payload[3] | payload[4] << 8);
}

int my_eof_build(struct iobuf *out, uint8_t seq, uint16_t status, uint16_t warnings)
{
	int off = my_begin(out, seq);
	if (off < 0)
		return off;
	if (my_put_u8(out, 0xfe) | my_put_u16(out, warnings) | my_put_u16(out, status))
		return -ENOMEM;
	return my_end(out, off);
}

/* ---- authentication ---- */

static void digest(const EVP_MD *md, const void *p, size_t n, uint8_t *out)
{
	unsigned int len;
	/* EVP_Digest fails only when OpenSSL cannot allocate its context; the
	 * zeroed result then proves nothing (checks compare against it and fail
	 * unless the other side is zero too, which a digest never is). */
	if (EVP_Digest(p, n, out, &len, md, NULL) != 1)
		memset(out, 0, (size_t)EVP_MD_get_size(md));
}

/*
 * The two challenge-response schemes have one shape: stage1 = H(password),
 * stage2 = H(stage1) (what the server stores), answer = stage1 XOR
 * H(stage2 and the nonce). The check recovers stage1 from an answer and
 * compares H(stage1) with stage2, in constant time.
 *   mysql_native_password ("Native Authentication"): H = SHA1, the nonce
 *   before stage2; stage2 is the "*HEX" stored in mysql.user.
 *   caching_sha2_password, fast path (MySQL's "Caching_sha2_password
 *   information"): H = SHA256, stage2 before the nonce.
 * An empty password is an empty answer, and an empty answer proves the
 * empty password: it is accepted when stage2 is that of "".
 */
struct scheme {
	const EVP_MD *(*md)(void);
	uint32_t n;                /* digest bytes */
	bool nonce_first;          /* H(nonce + stage2), else H(stage2 + nonce) */
};
static const struct scheme NATIVE = { EVP_sha1, 20, true };
static const struct scheme SHA2 = { EVP_sha256, 32, false };

/* H(stage2 and the nonce), in the scheme's order. */
static void mix_of(const struct scheme *k, const uint8_t *stage2, const uint8_t nonce[MY_SCRAMBLE_LEN], uint8_t *mix)
{
	uint8_t buf[32 + MY_SCRAMBLE_LEN];
	memcpy(buf + (k->nonce_first ? 0 : k->n), nonce, MY_SCRAMBLE_LEN);
	memcpy(buf + (k->nonce_first ? MY_SCRAMBLE_LEN : 0), stage2, k->n);
	digest(k->md(), buf, k->n + MY_SCRAMBLE_LEN, mix);
}

static void stage2_of(const struct scheme *k, const char *password, uint8_t *out)
{
	uint8_t stage1[32];
	digest(k->md(), password, strlen(password), stage1);
	digest(k->md(), stage1, k->n, out);
	OPENSSL_cleanse(stage1, sizeof(stage1));
}

static void answer_of(const struct scheme *k, const char *password, const uint8_t nonce[MY_SCRAMBLE_LEN],
		      uint8_t *out, uint32_t *out_len)
{
	if (!*password) {
		*out_len = 0;
		return;
	}
	uint8_t stage1[32], stage2[32], mix[32];
	digest(k->md(), password, strlen(password), stage1);
	digest(k->md(), stage1, k->n, stage2);
	mix_of(k, stage2, nonce, mix);
	for (uint32_t i = 0; i < k->n; i++)
		out[i] = stage1[i] ^ mix[i];
	*out_len = k->n;
	OPENSSL_cleanse(stage1, sizeof(stage1));
	OPENSSL_cleanse(stage2, sizeof(stage2));
	OPENSSL_cleanse(mix, sizeof(mix));
}

static bool check_of(const struct scheme *k, const uint8_t *stage2, const uint8_t nonce[MY_SCRAMBLE_LEN],
		     const uint8_t *answer, uint32_t answer_len, bool empty)
{
	uint8_t mix[32], stage1[32], check[32];
	if (empty) {
		stage2_of(k, "", check);
		return CRYPTO_memcmp(check, stage2, k->n) == 0;
	}
	if (answer_len != k->n)
		return false;
	mix_of(k, stage2, nonce, mix);
	for (uint32_t i = 0; i < k->n; i++)
		stage1[i] = answer[i] ^ mix[i];
	digest(k->md(), stage1, k->n, check);
	bool ok = CRYPTO_memcmp(check, stage2, k->n) == 0;
	OPENSSL_cleanse(stage1, sizeof(stage1));
	OPENSSL_cleanse(mix, sizeof(mix));
	return ok;
}

void my_native_answer(const char *password, const uint8_t nonce[MY_SCRAMBLE_LEN], uint8_t out[20],
		      uint32_t *out_len)
{
	answer_of(&NATIVE, password, nonce, out, out_len);
}

void my_native_stage2(const char *password, uint8_t out[20])
{
	stage2_of(&NATIVE, password, out);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int my_native_stage2_from_hex(const char *star_hex, uint8_t out[20])
{
	if (star_hex[0] != '*' || strlen(star_hex) != 41)
		return -EINVAL;
	for (int i = 0; i < 20; i++) {
		int hi = hexval(star_hex[1 + 2 * i]), lo = hexval(star_hex[2 + 2 * i]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

bool my_native_check(const uint8_t stage2[20], const uint8_t nonce[MY_SCRAMBLE_LEN], const uint8_t *answer,
		     uint32_t answer_len)
{
	return check_of(&NATIVE, stage2, nonce, answer, answer_len, answer_len == 0);
}

void my_sha2_answer(const char *password, const uint8_t nonce[MY_SCRAMBLE_LEN], uint8_t out[32],
		    uint32_t *out_len)
{
	answer_of(&SHA2, password, nonce, out, out_len);
}

void my_sha2_stage2(const char *password, uint8_t out[32])
{
	stage2_of(&SHA2, password, out);
}

/* Some clients send a single NUL for the empty password. */
bool my_sha2_check(const uint8_t stage2[32], const uint8_t nonce[MY_SCRAMBLE_LEN], const uint8_t *answer,
		   uint32_t answer_len)
{
	return check_of(&SHA2, stage2, nonce, answer, answer_len,
			answer_len == 0 || (answer_len == 1 && answer[0] == 0));
}

/* Largest RSA modulus we handle (bytes): 8192-bit keys. The plaintext
 * buffer lives on the stack (no malloc here). */
#define MY_RSA_MAX 1024

/*
 * Full authentication over a plain connection: the client XORs
 * "password\0" with the nonce (repeated) and encrypts it with the
 * server's public key, RSA with OAEP padding (SHA-1, as MySQL 8.0.5+
 * uses; older servers used PKCS#1 v1.5 for sha256_password, not handled).
 * The key the server sends is PEM "BEGIN PUBLIC KEY" (SubjectPublicKeyInfo).
 */
int my_sha2_rsa_encrypt(const char *password, const uint8_t nonce[MY_SCRAMBLE_LEN], const char *pem,
			size_t pem_len, uint8_t *out, size_t out_cap)
{
	uint8_t plain[MY_RSA_MAX];
	size_t plen = strlen(password) + 1;
	if (pem_len > INT32_MAX)
		return -EINVAL;
	BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
	if (!bio)
		return -ENOMEM;
	EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!key)
		return -EINVAL;
	int rc = -EINVAL;
	EVP_PKEY_CTX *ctx = NULL;
	size_t ksize = (size_t)EVP_PKEY_get_size(key);
	/* OAEP with SHA-1 takes at most k - 2*20 - 2 bytes. */
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA || ksize > MY_RSA_MAX || plen + 42 > ksize) {
		rc = plen + 42 > ksize ? -EMSGSIZE : -EINVAL;
		goto out;
	}
	if (out_cap < ksize) {
		rc = -ENOSPC;
		goto out;
	}
	for (size_t i = 0; i < plen; i++)
		plain[i] = (uint8_t)password[i] ^ nonce[i % MY_SCRAMBLE_LEN];
	ctx = EVP_PKEY_CTX_new(key, NULL);
	size_t n = out_cap;
	if (!ctx || EVP_PKEY_encrypt_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_encrypt(ctx, out, &n, plain, plen) <= 0) {
		rc = -EIO;
		goto out;
	}
	rc = (int)n;
out:
	OPENSSL_cleanse(plain, sizeof(plain));
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(key);
	return rc;
}

/* Returns the password's length (without the NUL written after it). The
 * plaintext must end in the NUL the client XORed in: anything else is a
 * wrong key or nonce (-EBADMSG). */
int my_sha2_rsa_decrypt(void *evp_pkey, const uint8_t nonce[MY_SCRAMBLE_LEN], const uint8_t *in, size_t in_len,
			char *password, size_t password_cap)
{
	EVP_PKEY *key = evp_pkey;
	uint8_t plain[MY_RSA_MAX];
	size_t n = sizeof(plain);
	if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA || (size_t)EVP_PKEY_get_size(key) > MY_RSA_MAX)
		return -EINVAL;
	if (in_len != (size_t)EVP_PKEY_get_size(key))
		return -EBADMSG;
	int rc;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	if (!ctx || EVP_PKEY_decrypt_init(ctx) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_decrypt(ctx, plain, &n, in, in_len) <= 0) {
		rc = ctx ? -EBADMSG : -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		plain[i] ^= nonce[i % MY_SCRAMBLE_LEN];
	if (n == 0 || plain[n - 1] != 0 || memchr(plain, 0, n - 1)) {
		rc = -EBADMSG;
		goto out;
	}
	if (n > password_cap) {
		rc = -ENOSPC;
		goto out;
	}
	memcpy(password, plain, n);
	rc = (int)(n - 1);
out:
	OPENSSL_cleanse(plain, sizeof(plain));
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

/* ---- the end of an answer ---- */

/*
 * Reading of the header's contract, where it leaves room:
 * - status_known is false after an ERR, as documented, and also when the
 *   answer carried no status flags at all: COM_STMT_PREPARE under
 *   DEPRECATE_EOF or with neither parameters nor columns (its OK has no
 *   status field), and COM_STATISTICS (a bare string). The caller keeps
 *   what it knew before; neither command changes the transaction state.
 * - A COM_STMT_EXECUTE that asked for a cursor ends after the column
 *   definitions only when the server says CURSOR_EXISTS (without
 *   DEPRECATE_EOF, on the EOF after them; with it, MariaDB 10.11 sends a
 *   0xfe OK with that flag in place of the rows, which ends the result
 *   like any terminator). A statement without a result set gets no cursor
 *   and its rows come as usual.
 * - Not followed here: COM_CHANGE_USER's authentication exchange (the
 *   state machine runs it and feeds only the final OK/ERR), COM_BINLOG_DUMP
 *   (BAD unless refused), and result sets whose metadata may be left out
 *   (MySQL's CLIENT_OPTIONAL_RESULTSET_METADATA, MariaDB's CACHE_METADATA):
 *   those capabilities must not be negotiated.
 */

/* my_answer.phase: the state in the low bits, two flags in the high ones. */
enum {
	PH_FIRST,       /* an OK, ERR, LOCAL INFILE request or a column count */
	PH_COLDEFS,     /* `left` column definitions of a result set */
	PH_COLDEFS_EOF, /* the EOF after them (no DEPRECATE_EOF) */
	PH_ROWS,        /* rows until EOF / OK(0xfe) */
	PH_PREP_PARAMS, /* COM_STMT_PREPARE: `left` parameter definitions */
	PH_PREP_PARAMS_EOF,
	PH_PREP_COLS,   /* then prep_columns column definitions */
	PH_PREP_COLS_EOF,
	PH_SIMPLE,      /* a single OK / ERR / EOF */
	PH_STRING,      /* COM_STATISTICS: one packet, a string */
	PH_FIELDS,      /* COM_FIELD_LIST: definitions until EOF */
	PH_UNTRACKED,   /* a stream we cannot follow: only an ERR ends it */
	PH_DONE,
	PH_MASK = 0x3f,
	PH_CURSOR = 0x40, /* COM_STMT_EXECUTE asked for a cursor */
	PH_CONT = 0x80,   /* the last packet was MY_MAX_PAYLOAD long: the next
			   * one continues its payload and is not looked at */
};

static void set_phase(struct my_answer *a, uint8_t ph) { a->phase = (uint8_t)((a->phase & ~PH_MASK) | ph); }

bool my_command_answered(uint8_t command)
{
	return command != MY_COM_QUIT && command != MY_COM_STMT_CLOSE && command != MY_COM_STMT_SEND_LONG_DATA;
}

void my_answer_begin(struct my_answer *a, const uint8_t *cmd, uint32_t len, uint32_t caps)
{
	memset(a, 0, sizeof(*a));
	a->command = len ? cmd[0] : MY_COM_SLEEP;
	a->caps = caps;
	switch (a->command) {
	case MY_COM_QUERY:
	case MY_COM_STMT_BULK_EXECUTE:
		a->phase = PH_FIRST;
		break;
	case MY_COM_STMT_EXECUTE:
		/* COM_STMT_EXECUTE: 0x17, 4 statement id, 1 flags; flags 1, 2 and 4
		 * ask for a (read only, for update, scrollable) cursor. Whether one
		 * is opened the server says with SERVER_STATUS_CURSOR_EXISTS. */
		a->phase = PH_FIRST;
		if (len >= 6 && (cmd[5] & 0x07))
			a->phase |= PH_CURSOR;
		break;
	case MY_COM_STMT_FETCH:
		a->phase = PH_ROWS; /* binary rows of the open cursor, then EOF */
		break;
	case MY_COM_STMT_PREPARE:
		a->phase = PH_FIRST; /* told apart from a result by command */
		break;
	case MY_COM_STATISTICS:
		a->phase = PH_STRING;
		break;
	case MY_COM_FIELD_LIST:
		a->phase = PH_FIELDS;
		break;
	case MY_COM_BINLOG_DUMP:
		/* A replication stream of 0x00-headed events that never ends; its
		 * first event would pass for an OK. Only a refusal (ERR) is an
		 * answer; anything else is BAD: a pooler cannot share it. */
		a->phase = PH_UNTRACKED;
		break;
	default:
		/* COM_PING, COM_INIT_DB, COM_RESET_CONNECTION, COM_STMT_RESET,
		 * COM_PROCESS_KILL, COM_CHANGE_USER's final answer: OK or ERR;
		 * COM_SET_OPTION and COM_DEBUG: EOF or ERR; unknown commands: ERR. */
		a->phase = PH_SIMPLE;
		break;
	}
}

/* Is this 0xfe packet the end of a result (EOF, or OK under DEPRECATE_EOF)?
 * Without DEPRECATE_EOF an EOF is shorter than 9 bytes. With it, the end
 * is an OK packet with header 0xfe, which may be longer; a text row that
 * begins with 0xfe begins with an 8-byte lenenc length (a value of 2^24
 * bytes or more), so its payload fills a whole MY_MAX_PAYLOAD packet: any
 * shorter 0xfe packet is the end. */
static bool is_terminator(const struct my_answer *a, const uint8_t *payload, uint32_t len)
{
	if (len == 0 || payload[0] != 0xfe)
		return false;
	return (a->caps & MY_CLIENT_DEPRECATE_EOF) ? len < MY_MAX_PAYLOAD : len < 9;
}

/* Status of a terminator: an OK's under DEPRECATE_EOF, else an EOF's.
 * -1 when the OK does not parse. */
static int terminator_status(const struct my_answer *a, const uint8_t *payload, uint32_t len)
{
	if (a->caps & MY_CLIENT_DEPRECATE_EOF) {
		struct my_ok ok;
		if (my_ok_parse(payload, len, a->caps, &ok) < 0)
			return -1;
		return ok.status;
	}
	return my_eof_status(payload, len);
}

/* A result (or the whole answer) ends with status st. */
static int end_result(struct my_answer *a, uint16_t st)
{
	a->status = st;
	a->status_known = true;
	if (st & MY_STATUS_MORE_RESULTS) {
		set_phase(a, PH_FIRST);
		return MY_ANSWER_MORE;
	}
	set_phase(a, PH_DONE);
	return MY_ANSWER_DONE;
}

/* An ERR ends the answer, also in the middle of a result or of a chain of
 * results (a multi-statement stops at its first error). It carries no
 * status: status_known goes false. */
static int end_err(struct my_answer *a)
{
	a->status_known = false;
	set_phase(a, PH_DONE);
	return MY_ANSWER_DONE;
}

static int bad(struct my_answer *a)
{
	set_phase(a, PH_DONE);
	return MY_ANSWER_BAD;
}

/* COM_STMT_PREPARE_OK: 0x00, 4 statement id, 2 columns, 2 params,
 * 1 reserved, 2 warnings (the last two when the packet is longer than 9). */
static int feed_prepare_ok(struct my_answer *a, const uint8_t *payload, uint32_t len)
{
	struct my_reader r = my_reader_of(payload, len);
	my_get_u8(&r);
	a->prepared_id = my_get_u32(&r);
	a->prep_columns = my_get_u16(&r);
	a->prepared_params = my_get_u16(&r);
	if (r.err)
		return bad(a);
	/* The prepare OK carries no status flags; status_known stays false
	 * unless an EOF after the definitions tells them. */
	if (a->prepared_params) {
		a->left = a->prepared_params;
		set_phase(a, PH_PREP_PARAMS);
		return MY_ANSWER_MORE;
	}
	if (a->prep_columns) {
		a->left = a->prep_columns;
		set_phase(a, PH_PREP_COLS);
		return MY_ANSWER_MORE;
	}
	set_phase(a, PH_DONE);
	return MY_ANSWER_DONE;
}

/* After the parameter definitions (and their EOF): columns or the end. */
static int prep_after_params(struct my_answer *a)
{
	if (a->prep_columns) {
		a->left = a->prep_columns;
		set_phase(a, PH_PREP_COLS);
		return MY_ANSWER_MORE;
	}
	set_phase(a, PH_DONE);
	return MY_ANSWER_DONE;
}

static int feed_first(struct my_answer *a, const uint8_t *payload, uint32_t len)
{
	uint8_t h = payload[0];
	if (h == 0xff)
		return end_err(a);
	if (a->command == MY_COM_STMT_PREPARE) {
		if (h != 0x00)
			return bad(a);
		return feed_prepare_ok(a, payload, len);
	}
	if (h == 0x00) {
		struct my_ok ok;
		if (my_ok_parse(payload, len, a->caps, &ok) < 0)
			return bad(a);
		if (ok.last_insert_id)
			a->last_insert_id = ok.last_insert_id;
		return end_result(a, ok.status);
	}
	if (h == 0xfb) {
		/* LOCAL INFILE request: 0xfb and the file name (COM_QUERY only). The
		 * client sends the file, then the server answers as to a query. */
		if (a->command != MY_COM_QUERY)
			return bad(a);
		return MY_ANSWER_INFILE;
	}
	if (h == 0xfe)
		return bad(a);
	/* A result set: the column count alone in the packet. (MySQL's
	 * OPTIONAL_RESULTSET_METADATA and MariaDB's CACHE_METADATA add a byte and
	 * may leave the definitions out; they must not be negotiated.) */
	struct my_reader r = my_reader_of(payload, len);
	uint64_t n = my_get_lenenc(&r, NULL);
	if (r.err || my_left(&r) || n == 0)
		return bad(a);
	a->left = n;
	set_phase(a, PH_COLDEFS);
	return MY_ANSWER_MORE;
}

/* One definition of a counted list; an ERR ends the answer, an EOF here
 * means we lost count. */
static int feed_definition(struct my_answer *a, const uint8_t *payload, uint32_t len)
{
	if (payload[0] == 0xff)
		return end_err(a);
	if (my_is_eof(payload, len) || a->left == 0)
		return bad(a);
	a->left--;
	return MY_ANSWER_MORE;
}

int my_answer_feed(struct my_answer *a, const uint8_t *payload, uint32_t len)
{
	uint8_t ph = a->phase & PH_MASK;
	/* A continuation of a long payload: not a packet of its own. */
	if (a->phase & PH_CONT) {
		if (len < MY_MAX_PAYLOAD)
			a->phase &= (uint8_t)~PH_CONT;
		return ph == PH_DONE ? MY_ANSWER_BAD : MY_ANSWER_MORE;
	}
	if (ph == PH_DONE)
		return MY_ANSWER_BAD;
	if (len == MY_MAX_PAYLOAD)
		a->phase |= PH_CONT; /* only rows are this long; the rest is skipped */
	if (len == 0) {
		/* No answer packet is empty (bar a continuation, handled above). */
		return bad(a);
	}
	uint8_t h = payload[0];
	/* MariaDB's progress report: an ERR with code 0xffff, sent in the
	 * middle of a long statement to clients that asked for them (its
	 * extended capability MARIADB_CLIENT_PROGRESS). Not an error and not
	 * the end: no real error has that number. */
	if (h == 0xff && len >= 3 && payload[1] == 0xff && payload[2] == 0xff && ph != PH_STRING)
		return MY_ANSWER_MORE;
	int st;
	switch (ph) {
	case PH_FIRST:
		return feed_first(a, payload, len);
	case PH_COLDEFS:
		st = feed_definition(a, payload, len);
		if (st != MY_ANSWER_MORE)
			return st;
		if (a->left == 0)
			set_phase(a, (a->caps & MY_CLIENT_DEPRECATE_EOF) ? PH_ROWS : PH_COLDEFS_EOF);
		return MY_ANSWER_MORE;
	case PH_COLDEFS_EOF:
		if (h == 0xff)
			return end_err(a);
		if (!my_is_eof(payload, len))
			return bad(a);
		st = my_eof_status(payload, len);
		/* COM_STMT_EXECUTE with a cursor: the server opened it and ends the
		 * answer here; the rows come with COM_STMT_FETCH. */
		if ((a->phase & PH_CURSOR) && (st & MY_STATUS_CURSOR_EXISTS))
			return end_result(a, (uint16_t)st);
		a->status = (uint16_t)st;
		set_phase(a, PH_ROWS);
		return MY_ANSWER_MORE;
	case PH_ROWS:
		/* A text row begins with a lenenc string or 0xfb (NULL), a binary row
		 * with 0x00: 0xff is an ERR (the statement failed half way). */
		if (h == 0xff)
			return end_err(a);
		if (!is_terminator(a, payload, len))
			return MY_ANSWER_MORE;
		st = terminator_status(a, payload, len);
		return st < 0 ? bad(a) : end_result(a, (uint16_t)st);
	case PH_PREP_PARAMS:
	case PH_PREP_COLS:
		if (h == 0xff)
			return end_err(a);
		if (my_is_eof(payload, len) || a->left == 0)
			return bad(a);
		if (--a->left)
			return MY_ANSWER_MORE;
		if (!(a->caps & MY_CLIENT_DEPRECATE_EOF)) {
			set_phase(a, ph == PH_PREP_PARAMS ? PH_PREP_PARAMS_EOF : PH_PREP_COLS_EOF);
			return MY_ANSWER_MORE;
		}
		if (ph == PH_PREP_PARAMS)
			return prep_after_params(a);
		set_phase(a, PH_DONE);
		return MY_ANSWER_DONE;
	case PH_PREP_PARAMS_EOF:
	case PH_PREP_COLS_EOF:
		if (!my_is_eof(payload, len))
			return bad(a);
		a->status = my_eof_status(payload, len);
		a->status_known = true;
		if (ph == PH_PREP_PARAMS_EOF)
			return prep_after_params(a);
		set_phase(a, PH_DONE);
		return MY_ANSWER_DONE;
	case PH_FIELDS:
		if (h == 0xff)
			return end_err(a);
		if (!is_terminator(a, payload, len))
			return MY_ANSWER_MORE;
		st = terminator_status(a, payload, len);
		if (st < 0)
			return bad(a);
		a->status = (uint16_t)st;
		a->status_known = true;
		set_phase(a, PH_DONE);
		return MY_ANSWER_DONE;
	case PH_UNTRACKED:
		return h == 0xff ? end_err(a) : bad(a);
	case PH_STRING:
		/* The statistics string carries no status; an ERR neither. */
		set_phase(a, PH_DONE);
		return MY_ANSWER_DONE;
	case PH_SIMPLE:
		if (h == 0xff)
			return end_err(a);
		if (h == 0x00) {
			struct my_ok ok;
			if (my_ok_parse(payload, len, a->caps, &ok) < 0)
				return bad(a);
			a->status = ok.status;
			a->status_known = true;
			set_phase(a, PH_DONE);
			return MY_ANSWER_DONE;
		}
		if (is_terminator(a, payload, len)) {
			st = terminator_status(a, payload, len);
			if (st < 0)
				return bad(a);
			a->status = (uint16_t)st;
			a->status_known = true;
			set_phase(a, PH_DONE);
			return MY_ANSWER_DONE;
		}
		/* COM_CHANGE_USER's authentication exchange (0xfe switch, 0x01 more
		 * data) needs the client's part: the state machine runs it and
		 * hands us only the final OK or ERR. */
		return bad(a);
	}
	return bad(a);
}

/* ---- COM_CHANGE_USER ("COM_CHANGE_USER" in "Text Protocol") ---- */

int my_change_user_parse(const uint8_t *payload, uint32_t len, uint32_t caps, struct my_response *r)
{
	struct my_reader rd = my_reader_of(payload, len);
	memset(r, 0, sizeof(*r));
	r->caps = caps;
	if (my_get_u8(&rd) != MY_COM_CHANGE_USER || rd.err)
		return -EPROTO;
	size_t n;
	const char *user = my_get_strnul(&rd, &n);
	if (!user || !copy_str(r->user, sizeof(r->user), user, n))
		return -EPROTO;
	const uint8_t *auth;
	size_t alen;
	if (caps & MY_CLIENT_SECURE_CONNECTION) {
		alen = my_get_u8(&rd);
		auth = my_get_bytes(&rd, alen);
	} else {
		auth = (const uint8_t *)my_get_strnul(&rd, &alen);
	}
	if (rd.err || !auth || alen > sizeof(r->auth))
		return -EPROTO;
	if (alen)
		memcpy(r->auth, auth, alen);
	r->auth_len = (uint32_t)alen;
	const char *db = my_get_strnul(&rd, &n);
	if (!db || !copy_str(r->db, sizeof(r->db), db, n))
		return -EPROTO;
	r->has_db = n > 0;
	if (my_left(&rd) >= 2)
		r->charset = (uint8_t)my_get_u16(&rd); /* collation ids past 255 are not kept */
	return parse_plugin_and_attrs(&rd, r);
}

bool my_answer_in_rows(const struct my_answer *a)
{
	return (a->phase & PH_MASK) == PH_ROWS;
}
