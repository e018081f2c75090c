/* `ignition browser`: see browser.h. */
#include "browser/browser.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/proto.h"
#include "mcp/sandbox.h"
#include "util/guest_files.h"

static const char usage[] =
	"Usage: ignition browser [OPTIONS] [URL]\n"
	"A disposable web browser: Firefox ESR in a fresh clone of a warm microVM, discarded\n"
	"at exit.  The first run makes the warm base (one cold boot of the browser guest,\n"
	"`make guest-browser`); every session after that restores it.\n"
	"\n"
	"Options:\n"
	"  URL                  the page to show once the clone's network is up: http:// or\n"
	"                       https:// (none: http:// is put in front), printable ASCII,\n"
	"                       at most 2000 bytes; without a URL: the start page\n"
	"  --gui[=sdl|headless] where the screen goes: an SDL window (default) or nowhere\n"
	"                       (screenshots and input through --control)\n"
	"  --vnc [ADDR:]PORT[,password-file=F]\n"
	"                       also serve the screen over VNC (as 'ignition run --vnc';\n"
	"                       headless unless --gui is given)\n"
	"  --control PATH       the session's control socket (as 'ignition run --control':\n"
	"                       screenshot, type, key, click...); default: a private one\n"
	"  --net SPEC           the clone's network, as 'ignition run --net' (default: user-\n"
	"                       mode NAT, no access to the host's loopback)\n"
	"  --base DIR           the warm base snapshot (default guest/out/browser-base)\n"
	"  --make-base          make the warm base if it is missing or older than the guest\n"
	"                       image, then exit\n"
	"  --rebuild            make the warm base again even when it is current\n"
	"  --base-timeout S     seconds the warm base's cold boot may take (default 1800)\n"
	"  -h, --help           show this help\n"
	"\n"
	"The serial console of the clone is on this terminal (Ctrl-A x quits).  Nothing a\n"
	"session writes survives it: the guest's root is read-only and its writes live in\n"
	"guest RAM.  Exit status: the clone's ('ignition run --help'), 1 when the base cannot\n"
	"be made, 2 on bad usage.  docs/browser.md.\n";

enum {
	OPT_GUI = 256,
	OPT_VNC,
	OPT_CONTROL,
	OPT_NET,
	OPT_BASE,
	OPT_MAKE_BASE,
	OPT_REBUILD,
	OPT_BASE_TIMEOUT
};

#define URL_MAX BROWSER_URL_MAX
/* The guest CID of the browser guest's vsock device (its agent, docs/agent.md). */
#define BROWSER_CID 3
/* How long a session waits for the clone's network, and then for its agent to take the URL:
 * bounds on a wedged guest (a clone inside tests/nested takes minutes, measured 2026-12-03). */
#define NET_WAIT_S   600
#define AGENT_WAIT_S 300
/* The guest's ign-browser-open: how long it may run. */
#define OPEN_TIMEOUT_MS 30000

/* u (at most size - 1 bytes) with its scheme, into buf[size]: http:// or https:// (any case)
 * in lower case; none: "http://" put in front; another: NULL with err. */
static const char *url_with_scheme(const char *u, char *buf, size_t size, char *err, size_t n)
{
	const char *sep = strstr(u, "://");
	size_t len = strlen(u), k = sep ? (size_t)(sep - u) : 0;
	bool scheme = sep && k > 0 && isalpha((unsigned char)u[0]);

	for (size_t i = 1; scheme && i < k; i++)
		scheme = isalnum((unsigned char)u[i]) || strchr("+.-", u[i]);
	if (scheme) {
		if (!((k == 4 && !strncasecmp(u, "http", 4)) ||
		      (k == 5 && !strncasecmp(u, "https", 5)))) {
			snprintf(err, n, "the URL must be http:// or https://, not %.*s://",
				 (int)(k > 20 ? 20 : k), u);
			return NULL;
		}
		if (!sep[3]) {
			snprintf(err, n, "the URL has nothing after %.*s://", (int)k, u);
			return NULL;
		}
		/* The guest's ign-browser-open takes the scheme in lower case. */
		memcpy(buf, u, len + 1);
		for (size_t i = 0; i < k; i++)
			buf[i] = (char)tolower((unsigned char)buf[i]);
		return buf;
	}
	if (len + 7 >= size) {
		snprintf(err, n, "the URL must have 1 to %zu bytes with http:// in front",
			 size - 1);
		return NULL;
	}
	memcpy(buf, "http://", 7);
	memcpy(buf + 7, u, len + 1);
	return buf;
}

