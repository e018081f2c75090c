/* virtio-vsock (virtio 1.2 §5.10) with Firecracker's hybrid Unix-socket protocol,
 * `--vsock CID,PATH`:
 *  - guest -> host: a guest connection to port P is a Unix stream connection to "PATH_P";
 *    nobody listening there means an OP_RST to the guest;
 *  - host -> guest: a host process connects to PATH, writes "CONNECT <port>\n", reads
 *    "OK <host_port>\n", and the stream carries bytes both ways; a refused connection is closed.
 * All socket I/O runs on the event-loop thread through one epoll set of the device's own (one
 * event-loop handler however many connections), on non-blocking sockets, with per-connection
 * credit (§5.10.6.3) and bounded buffers.  When the guest has no receive buffers the device
 * stops reading host sockets until it posts more. */
#ifndef IGNITION_DEVICES_VIRTIO_VSOCK_VSOCK_H
#define IGNITION_DEVICES_VIRTIO_VSOCK_VSOCK_H

#include "devices/virtio/virtio.h"
#include "devices/virtio/vsock/proto.h"

#include <stdbool.h>
#include <stdint.h>

struct devmgr;
struct virtio_mmio;
struct virtio_vsock;

/* Queue size offered for each of the three queues. */
#define VIRTIO_VSOCK_QUEUE_SIZE 256u
/* How long a host client may take to send its CONNECT line, the guest to answer an OP_REQUEST,
 * and a half-closed connection to finish closing, before the device gives up (ms). */
#define VSOCK_CONNECT_LINE_TIMEOUT_MS 5000u
#define VSOCK_REQUEST_TIMEOUT_MS      10000u
#define VSOCK_LINGER_TIMEOUT_MS	      10000u
/* Longest socket path: PATH plus "_" and a 10-digit port must fit sun_path. */
#define VSOCK_PATH_MAX 96u

/* The virtio ops of a vsock device. */
extern const struct virtio_device_ops virtio_vsock_ops;

/* Create the device for guest CID `cid` (>= 3, not 0xffffffff) listening on Unix socket `path`
 * (a stale socket there is replaced; a live one is -EADDRINUSE, a non-socket -EEXIST).
 * -EINVAL for a bad CID, -ENAMETOOLONG for a path longer than VSOCK_PATH_MAX. */
int virtio_vsock_create(uint32_t cid, const char *path, struct virtio_vsock **out)
	__attribute__((warn_unused_result));

/* Create the device, register it as "virtio-vsock0" with the device manager and its epoll set
 * with the manager's event loop.  On failure nothing is left behind. */
int virtio_vsock_add(struct devmgr *dm, uint32_t cid, const char *path, struct virtio_vsock **out)
	__attribute__((warn_unused_result));

/* The device's epoll set (readable when a host socket or its timer needs attention). */
int virtio_vsock_poll_fd(const struct virtio_vsock *v);

/* Handle whatever is ready on the host sockets and timers, without blocking (what the event
 * loop calls; unit tests call it directly). */
void virtio_vsock_poll(struct virtio_vsock *v);

/* Run the connection timeouts as if the monotonic clock read `now_ms` (tests). */
void virtio_vsock_tick(struct virtio_vsock *v, uint64_t now_ms);

/* Drop every connection (host sockets closed, nothing sent to the guest) and post
 * VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue (§5.10.6.7), as after a snapshot
 * restore; the event waits for an event buffer if the queue has none. */
void virtio_vsock_transport_reset(struct virtio_vsock *v);

/* How a snapshot restore treats a guest CID other than the configured one: refused with
 * -EINVAL (the default), or with `keep` the configured CID stands (a clone with its own
 * identity, DESIGN.md §5; the guest re-reads its CID on the TRANSPORT_RESET event every
 * restore posts).  Call before the restore. */
void virtio_vsock_keep_cid_on_restore(struct virtio_vsock *v, bool keep);

/* Live connections (tests, diagnostics). */
unsigned virtio_vsock_nr_conns(const struct virtio_vsock *v);

/* Close every socket, remove the listening socket's path and free the device. */
void virtio_vsock_destroy(struct virtio_vsock *v);

#endif
