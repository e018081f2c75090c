/* The VNC server (vnc.h).
 *
 * Threads: vnc_start() (the main thread, before any seccomp filter of its own) opens the
 * listening socket itself and hands it to libvncserver, so that libvncserver never binds
 * anything else (no IPv6 twin on 5900, no HTTP port, no port probing) and a taken port is an
 * error at start, not a log line.  The "vnc" thread then installs its seccomp filter
 * (SECCOMP_THREAD_VNC: it parses bytes from the network) and runs rfbProcessEvents(); the
 * display's listener (producer thread, display locked) only records damage and writes an
 * eventfd that sits in libvncserver's select() set, so an update goes out at once and an
 * idle server sleeps.  Every libvncserver call is made on the vnc thread, after start-up. */
#include "ui/vnc.h"

#include "core/seccomp.h"
#include "ui/display.h"
#include "ui/input.h"
#include "ui/shadow.h"
#include "ui/ui.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <rfb/rfb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long the thread sleeps in select() with nothing to do: the stop request and damage
 * wake it through the eventfd, so this only bounds a missed wake-up. */
#define VNC_IDLE_USEC 250000
/* Evdev key codes are below KEY_MAX (0x2ff). */
#define VNC_KEYS 0x300

struct vnc {
	struct ui_shadow sh;
	rfbScreenInfoPtr screen;
	const struct ui_input *in;
	pthread_t thread;
	bool started;
	bool stop; /* atomic */
	int wake_fd;
	int listen_fd;
	unsigned port;
	char *passwds[2]; /* rfbCheckPasswordByList: NULL-terminated */
	/* The vnc thread's view of the input state (released when a client goes). */
	uint32_t buttons;
	int mask; /* the last RFB button mask */
	uint32_t last_x, last_y;
	uint8_t keys[VNC_KEYS / 8];
};

/* ---- logging: libvncserver's global log hooks ---- */

__attribute__((format(printf, 2, 0))) static void vnc_vlog(enum log_level lvl, const char *fmt,
							   va_list ap)
{
	char line[256];
	size_t len;

	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (len)
		log_msg(lvl, __FILE__, __LINE__, "vnc: %s", line);
}

__attribute__((format(printf, 1, 2))) static void vnc_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vnc_vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 1, 2))) static void vnc_err(const char *fmt, ...)
{
	static uint64_t rl;
	va_list ap;

	/* Clients can make these (bad passwords, TLS attempts...): rate-limited.  The warning
	 * about widths that are not a multiple of 4 (old viewers) is not ours to fix: the guest
	 * picks the mode. */
	if (!log_ratelimit(&rl, 10))
		return;
	va_start(ap, fmt);
	vnc_vlog(strstr(fmt, "multiple of 4") ? LOG_DEBUG : LOG_WARN, fmt, ap);
	va_end(ap);
}

static const struct ui_input no_input;

/* What an input call returned: -ENODEV (no such device: --gpu without input, tests) is
 * normal; anything else is logged, rate-limited. */
static void sent(int ret)
{
	static uint64_t rl;

	if (ret && ret != -ENODEV && log_ratelimit(&rl, 3))
		log_warn("vnc: input: %s", strerror(-ret));
}

/* ---- input (vnc thread) ---- */

static bool key_down(const struct vnc *v, uint16_t code)
{
	return v->keys[code / 8] & (1u << (code % 8));
}

static void set_key(struct vnc *v, uint16_t code, bool down)
{
	if (down)
		v->keys[code / 8] |= (uint8_t)(1u << (code % 8));
	else
		v->keys[code / 8] &= (uint8_t) ~(1u << (code % 8));
}

static void on_key(rfbBool down, rfbKeySym sym, rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;
	bool shift;
	uint16_t code = ui_keysym_code(sym, &shift);

	/* The client sends its own shift presses (RFB 6.4.4: keysyms are what the user's
	 * keyboard produced), so the implied shift is ignored. */
	if (!code || code >= VNC_KEYS)
		return;
	if (!down && !key_down(v, code))
		return;
	set_key(v, code, down);
	sent(ui_key(v->in, code, down)); /* -ENODEV without a keyboard: nothing to do */
}