int browser_parse(int argc, char **argv, struct browser_opts *o, char *err, size_t n)
{
	static const struct option opts[] = {
		{ "gui", optional_argument, NULL, OPT_GUI },
		{ "vnc", required_argument, NULL, OPT_VNC },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "net", required_argument, NULL, OPT_NET },
		{ "base", required_argument, NULL, OPT_BASE },
		{ "make-base", no_argument, NULL, OPT_MAKE_BASE },
		{ "rebuild", no_argument, NULL, OPT_REBUILD },
		{ "base-timeout", required_argument, NULL, OPT_BASE_TIMEOUT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->base_timeout = 1800;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_GUI:
			if (optarg && strcmp(optarg, "sdl") && strcmp(optarg, "headless")) {
				snprintf(err, n, "--gui: '%s' is not sdl or headless", optarg);
				return -EINVAL;
			}
			o->gui = optarg ? optarg : "sdl";
			break;
		case OPT_VNC:
			o->vnc = optarg;
			break;
		case OPT_CONTROL:
			o->control = optarg;
			break;
		case OPT_NET:
			o->net = optarg;
			break;
		case OPT_BASE:
			o->base = optarg;
			break;
		case OPT_MAKE_BASE:
			o->make_base = true;
			break;
		case OPT_REBUILD:
			o->rebuild = true;
			break;
		case OPT_BASE_TIMEOUT: {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 10 || v > 86400) {
				snprintf(err, n,
					 "--base-timeout: '%s' is not a number of seconds from 10 "
					 "to "
					 "86400",
					 optarg);
				return -EINVAL;
			}
			o->base_timeout = (unsigned)v;
			break;
		}
		case 'h':
			fputs(usage, stdout);
			return 1;
		case ':':
			snprintf(err, n, "%s needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, n, "unknown option '%s' (try 'ignition browser --help')",
				 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		const char *u = argv[optind++];
		size_t len = strlen(u);

		if (len == 0 || len > URL_MAX) {
			snprintf(err, n, "the URL must have 1 to %d bytes", URL_MAX);
			return -EINVAL;
		}
		/* One line in the guest (/run/ign-browser/url), and what Firefox's address bar
		 * would show: percent-encoded. */
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)u[i] < 0x21 || (unsigned char)u[i] > 0x7e) {
				snprintf(err, n,
					 "the URL has a byte that is not printable ASCII (%#x at "
					 "%zu): percent-encode spaces and non-ASCII characters",
					 (unsigned char)u[i], i);
				return -EINVAL;
			}
		u = url_with_scheme(u, o->url_buf, sizeof(o->url_buf), err, n);
		if (!u)
			return -EINVAL;
		o->url = u;
	}
	if (optind < argc) {
		snprintf(err, n, "one URL at most ('%s' is a second one)", argv[optind]);
		return -EINVAL;
	}
	if (o->make_base && (o->url || o->gui || o->vnc || o->control || o->net)) {
		snprintf(err, n,
			 "--make-base starts no session: it takes no URL, --gui, --vnc, "
			 "--control or --net");
		return -EINVAL;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* From the console log in dir: "Guest-boot-time = N ms" (*ms, else -1), and whether ignition
 * said "snapshot failed" (the line into failed[n]). */
static void scan_console(const char *dir, long *ms, char *failed, size_t n)
{
	char path[PATH_MAX + 16], line[512];
	FILE *f;

	*ms = -1;
	failed[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dir, SANDBOX_CONSOLE);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "Guest-boot-time = ");

		if (p)
			*ms = strtol(p + strlen("Guest-boot-time = "), NULL, 10);
		if (strstr(line, "snapshot failed")) {
			line[strcspn(line, "\r\n")] = '\0';
			snprintf(failed, n, "%s", line);
		}
	}
	fclose(f);
}

