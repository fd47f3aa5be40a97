/*
 * pg_proto.c - see pg_proto.h. Pure functions; every offset is checked
 * against the bytes present before it is used.
 */
#include "pg_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int pg_msg_peek(const uint8_t *p, size_t avail, struct pg_msg *m)
{
	if (avail < 5)
		return 0;
	uint32_t l = pg_get_u32(p + 1);
	if (l < 4 || l > PG_MSG_MAX_LEN)
		return -EPROTO;
	m->type = p[0];
	m->len = l + 1;
	m->body = p + 5;
	m->body_len = l - 4;
	return 1;
}

int pg_fe_startup_parse(const uint8_t *p, size_t avail, struct pg_startup *out)
{
	if (avail < 4)
		return 0;
	uint32_t len = pg_get_u32(p);
	if (len < 8 || len > PG_STARTUP_MAX)
		return -EPROTO; /* refuse at once, do not wait for bytes that never come */
	if (avail < 8)
		return 0;
	if (avail < len)
		return 0;
	memset(out, 0, sizeof(*out));
	out->code = pg_get_u32(p + 4);
	if (out->code == PG_CANCEL_REQUEST) {
		if (len != 16)
			return -EPROTO;
		out->cancel_pid = pg_get_u32(p + 8);
		out->cancel_key = pg_get_u32(p + 12);
		return (int)len;
	}
	if (out->code == PG_SSL_REQUEST || out->code == PG_GSSENC_REQUEST)
		return len == 8 ? (int)len : -EPROTO;
	if (out->code >> 16 != 3)
		return (int)len; /* caller rejects the version with a proper error */
	/* Body: name\0value\0 ... \0. The final terminator must be the last byte. */
	const char *s = (const char *)p + 8;
	const char *end = (const char *)p + len;
	if (len == 8 || end[-1] != '\0')
		return -EPROTO;
	while (s < end - 1) {
		const char *name = s;
		const char *nul = memchr(s, '\0', (size_t)(end - s));
		if (!nul || nul + 1 >= end)
			return -EPROTO;
		const char *value = nul + 1;
		const char *vnul = memchr(value, '\0', (size_t)(end - value));
		/* The value's NUL cannot double as the list's final one. */
		if (!vnul || vnul + 1 >= end)
			return -EPROTO;
		if (*name == '\0')
			return -EPROTO;
		if (out->n_params >= PG_STARTUP_MAX_PARAMS)
			return -EPROTO;
		out->names[out->n_params] = name;
		out->values[out->n_params] = value;
		out->n_params++;
		s = vnul + 1;
	}
	return (int)len;
}

const char *pg_startup_get(const struct pg_startup *s, const char *name)
{
	for (int i = 0; i < s->n_params; i++)
		if (strcmp(s->names[i], name) == 0)
			return s->values[i];
	return NULL;
}

/* Next word of opts into w (at most wlen - 1 bytes kept); NULL at the end. */
static const char *next_option_word(const char *opts, char *w, size_t wlen)
{
	while (*opts == ' ' || *opts == '\t' || *opts == '\n' || *opts == '\r')
		opts++;
	if (!*opts)
		return NULL;
	size_t n = 0;
	while (*opts && *opts != ' ' && *opts != '\t' && *opts != '\n' && *opts != '\r') {
		if (*opts == '\\' && opts[1])
			opts++;
		if (n + 1 < wlen)
			w[n++] = *opts;
		opts++;
	}
	w[n] = '\0';
	return opts;
}

int pg_options_parse(const char *opts, int (*fn)(void *ctx, const char *name, const char *value), void *ctx,
		     char *bad, size_t badlen)
{
	char w[1024];
	while ((opts = next_option_word(opts, w, sizeof(w))) != NULL) {
		char *setting = NULL;
		char arg[1024];
		if (strcmp(w, "-c") == 0) {
			const char *after = next_option_word(opts, arg, sizeof(arg));
			if (after) {
				opts = after;
				setting = arg;
			}
		} else if (strncmp(w, "-c", 2) == 0) {
			setting = w + 2;
		} else if (strncmp(w, "--", 2) == 0) {
			setting = w + 2;
		}
		char *eq = setting ? strchr(setting, '=') : NULL;
		if (!eq || eq == setting) {
			snprintf(bad, badlen, "%s", setting ? setting : w);
			return -EINVAL;
		}
		*eq = '\0';
		for (char *p = setting; *p; p++)
			if (*p == '-')
				*p = '_';
		int rc = fn(ctx, setting, eq + 1);
		if (rc)
			return rc;
	}
	return 0;
}

uint8_t pg_read_u8(struct pg_reader *r)
{
	if (r->end - r->p < 1) { r->err = true; return 0; }
	return *r->p++;
}

uint16_t pg_read_u16(struct pg_reader *r)
{
	if (r->end - r->p < 2) { r->err = true; return 0; }
	uint16_t v = pg_get_u16(r->p);
	r->p += 2;
	return v;
}

uint32_t pg_read_u32(struct pg_reader *r)
{
	if (r->end - r->p < 4) { r->err = true; return 0; }
	uint32_t v = pg_get_u32(r->p);
	r->p += 4;
	return v;
}

