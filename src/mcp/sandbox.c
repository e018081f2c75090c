/* Sandbox processes of `ignition mcp`: see sandbox.h. */
#include "mcp/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "util/fileio.h"
#include "util/guest_files.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sandbox_console_tail(const char *dir, char *buf, size_t n)
{
	char path[PATH_MAX], chunk[1024];
	buf[0] = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, SANDBOX_CONSOLE);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)sizeof(chunk) - 1 ? end - (off_t)sizeof(chunk) + 1 : 0;
	ssize_t got = pread(fd, chunk, sizeof(chunk) - 1, from);
	close(fd);
	if (got <= 0)
		return;
	chunk[got] = 0;
	while (got > 0 &&
	       (chunk[got - 1] == '\n' || chunk[got - 1] == '\r' || chunk[got - 1] == ' '))
		chunk[--got] = 0;
	char *nl = strrchr(chunk, '\n');
	const char *last = nl ? nl + 1 : chunk;
	size_t l = strlen(last);
	if (l >= n)
		l = n - 1;
	memcpy(buf, last, l);
	buf[l] = 0;
}

static int copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, ret = 0;
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		ret = -errno;
		goto close_in;
	}
	struct stat st;
	if (fstat(in, &st)) {
		ret = -errno;
		goto close_out;
	}
	/* Reflink or in-kernel copy where the file system can; a plain loop otherwise. */
	off_t left = st.st_size;
	while (left > 0) {
		ssize_t c = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
		if (c <= 0) {
			ret = c < 0 ? -errno : -EIO;
			break;
		}
		left -= c;
	}
	if (ret == -EXDEV || ret == -EOPNOTSUPP || ret == -ENOSYS) {
		char buf[65536];
		ssize_t r;
		ret = 0;
		lseek(in, st.st_size - left, SEEK_SET);
		while ((r = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, (size_t)r) != r) {
				ret = -EIO;
				break;
			}
		if (r < 0)
			ret = -errno;
	}
close_out:
	if (close(out) && !ret)
		ret = -errno;
close_in:
	close(in);
	return ret;
}

