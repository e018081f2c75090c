/* ign-agent: the guest side of `ignition mcp` (docs/agent.md).  Started by init (respawned),
 * it listens on AF_VSOCK port AGENT_PORT and serves one request per connection in a forked
 * child, so a command that hangs never blocks the next request.  It runs as root and trusts
 * the host, but a malformed frame only ends its own connection with an error frame.
 *
 * Built static into the rootfs by guest/rootfs/build.sh together with src/agent/proto.c. */
#include "agent/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The whole request must arrive within this time: a host that connects and stalls does not
 * keep a child around forever. */
#define REQUEST_READ_MS 30000
/* After the command's main process ended, how long output of processes it left behind (that
 * hold the pipes open) is still collected. */
#define DRAIN_MS 200

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read exactly n bytes before the deadline: 0, or -errno (-ETIMEDOUT, -ECONNRESET on EOF). */
static int read_full(int fd, void *buf, size_t n, int64_t deadline)
{
	uint8_t *p = buf;
	while (n) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			continue;
		ssize_t got = read(fd, p, n);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -ECONNRESET;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void send_buf(int fd, struct agent_buf *b)
{
	if (write_full(fd, b->p, b->len))
		return;
	/* Let the host read everything before the connection goes away. */
	shutdown(fd, SHUT_WR);
}

static void send_error(int fd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void send_error(int fd, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct agent_buf b = { 0 };
	struct agent_error e = { .err = (uint32_t)err, .msg = msg };
	if (!agent_error_encode(&b, &e))
		send_buf(fd, &b);
	agent_buf_free(&b);
}

/* One captured output stream. */
struct cap {
	int fd;
	uint8_t *buf;
	uint32_t len, max;
	bool truncated;
};

static void cap_read(struct cap *c)
{
	uint8_t tmp[65536];
	ssize_t n = read(c->fd, tmp, sizeof(tmp));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(c->fd);
		c->fd = -1;
		return;
	}
	uint32_t keep = (uint32_t)n;
	if (keep > c->max - c->len) {
		keep = c->max - c->len;
		c->truncated = true; /* keep reading (and dropping) so the command never blocks */
	}
	memcpy(c->buf + c->len, tmp, keep);
	c->len += keep;
}

static void do_exec(int conn, const struct agent_exec_req *r)
{
	int in[2], out[2], err[2];
	struct cap co = { 0 }, ce = { 0 };
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		send_error(conn, errno, "pipe: %s", strerror(errno));
		return;
	}
	co.max = ce.max = r->max_output;
	co.buf = malloc(r->max_output + 1);
	ce.buf = malloc(r->max_output + 1);
	if (!co.buf || !ce.buf) {
		send_error(conn, ENOMEM, "no memory for %u bytes of output", r->max_output);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		send_error(conn, errno, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		/* Its own session and process group: the timeout kills the whole group. */
		setsid();
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (chdir("/root"))
			(void)!chdir("/");
		if (r->flags & AGENT_EXEC_SHELL)
			execl("/bin/sh", "sh", "-c", r->argv[0], (char *)NULL);
		else
			execvp(r->argv[0], (char *const *)r->argv);
		dprintf(2, "ign-agent: cannot run %s: %s\n", r->argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	co.fd = out[0];
	ce.fd = err[0];
	int infd = in[1];
	uint32_t in_off = 0;
	if (r->in_len == 0) {
		close(infd);
		infd = -1;
	} else {
		fcntl(infd, F_SETFL, O_NONBLOCK);
	}
	int64_t deadline = now_ms() + r->timeout_ms, drain_until = 0;
	bool timed_out = false, exited = false;
	int status = 0;
	for (;;) {
		if (!exited) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid) {
				exited = true;
				drain_until = now_ms() + DRAIN_MS;
			}
		}
		if (exited && ((co.fd < 0 && ce.fd < 0) || now_ms() >= drain_until))
			break;
		if (!exited && !timed_out && now_ms() >= deadline) {
			timed_out = true;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
		}
		struct pollfd p[4];
		int np = 0, io = -1, ioo = -1, ie = -1, ic = -1;
		if (co.fd >= 0)
			p[ioo = np++] = (struct pollfd){ .fd = co.fd, .events = POLLIN };
		if (ce.fd >= 0)
			p[ie = np++] = (struct pollfd){ .fd = ce.fd, .events = POLLIN };
		if (infd >= 0)
			p[io = np++] = (struct pollfd){ .fd = infd, .events = POLLOUT };
		/* The host closing the connection cancels the command. */
		p[ic = np++] = (struct pollfd){ .fd = conn, .events = POLLRDHUP };
		/* Short waits: SIGCHLD is not used, the child's end is polled for. */
		if (poll(p, (nfds_t)np, 20) < 0 && errno != EINTR)
			break;
		if (ioo >= 0 && p[ioo].revents)
			cap_read(&co);
		if (ie >= 0 && p[ie].revents)
			cap_read(&ce);
		if (io >= 0 && p[io].revents) {
			ssize_t w = (p[io].revents & POLLOUT)
					    ? write(infd, r->in + in_off, r->in_len - in_off)
					    : -1;
			if (w > 0)
				in_off += (uint32_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == r->in_len) {
				close(infd);
				infd = -1;
			}
		}
		if (p[ic].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return;
		}
	}
	if (!exited) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	if (timed_out)
		kill(-pid, SIGKILL); /* what the group left running */
	struct agent_exec_result res = {
		.kind = WIFSIGNALED(status) ? AGENT_SIGNALED : AGENT_EXITED,
		.code = WIFSIGNALED(status) ? (uint32_t)WTERMSIG(status)
					    : (uint32_t)WEXITSTATUS(status),
		.timed_out = timed_out,
		.out_truncated = co.truncated,
		.err_truncated = ce.truncated,
		.out = co.buf,
		.out_len = co.len,
		.err = ce.buf,
		.err_len = ce.len,
	};
	struct agent_buf b = { 0 };
	if (agent_exec_result_encode(&b, &res))
		send_error(conn, ENOMEM, "cannot encode the result");
	else
		send_buf(conn, &b);
	agent_buf_free(&b);
}

static void do_write_file(int conn, const struct agent_file_req *r)
{
	int fd = open(r->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, r->mode ? r->mode : 0644);
	if (fd < 0) {
		send_error(conn, errno, "open %s: %s", r->path, strerror(errno));
		return;
	}
	int ret = write_full(fd, r->data, r->data_len);
	if (!ret && r->mode)
		ret = fchmod(fd, r->mode) ? -errno : 0;
	if (close(fd) && !ret)
		ret = -errno;
	if (ret) {
		send_error(conn, -ret, "write %s: %s", r->path, strerror(-ret));
		return;
	}
	struct agent_buf b = { 0 };
	if (!agent_empty_encode(&b, AGENT_WRITE_RESULT))
		send_buf(conn, &b);
	agent_buf_free(&b);
}

static void do_read_file(int conn, const struct agent_file_req *r)
{
	int fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		send_error(conn, errno, "open %s: %s", r->path, strerror(errno));
		return;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		send_error(conn, EISDIR, "%s is a directory", r->path);
		return;
	}
	/* One byte more than asked tells whether the file goes on. */
	uint8_t *data = malloc((size_t)r->max + 1);
	if (!data) {
		close(fd);
		send_error(conn, ENOMEM, "no memory for %u bytes", r->max);
		return;
	}
	size_t got = 0;
	while (got < (size_t)r->max + 1) {
		ssize_t n = read(fd, data + got, (size_t)r->max + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			free(data);
			send_error(conn, e, "read %s: %s", r->path, strerror(e));
			return;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	struct agent_read_result res = {
		.truncated = got > r->max,
		.data = data,
		.data_len = (uint32_t)(got > r->max ? r->max : got),
	};
	struct agent_buf b = { 0 };
	if (agent_read_result_encode(&b, &res))
		send_error(conn, ENOMEM, "cannot encode the result");
	else
		send_buf(conn, &b);
	agent_buf_free(&b);
	free(data);
}

static void serve(int conn)
{
	uint8_t hdr[AGENT_HDR_LEN], type;
	uint32_t len;
	int64_t deadline = now_ms() + REQUEST_READ_MS;
	int ret = read_full(conn, hdr, sizeof(hdr), deadline);
	if (ret)
		return;
	if (agent_hdr_decode(hdr, &type, &len)) {
		send_error(conn, EMSGSIZE, "frame of %u bytes (at most %u)", len, AGENT_FRAME_MAX);
		return;
	}
	uint8_t *p = malloc(len ? len : 1);
	if (!p) {
		send_error(conn, ENOMEM, "no memory for a %u-byte frame", len);
		return;
	}
	if ((ret = read_full(conn, p, len, deadline))) {
		free(p);
		return;
	}
	struct agent_exec_req er;
	struct agent_file_req fr;
	struct agent_buf b = { 0 };
	switch (type) {
	case AGENT_PING:
		if (!agent_empty_encode(&b, AGENT_PONG))
			send_buf(conn, &b);
		break;
	case AGENT_EXEC:
		if (agent_exec_decode(p, len, &er))
			send_error(conn, EBADMSG, "malformed exec request");
		else
			do_exec(conn, &er);
		break;
	case AGENT_WRITE_FILE:
	case AGENT_READ_FILE:
		if (agent_file_decode(type, p, len, &fr))
			send_error(conn, EBADMSG, "malformed file request");
		else if (type == AGENT_WRITE_FILE)
			do_write_file(conn, &fr);
		else
			do_read_file(conn, &fr);
		break;
	default:
		send_error(conn, EOPNOTSUPP, "unknown request type %u", type);
	}
	agent_buf_free(&b);
	free(p);
}

int main(int argc, char **argv)
{
	unsigned port = AGENT_PORT;
	if (argc > 1)
		port = (unsigned)strtoul(argv[1], NULL, 0);
	/* Children are never waited for by the listener: the kernel reaps them. */
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		perror("ign-agent: socket(AF_VSOCK)");
		return 1;
	}
	struct sockaddr_vm a = { .svm_family = AF_VSOCK,
				 .svm_cid = VMADDR_CID_ANY,
				 .svm_port = port };
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 16)) {
		perror("ign-agent: bind/listen");
		return 1;
	}
	for (;;) {
		int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno != EINTR)
				usleep(10000); /* e.g. EMFILE or a transport reset: do not spin */
			continue;
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(s);
			/* The exec child needs its own SIGCHLD to be waitable. */
			signal(SIGCHLD, SIG_DFL);
			serve(c);
			close(c);
			_exit(0);
		}
		close(c);
	}
}
