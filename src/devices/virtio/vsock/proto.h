/* virtio-vsock wire format (virtio 1.2 §5.10): the packet header, operations, shutdown flags and
 * events.  Headers are encoded and decoded field by field, little-endian, never as raw structs. */
#ifndef IGNITION_DEVICES_VIRTIO_VSOCK_PROTO_H
#define IGNITION_DEVICES_VIRTIO_VSOCK_PROTO_H

#include "devices/virtio/virtio.h"

#include <stdint.h>

/* Queues (§5.10.2). */
#define VSOCK_QUEUE_RX	  0
#define VSOCK_QUEUE_TX	  1
#define VSOCK_QUEUE_EVENT 2
#define VSOCK_NUM_QUEUES  3

/* Feature bits (§5.10.3): only stream sockets are offered. */
#define VIRTIO_VSOCK_F_STREAM	 0
#define VIRTIO_VSOCK_F_SEQPACKET 1

/* Well-known CIDs (§5.10.4): 0, 1 and 0xffffffff are reserved, 2 is the host. */
#define VSOCK_CID_HOST 2u
#define VSOCK_CID_MIN  3u	   /* smallest guest CID */
#define VSOCK_CID_ANY  0xffffffffu /* reserved */

/* Socket type (§5.10.6). */
#define VSOCK_TYPE_STREAM    1
#define VSOCK_TYPE_SEQPACKET 2

/* Operations (§5.10.6). */
#define VSOCK_OP_INVALID	0
#define VSOCK_OP_REQUEST	1
#define VSOCK_OP_RESPONSE	2
#define VSOCK_OP_RST		3
#define VSOCK_OP_SHUTDOWN	4
#define VSOCK_OP_RW		5
#define VSOCK_OP_CREDIT_UPDATE	6
#define VSOCK_OP_CREDIT_REQUEST 7

/* OP_SHUTDOWN flags (§5.10.6.5): the sender will receive / send no more data. */
#define VSOCK_SHUTDOWN_RCV  1u
#define VSOCK_SHUTDOWN_SEND 2u
#define VSOCK_SHUTDOWN_BOTH (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

/* Event ids (§5.10.6.7): the only event, after which the driver drops every connection. */
#define VSOCK_EVENT_TRANSPORT_RESET 0
#define VSOCK_EVENT_BYTES	    4 /* struct virtio_vsock_event: le32 id */

/* Config space (§5.10.4): le64 guest_cid. */
#define VSOCK_CFG_GUEST_CID 0
#define VSOCK_CFG_SIZE	    8

/* struct virtio_vsock_hdr (§5.10.6): 44 bytes. */
#define VSOCK_HDR_BYTES	    44
#define VSOCK_HDR_SRC_CID   0  /* le64 */
#define VSOCK_HDR_DST_CID   8  /* le64 */
#define VSOCK_HDR_SRC_PORT  16 /* le32 */
#define VSOCK_HDR_DST_PORT  20 /* le32 */
#define VSOCK_HDR_LEN	    24 /* le32: payload bytes after the header */
#define VSOCK_HDR_TYPE	    28 /* le16 */
#define VSOCK_HDR_OP	    30 /* le16 */
#define VSOCK_HDR_FLAGS	    32 /* le32 */
#define VSOCK_HDR_BUF_ALLOC 36 /* le32 */
#define VSOCK_HDR_FWD_CNT   40 /* le32 */

/* Largest payload of one packet either way (Linux uses 64 KiB, VIRTIO_VSOCK_MAX_PKT_BUF_SIZE);
 * a guest packet claiming more is malformed. */
#define VSOCK_MAX_PKT_LEN (64u * 1024)

/* A decoded header. */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags;
	uint32_t buf_alloc, fwd_cnt;
};

/* Decode 44 header bytes. */
static inline void vsock_hdr_decode(const uint8_t *p, struct vsock_hdr *h)
{
	h->src_cid = virtio_get_le(p + VSOCK_HDR_SRC_CID, 8);
	h->dst_cid = virtio_get_le(p + VSOCK_HDR_DST_CID, 8);
	h->src_port = (uint32_t)virtio_get_le(p + VSOCK_HDR_SRC_PORT, 4);
	h->dst_port = (uint32_t)virtio_get_le(p + VSOCK_HDR_DST_PORT, 4);
	h->len = (uint32_t)virtio_get_le(p + VSOCK_HDR_LEN, 4);
	h->type = (uint16_t)virtio_get_le(p + VSOCK_HDR_TYPE, 2);
	h->op = (uint16_t)virtio_get_le(p + VSOCK_HDR_OP, 2);
	h->flags = (uint32_t)virtio_get_le(p + VSOCK_HDR_FLAGS, 4);
	h->buf_alloc = (uint32_t)virtio_get_le(p + VSOCK_HDR_BUF_ALLOC, 4);
	h->fwd_cnt = (uint32_t)virtio_get_le(p + VSOCK_HDR_FWD_CNT, 4);
}

/* Encode a header into 44 bytes. */
static inline void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *p)
{
	virtio_put_le(p + VSOCK_HDR_SRC_CID, h->src_cid, 8);
	virtio_put_le(p + VSOCK_HDR_DST_CID, h->dst_cid, 8);
	virtio_put_le(p + VSOCK_HDR_SRC_PORT, h->src_port, 4);
	virtio_put_le(p + VSOCK_HDR_DST_PORT, h->dst_port, 4);
	virtio_put_le(p + VSOCK_HDR_LEN, h->len, 4);
	virtio_put_le(p + VSOCK_HDR_TYPE, h->type, 2);
	virtio_put_le(p + VSOCK_HDR_OP, h->op, 2);
	virtio_put_le(p + VSOCK_HDR_FLAGS, h->flags, 4);
	virtio_put_le(p + VSOCK_HDR_BUF_ALLOC, h->buf_alloc, 4);
	virtio_put_le(p + VSOCK_HDR_FWD_CNT, h->fwd_cnt, 4);
}

#endif
