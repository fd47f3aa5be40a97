/*
 * my_proto.h - MySQL/MariaDB client/server protocol codec (MySQL's
 * "Client/Server Protocol" reference; MariaDB's "Client/Server Protocol"
 * pages for its extensions).
 *
 * Owns: pure functions that parse and build packets over byte ranges, the
 * authentication scrambles, and a tracker that tells where the server's
 * answer to one command ends.
 * Must not: do I/O, allocate (except OpenSSL's own use in the RSA helpers),
 * log or keep state beyond the caller's structs. Every length read from the
 * network is checked against the bytes actually present.
 *
 * Prefix: my_. Integers on the wire are little-endian.
 */
#ifndef SLUICE_MY_PROTO_H
#define SLUICE_MY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iobuf.h"

#define MY_HEADER_LEN    4u          /* 3-byte payload length + sequence id */
#define MY_MAX_PAYLOAD   0xffffffu   /* a payload this long continues in the next packet */
#define MY_SCRAMBLE_LEN  20u         /* nonce of both password plugins */

/* Capability flags (32 bits on the wire in protocol 4.1). */
#define MY_CLIENT_LONG_PASSWORD        0x00000001u /* MySQL; MariaDB servers clear it ("CLIENT_MYSQL") */
#define MY_CLIENT_FOUND_ROWS           0x00000002u
#define MY_CLIENT_LONG_FLAG            0x00000004u
#define MY_CLIENT_CONNECT_WITH_DB      0x00000008u
#define MY_CLIENT_NO_SCHEMA            0x00000010u
#define MY_CLIENT_COMPRESS             0x00000020u
#define MY_CLIENT_ODBC                 0x00000040u
#define MY_CLIENT_LOCAL_FILES          0x00000080u
#define MY_CLIENT_IGNORE_SPACE         0x00000100u
#define MY_CLIENT_PROTOCOL_41          0x00000200u
#define MY_CLIENT_INTERACTIVE          0x00000400u
#define MY_CLIENT_SSL                  0x00000800u
#define MY_CLIENT_IGNORE_SIGPIPE       0x00001000u
#define MY_CLIENT_TRANSACTIONS         0x00002000u
#define MY_CLIENT_RESERVED             0x00004000u
#define MY_CLIENT_SECURE_CONNECTION    0x00008000u
#define MY_CLIENT_MULTI_STATEMENTS     0x00010000u
#define MY_CLIENT_MULTI_RESULTS        0x00020000u
#define MY_CLIENT_PS_MULTI_RESULTS     0x00040000u
#define MY_CLIENT_PLUGIN_AUTH          0x00080000u
#define MY_CLIENT_CONNECT_ATTRS        0x00100000u
#define MY_CLIENT_PLUGIN_AUTH_LENENC   0x00200000u /* CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA */
#define MY_CLIENT_CAN_HANDLE_EXPIRED   0x00400000u
#define MY_CLIENT_SESSION_TRACK        0x00800000u
#define MY_CLIENT_DEPRECATE_EOF        0x01000000u

/* Server status flags (OK and EOF packets). */
#define MY_STATUS_IN_TRANS             0x0001u
#define MY_STATUS_AUTOCOMMIT           0x0002u
#define MY_STATUS_MORE_RESULTS         0x0008u
#define MY_STATUS_NO_GOOD_INDEX        0x0010u
#define MY_STATUS_NO_INDEX             0x0020u
#define MY_STATUS_CURSOR_EXISTS        0x0040u
#define MY_STATUS_LAST_ROW_SENT        0x0080u
#define MY_STATUS_DB_DROPPED           0x0100u
#define MY_STATUS_NO_BACKSLASH_ESCAPES 0x0200u
#define MY_STATUS_METADATA_CHANGED     0x0400u
#define MY_STATUS_QUERY_WAS_SLOW       0x0800u
#define MY_STATUS_PS_OUT_PARAMS        0x1000u
#define MY_STATUS_IN_TRANS_READONLY    0x2000u
#define MY_STATUS_SESSION_STATE_CHANGED 0x4000u

/* Commands: the first payload byte of a client packet in the command phase. */
enum my_command {
	MY_COM_SLEEP = 0x00,
	MY_COM_QUIT = 0x01,
	MY_COM_INIT_DB = 0x02,
	MY_COM_QUERY = 0x03,
	MY_COM_FIELD_LIST = 0x04,
	MY_COM_STATISTICS = 0x09,
	MY_COM_PROCESS_KILL = 0x0c,
	MY_COM_DEBUG = 0x0d,
	MY_COM_PING = 0x0e,
	MY_COM_CHANGE_USER = 0x11,
	MY_COM_BINLOG_DUMP = 0x12,
	MY_COM_STMT_PREPARE = 0x16,
	MY_COM_STMT_EXECUTE = 0x17,
	MY_COM_STMT_SEND_LONG_DATA = 0x18,
	MY_COM_STMT_CLOSE = 0x19,
	MY_COM_STMT_RESET = 0x1a,
	MY_COM_SET_OPTION = 0x1b,
	MY_COM_STMT_FETCH = 0x1c,
	MY_COM_RESET_CONNECTION = 0x1f,
	MY_COM_STMT_BULK_EXECUTE = 0xfa, /* MariaDB */
};

