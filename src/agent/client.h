/* Host side of the guest agent (docs/agent.md): one request per connection over the sandbox's
 * hybrid vsock Unix socket ("CONNECT <port>\n" / "OK <port>\n", src/devices/virtio/vsock/). */
#ifndef IGNITION_AGENT_CLIENT_H
#define IGNITION_AGENT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "agent/proto.h"

/* An answer: its frame type and payload (malloc'd, owned by the caller: agent_reply_free). */
struct agent_reply {
	uint8_t type;
	uint8_t *payload;
	uint32_t len;
};

/* Free the reply's payload. */
void agent_reply_free(struct agent_reply *r);

/* Connect to the vsock Unix socket `uds_path`, reach guest port `port`, send the frame(s) in
 * req[0..req_len) and read one answer frame, all within timeout_ms.  When cancel_fd >= 0
 * becomes readable the call stops with -ECANCELED (closing the connection, which makes the
 * agent kill a running command).  Returns 0 or -errno: -ETIMEDOUT, -ECONNREFUSED (nothing
 * listens on the socket or the guest refused the port), -ECONNRESET (the connection closed
 * early), -EBADMSG/-EMSGSIZE (a malformed answer), or a socket error.  err[n] gets one line. */
int agent_call(const char *uds_path, uint32_t port, const uint8_t *req, size_t req_len,
	       int timeout_ms, int cancel_fd, struct agent_reply *reply, char *err, size_t n)
	__attribute__((warn_unused_result));

#endif
