/* virtio-vsock connections: the bounded table, each connection's state and credit accounting
 * (virtio 1.2 §5.10.6.3) and the bounded buffer of guest bytes waiting for the host socket.
 * Pure bookkeeping: no sockets are opened here and no guest memory is touched. */
#ifndef IGNITION_DEVICES_VIRTIO_VSOCK_CONN_H
#define IGNITION_DEVICES_VIRTIO_VSOCK_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Most connections at once; a guest REQUEST or host CONNECT beyond this is refused. */
#define VSOCK_MAX_CONNS 128
/* Receive buffer the device advertises per connection (buf_alloc, §5.10.6.3): the most guest
 * bytes that can wait for a slow host socket. */
#define VSOCK_CONN_BUF_ALLOC (256u * 1024)
/* Room for the "OK <port>\n" line ahead of guest data on host-initiated connections. */
#define VSOCK_CONN_BUF_SLACK 32u
/* Host-initiated connections pick their port from here upwards (below: guest-chosen ports). */
#define VSOCK_EPHEMERAL_MIN (1u << 30)

enum vsock_conn_state {
	VSOCK_CONN_FREE = 0,
	VSOCK_CONN_HOST_CONNECT, /* host client accepted; waiting for its "CONNECT <port>\n" */
	VSOCK_CONN_REQUEST_SENT, /* OP_REQUEST (to be) sent to the guest; waiting for RESPONSE */
	VSOCK_CONN_ESTABLISHED,	 /* bytes flow; shutdown flags say which ways are still open */
	VSOCK_CONN_CLOSING, /* host socket gone; an OP_RST to the guest is pending, then free */
};

/* Control packets a connection owes the guest (bits of vsock_conn.pending). */
#define VSOCK_PEND_REQUEST	  (1u << 0)
#define VSOCK_PEND_RESPONSE	  (1u << 1)
#define VSOCK_PEND_CREDIT_UPDATE  (1u << 2)
#define VSOCK_PEND_CREDIT_REQUEST (1u << 3)
#define VSOCK_PEND_SHUTDOWN	  (1u << 4)
#define VSOCK_PEND_RST		  (1u << 5)

/* A byte ring of fixed capacity (guest data waiting for the host socket). */
struct vsock_ring {
	uint8_t *buf; /* NULL until first needed */
	uint32_t cap;
	uint32_t head; /* read position */
	uint32_t len;  /* bytes held */
};

struct vsock_conn {
	enum vsock_conn_state state;
	unsigned slot;	     /* index in the table */
	uint32_t gen;	     /* bumped on every reuse of the slot (stale epoll events) */
	int fd;		     /* host Unix stream socket, or -1 */
	bool host_init;	     /* the host connected (CONNECT) rather than the guest */
	uint32_t local_port; /* host side (CID 2) port */
	uint32_t peer_port;  /* guest side port */
	uint32_t pending;    /* VSOCK_PEND_* */
	uint32_t shut_flags; /* flags of the pending OP_SHUTDOWN */
	/* Edge-triggered socket readiness, remembered until acted on. */
	bool readable, writable, hup;
	/* Shutdown state: what the guest told us (VSOCK_SHUTDOWN_*), what we told the guest. */
	uint32_t guest_shut, host_shut;
	bool host_wr_closed; /* shutdown(SHUT_WR) done on the socket */
	/* Credit (§5.10.6.3).  Peer = the guest's receive side; ours = what we advertise. */
	uint32_t peer_buf_alloc, peer_fwd_cnt; /* last values the guest sent */
	uint32_t tx_cnt;		       /* payload bytes we sent the guest */
	uint32_t rx_cnt;		       /* payload bytes the guest sent us */
	uint32_t fwd_cnt;		       /* of those, bytes written to the host socket */
	uint32_t fwd_cnt_sent;		       /* fwd_cnt as of the last packet we sent */
	bool credit_requested;		       /* a CREDIT_REQUEST is out, unanswered */
	struct vsock_ring out;		       /* guest -> host bytes the socket did not take yet */
	uint32_t out_ctrl;    /* leading bytes of `out` that are ours ("OK <port>\n") */
	uint64_t deadline_ms; /* 0 or when to give up (CONNECT line, RESPONSE, linger) */
	/* Host-initiated: the CONNECT line as read so far. */
	char line[32];
	unsigned line_len;
};

struct vsock_table {
	struct vsock_conn *conns[VSOCK_MAX_CONNS]; /* NULL: never used */
	unsigned nr_live;			   /* slots not FREE */
	uint32_t next_ephemeral;
};

/* Empty table. */
void vsock_table_init(struct vsock_table *t);
/* Free every connection (the caller has closed the sockets). */
void vsock_table_destroy(struct vsock_table *t);
/* A fresh connection in a free slot, state HOST_CONNECT, fd -1; NULL when the table is full
 * (VSOCK_MAX_CONNS) or out of memory. */
struct vsock_conn *vsock_conn_alloc(struct vsock_table *t);
/* Return a connection's slot to the table (its socket must be closed already). */
void vsock_conn_free(struct vsock_table *t, struct vsock_conn *c);
/* The live connection (not FREE, not CLOSING) for (host port, guest port), or NULL. */
struct vsock_conn *vsock_conn_find(struct vsock_table *t, uint32_t local_port, uint32_t peer_port);
/* The connection in `slot` if it is live with generation `gen`, else NULL. */
struct vsock_conn *vsock_conn_get(struct vsock_table *t, unsigned slot, uint32_t gen);
/* An unused host port >= VSOCK_EPHEMERAL_MIN for a host-initiated connection to `peer_port`. */
uint32_t vsock_table_ephemeral(struct vsock_table *t, uint32_t peer_port);

/* Bytes the guest can take now (§5.10.6.3: buf_alloc - (tx_cnt - fwd_cnt)); 0 when the guest's
 * figures are inconsistent (it claims to have forwarded more than it was sent). */
uint32_t vsock_conn_peer_credit(const struct vsock_conn *c);
/* Should we volunteer a CREDIT_UPDATE?  When the guest's view of our free space
 * (buf_alloc - (rx_cnt - fwd_cnt_sent)) is below half and we have freed something since. */
bool vsock_conn_want_credit_update(const struct vsock_conn *c);

/* Append `len` bytes to the ring (allocating it on first use); -ENOBUFS if they do not fit,
 * -ENOMEM. */
int vsock_ring_put(struct vsock_ring *r, uint32_t cap, const void *src, size_t len)
	__attribute__((warn_unused_result));
/* Append `len` bytes gathered from iov[0..n); -ENOBUFS if they do not fit, -ENOMEM. */
int vsock_ring_put_iov(struct vsock_ring *r, uint32_t cap, const struct iovec *iov, unsigned n,
		       size_t len) __attribute__((warn_unused_result));
/* The held bytes as at most two iovecs (oldest first); returns how many (0 when empty). */
unsigned vsock_ring_peek(const struct vsock_ring *r, struct iovec iov[2]);
/* Drop the oldest `n` bytes (n <= len). */
void vsock_ring_consume(struct vsock_ring *r, uint32_t n);
/* Release the ring's memory. */
void vsock_ring_free(struct vsock_ring *r);

#endif
