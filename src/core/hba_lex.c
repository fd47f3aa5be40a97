/*
 * hba_lex.c - see hba_lex.h. The tokenizer of pg_hba.conf and pg_ident.conf
 * (the lexical rules are listed in the header), file reading, messages.
 */
#include "hba_lex.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- messages ----------------------------------------------------------- */

int hba_lex_fail(struct hba_lex *lx, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!lx->err || lx->errlen == 0)
		return rc;
	n = snprintf(lx->err, lx->errlen, "%s:%d: ", lx->file, lx->line_no);
	if (n < 0 || (size_t)n >= lx->errlen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(lx->err + n, lx->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return rc;
}

void hba_lex_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *hba_lex_echo(const char *s, char buf[HBA_ECHO_MAX + 4])
{
	size_t i;

	for (i = 0; s[i] && i < HBA_ECHO_MAX; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (s[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* ---- storage ------------------------------------------------------------ */

int hba_lex_grow(void *bufp, size_t *cap, size_t need, size_t elem)
{
	void **buf = bufp;
	size_t ncap = *cap ? *cap : 16;
	void *nb;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / elem)
		return -ENOMEM;
	nb = realloc(*buf, ncap * elem);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = ncap;
	return 0;
}

/* ---- lines -------------------------------------------------------------- */

void hba_lex_init(struct hba_lex *lx, const char *text, size_t len, const char *file,
		  char *err, size_t errlen)
{
	lx->file = file ? file : "hba";
	lx->line_no = 0;
	lx->err = err;
	lx->errlen = errlen;
	lx->text = text;
	lx->len = text ? len : 0;
	lx->text_pos = 0;
	lx->phys = 0;
	lx->line_len = 0;
	lx->pos = 0;
	lx->line[0] = '\0';
}

int hba_lex_line(struct hba_lex *lx)
{
	bool cont;

	if (lx->text_pos >= lx->len)
		return 0;
	/* gather one logical line: physical lines joined while they end in
	 * a backslash */
	lx->line_no = lx->phys + 1;
	lx->line_len = 0;
	lx->pos = 0;
	do {
		const char *seg = lx->text + lx->text_pos;
		const char *nl = memchr(seg, '\n', lx->len - lx->text_pos);
		size_t seglen = nl ? (size_t)(nl - seg) : lx->len - lx->text_pos;

		lx->phys++;
		lx->text_pos += seglen + (nl ? 1 : 0);
		if (seglen && seg[seglen - 1] == '\r')
			seglen--;
		cont = seglen && seg[seglen - 1] == '\\';
		if (cont)
			seglen--;
		if (memchr(seg, '\0', seglen)) {
			lx->line_no = lx->phys;
			return hba_lex_fail(lx, -EINVAL, "NUL byte in the line");
		}
		if (seglen > HBA_MAX_LINE - lx->line_len)
			return hba_lex_fail(lx, -EINVAL, "line longer than %d bytes", HBA_MAX_LINE);
		memcpy(lx->line + lx->line_len, seg, seglen);
		lx->line_len += seglen;
	} while (cont && lx->text_pos < lx->len);
	lx->line[lx->line_len] = '\0';
	return 1;
}

/* ---- tokens ------------------------------------------------------------- */

/* pg_isblank() plus \f and \v; \n never reaches the tokenizer. */
static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

int hba_lex_next(struct hba_lex *lx, struct hba_token *t)
{
	const char *s = lx->line;
	size_t len = lx->line_len, i = lx->pos, n = 0;
	bool inq = false;

	while (i < len && is_blank(s[i]))
		i++;
	if (i >= len || s[i] == '#') {
		lx->pos = len;
		return 0;
	}
	t->quoted = false;
	/* n <= i <= len <= HBA_MAX_LINE: tok[n] stays in bounds */
	while (i < len) {
		char c = s[i];

		if (inq) {
			if (c == '"') {
				if (i + 1 < len && s[i + 1] == '"') {
					lx->tok[n++] = '"';
					i += 2;
					continue;
				}
				inq = false;
				i++;
				continue;
			}
			lx->tok[n++] = c;
			i++;
			continue;
		}
		if (is_blank(c) || c == ',' || c == '#')
			break;
		if (c == '"') {
			inq = true;
			t->quoted = true;
		} else {
			lx->tok[n++] = c;
		}
		i++;
	}
	if (inq)
		return hba_lex_fail(lx, -EINVAL, "unterminated quoted string");
	if (n == 0)
		return hba_lex_fail(lx, -EINVAL, t->quoted ? "empty quoted string" : "empty item in a comma-separated list");
	lx->tok[n] = '\0';
	t->text = lx->tok;
	t->len = n;
	/* blanks before a comma also continue the list ("u1 , u2" is one
	 * field), as PgBouncer reads it */
	size_t after = i;
	while (after < len && is_blank(s[after]))
		after++;
	t->more = after < len && s[after] == ',';
	if (t->more) {
		i = after;
		/* blanks after a comma continue the list; nothing after it
		 * is an error, reported here before any caller sees "more" */
		i++;
		while (i < len && is_blank(s[i]))
			i++;
		if (i >= len || s[i] == '#')
			return hba_lex_fail(lx, -EINVAL, "list ends with a comma");
	}
	lx->pos = i;
	return 1;
}

int hba_lex_need(struct hba_lex *lx, struct hba_token *t, const char *what)
{
	int rc = hba_lex_next(lx, t);

	if (rc == 0)
		return hba_lex_fail(lx, -EINVAL, "end of line before %s", what);
	return rc < 0 ? rc : 0;
}

bool hba_lex_is_kw(const struct hba_token *t, const char *kw)
{
	return !t->quoted && strcmp(t->text, kw) == 0;
}

/* ---- files -------------------------------------------------------------- */

int hba_lex_read_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rc;

	*out = NULL;
	*out_len = 0;
	if (err && errlen)
		err[0] = '\0';
	if (!path) {
		hba_lex_set_err(err, errlen, "no file name");
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		hba_lex_set_err(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *nb;

			if (cap > HBA_MAX_FILE) {
				hba_lex_set_err(err, errlen, "%s: larger than %d bytes", path, HBA_MAX_FILE);
				rc = -EFBIG;
				goto fail;
			}
			if (ncap > (size_t)HBA_MAX_FILE + 1)
				ncap = (size_t)HBA_MAX_FILE + 1;
			nb = realloc(buf, ncap);
			if (!nb) {
				hba_lex_set_err(err, errlen, "%s: out of memory", path);
				rc = -ENOMEM;
				goto fail;
			}
			buf = nb;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			hba_lex_set_err(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*out = buf;
	*out_len = len;
	return 0;
fail:
	free(buf);
	close(fd);
	return rc;
}