/* Does the base need making: missing, or older than the guest image it was booted from? */
static const char *base_stale(const char *base, const char *image)
{
	char manifest[PATH_MAX];
	struct stat b, i;
	uint32_t cid;

	snprintf(manifest, sizeof(manifest), "%s/manifest.json", base);
	if (stat(manifest, &b) < 0)
		return "there is no warm base yet";
	/* Made before the URL went through the guest agent. */
	if (sandbox_base_cid(base, &cid) < 0)
		return "the warm base has no vsock device (an older ignition made it)";
	if (stat(image, &i) == 0 &&
	    (i.st_mtim.tv_sec > b.st_mtim.tv_sec ||
	     (i.st_mtim.tv_sec == b.st_mtim.tv_sec && i.st_mtim.tv_nsec > b.st_mtim.tv_nsec)))
		return "the browser image is newer than the warm base";
	return NULL;
}

/* Boot the browser guest once, headless, with ign.base=1: its init asks for a snapshot into
 * work/snap when Firefox has drawn the start page.  Then stop it and put the snapshot in
 * place of base (an old base is replaced only by a complete new one). */
static int make_base(const char *self, const char *base, unsigned timeout_s)
{
	char work[PATH_MAX - 64], snap[PATH_MAX - 32], manifest[PATH_MAX], old[PATH_MAX], tail[512];
	char vsock_arg[32];
	/* --vsock: the clones' agent (the socket is relative: the child runs in work). */
	const char *argv[] = { self,	"run",	    "--guest",	  "browser", "--gui=headless",
			       "--net", "user",	    "--vsock",	  vsock_arg, "--snapshot-dir",
			       snap,	"--append", "ign.base=1", NULL };
	double t0 = now_s(), next = t0 + 15, next_scan = t0 + 1;
	pid_t pid = 0;
	int status, ret;
	long ms;

	if ((size_t)snprintf(work, sizeof(work), "%s.new-%d", base, (int)getpid()) >=
	    sizeof(work)) {
		fprintf(stderr, "ignition browser: error: base path '%s' is too long\n", base);
		return -ENAMETOOLONG;
	}
	snprintf(snap, sizeof(snap), "%s/snap", work);
	snprintf(vsock_arg, sizeof(vsock_arg), "%u,%s", BROWSER_CID, SANDBOX_VSOCK);
	snprintf(manifest, sizeof(manifest), "%s/manifest.json", snap);
	snprintf(old, sizeof(old), "%s/old", work);
	if (mkdir(work, 0700) < 0) {
		fprintf(stderr, "ignition browser: error: cannot create %s: %s\n", work,
			strerror(errno));
		return -errno;
	}
	fprintf(stderr,
		"ignition browser: making the warm base: one cold boot of the browser guest, "
		"headless, until Firefox has drawn its start page (console: %s/%s)\n",
		work, SANDBOX_CONSOLE);
	ret = sandbox_spawn(work, argv, &pid);
	if (ret) {
		fprintf(stderr, "ignition browser: error: cannot start %s: %s\n", self,
			strerror(-ret));
		return ret;
	}
	for (;;) {
		if (access(manifest, F_OK) == 0)
			break;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			sandbox_console_tail(work, tail, sizeof(tail));
			fprintf(stderr,
				"ignition browser: error: the browser guest exited (status %d) "
				"before its snapshot: %s (console: %s/%s)\n",
				WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
				tail, work, SANDBOX_CONSOLE);
			return -ECHILD;
		}
		if (now_s() - t0 > timeout_s) {
			sandbox_kill(pid);
			fprintf(stderr,
				"ignition browser: error: no snapshot after %u s (--base-timeout); "
				"console: %s/%s\n",
				timeout_s, work, SANDBOX_CONSOLE);
			return -ETIMEDOUT;
		}
		if (now_s() >= next_scan) {
			/* ignition could not write the snapshot: no point waiting on. */
			scan_console(work, &ms, tail, sizeof(tail));
			if (tail[0]) {
				sandbox_kill(pid);
				fprintf(stderr, "ignition browser: error: %s (console: %s/%s)\n",
					tail, work, SANDBOX_CONSOLE);
				return -EIO;
			}
			next_scan += 1;
		}
		if (now_s() >= next) {
			sandbox_console_tail(work, tail, sizeof(tail));
			fprintf(stderr, "ignition browser: ... %.0f s: %.100s\n", now_s() - t0,
				tail);
			next += 15;
		}
		usleep(100000);
	}
	sandbox_kill(pid);
	scan_console(work, &ms, tail, sizeof(tail));
	/* The old base (if any) moves into the work directory, which then goes. */
	if (access(base, F_OK) == 0 && rename(base, old) < 0) {
		fprintf(stderr, "ignition browser: error: cannot move the old base %s aside: %s\n",
			base, strerror(errno));
		return -errno;
	}
	if (rename(snap, base) < 0) {
		int e = errno;

		/* A failed operation leaves the old state: the old base goes back. */
		if (access(old, F_OK) == 0 && rename(old, base) < 0)
			fprintf(stderr, "ignition browser: error: the old base is in %s\n", old);
		fprintf(stderr, "ignition browser: error: cannot rename %s to %s: %s\n", snap, base,
			strerror(e));
		return -e;
	}
	sandbox_rmtree(work);
	fprintf(stderr,
		"ignition browser: warm base %s made in %.1f s (cold boot to the start page "
		"drawn: %ld ms)\n",
		base, now_s() - t0, ms);
	return 0;
}

