/*
 * pg_proto.h - PostgreSQL frontend/backend protocol v3 codec
 * (PostgreSQL docs, chapter 55 "Frontend/Backend Protocol").
 *
 * Owns: pure functions that parse and build messages over byte ranges.
 * Must not: do I/O, allocate, log or keep state. Every length read from
 * the network is checked against the bytes actually present.
 *
 * Prefixes: pg_fe_* parse/build what a frontend (client) sends,
 * pg_be_* what a backend (server) sends; pg_msg_* is framing for both.
 */
#ifndef SLUICE_PG_PROTO_H
#define SLUICE_PG_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iobuf.h"

#define PG_PROTOCOL_3_0      196608u   /* 3 << 16 */
#define PG_CANCEL_REQUEST    80877102u /* 1234 << 16 | 5678 */
#define PG_SSL_REQUEST       80877103u
#define PG_GSSENC_REQUEST    80877104u
#define PG_STARTUP_MAX       10000u    /* PostgreSQL's own bound on a startup packet */
#define PG_MSG_MAX_LEN       0x3fffffffu /* 1 GB - 1: PostgreSQL's MaxAllocSize */

/* Backend authentication request codes ('R' message). */
enum pg_auth_code {
	PG_AUTH_OK = 0,
	PG_AUTH_CLEARTEXT = 3,
	PG_AUTH_MD5 = 5,
	PG_AUTH_SASL = 10,
	PG_AUTH_SASL_CONTINUE = 11,
	PG_AUTH_SASL_FINAL = 12,
};

static inline uint32_t pg_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t pg_get_u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void pg_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

/* Framing of typed messages: 1 type byte + int32 length (self-inclusive). */
struct pg_msg {
	uint8_t type;        /* message type byte */
	uint32_t len;        /* total bytes including type byte: 1 + length field */
	const uint8_t *body; /* body (after the length), valid when complete */
	uint32_t body_len;   /* len - 5 */
};

/* Parse the header at p (avail bytes). Returns 1 when a header is present
 * (fills m; m->body set), 0 when more bytes are needed, -EPROTO when the
 * length field is invalid (< 4 or > PG_MSG_MAX_LEN). */
int pg_msg_peek(const uint8_t *p, size_t avail, struct pg_msg *m);

/* ---- startup packet (no type byte: int32 length, int32 code, body) ---- */
#define PG_STARTUP_MAX_PARAMS 64
struct pg_startup {
	uint32_t code;                            /* protocol version or request code */
	uint32_t cancel_pid, cancel_key;          /* for PG_CANCEL_REQUEST */
	int n_params;                             /* name/value pairs found */
	const char *names[PG_STARTUP_MAX_PARAMS]; /* point into the packet */
	const char *values[PG_STARTUP_MAX_PARAMS];
};
/* Returns total packet length when complete and valid (fills *out),
 * 0 when more bytes are needed, -EPROTO for a malformed or oversized one. */
int pg_fe_startup_parse(const uint8_t *p, size_t avail, struct pg_startup *out);
/* Value of a startup parameter or NULL. */
const char *pg_startup_get(const struct pg_startup *s, const char *name);
/* The settings in a startup packet's "options" value, split as PostgreSQL
 * does (blanks separate words, a backslash escapes the next character):
 * "-c name=value", "-cname=value" or "--name=value", dashes in the name
 * read as underscores. fn is called for each (a nonzero return stops and
 * is returned). Any other word (another switch, a setting without '=')
 * returns -EINVAL with that word in bad. */
int pg_options_parse(const char *opts, int (*fn)(void *ctx, const char *name, const char *value), void *ctx,
		     char *bad, size_t badlen);

/* ---- field readers over a message body ---- */
struct pg_reader {
	const uint8_t *p; /* next byte */
	const uint8_t *end;
	bool err;         /* sticky: set when a read ran past end */
};
static inline void pg_reader_init(struct pg_reader *r, const uint8_t *p, size_t len)
{
	r->p = p; r->end = p + len; r->err = false;
}
uint8_t pg_read_u8(struct pg_reader *r);
uint16_t pg_read_u16(struct pg_reader *r);
uint32_t pg_read_u32(struct pg_reader *r);
/* NUL-terminated string inside the body; "" and err on overrun. */
const char *pg_read_str(struct pg_reader *r);
const uint8_t *pg_read_bytes(struct pg_reader *r, size_t n);

/* One field of a RowDescription. */
struct pg_field {
	const char *name;
	uint32_t type;      /* its type's OID */
	uint16_t format;    /* 0 text, 1 binary */
	const uint8_t *at;  /* the field's bytes in the message, len of them */
	uint32_t len;
};
/* The next field of a RowDescription body r reads (after its count):
 * 0, or -1 when the body ends short. */
int pg_read_field(struct pg_reader *r, struct pg_field *f);