/* RFB 6.4.5: bit 0 left, bit 1 middle, bit 2 right; buttons 4 and 5 are the wheel. */
static uint32_t rfb_buttons(int mask)
{
	return (mask & 1 ? UI_BUTTON_LEFT : 0) | (mask & 2 ? UI_BUTTON_MIDDLE : 0) |
	       (mask & 4 ? UI_BUTTON_RIGHT : 0);
}

static void on_pointer(int mask, int x, int y, rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;
	uint32_t b = rfb_buttons(mask);
	uint32_t ux = x < 0 ? 0 : (uint32_t)x, uy = y < 0 ? 0 : (uint32_t)y;

	if (b != v->buttons || ux != v->last_x || uy != v->last_y)
		sent(ui_pointer(v->in, ux, uy, b));
	/* A wheel click is a press and a release of button 4 (up, away from the user) or 5;
	 * count the presses. */
	if (mask & 8 && !(v->mask & 8))
		sent(ui_wheel(v->in, 1));
	if (mask & 16 && !(v->mask & 16))
		sent(ui_wheel(v->in, -1));
	v->mask = mask;
	v->buttons = b;
	v->last_x = ux;
	v->last_y = uy;
}

/* A client went away with keys or buttons held: release them in the guest. */
static void on_client_gone(rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;

	for (uint16_t code = 0; code < VNC_KEYS; code++)
		if (key_down(v, code)) {
			set_key(v, code, false);
			sent(ui_key(v->in, code, false));
		}
	v->mask = 0;
	if (v->buttons) {
		v->buttons = 0;
		sent(ui_pointer(v->in, v->last_x, v->last_y, 0));
	}
}

static enum rfbNewClientAction on_new_client(rfbClientPtr cl)
{
	cl->clientGoneHook = on_client_gone;
	return RFB_CLIENT_ACCEPT;
}

/* ---- frames ---- */

/* The listener (producer thread, display locked): just wake the select(). */
static void wake(void *opaque)
{
	struct vnc *v = opaque;
	uint64_t one = 1;
	ssize_t r = write(v->wake_fd, &one, sizeof(one));

	(void)r; /* EAGAIN: already pending */
}

/* Bring the framebuffer up to date; true when clients have something new to fetch. */
static bool refresh(struct vnc *v)
{
	struct ui_shadow_change c;
	int ret = ui_shadow_sync(&v->sh, &c);

	if (ret) {
		static uint64_t rl;

		if (log_ratelimit(&rl, 3))
			log_warn("vnc: cannot follow the display: %s", strerror(-ret));
		return false;
	}
	if (c.resized) {
		/* Clients that announced DesktopSize get the new size (RFB 7.8.2); it marks the
		 * whole frame modified. */
		rfbNewFramebuffer(v->screen, (char *)v->sh.pixels, (int)v->sh.w, (int)v->sh.h, 8, 3,
				  4);
		return true;
	}
	if (c.damaged)
		rfbMarkRectAsModified(v->screen, (int)c.x, (int)c.y, (int)(c.x + c.w),
				      (int)(c.y + c.h));
	return c.damaged;
}