static volatile sig_atomic_t child_pid;

static void forward(int sig)
{
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
}

/* Send one control command; 0 or -errno with err. */
static int control(const char *dir, json_t *cmd, char *err, size_t n)
{
	json_t *ans = NULL;
	int ret;

	if (!cmd)
		return -ENOMEM;
	ret = sandbox_control(dir, cmd, 10000, &ans, err, n);
	json_decref(cmd);
	json_decref(ans);
	return ret;
}

/* Wait (up to NET_WAIT_S) until the clone says its network is configured: the guest's DHCP hook
 * marks each lease (boot_timer.h), and a restored guest has marked none yet, so the first mark
 * is the clone's own lease after its link bounce.  A URL opened before that would fail to
 * connect (the NIC is being re-probed) and Firefox does not try again.  0, -ECHILD when the
 * clone exited, -ETIMEDOUT. */
static int wait_net(const char *dir, pid_t pid, int *status)
{
	double t0 = now_s();
	bool said = false;

	for (;;) {
		json_t *cmd = json_pack("{s:s}", "cmd", "status"), *ans = NULL;
		char err[256];
		int ready = 0;

		if (!sandbox_control(dir, cmd, 10000, &ans, err, sizeof(err)))
			ready = (int)json_integer_value(json_object_get(ans, "net_ready"));
		json_decref(cmd);
		json_decref(ans);
		if (ready > 0) {
			if (said)
				fprintf(stderr,
					"ignition browser: the clone's network is up (%.1f s)\n",
					now_s() - t0);
			return 0;
		}
		if (waitpid(pid, status, WNOHANG) == pid)
			return -ECHILD;
		if (now_s() - t0 > NET_WAIT_S)
			return -ETIMEDOUT;
		if (!said && now_s() - t0 > 1) {
			fprintf(stderr,
				"ignition browser: waiting for the clone's network (its DHCP "
				"lease) before opening the URL...\n");
			said = true;
		}
		usleep(50000);
	}
}

/* Hand the URL to the clone (docs/browser.md, "The URL"): its start page waits for one, and the
 * guest agent runs ign-browser-open URL as root, which leaves it there.  A URL typed into the
 * address bar instead was lost in several ways inside tests/nested (keys sent while a clone
 * worked through its restore, a burst longer than the guest's evdev buffer, Ctrl+L taken for a
 * plain L by a busy Firefox): this path does not depend on how fast the guest handles input.
 * 0, -ECHILD when the clone exited (*status), or -errno with err. */