const char *pg_read_str(struct pg_reader *r)
{
	const uint8_t *nul = r->p < r->end ? memchr(r->p, '\0', (size_t)(r->end - r->p)) : NULL;
	if (!nul) { r->err = true; return ""; }
	const char *s = (const char *)r->p;
	r->p = nul + 1;
	return s;
}

const uint8_t *pg_read_bytes(struct pg_reader *r, size_t n)
{
	if ((size_t)(r->end - r->p) < n) { r->err = true; return NULL; }
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}

int pg_read_field(struct pg_reader *r, struct pg_field *f)
{
	f->at = r->p;
	f->name = pg_read_str(r);
	(void)pg_read_u32(r); /* table */
	(void)pg_read_u16(r); /* column */
	f->type = pg_read_u32(r);
	(void)pg_read_u16(r); /* typlen */
	(void)pg_read_u32(r); /* typmod */
	f->format = pg_read_u16(r);
	f->len = r->err ? 0 : (uint32_t)(r->p - f->at);
	return r->err ? -1 : 0;
}

int pg_be_error_parse(const uint8_t *body, size_t len, struct pg_error_fields *out)
{
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	out->severity = out->code = out->message = "";
	for (;;) {
		uint8_t t = pg_read_u8(&r);
		if (r.err || t == 0)
			break;
		const char *v = pg_read_str(&r);
		if (r.err)
			break;
		if (t == 'V' || (t == 'S' && !*out->severity))
			out->severity = v;
		else if (t == 'C')
			out->code = v;
		else if (t == 'M')
			out->message = v;
	}
	return r.err ? -EPROTO : 0;
}

int pg_be_param_parse(const uint8_t *body, size_t len, const char **name, const char **value)
{
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	*name = pg_read_str(&r);
	*value = pg_read_str(&r);
	return r.err ? -EPROTO : 0;
}

void pg_build_init(struct pg_builder *b, struct iobuf *out)
{
	b->out = out;
	b->msg_off = 0;
	b->typed = false;
	b->err = false;
}

static void build_raw(struct pg_builder *b, const void *p, size_t n)
{
	if (b->err)
		return;
	if (n > IOBUF_MAX || iobuf_append(b->out, p, (uint32_t)n) < 0)
		b->err = true;
}

void pg_build_begin(struct pg_builder *b, uint8_t type)
{
	if (b->err)
		return;
	if (iobuf_reserve(b->out, 64) < 0) {
		b->err = true;
		return;
	}
	b->msg_off = iobuf_len(b->out);
	b->typed = type != 0;
	uint8_t hdr[5] = { type, 0, 0, 0, 0 };
	build_raw(b, type ? hdr : hdr + 1, type ? 5 : 4);
}

void pg_build_u8(struct pg_builder *b, uint8_t v) { build_raw(b, &v, 1); }
void pg_build_u16(struct pg_builder *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	build_raw(b, p, 2);
}
void pg_build_u32(struct pg_builder *b, uint32_t v)
{
	uint8_t p[4];
	pg_put_u32(p, v);
	build_raw(b, p, 4);
}
void pg_build_str(struct pg_builder *b, const char *s) { build_raw(b, s, strlen(s) + 1); }
void pg_build_bytes(struct pg_builder *b, const void *p, size_t n) { build_raw(b, p, n); }

void pg_build_end(struct pg_builder *b)
{
	if (b->err)
		return;
	uint8_t *msg = iobuf_head(b->out) + b->msg_off;
	uint32_t total = iobuf_len(b->out) - b->msg_off;
	if (b->typed)
		pg_put_u32(msg + 1, total - 1);
	else
		pg_put_u32(msg, total);
}

int pg_build_done(struct pg_builder *b) { return b->err ? -ENOMEM : 0; }

/* ErrorResponse ('E') and NoticeResponse ('N') carry the same fields. */
static int be_report(struct iobuf *out, char type, const char *severity, const char *sqlstate, const char *msg)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, type);
	pg_build_u8(&b, 'S');
	pg_build_str(&b, severity);
	pg_build_u8(&b, 'V');
	pg_build_str(&b, severity);
	pg_build_u8(&b, 'C');
	pg_build_str(&b, sqlstate);
	pg_build_u8(&b, 'M');
	pg_build_str(&b, msg);
	pg_build_u8(&b, 0);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_be_error(struct iobuf *out, const char *severity, const char *sqlstate, const char *msg)
{
	return be_report(out, 'E', severity, sqlstate, msg);
}

int pg_be_notice(struct iobuf *out, const char *msg)
{
	return be_report(out, 'N', "NOTICE", "00000", msg);
}

int pg_be_empty(struct iobuf *out, uint8_t type)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, type);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_be_complete(struct iobuf *out, const char *tag)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'C');
	pg_build_str(&b, tag);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_be_warning(struct iobuf *out, const char *sqlstate, const char *msg)
{
	return be_report(out, 'N', "WARNING", sqlstate, msg);
}