static void *vnc_thread(void *opaque)
{
	struct vnc *v = opaque;
	int ret;

	log_set_thread("vnc");
	pthread_setname_np(pthread_self(), "vnc");
	ret = seccomp_thread_install(SECCOMP_THREAD_VNC, "vnc");
	if (ret) {
		log_error("vnc: cannot install its seccomp filter: %s (VNC is off)",
			  strerror(-ret));
		return NULL;
	}
	while (!__atomic_load_n(&v->stop, __ATOMIC_ACQUIRE)) {
		uint64_t n;
		bool fresh;

		if (read(v->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
			log_warn("vnc: wake fd: %s", strerror(errno));
		fresh = refresh(v);
		/* With something new, a zero timeout: rfbProcessEvents sends it to every client
		 * with an update request pending, after reading what they sent. */
		rfbProcessEvents(v->screen, fresh ? 0 : VNC_IDLE_USEC);
	}
	rfbShutdownServer(v->screen, TRUE);
	return NULL;
}

/* ---- start and stop ---- */

static int open_listener(const struct ui_opts *o, struct vnc *v, char *err, size_t n)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	char addr[sizeof(o->vnc_addr)];
	socklen_t len;
	size_t alen;
	int fd, one = 1, ret;

	/* Accept "[::1]" as well as "::1". */
	snprintf(addr, sizeof(addr), "%s", o->vnc_addr[0] == '[' ? o->vnc_addr + 1 : o->vnc_addr);
	alen = strlen(addr);
	if (alen && addr[alen - 1] == ']')
		addr[alen - 1] = '\0';
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(o->vnc_port);
		len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(o->vnc_port);
		len = sizeof(*s6);
	} else {
		snprintf(err, n, "--vnc: '%s' is not a numeric IPv4 or IPv6 address", o->vnc_addr);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, n, "--vnc: socket: %s", strerror(errno));
		return ret;
	}
	/* Exactly the address given: an IPv6 socket does not also take IPv4 connections. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		ret = -errno;
		snprintf(err, n, "--vnc %s:%u: %s", o->vnc_addr, o->vnc_port,
			 ret == -EADDRINUSE ? "the port is taken (another process listens there)"
					    : strerror(-ret));
		close(fd);
		return ret;
	}
	if (fd >= FD_SETSIZE) { /* libvncserver waits with select() */
		close(fd);
		snprintf(err, n, "--vnc: too many open files for select()");
		return -EMFILE;
	}
	v->port = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
	v->listen_fd = fd;
	return 0;
}

int vnc_start(const struct ui_opts *o, struct display *d, const struct ui_input *in,
	      struct vnc **out, char *err, size_t n)
{
	struct vnc *v = calloc(1, sizeof(*v));
	rfbScreenInfoPtr s;
	int ret;