static int open_url(const char *dir, pid_t pid, int *status, const char *url, char *err, size_t n)
{
	struct agent_exec_req req = {
		.timeout_ms = OPEN_TIMEOUT_MS,
		.max_output = 1024,
		.argc = 2,
		.argv = { "/usr/local/bin/ign-browser-open", url, NULL },
	};
	struct agent_exec_result res;
	struct agent_buf b = { 0 };
	struct agent_reply r;
	int ret;

	/* The agent answers once the clone has run a little after the restore. */
	for (double t0 = now_s();;) {
		ret = sandbox_wait_agent(dir, 2000, -1, err, n);
		if (!ret)
			break;
		if (waitpid(pid, status, WNOHANG) == pid)
			return -ECHILD;
		if (now_s() - t0 > AGENT_WAIT_S)
			return ret;
	}
	ret = agent_exec_encode(&b, &req);
	if (!ret)
		ret = sandbox_agent_call(dir, &b, OPEN_TIMEOUT_MS + 10000, -1, &r, err, n);
	agent_buf_free(&b);
	if (ret)
		return ret;
	if (r.type != AGENT_EXEC_RESULT || agent_exec_result_decode(r.payload, r.len, &res)) {
		snprintf(err, n, "the guest agent's answer (frame type %u) is not a result",
			 r.type);
		agent_reply_free(&r);
		return -EBADMSG;
	}
	if (res.kind != AGENT_EXITED || res.code != 0) {
		snprintf(err, n, "ign-browser-open %s %u: %.*s",
			 res.kind == AGENT_EXITED ? "exited with" : "was killed by signal",
			 res.code, (int)(res.err_len > 200 ? 200 : res.err_len),
			 (const char *)res.err);
		ret = -EIO;
	}
	agent_reply_free(&r);
	return ret;
}

/* Wait (up to 60 s) until the clone's control socket answers; -ECHILD when it exited. */
static int wait_control(const char *dir, pid_t pid, int *status, char *err, size_t n)
{
	double t0 = now_s();

	for (;;) {
		if (!control(dir, json_pack("{s:s}", "cmd", "status"), err, n))
			return 0;
		if (waitpid(pid, status, WNOHANG) == pid)
			return -ECHILD;
		if (now_s() - t0 > 60)
			return -ETIMEDOUT;
		usleep(20000);
	}
}

