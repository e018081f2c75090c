/* Host side of the guest agent: see client.h. */
#include "agent/client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

void agent_reply_free(struct agent_reply *r)
{
	free(r->payload);
	r->payload = NULL;
	r->len = 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for `events`, the deadline passes (-ETIMEDOUT) or cancel_fd becomes
 * readable (-ECANCELED). */
static int wait_fd(int fd, short events, int64_t deadline, int cancel_fd)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p[2] = { { .fd = fd, .events = events },
				       { .fd = cancel_fd, .events = POLLIN } };
		int r = poll(p, cancel_fd >= 0 ? 2 : 1, left > 1000 ? 1000 : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (cancel_fd >= 0 && p[1].revents)
			return -ECANCELED;
		if (p[0].revents)
			return 0;
	}
}

static int send_all(int fd, const uint8_t *p, size_t n, int64_t deadline, int cancel_fd)
{
	while (n) {
		int ret = wait_fd(fd, POLLOUT, deadline, cancel_fd);
		if (ret)
			return ret;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n, int64_t deadline, int cancel_fd)
{
	while (n) {
		int ret = wait_fd(fd, POLLIN, deadline, cancel_fd);
		if (ret)
			return ret;
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ECONNRESET;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* The "OK <port>\n" line, read a byte at a time so no frame byte is consumed. */
static int read_ok_line(int fd, int64_t deadline, int cancel_fd)
{
	char line[64];
	size_t len = 0;
	for (;;) {
		uint8_t c;
		int ret = recv_all(fd, &c, 1, deadline, cancel_fd);
		if (ret)
			/* The device closes a connection the guest refused (nobody on the port). */
			return ret == -ECONNRESET ? -ECONNREFUSED : ret;
		if (c == '\n')
			break;
		if (len >= sizeof(line) - 1)
			return -EBADMSG;
		line[len++] = (char)c;
	}
	line[len] = 0;
	/* The device answers "OK <host-side port>", not the guest port: check the prefix only. */
	return strncmp(line, "OK ", 3) ? -EBADMSG : 0;
}

int agent_call(const char *uds_path, uint32_t port, const uint8_t *req, size_t req_len,
	       int timeout_ms, int cancel_fd, struct agent_reply *reply, char *err, size_t n)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	const char *step = "connect";
	int ret, fd = -1;
	memset(reply, 0, sizeof(*reply));
	if (strlen(uds_path) >= sizeof(a.sun_path)) {
		snprintf(err, n, "vsock socket path too long");
		return -ENAMETOOLONG;
	}
	strcpy(a.sun_path, uds_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		ret = -errno;
		if (ret != -EINPROGRESS && ret != -EAGAIN)
			goto fail;
		if ((ret = wait_fd(fd, POLLOUT, deadline, cancel_fd)))
			goto fail;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			ret = -soerr;
			goto fail;
		}
	}
	char line[32];
	int ll = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	step = "CONNECT";
	if ((ret = send_all(fd, (const uint8_t *)line, (size_t)ll, deadline, cancel_fd)) ||
	    (ret = read_ok_line(fd, deadline, cancel_fd)))
		goto fail;
	step = "send";
	if ((ret = send_all(fd, req, req_len, deadline, cancel_fd)))
		goto fail;
	step = "receive";
	uint8_t hdr[AGENT_HDR_LEN];
	if ((ret = recv_all(fd, hdr, sizeof(hdr), deadline, cancel_fd)))
		goto fail;
	if ((ret = agent_hdr_decode(hdr, &reply->type, &reply->len)))
		goto fail;
	reply->payload = malloc(reply->len ? reply->len : 1);
	if (!reply->payload) {
		ret = -ENOMEM;
		goto fail;
	}
	if ((ret = recv_all(fd, reply->payload, reply->len, deadline, cancel_fd)))
		goto fail;
	close(fd);
	return 0;
fail:
	agent_reply_free(reply);
	if (fd >= 0)
		close(fd);
	snprintf(err, n, "agent %s: %s", step,
		 ret == -ETIMEDOUT	? "timed out"
		 : ret == -ECANCELED	? "cancelled"
		 : ret == -ECONNREFUSED ? "refused (no agent listening?)"
					: strerror(-ret));
	return ret;
}