	*out = NULL;
	if (!v) {
		snprintf(err, n, "--vnc: out of memory");
		return -ENOMEM;
	}
	v->in = in ? in : &no_input; /* input calls then say -ENODEV */
	v->listen_fd = -1;
	v->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->wake_fd < 0 || v->wake_fd >= FD_SETSIZE) {
		ret = v->wake_fd < 0 ? -errno : -EMFILE;
		snprintf(err, n, "--vnc: eventfd: %s", strerror(-ret));
		goto free_v;
	}
	ret = open_listener(o, v, err, n);
	if (ret)
		goto close_wake;
	rfbLog = vnc_log;
	rfbErr = vnc_err;
	/* The frame is kept as libvncserver's default 32-bit layout (R, G, B, X bytes), so the
	 * pixel format and its translation tables stay right across rfbNewFramebuffer(). */
	ret = ui_shadow_init(&v->sh, d, true, wake, v);
	if (ret) {
		snprintf(err, n, "--vnc: cannot follow the display: %s", strerror(-ret));
		goto close_listen;
	}
	s = rfbGetScreen(NULL, NULL, (int)v->sh.w, (int)v->sh.h, 8, 3, 4);
	if (!s) {
		ret = -ENOMEM;
		snprintf(err, n, "--vnc: cannot create the VNC screen");
		goto fini_shadow;
	}
	v->screen = s;
	s->screenData = v;
	s->frameBuffer = (char *)v->sh.pixels;
	s->desktopName = "ignition";
	s->alwaysShared = TRUE; /* several viewers at once */
	s->port = (int)v->port;
	s->ipv6port = 0;
	s->httpPort = s->http6Port = 0;
	s->httpDir = NULL;
	s->autoPort = FALSE;
	s->deferUpdateTime = 0;	   /* send at once: damage already wakes the thread */
	s->deferPtrUpdateTime = 0; /* pass every pointer event on at once, not on a later pass */
	s->cursor = NULL;	   /* the guest draws its own; none painted into the frame */
	s->kbdAddEvent = on_key;
	s->ptrAddEvent = on_pointer;
	s->newClientHook = on_new_client;
	/* Our own socket, and the wake-up eventfd in the same select() set.  socketState READY
	 * makes rfbInitSockets() leave both alone (libvncserver 0.9.14 sockets.c). */
	s->socketState = RFB_SOCKET_READY;
	if (strchr(o->vnc_addr, ':'))
		s->listen6Sock = v->listen_fd;
	else
		s->listenSock = v->listen_fd;
	FD_ZERO(&s->allFds);
	FD_SET(v->listen_fd, &s->allFds);
	FD_SET(v->wake_fd, &s->allFds);
	s->maxFd = v->listen_fd > v->wake_fd ? v->listen_fd : v->wake_fd;
	if (o->vnc_password[0]) {
		/* VNC authentication (RFB 7.2.2): DES of a challenge with the first 8 bytes of the
		 * password as the key; longer passwords are cut there by the protocol. */
		v->passwds[0] = strdup(o->vnc_password);
		if (!v->passwds[0]) {
			ret = -ENOMEM;
			snprintf(err, n, "--vnc: out of memory");
			goto free_screen;
		}
		if (strlen(o->vnc_password) > 8)
			log_warn("vnc: VNC authentication uses the first 8 characters of the "
				 "password only");
		s->authPasswdData = v->passwds;
		s->passwordCheck = rfbCheckPasswordByList;
	}
	rfbInitServer(s); /* sockets are ours; also ignores SIGPIPE process-wide */
	{
		/* libgcrypt (libvncserver's DES and SHA-1) initialises itself on first use and
		 * reads files then: do it here, before the vnc thread's filter. */
		unsigned char challenge[16];

		rfbRandomBytes(challenge);
		rfbEncryptBytes(challenge, (char *)"ignition");
	}
	ret = pthread_create(&v->thread, NULL, vnc_thread, v);
	if (ret) {
		ret = -ret;
		snprintf(err, n, "--vnc: cannot start its thread: %s", strerror(-ret));
		goto free_screen;
	}
	v->started = true;
	log_info("VNC server on %s%s%s:%u%s", strchr(o->vnc_addr, ':') ? "[" : "", o->vnc_addr,
		 strchr(o->vnc_addr, ':') ? "]" : "", v->port,
		 o->vnc_password[0] ? " (VNC authentication)" : " (no password)");
	*out = v;
	return 0;

free_screen:
	s->listenSock = s->listen6Sock = RFB_INVALID_SOCKET; /* closed below */
	rfbScreenCleanup(s);
fini_shadow:
	ui_shadow_fini(&v->sh);
close_listen:
	close(v->listen_fd);
close_wake:
	if (v->wake_fd >= 0)
		close(v->wake_fd);
free_v:
	free(v->passwds[0]);
	free(v);
	return ret;
}

unsigned vnc_port(const struct vnc *v)
{
	return v->port;
}

void vnc_stop(struct vnc *v)
{
	if (!v)
		return;
	if (v->started) {
		__atomic_store_n(&v->stop, true, __ATOMIC_RELEASE);
		wake(v);
		pthread_join(v->thread, NULL);
	}
	/* The thread closed the clients and the listening socket (rfbShutdownServer); stop
	 * the listener before the screen goes. */
	ui_shadow_fini(&v->sh);
	if (v->screen->listenSock != RFB_INVALID_SOCKET ||
	    v->screen->listen6Sock != RFB_INVALID_SOCKET)
		close(v->listen_fd);
	rfbScreenCleanup(v->screen);
	close(v->wake_fd);
	free(v->passwds[0]);
	free(v);
}
