/* The guest agent's frame codec (proto.h, docs/agent.md).  Pure: shared by host and guest. */
#include "agent/proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void agent_buf_free(struct agent_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int reserve(struct agent_buf *b, size_t n)
{
	if (n > AGENT_FRAME_MAX + AGENT_HDR_LEN || b->len > SIZE_MAX - n)
		return -EINVAL;
	if (b->len + n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A frame under construction: the header's length is filled in by frame_end(). */
static int frame_begin(struct agent_buf *b, uint8_t type, size_t *start)
{
	int ret = reserve(b, AGENT_HDR_LEN);
	if (ret)
		return ret;
	*start = b->len;
	put_u32(b->p + b->len, 0);
	b->p[b->len + 4] = type;
	b->len += AGENT_HDR_LEN;
	return 0;
}

static int frame_end(struct agent_buf *b, size_t start)
{
	size_t n = b->len - start - AGENT_HDR_LEN;
	if (n > AGENT_FRAME_MAX) {
		b->len = start;
		return -EINVAL;
	}
	put_u32(b->p + start, (uint32_t)n);
	return 0;
}

static int u32_out(struct agent_buf *b, uint32_t v)
{
	int ret = reserve(b, 4);
	if (ret)
		return ret;
	put_u32(b->p + b->len, v);
	b->len += 4;
	return 0;
}

static int bytes_out(struct agent_buf *b, const void *p, size_t n)
{
	int ret;
	if (n > UINT32_MAX || (ret = reserve(b, 4 + n)))
		return n > UINT32_MAX ? -EINVAL : ret;
	put_u32(b->p + b->len, (uint32_t)n);
	if (n)
		memcpy(b->p + b->len + 4, p, n);
	b->len += 4 + n;
	return 0;
}

/* A string goes out with its NUL, which the decoder requires. */
static int str_out(struct agent_buf *b, const char *s)
{
	size_t n = strlen(s) + 1;
	if (n > AGENT_STR_MAX)
		return -EINVAL;
	return bytes_out(b, s, n);
}

/* Reading side: a cursor over a payload. */
struct rd {
	const uint8_t *p;
	size_t len, off;
};

static int u32_in(struct rd *r, uint32_t *v)
{
	if (r->len - r->off < 4)
		return -EBADMSG;
	*v = get_u32(r->p + r->off);
	r->off += 4;
	return 0;
}

static int bytes_in(struct rd *r, const uint8_t **p, uint32_t *n, uint32_t max)
{
	uint32_t len;
	if (u32_in(r, &len) || len > max || r->len - r->off < len)
		return -EBADMSG;
	*p = r->p + r->off;
	*n = len;
	r->off += len;
	return 0;
}

static int str_in(struct rd *r, const char **s)
{
	const uint8_t *p;
	uint32_t n;
	if (bytes_in(r, &p, &n, AGENT_STR_MAX) || n == 0 || memchr(p, 0, n) != p + n - 1)
		return -EBADMSG;
	*s = (const char *)p;
	return 0;
}

static int end_in(const struct rd *r)
{
	return r->off == r->len ? 0 : -EBADMSG;
}

int agent_hdr_decode(const uint8_t hdr[AGENT_HDR_LEN], uint8_t *type, uint32_t *len)
{
	*len = get_u32(hdr);
	*type = hdr[4];
	return *len > AGENT_FRAME_MAX ? -EMSGSIZE : 0;
}

int agent_exec_encode(struct agent_buf *b, const struct agent_exec_req *r)
{
	size_t start;
	int ret;
	if (r->argc == 0 || r->argc > AGENT_ARGV_MAX || r->timeout_ms == 0 ||
	    r->timeout_ms > AGENT_TIMEOUT_MAX_MS || r->max_output > AGENT_OUTPUT_MAX ||
	    r->in_len > AGENT_DATA_MAX)
		return -EINVAL;
	if ((ret = frame_begin(b, AGENT_EXEC, &start)))
		return ret;
	if ((ret = u32_out(b, r->flags)) || (ret = u32_out(b, r->timeout_ms)) ||
	    (ret = u32_out(b, r->max_output)) || (ret = u32_out(b, r->argc)))
		goto fail;
	for (uint32_t i = 0; i < r->argc; i++)
		if (!r->argv[i] || (ret = str_out(b, r->argv[i])))
			goto fail;
	if ((ret = bytes_out(b, r->in, r->in_len)))
		goto fail;
	return frame_end(b, start);
fail:
	b->len = start;
	return ret ? ret : -EINVAL;
}

int agent_exec_decode(const uint8_t *p, size_t len, struct agent_exec_req *r)
{
	struct rd rd = { p, len, 0 };
	memset(r, 0, sizeof(*r));
	if (u32_in(&rd, &r->flags) || u32_in(&rd, &r->timeout_ms) || u32_in(&rd, &r->max_output) ||
	    u32_in(&rd, &r->argc))
		return -EBADMSG;
	if ((r->flags & ~AGENT_EXEC_SHELL) || r->argc == 0 || r->argc > AGENT_ARGV_MAX ||
	    r->timeout_ms == 0 || r->timeout_ms > AGENT_TIMEOUT_MAX_MS ||
	    r->max_output > AGENT_OUTPUT_MAX)
		return -EBADMSG;
	/* A shell command is one string. */
	if ((r->flags & AGENT_EXEC_SHELL) && r->argc != 1)
		return -EBADMSG;
	for (uint32_t i = 0; i < r->argc; i++)
		if (str_in(&rd, &r->argv[i]))
			return -EBADMSG;
	r->argv[r->argc] = NULL;
	if (bytes_in(&rd, &r->in, &r->in_len, AGENT_DATA_MAX))
		return -EBADMSG;
	return end_in(&rd);
}

int agent_file_encode(struct agent_buf *b, uint8_t type, const struct agent_file_req *r)
{
	size_t start;
	int ret;
	if ((type != AGENT_WRITE_FILE && type != AGENT_READ_FILE) || !r->path || !r->path[0])
		return -EINVAL;
	if (type == AGENT_WRITE_FILE ? r->data_len > AGENT_DATA_MAX : r->max > AGENT_DATA_MAX)
		return -EINVAL;
	if ((ret = frame_begin(b, type, &start)))
		return ret;
	if ((ret = str_out(b, r->path)))
		goto fail;
	if (type == AGENT_WRITE_FILE)
		ret = u32_out(b, r->mode & 07777) ?: bytes_out(b, r->data, r->data_len);
	else
		ret = u32_out(b, r->max);
	if (ret)
		goto fail;
	return frame_end(b, start);
fail:
	b->len = start;
	return ret;
}

int agent_file_decode(uint8_t type, const uint8_t *p, size_t len, struct agent_file_req *r)
{
	struct rd rd = { p, len, 0 };
	memset(r, 0, sizeof(*r));
	if (str_in(&rd, &r->path) || !r->path[0])
		return -EBADMSG;
	if (type == AGENT_WRITE_FILE) {
		if (u32_in(&rd, &r->mode) || (r->mode & ~07777u) ||
		    bytes_in(&rd, &r->data, &r->data_len, AGENT_DATA_MAX))
			return -EBADMSG;
	} else if (type == AGENT_READ_FILE) {
		if (u32_in(&rd, &r->max) || r->max > AGENT_DATA_MAX)
			return -EBADMSG;
	} else {
		return -EBADMSG;
	}
	return end_in(&rd);
}

int agent_exec_result_encode(struct agent_buf *b, const struct agent_exec_result *r)
{
	size_t start;
	int ret;
	if (r->out_len > AGENT_OUTPUT_MAX || r->err_len > AGENT_OUTPUT_MAX || r->kind > 1)
		return -EINVAL;
	if ((ret = frame_begin(b, AGENT_EXEC_RESULT, &start)))
		return ret;
	uint32_t flags =
		(r->timed_out ? 1u : 0) | (r->out_truncated ? 2u : 0) | (r->err_truncated ? 4u : 0);
	if ((ret = u32_out(b, r->kind)) || (ret = u32_out(b, r->code)) ||
	    (ret = u32_out(b, flags)) || (ret = bytes_out(b, r->out, r->out_len)) ||
	    (ret = bytes_out(b, r->err, r->err_len))) {
		b->len = start;
		return ret;
	}
	return frame_end(b, start);
}

int agent_exec_result_decode(const uint8_t *p, size_t len, struct agent_exec_result *r)
{
	struct rd rd = { p, len, 0 };
	uint32_t flags;
	memset(r, 0, sizeof(*r));
	if (u32_in(&rd, &r->kind) || r->kind > 1 || u32_in(&rd, &r->code) || u32_in(&rd, &flags) ||
	    (flags & ~7u) || bytes_in(&rd, &r->out, &r->out_len, AGENT_OUTPUT_MAX) ||
	    bytes_in(&rd, &r->err, &r->err_len, AGENT_OUTPUT_MAX))
		return -EBADMSG;
	r->timed_out = flags & 1;
	r->out_truncated = flags & 2;
	r->err_truncated = flags & 4;
	return end_in(&rd);
}

int agent_read_result_encode(struct agent_buf *b, const struct agent_read_result *r)
{
	size_t start;
	int ret;
	if (r->data_len > AGENT_DATA_MAX)
		return -EINVAL;
	if ((ret = frame_begin(b, AGENT_READ_RESULT, &start)))
		return ret;
	if ((ret = u32_out(b, r->truncated ? 1 : 0)) ||
	    (ret = bytes_out(b, r->data, r->data_len))) {
		b->len = start;
		return ret;
	}
	return frame_end(b, start);
}

int agent_read_result_decode(const uint8_t *p, size_t len, struct agent_read_result *r)
{
	struct rd rd = { p, len, 0 };
	uint32_t t;
	memset(r, 0, sizeof(*r));
	if (u32_in(&rd, &t) || t > 1 || bytes_in(&rd, &r->data, &r->data_len, AGENT_DATA_MAX))
		return -EBADMSG;
	r->truncated = t;
	return end_in(&rd);
}

int agent_error_encode(struct agent_buf *b, const struct agent_error *e)
{
	size_t start;
	int ret;
	char msg[1024];
	/* Cut a long message rather than fail: an error must always get through. */
	snprintf(msg, sizeof(msg), "%s", e->msg ? e->msg : "");
	if ((ret = frame_begin(b, AGENT_ERROR, &start)))
		return ret;
	if ((ret = u32_out(b, e->err)) || (ret = str_out(b, msg))) {
		b->len = start;
		return ret;
	}
	return frame_end(b, start);
}

int agent_error_decode(const uint8_t *p, size_t len, struct agent_error *e)
{
	struct rd rd = { p, len, 0 };
	if (u32_in(&rd, &e->err) || str_in(&rd, &e->msg))
		return -EBADMSG;
	return end_in(&rd);
}

int agent_empty_encode(struct agent_buf *b, uint8_t type)
{
	size_t start;
	int ret = frame_begin(b, type, &start);
	return ret ? ret : frame_end(b, start);
}