int sandbox_spawn(const char *dir, const char *const argv[], pid_t *pid)
{
	char log[PATH_MAX];
	snprintf(log, sizeof(log), "%s/%s", dir, SANDBOX_CONSOLE);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nul < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	pid_t p = fork();
	if (p < 0) {
		int e = -errno;
		close(fd);
		close(nul);
		return e;
	}
	if (p == 0) {
		/* No PR_SET_PDEATHSIG: it fires when the forking *thread* ends, and tool threads
		 * end right after create_sandbox.  The server kills its sandboxes at exit. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		/* Its own process group: a Ctrl-C meant for the server's client is not its. */
		setpgid(0, 0);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (chdir(dir))
			_exit(127);
		execv(argv[0], (char *const *)argv);
		dprintf(2, "ignition: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	close(nul);
	*pid = p;
	return 0;
}

static int ping(const char *vsock, int timeout_ms, int cancel_fd, char *err, size_t n)
{
	struct agent_buf b = { 0 };
	struct agent_reply r;
	int ret = agent_empty_encode(&b, AGENT_PING);
	if (!ret)
		ret = agent_call(vsock, AGENT_PORT, b.p, b.len, timeout_ms, cancel_fd, &r, err, n);
	agent_buf_free(&b);
	if (ret)
		return ret;
	ret = r.type == AGENT_PONG ? 0 : -EBADMSG;
	agent_reply_free(&r);
	if (ret)
		snprintf(err, n, "the agent answered a ping with frame type %u", r.type);
	return ret;
}

static int start_once(const struct sandbox_spec *s, pid_t *pid, char *err, size_t n)
{
	char vsock[PATH_MAX], control[PATH_MAX], disk[PATH_MAX], vsock_arg[PATH_MAX + 16];
	char cid[16];
	int ret;
	*pid = 0;
	snprintf(vsock, sizeof(vsock), "%s/%s", s->dir, SANDBOX_VSOCK);
	snprintf(control, sizeof(control), "%s/%s", s->dir, SANDBOX_CONTROL);
	if (strlen(vsock) >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
	    strlen(control) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, n, "sandbox directory %s is too long for a socket path", s->dir);
		return -ENAMETOOLONG;
	}
	snprintf(cid, sizeof(cid), "%u", s->cid);
	snprintf(vsock_arg, sizeof(vsock_arg), "%s,%s", cid, vsock);
	if (s->base) {
		/* The restore gives each writable disk a private copy-on-write view: nothing to
		 * copy here.  --track-dirty makes the restored snapshot the reset checkpoint. */
		const char *const argv[] = { s->ignition,     "run",	   "--restore", s->base,
					     "--track-dirty", "--control", control,	"--vsock",
					     vsock_arg,	      NULL };
		ret = sandbox_spawn(s->dir, argv, pid);
	} else {
		char gdir[PATH_MAX], rootfs[PATH_MAX + 16];
		guest_out_dir(gdir, sizeof(gdir));
		snprintf(rootfs, sizeof(rootfs), "%s/rootfs.ext4", gdir);
		snprintf(disk, sizeof(disk), "%s/%s", s->dir, SANDBOX_DISK);
		if ((ret = copy_file(rootfs, disk))) {
			snprintf(err, n, "cannot copy %s: %s", rootfs, strerror(-ret));
			return ret;
		}
		/* With a display: --gpu WxH gives the VM a virtio-gpu with keyboard and tablet,
		 * headless (the display tools reach it through the control socket). */
		const char *const argv[] = {
			s->ignition, "run",   "--disk",	 disk,	    "--track-dirty",
			"--control", control, "--vsock", vsock_arg, s->gpu ? "--gpu" : NULL,
			s->gpu,	     NULL
		};
		ret = sandbox_spawn(s->dir, argv, pid);
	}
	if (ret) {
		snprintf(err, n, "cannot start %s: %s", s->ignition, strerror(-ret));
		return ret;
	}
	/* Until the agent answers: the child may still be restoring (no socket yet) or booting
	 * (the guest refuses the port); stop early when the child dies. */
	int64_t deadline = now_ms() + s->ready_ms;
	snprintf(err, n, "no attempt");
	for (;;) {
		int status;
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			char tail[256];
			*pid = 0;
			sandbox_console_tail(s->dir, tail, sizeof(tail));
			snprintf(err, n, "the VM exited (status %d) before its agent answered: %s",
				 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
				 tail);
			return -ECHILD;
		}
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			char last[256];
			snprintf(last, sizeof(last), "%s", err);
			snprintf(err, n, "the guest agent did not answer within %d ms (%s)",
				 s->ready_ms, last);
			return -ETIMEDOUT;
		}
		ret = ping(vsock, left > 3000 ? 3000 : (int)left, s->cancel_fd, err, n);
		if (!ret)
			break;
		if (ret == -ECANCELED)
			return ret;
		struct pollfd p = { .fd = s->cancel_fd, .events = POLLIN };
		if (poll(&p, s->cancel_fd >= 0 ? 1 : 0, 100) > 0) {
			snprintf(err, n, "cancelled");
			return -ECANCELED;
		}
	}
	/* A booted sandbox: its state once the agent answers is what reset_sandbox goes back to
	 * (a restored one has the restored snapshot as its checkpoint already). */
	if (!s->base) {
		json_t *cmd = json_pack("{s:s}", "cmd", "checkpoint"), *ans = NULL;

		if (!cmd)
			return -ENOMEM;
		ret = sandbox_control(s->dir, cmd, 60000, &ans, err, n);
		json_decref(cmd);
		json_decref(ans);
		if (ret)
			return ret;
	}
	return 0;
}