int pg_be_auth(struct iobuf *out, uint32_t code, const void *data, size_t n)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'R');
	pg_build_u32(&b, code);
	if (n)
		pg_build_bytes(&b, data, n);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_be_auth_sasl_mechs(struct iobuf *out)
{
	static const char mechs[] = "SCRAM-SHA-256\0"; /* list ends with an empty string */
	return pg_be_auth(out, PG_AUTH_SASL, mechs, sizeof(mechs));
}

int pg_be_key_data(struct iobuf *out, uint32_t pid, uint32_t key)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'K');
	pg_build_u32(&b, pid);
	pg_build_u32(&b, key);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_be_ready(struct iobuf *out, char status)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'Z');
	pg_build_u8(&b, (uint8_t)status);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_be_param_status(struct iobuf *out, const char *name, const char *value)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'S');
	pg_build_str(&b, name);
	pg_build_str(&b, value);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_fe_startup(struct iobuf *out, const char *const *names, const char *const *values, int n)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 0);
	pg_build_u32(&b, PG_PROTOCOL_3_0);
	for (int i = 0; i < n; i++) {
		pg_build_str(&b, names[i]);
		pg_build_str(&b, values[i]);
	}
	pg_build_u8(&b, 0);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_fe_password(struct iobuf *out, const char *pw)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'p');
	pg_build_str(&b, pw);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_fe_sasl_initial(struct iobuf *out, const char *mech, const void *data, size_t n)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'p');
	pg_build_str(&b, mech);
	pg_build_u32(&b, (uint32_t)n);
	pg_build_bytes(&b, data, n);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_fe_sasl_response(struct iobuf *out, const void *data, size_t n)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'p');
	pg_build_bytes(&b, data, n);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_fe_query(struct iobuf *out, const char *sql)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'Q');
	pg_build_str(&b, sql);
	pg_build_end(&b);
	return pg_build_done(&b);
}

int pg_fe_terminate(struct iobuf *out)
{
	struct pg_builder b;
	pg_build_init(&b, out);
	pg_build_begin(&b, 'X');
	pg_build_end(&b);
	return pg_build_done(&b);
}

void pg_fe_cancel(uint8_t buf[16], uint32_t pid, uint32_t key)
{
	pg_put_u32(buf, 16);
	pg_put_u32(buf + 4, PG_CANCEL_REQUEST);
	pg_put_u32(buf + 8, pid);
	pg_put_u32(buf + 12, key);
}

int pg_datarow_column(const uint8_t *body, size_t len, int i, const uint8_t **val, uint32_t *vlen)
{
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	int n = pg_read_u16(&r);
	if (r.err || i < 0 || i >= n)
		return -1;
	for (int k = 0;; k++) {
		uint32_t l = pg_read_u32(&r);
		if (r.err)
			return -1;
		const uint8_t *v = l == 0xffffffffu ? NULL : pg_read_bytes(&r, l);
		if (r.err)
			return -1;
		if (k == i) {
			*val = v;
			*vlen = v ? l : 0;
			return 0;
		}
	}
}

int pg_bind_read(const uint8_t *body, uint32_t len, struct pg_bind *b)
{
	struct pg_reader r;
	pg_reader_init(&r, body, len);
	b->portal = pg_read_str(&r);
	b->stmt = pg_read_str(&r);
	b->args_at = (uint32_t)(r.p - body);
	b->n_formats = pg_read_u16(&r);
	b->formats = pg_read_bytes(&r, (size_t)b->n_formats * 2);
	b->n_params = pg_read_u16(&r);
	b->params = r.p;
	for (uint16_t i = 0; i < b->n_params && !r.err; i++) {
		int32_t l = (int32_t)pg_read_u32(&r);
		if (l > 0)
			(void)pg_read_bytes(&r, (size_t)l);
	}
	b->n_results = pg_read_u16(&r);
	b->results = pg_read_bytes(&r, (size_t)b->n_results * 2);
	return r.err ? -1 : 0;
}

int pg_bind_param(const struct pg_bind *b, int n, int *format, const uint8_t **val, int32_t *vlen)
{
	if (n < 1 || n > b->n_params)
		return -1;
	const uint8_t *p = b->params;
	for (int i = 1; i < n; i++) {
		int32_t l = (int32_t)pg_get_u32(p);
		p += 4 + (l > 0 ? (uint32_t)l : 0);
	}
	int32_t l = (int32_t)pg_get_u32(p);
	*format = b->n_formats == 0 ? 0 : b->n_formats == 1 ? pg_get_u16(b->formats)
		  : n <= b->n_formats ? pg_get_u16(b->formats + 2 * (n - 1)) : 0;
	*val = l > 0 ? p + 4 : (const uint8_t *)"";
	*vlen = l;
	return 0;
}

int pg_first_column_bool(const uint8_t *body, size_t len, bool *out)
{
	const uint8_t *v;
	uint32_t n;
	if (pg_datarow_column(body, len, 0, &v, &n) < 0 || n != 1 || (v[0] != 't' && v[0] != 'f'))
		return -1;
	*out = v[0] == 't';
	return 0;
}