/* ---- framing ---- */

struct my_packet {
	uint32_t len;            /* payload length (0..MY_MAX_PAYLOAD) */
	uint8_t seq;             /* sequence id */
	const uint8_t *payload;  /* valid when the packet is whole */
};

/* The packet at p (avail bytes). Returns 1 when the header and the whole
 * payload are present (fills pk), 0 when more bytes are needed. A payload
 * of exactly MY_MAX_PAYLOAD bytes is followed by another packet that
 * continues it (the caller handles that). */
int my_packet_peek(const uint8_t *p, size_t avail, struct my_packet *pk);

/* Building: my_begin writes a header with a placeholder length and returns
 * its offset in out (or -ENOMEM); my_end patches the length from the bytes
 * appended since. Payloads built this way are < MY_MAX_PAYLOAD. */
int my_begin(struct iobuf *out, uint8_t seq);
int my_end(struct iobuf *out, int begin_offset);
/* A whole packet from a ready payload (len < MY_MAX_PAYLOAD). */
int my_packet_put(struct iobuf *out, uint8_t seq, const void *payload, uint32_t len);

/* ---- reading fields ---- */

/* A cursor over a payload; err is sticky (read past the end). */
struct my_reader {
	const uint8_t *p, *end;
	bool err;
};
static inline struct my_reader my_reader_of(const uint8_t *p, uint32_t len)
{
	struct my_reader r = { p, p + len, false };
	return r;
}
static inline size_t my_left(const struct my_reader *r) { return r->err ? 0 : (size_t)(r->end - r->p); }
uint8_t my_get_u8(struct my_reader *r);
uint16_t my_get_u16(struct my_reader *r);
uint32_t my_get_u24(struct my_reader *r);
uint32_t my_get_u32(struct my_reader *r);

/* A little-endian 32-bit value at p (MySQL's byte order; also the order of
 * sluice's own records of statements and mirrored commands). */
static inline uint32_t my_le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void my_le32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
uint64_t my_get_u64(struct my_reader *r);
/* Length-encoded integer; 0xfb (NULL in a text row) sets *is_null (may be
 * NULL) and returns 0; 0xff is an error. */
uint64_t my_get_lenenc(struct my_reader *r, bool *is_null);
/* n bytes (pointer into the payload), NULL on error. */
const uint8_t *my_get_bytes(struct my_reader *r, size_t n);
/* NUL-terminated string (pointer into the payload, *len without the NUL);
 * NULL when no NUL before the end. */
const char *my_get_strnul(struct my_reader *r, size_t *len);
/* Length-encoded string (pointer into the payload). */
const uint8_t *my_get_lenenc_str(struct my_reader *r, uint64_t *len);

/* Appending fields to out (0 or -ENOMEM). */
int my_put_u8(struct iobuf *out, uint8_t v);
int my_put_u16(struct iobuf *out, uint16_t v);
int my_put_u32(struct iobuf *out, uint32_t v);
int my_put_lenenc(struct iobuf *out, uint64_t v);
int my_put_strnul(struct iobuf *out, const char *s);
int my_put_lenenc_str(struct iobuf *out, const void *s, size_t len);

/* ---- connection phase ---- */

/* Initial handshake packet, protocol version 10 (server -> client). */
struct my_handshake {
	char server_version[64];   /* e.g. "10.11.6-MariaDB" (truncated to fit) */
	uint32_t conn_id;          /* connection (thread) id */
	uint8_t scramble[MY_SCRAMBLE_LEN]; /* auth-plugin-data, parts 1 and 2 */
	uint32_t caps;             /* capability flags, both halves */
	uint32_t mariadb_caps;     /* MariaDB's extended capabilities (the last 4
				    * reserved bytes) when MY_CLIENT_LONG_PASSWORD
				    * is clear; else 0 */
	uint8_t charset;           /* server's default collation id */
	uint16_t status;           /* status flags */
	char auth_plugin[32];      /* "mysql_native_password", "caching_sha2_password", ... */
};
/* Returns 0, or -EPROTO when the packet is not a v10 handshake (an ERR
 * packet, 0xff first, is -EPROTO too: the caller checks for it first). */