int sandbox_control(const char *dir, json_t *cmd, int timeout_ms, json_t **answer, char *err,
		    size_t n)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int ret, fd;
	char *line = NULL;
	*answer = NULL;
	if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", dir, SANDBOX_CONTROL) >=
	    sizeof(a.sun_path)) {
		snprintf(err, n, "control socket path too long");
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		ret = -errno;
		snprintf(err, n, "control socket: %s", strerror(-ret));
		goto close_fd;
	}
	line = json_dumps(cmd, JSON_COMPACT);
	if (!line) {
		ret = -ENOMEM;
		goto close_fd;
	}
	size_t len = strlen(line);
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		ret = -errno ?: -EIO;
		snprintf(err, n, "control socket: %s", strerror(-ret));
		goto free_line;
	}
	/* One answer line (control.h caps it at CONTROL_OUT_MAX; ours are short). */
	char buf[4096];
	size_t got = 0;
	while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
		ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -ECONNRESET;
			snprintf(err, n, "control socket: %s",
				 ret == -EAGAIN ? "no answer in time" : strerror(-ret));
			goto free_line;
		}
		got += (size_t)r;
	}
	buf[got] = 0;
	json_error_t je;
	json_t *ans = json_loads(buf, JSON_DISABLE_EOF_CHECK, &je);
	if (!json_is_object(ans)) {
		json_decref(ans);
		ret = -EBADMSG;
		snprintf(err, n, "control socket: malformed answer");
		goto free_line;
	}
	if (!json_is_true(json_object_get(ans, "ok"))) {
		const char *e = json_string_value(json_object_get(ans, "error"));
		snprintf(err, n, "%s", e ? e : "the VM refused the command");
		json_decref(ans);
		ret = -EIO;
		goto free_line;
	}
	*answer = ans;
	ret = 0;
free_line:
	free(line);
close_fd:
	close(fd);
	return ret;
}

void sandbox_kill(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int sandbox_rmtree(const char *dir)
{
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) ? -errno : 0;
}

int sandbox_base_cid(const char *base, uint32_t *cid)
{
	char path[PATH_MAX];
	json_error_t je;
	snprintf(path, sizeof(path), "%s/manifest.json", base);
	json_t *m = json_load_file(path, 0, &je);
	if (!m)
		return -ENOENT;
	json_t *c = json_object_get(json_object_get(json_object_get(m, "config"), "vsock"), "cid");
	int ret = json_is_integer(c) && json_integer_value(c) >= 3 &&
				  json_integer_value(c) < 0xffffffffll
			  ? 0
			  : -ENODEV;
	if (!ret)
		*cid = (uint32_t)json_integer_value(c);
	json_decref(m);
	return ret;
}

int sandbox_start(const struct sandbox_spec *s, pid_t *pid, char *err, size_t n)
{
	return start_once(s, pid, err, n);
}

int sandbox_agent_call(const char *dir, const struct agent_buf *req, int timeout_ms, int cancel_fd,
		       struct agent_reply *r, char *err, size_t n)
{
	char vsock[PATH_MAX + 32];
	snprintf(vsock, sizeof(vsock), "%s/%s", dir, SANDBOX_VSOCK);
	int ret = agent_call(vsock, AGENT_PORT, req->p, req->len, timeout_ms, cancel_fd, r, err, n);
	if (ret)
		return ret;
	if (r->type == AGENT_ERROR) {
		struct agent_error e;
		if (agent_error_decode(r->payload, r->len, &e))
			snprintf(err, n, "malformed error from the agent");
		else
			snprintf(err, n, "%s", e.msg);
		agent_reply_free(r);
		return -EIO;
	}
	return 0;
}

int sandbox_wait_agent(const char *dir, int timeout_ms, int cancel_fd, char *err, size_t n)
{
	char vsock[PATH_MAX + 32];
	int64_t deadline = now_ms() + timeout_ms;
	int ret;
	snprintf(vsock, sizeof(vsock), "%s/%s", dir, SANDBOX_VSOCK);
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		ret = ping(vsock, left > 3000 ? 3000 : (int)left, cancel_fd, err, n);
		if (!ret || ret == -ECANCELED)
			return ret;
		usleep(100000);
	}
}