static int session(const struct browser_opts *o, const char *self, const char *base, uint32_t cid)
{
	char dir[] = "/tmp/ignition-browser.XXXXXX", sock[PATH_MAX], gui[32], err[512];
	char vsock[PATH_MAX + 16];
	const char *argv[16];
	struct sigaction sa = { .sa_handler = forward };
	double t0 = now_s();
	int argc = 0, status = 0, ret;
	pid_t pid;

	if (!mkdtemp(dir)) {
		fprintf(stderr, "ignition browser: error: cannot create a session directory: %s\n",
			strerror(errno));
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/%s", dir, SANDBOX_CONTROL);
	/* The commands below go through dir/control.sock; a --control PATH of the user's is
	 * reached through a symbolic link there. */
	if (o->control && symlink(o->control, sock) < 0) {
		fprintf(stderr, "ignition browser: error: cannot link %s: %s\n", sock,
			strerror(errno));
		sandbox_rmtree(dir);
		return 1;
	}
	argv[argc++] = self;
	argv[argc++] = "run";
	argv[argc++] = "--restore";
	argv[argc++] = base;
	argv[argc++] = "--control";
	argv[argc++] = o->control ? o->control : sock;
	/* The guest agent's socket (the base's CID, a path of this session's). */
	snprintf(vsock, sizeof(vsock), "%u,%s/%s", cid, dir, SANDBOX_VSOCK);
	argv[argc++] = "--vsock";
	argv[argc++] = vsock;
	if (o->gui || !o->vnc) {
		snprintf(gui, sizeof(gui), "--gui=%s", o->gui ? o->gui : "sdl");
		argv[argc++] = gui;
	}
	if (o->vnc) {
		argv[argc++] = "--vnc";
		argv[argc++] = o->vnc;
	}
	if (o->net) {
		argv[argc++] = "--net";
		argv[argc++] = o->net;
	}
	argv[argc] = NULL;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* The clone keeps this terminal (its serial console) and this process group. */
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "ignition browser: error: fork: %s\n", strerror(errno));
		sandbox_rmtree(dir);
		return 1;
	}
	if (pid == 0) {
		execv(self, (char *const *)argv);
		fprintf(stderr, "ignition browser: cannot run %s: %s\n", self, strerror(errno));
		_exit(127);
	}
	child_pid = pid;
	ret = wait_control(dir, pid, &status, err, sizeof(err));
	if (ret == 0) {
		fprintf(stderr,
			"ignition browser: a fresh clone of %s runs (%.0f ms to its control "
			"socket); "
			"nothing it writes is kept\n",
			base, (now_s() - t0) * 1000);
		if (o->url) {
			ret = wait_net(dir, pid, &status);
			if (ret == -ETIMEDOUT)
				fprintf(stderr,
					"ignition browser: warning: the clone's network was not up "
					"after %d s; opening the URL all the same\n",
					NET_WAIT_S);
		}
		if (o->url && ret != -ECHILD) {
			double t1 = now_s();

			ret = open_url(dir, pid, &status, o->url, err, sizeof(err));
			if (ret == 0)
				fprintf(stderr,
					"ignition browser: the clone opens %s (%.1f s after the "
					"start, %.1f s for its agent)\n",
					o->url, now_s() - t0, now_s() - t1);
			else if (ret != -ECHILD)
				fprintf(stderr,
					"ignition browser: warning: cannot open the URL in the "
					"clone: %s\n",
					err);
		}
	} else if (ret == -ETIMEDOUT) {
		fprintf(stderr,
			"ignition browser: warning: the clone's control socket did not "
			"answer within 60 s: %s\n",
			err);
	}
	if (ret != -ECHILD)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	child_pid = 0;
	sandbox_rmtree(dir);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int browser_main(int argc, char **argv)
{
	struct browser_opts o;
	char err[512], self[PATH_MAX], gdir[PATH_MAX - 64], image[PATH_MAX], base[PATH_MAX];
	const char *why;
	uint32_t cid;
	ssize_t len;
	int ret;

	ret = browser_parse(argc, argv, &o, err, sizeof(err));
	if (ret == 1)
		return 0;
	if (ret) {
		fprintf(stderr, "ignition browser: error: %s\n", err);
		return 2;
	}
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0) {
		fprintf(stderr, "ignition browser: error: cannot find this program: %s\n",
			strerror(errno));
		return 1;
	}
	self[len] = '\0';
	guest_out_dir(gdir, sizeof(gdir));
	/* The children resolve it too, the base's boot from another directory: absolute. */
	if (gdir[0] != '/') {
		char abs[PATH_MAX];

		if (realpath(gdir, abs) && strlen(abs) < sizeof(gdir)) {
			snprintf(gdir, sizeof(gdir), "%s", abs);
			setenv("IGNITION_GUEST_DIR", gdir, 1);
		}
	}
	snprintf(image, sizeof(image), "%s/rootfs-browser.ext4", gdir);
	/* Absolute: the base's boot runs in a directory of its own. */
	if (o.base && o.base[0] != '/') {
		char cwd[PATH_MAX / 2];

		if (!getcwd(cwd, sizeof(cwd))) {
			fprintf(stderr, "ignition browser: error: getcwd: %s\n", strerror(errno));
			return 1;
		}
		snprintf(base, sizeof(base), "%s/%s", cwd, o.base);
	} else {
		snprintf(base, sizeof(base), "%s", o.base ? o.base : gdir);
		if (!o.base)
			strncat(base, "/browser-base", sizeof(base) - strlen(base) - 1);
	}
	why = o.rebuild ? "--rebuild" : base_stale(base, image);
	if (why) {
		if (access(image, F_OK) < 0) {
			fprintf(stderr,
				"ignition browser: error: the browser guest is not built (%s is "
				"missing): run 'make guest-browser'\n",
				image);
			return 1;
		}
		fprintf(stderr, "ignition browser: %s\n", why);
		if (make_base(self, base, o.base_timeout))
			return 1;
	} else if (o.make_base) {
		fprintf(stderr, "ignition browser: the warm base %s is current\n", base);
	}
	if (o.make_base)
		return 0;
	if (sandbox_base_cid(base, &cid) < 0) {
		fprintf(stderr, "ignition browser: error: the warm base %s has no vsock device\n",
			base);
		return 1;
	}
	return session(&o, self, base, cid);
}