/* ErrorResponse / NoticeResponse fields we care about (pointers into body). */
struct pg_error_fields {
	const char *severity; /* 'S' (localized) or 'V' */
	const char *code;     /* 'C' SQLSTATE */
	const char *message;  /* 'M' */
};
/* Missing fields are set to "" (a malicious server may omit them). */
int pg_be_error_parse(const uint8_t *body, size_t len, struct pg_error_fields *out);

/* ParameterStatus: name and value (pointers into body). */
int pg_be_param_parse(const uint8_t *body, size_t len, const char **name, const char **value);
/* DataRow body: column i's value (*val NULL and *vlen 0 for SQL NULL).
 * 0, or -1 when malformed or short of columns. */
int pg_datarow_column(const uint8_t *body, size_t len, int i, const uint8_t **val, uint32_t *vlen);

/* A Bind message's body, read through (protocol docs 55.7). */
struct pg_bind {
	const char *portal, *stmt;
	uint32_t args_at;         /* offset of what follows the two names (formats onwards) */
	uint16_t n_formats;       /* parameter format codes: 0, 1 (for all) or one each */
	const uint8_t *formats;
	uint16_t n_params;
	const uint8_t *params;    /* the values: int32 length (-1 = NULL) and bytes, each */
	uint16_t n_results;       /* result format codes, as n_formats */
	const uint8_t *results;
};
/* Read body (len bytes) into b. Returns 0, or -1 when it is not a whole Bind. */
int pg_bind_read(const uint8_t *body, uint32_t len, struct pg_bind *b);
/* Parameter n's (from 1) format (0 text, 1 binary) and value (*vlen -1 =
 * NULL). Returns 0, or -1 when the Bind has no such parameter. */
int pg_bind_param(const struct pg_bind *b, int n, int *format, const uint8_t **val, int32_t *vlen);
/* A DataRow's first column as a boolean in text form ('t' / 'f'). */
int pg_first_column_bool(const uint8_t *body, size_t len, bool *out);

/* ---- builders: append whole messages to an iobuf. A builder keeps a
 * sticky error; check it once at the end with pg_build_done(). ---- */
struct pg_builder {
	struct iobuf *out; /* destination */
	uint32_t msg_off;   /* offset of the current message from out->start
			     * (stays valid when the buffer compacts or grows) */
	bool typed;         /* current message has a type byte */
	bool err;           /* sticky: allocation failed */
};
void pg_build_init(struct pg_builder *b, struct iobuf *out);
/* type 0 = untyped (startup packet). */
void pg_build_begin(struct pg_builder *b, uint8_t type);
void pg_build_u8(struct pg_builder *b, uint8_t v);
void pg_build_u16(struct pg_builder *b, uint16_t v);
void pg_build_u32(struct pg_builder *b, uint32_t v);
void pg_build_str(struct pg_builder *b, const char *s);           /* with NUL */
void pg_build_bytes(struct pg_builder *b, const void *p, size_t n);
void pg_build_end(struct pg_builder *b);                          /* fixes the length */
int pg_build_done(struct pg_builder *b);                          /* 0 or -ENOMEM */

/* Whole-message helpers (each uses a builder). */
int pg_be_error(struct iobuf *out, const char *severity, const char *sqlstate, const char *msg);
/* NoticeResponse, severity NOTICE, SQLSTATE 00000 (successful completion). */
int pg_be_notice(struct iobuf *out, const char *msg);
/* A message with no body (ParseComplete '1', BindComplete '2', NoData 'n',
 * ...), and a CommandComplete with its tag. */
int pg_be_empty(struct iobuf *out, uint8_t type);
int pg_be_complete(struct iobuf *out, const char *tag);
/* A NoticeResponse of severity WARNING. */
int pg_be_warning(struct iobuf *out, const char *sqlstate, const char *msg);
int pg_be_auth(struct iobuf *out, uint32_t code, const void *data, size_t n);
int pg_be_auth_sasl_mechs(struct iobuf *out);
int pg_be_key_data(struct iobuf *out, uint32_t pid, uint32_t key);
int pg_be_ready(struct iobuf *out, char status);
int pg_be_param_status(struct iobuf *out, const char *name, const char *value);
int pg_fe_startup(struct iobuf *out, const char *const *names, const char *const *values, int n);
int pg_fe_password(struct iobuf *out, const char *pw);
int pg_fe_sasl_initial(struct iobuf *out, const char *mech, const void *data, size_t n);
int pg_fe_sasl_response(struct iobuf *out, const void *data, size_t n);
int pg_fe_query(struct iobuf *out, const char *sql);
int pg_fe_terminate(struct iobuf *out);
/* 16-byte CancelRequest into buf. */
void pg_fe_cancel(uint8_t buf[16], uint32_t pid, uint32_t key);

#endif