int my_handshake_parse(const uint8_t *payload, uint32_t len, struct my_handshake *h);
/* Writes a whole packet with sequence id 0. */
int my_handshake_build(struct iobuf *out, const struct my_handshake *h);

/* HandshakeResponse41 (client -> server), or an SSLRequest (its first 32
 * bytes only, with MY_CLIENT_SSL set). */
struct my_response {
	uint32_t caps;             /* client capability flags */
	uint32_t max_packet;
	uint8_t charset;           /* collation id the client wants */
	uint32_t mariadb_caps;     /* the last 4 filler bytes (MariaDB) */
	bool ssl_request;          /* only the 32 bytes of an SSLRequest were sent */
	char user[128];            /* user name (truncated: parse fails if longer) */
	uint8_t auth[256];         /* auth response */
	uint32_t auth_len;
	bool has_db;               /* MY_CLIENT_CONNECT_WITH_DB and a database given */
	char db[128];              /* database (schema) */
	char auth_plugin[32];      /* plugin of auth[], "" when not sent */
	const uint8_t *attrs;      /* connect attributes as sent, after their lenenc
				    * total length (points into the payload); NULL = none */
	uint32_t attrs_len;
};
/* Returns 0, or -EPROTO (truncated, too long a field, no PROTOCOL_41). */
int my_response_parse(const uint8_t *payload, uint32_t len, struct my_response *r);
/* Writes a whole packet with sequence id seq: an SSLRequest when
 * r->ssl_request, else the full response (auth as lenenc when caps has
 * MY_CLIENT_PLUGIN_AUTH_LENENC, else with a 1-byte length; attrs copied as
 * given, with their total length in front, when caps has CONNECT_ATTRS). */
int my_response_build(struct iobuf *out, uint8_t seq, const struct my_response *r);

/* AuthSwitchRequest (server -> client: 0xfe, plugin name NUL, plugin data). */
int my_auth_switch_parse(const uint8_t *payload, uint32_t len, char *plugin, size_t plugin_cap,
			 const uint8_t **data, uint32_t *data_len);
int my_auth_switch_build(struct iobuf *out, uint8_t seq, const char *plugin, const uint8_t *data,
			 uint32_t data_len);
/* AuthMoreData (server -> client: 0x01, then data). */
int my_auth_more_build(struct iobuf *out, uint8_t seq, const uint8_t *data, uint32_t data_len);

/* ---- generic responses ---- */

struct my_ok {
	uint64_t affected_rows;
	uint64_t last_insert_id;
	uint16_t status;           /* status flags */
	uint16_t warnings;
	const uint8_t *info;       /* human readable info (points into the payload) */
	uint32_t info_len;
	const uint8_t *session_state; /* session state changes, when
				       * SESSION_TRACK and SESSION_STATE_CHANGED
				       * (points into the payload); NULL = none */
	uint32_t session_state_len;
};
/* An OK packet (first byte 0x00, or 0xfe: the end of a result set with
 * DEPRECATE_EOF). caps: the negotiated capabilities. Returns 0 or -EPROTO. */
int my_ok_parse(const uint8_t *payload, uint32_t len, uint32_t caps, struct my_ok *ok);
/* Writes an OK packet (header 0x00), with PROTOCOL_41's status and warnings. */
int my_ok_build(struct iobuf *out, uint8_t seq, uint64_t affected_rows, uint64_t last_insert_id,
		uint16_t status, uint16_t warnings);

struct my_err {
	uint16_t code;             /* error number, e.g. 1045 */
	char sqlstate[6];          /* "28000"; "HY000" when the packet has none */
	const char *msg;           /* points into the payload, not NUL-terminated */
	uint32_t msg_len;
};
int my_err_parse(const uint8_t *payload, uint32_t len, struct my_err *e);
/* "<what>: <the packet's message>", or what alone when the packet is no
 * ERR (what may be ""; then the message alone). */
void my_err_text(const uint8_t *payload, uint32_t len, const char *what, char *out, size_t outlen);
/* Writes an ERR packet with '#' and the SQLSTATE (PROTOCOL_41). */
int my_err_build(struct iobuf *out, uint8_t seq, uint16_t code, const char *sqlstate, const char *msg);

/* The old EOF packet: 0xfe and a payload shorter than 9 bytes. */
bool my_is_eof(const uint8_t *payload, uint32_t len);
/* Its status flags (0 when absent). */
uint16_t my_eof_status(const uint8_t *payload, uint32_t len);
int my_eof_build(struct iobuf *out, uint8_t seq, uint16_t status, uint16_t warnings);

/* ---- authentication ---- */

/* mysql_native_password: the client's answer to a 20-byte nonce:
 * SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))); "" gives an empty answer (*out_len 0). */
