#include "devices/virtio/vsock/conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void vsock_table_init(struct vsock_table *t)
{
	memset(t, 0, sizeof(*t));
	t->next_ephemeral = VSOCK_EPHEMERAL_MIN;
}

void vsock_table_destroy(struct vsock_table *t)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (!t->conns[i])
			continue;
		vsock_ring_free(&t->conns[i]->out);
		free(t->conns[i]);
		t->conns[i] = NULL;
	}
	t->nr_live = 0;
}

struct vsock_conn *vsock_conn_alloc(struct vsock_table *t)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = t->conns[i];
		uint32_t gen;

		if (c && c->state != VSOCK_CONN_FREE)
			continue;
		if (!c) {
			c = calloc(1, sizeof(*c));
			if (!c)
				return NULL;
			t->conns[i] = c;
		}
		gen = c->gen + 1;
		memset(c, 0, sizeof(*c));
		c->gen = gen;
		c->slot = i;
		c->fd = -1;
		c->state = VSOCK_CONN_HOST_CONNECT;
		t->nr_live++;
		return c;
	}
	return NULL;
}

void vsock_conn_free(struct vsock_table *t, struct vsock_conn *c)
{
	if (c->state == VSOCK_CONN_FREE)
		return;
	vsock_ring_free(&c->out);
	c->state = VSOCK_CONN_FREE;
	c->pending = 0;
	c->fd = -1;
	c->gen++;
	t->nr_live--;
}

struct vsock_conn *vsock_conn_find(struct vsock_table *t, uint32_t local_port, uint32_t peer_port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = t->conns[i];

		if (c && c->state != VSOCK_CONN_FREE && c->state != VSOCK_CONN_CLOSING &&
		    c->state != VSOCK_CONN_HOST_CONNECT && c->local_port == local_port &&
		    c->peer_port == peer_port)
			return c;
	}
	return NULL;
}

struct vsock_conn *vsock_conn_get(struct vsock_table *t, unsigned slot, uint32_t gen)
{
	struct vsock_conn *c;

	if (slot >= VSOCK_MAX_CONNS)
		return NULL;
	c = t->conns[slot];
	if (!c || c->state == VSOCK_CONN_FREE || c->gen != gen)
		return NULL;
	return c;
}

static bool port_in_use(struct vsock_table *t, uint32_t port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = t->conns[i];

		if (c && c->state != VSOCK_CONN_FREE && c->local_port == port)
			return true;
	}
	return false;
}

uint32_t vsock_table_ephemeral(struct vsock_table *t, uint32_t peer_port)
{
	/* At most VSOCK_MAX_CONNS ports are taken, so this ends within that many + 1 tries. */
	for (;;) {
		uint32_t p = t->next_ephemeral;

		t->next_ephemeral = p == UINT32_MAX - 1 ? VSOCK_EPHEMERAL_MIN : p + 1;
		if (!port_in_use(t, p))
			return p;
	}
}

uint32_t vsock_conn_peer_credit(const struct vsock_conn *c)
{
	/* Unsigned wrap-around arithmetic, as the counters are free-running 32-bit values. */
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	if (in_flight > c->peer_buf_alloc)
		return 0;
	return c->peer_buf_alloc - in_flight;
}

bool vsock_conn_want_credit_update(const struct vsock_conn *c)
{
	uint32_t seen_used = c->rx_cnt - c->fwd_cnt_sent;

	if (c->fwd_cnt == c->fwd_cnt_sent)
		return false;
	return seen_used > VSOCK_CONN_BUF_ALLOC / 2;
}

static int ring_alloc(struct vsock_ring *r, uint32_t cap)
{
	if (r->buf)
		return 0;
	r->buf = malloc(cap);
	if (!r->buf)
		return -ENOMEM;
	r->cap = cap;
	r->head = r->len = 0;
	return 0;
}

int vsock_ring_put(struct vsock_ring *r, uint32_t cap, const void *src, size_t len)
{
	struct iovec v = { .iov_base = (void *)src, .iov_len = len };

	return vsock_ring_put_iov(r, cap, &v, 1, len);
}

int vsock_ring_put_iov(struct vsock_ring *r, uint32_t cap, const struct iovec *iov, unsigned n,
		       size_t len)
{
	size_t done = 0;
	int ret;

	if (len == 0)
		return 0;
	ret = ring_alloc(r, cap);
	if (ret)
		return ret;
	if (len > r->cap - r->len)
		return -ENOBUFS;
	for (unsigned i = 0; i < n && done < len; i++) {
		const uint8_t *src = iov[i].iov_base;
		size_t take = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

		while (take) {
			uint32_t tail = (r->head + r->len) % r->cap;
			uint32_t room = r->cap - tail;
			uint32_t chunk = take < room ? (uint32_t)take : room;

			memcpy(r->buf + tail, src, chunk);
			r->len += chunk;
			src += chunk;
			take -= chunk;
			done += chunk;
		}
	}
	return done == len ? 0 : -EINVAL;
}

unsigned vsock_ring_peek(const struct vsock_ring *r, struct iovec iov[2])
{
	uint32_t first;

	if (!r->buf || r->len == 0)
		return 0;
	first = r->cap - r->head;
	if (first >= r->len) {
		iov[0] = (struct iovec){ r->buf + r->head, r->len };
		return 1;
	}
	iov[0] = (struct iovec){ r->buf + r->head, first };
	iov[1] = (struct iovec){ r->buf, r->len - first };
	return 2;
}

void vsock_ring_consume(struct vsock_ring *r, uint32_t n)
{
	if (n > r->len)
		n = r->len;
	r->len -= n;
	r->head = r->len ? (r->head + n) % r->cap : 0;
}

void vsock_ring_free(struct vsock_ring *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}
