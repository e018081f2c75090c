/* The VNC server of `ignition run --vnc ADDR:PORT` (libvncserver): any RFB client (and noVNC,
 * through libvncserver's WebSocket support on the same port) sees the display and types and
 * points into the guest.  One thread of its own; docs/gui.md, "VNC". */
#ifndef IGNITION_UI_VNC_H
#define IGNITION_UI_VNC_H

#include <stddef.h>

struct display;
struct ui_input;
struct ui_opts;
struct vnc;

/* Listen on o->vnc_addr:o->vnc_port only (with VNC authentication when o->vnc_password is
 * set) and serve d on a thread of its own.  0, or -errno with one line in err (bad address,
 * port taken...). */
int vnc_start(const struct ui_opts *o, struct display *d, const struct ui_input *in,
	      struct vnc **out, char *err, size_t n) __attribute__((warn_unused_result));
/* The TCP port it listens on (the one asked for, or the kernel's choice for port 0). */
unsigned vnc_port(const struct vnc *v);
/* Disconnect every client, close the socket, join the thread.  NULL is a no-op. */
void vnc_stop(struct vnc *v);

#endif