void my_native_answer(const char *password, const uint8_t nonce[MY_SCRAMBLE_LEN], uint8_t out[20],
		      uint32_t *out_len);
/* The stored form: SHA1(SHA1(password)); and from MySQL's "*" + 40 hex. */
void my_native_stage2(const char *password, uint8_t out[20]);
int my_native_stage2_from_hex(const char *star_hex, uint8_t out[20]);
/* Does the answer prove the password whose stage2 this is? (constant time) */
bool my_native_check(const uint8_t stage2[20], const uint8_t nonce[MY_SCRAMBLE_LEN], const uint8_t *answer,
		     uint32_t answer_len);

/* caching_sha2_password, fast path: XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)) + nonce)). */
void my_sha2_answer(const char *password, const uint8_t nonce[MY_SCRAMBLE_LEN], uint8_t out[32],
		    uint32_t *out_len);
/* SHA256(SHA256(password)): what the fast path checks against. */
void my_sha2_stage2(const char *password, uint8_t out[32]);
bool my_sha2_check(const uint8_t stage2[32], const uint8_t nonce[MY_SCRAMBLE_LEN], const uint8_t *answer,
		   uint32_t answer_len);
/* Full authentication with RSA (no TLS): the client sends
 * RSA-OAEP(password NUL XOR nonce, repeated) with the server's public key.
 * Encrypt (as a client, for a server that sent its PEM key) and decrypt
 * (as a server; key is an EVP_PKEY *). Return the length or -errno. */
int my_sha2_rsa_encrypt(const char *password, const uint8_t nonce[MY_SCRAMBLE_LEN], const char *pem,
			size_t pem_len, uint8_t *out, size_t out_cap);
int my_sha2_rsa_decrypt(void *evp_pkey, const uint8_t nonce[MY_SCRAMBLE_LEN], const uint8_t *in, size_t in_len,
			char *password, size_t password_cap);

/* ---- the end of an answer ---- */

enum my_answer_result {
	MY_ANSWER_MORE,      /* more packets of this answer follow */
	MY_ANSWER_DONE,      /* the command is answered; status/status_known say
			      * the transaction state at the end */
	MY_ANSWER_INFILE,    /* LOCAL INFILE request: the client sends file packets,
			      * ended by an empty one, then the server answers on
			      * (the tracker expects that answer next) */
	MY_ANSWER_BAD,       /* not a valid answer to this command */
};

/* Walks the server's answer to one command, a whole packet at a time:
 * OK, ERR, a text or binary result set (column count, definitions, EOF
 * unless DEPRECATE_EOF, rows, EOF or OK), COM_STMT_PREPARE's answer (its
 * OK, parameter and column definitions with their EOFs), and the results
 * that follow while MY_STATUS_MORE_RESULTS is set. */
struct my_answer {
	uint8_t command;           /* enum my_command being answered */
	uint32_t caps;             /* negotiated capabilities (DEPRECATE_EOF) */
	uint8_t phase;             /* private */
	uint64_t left;             /* private: definitions still to come */
	uint16_t prep_columns;     /* private: COM_STMT_PREPARE's column count */
	uint16_t status;           /* status flags of the last OK/EOF seen */
	bool status_known;         /* false after an ERR that ends the answer */
	uint32_t prepared_id;      /* COM_STMT_PREPARE: the statement id */
	uint16_t prepared_params;  /* and its parameter count */
	uint64_t last_insert_id;   /* the last non-zero one an OK carried (0 = none) */
};
/* Start tracking the answer to command (whose payload is cmd, len bytes:
 * COM_STMT_EXECUTE's flags tell whether a cursor is asked for). */
void my_answer_begin(struct my_answer *a, const uint8_t *cmd, uint32_t len, uint32_t caps);
/* Does this command get an answer at all? (COM_QUIT, COM_STMT_CLOSE and
 * COM_STMT_SEND_LONG_DATA do not.) */
bool my_command_answered(uint8_t command);
int my_answer_feed(struct my_answer *a, const uint8_t *payload, uint32_t len);
/* Is the next packet a row or the result's terminator (a result set's
 * column definitions are behind)? */
bool my_answer_in_rows(const struct my_answer *a);

/* ---- COM_CHANGE_USER ---- */

/* COM_CHANGE_USER's payload (0x11 first), read with the capabilities the
 * client agreed at its login: user, auth response (1-byte length with
 * SECURE_CONNECTION, else NUL-terminated), database, then, when present,
 * the collation id, the plugin name and the connect attributes. Fills r's
 * user, auth, auth_len, has_db/db, charset (0 when absent), auth_plugin
 * and attrs. Returns 0 or -EPROTO. */
int my_change_user_parse(const uint8_t *payload, uint32_t len, uint32_t caps, struct my_response *r);

#endif
